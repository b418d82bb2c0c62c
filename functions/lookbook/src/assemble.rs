//! Assembling looks: complete outfits scored for a shopper and a context, then chosen for
//! diversity.
//!
//! 1. Every candidate item gets a score: the shopper's affinities (style, colour, category,
//!    price band, brand; each relative to the shopper's top value), closeness to the taste
//!    embedding, the occasion's styles, the season's materials, and popularity.
//! 2. Styles are ranked by the shopper's style affinity plus the occasion's preference. For
//!    every style and both outfit shapes ([`SEPARATES`], [`DRESSED`]) a greedy pass fills
//!    the slots best-first under the rules: one coherent style ([`style::fits`]), harmonious
//!    colours ([`style::harmonious`]), within budget (keeping enough for the slots still to
//!    fill), in stock, suitable for the season. Further variants exclude items already used.
//! 3. Looks are picked by maximal marginal relevance: score against similarity to the looks
//!    already picked (shared style, shape, colours and categories, averaged with the mean
//!    cosine of their items' embeddings when they have them), no product twice.
//!
//! Everything is deterministic: ties break by product id.

use std::collections::{BTreeSet, HashMap};

use vitrine_catalog::embeddings;
use vitrine_shoppers::profile::{price_band, Profile};

use crate::context::LookbookRequest;
use crate::style;

/// A catalogue product that may go into a look.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Product id.
    pub id: String,
    /// Product title.
    pub title: String,
    /// Category (`dresses`, `shoes`, …).
    pub category: String,
    /// Item type (`Midi Dress`, `Sneakers`, …).
    pub item_type: String,
    /// Brand.
    pub brand: String,
    /// Price in cents (EUR).
    pub price_cents: i64,
    /// Colours, main first.
    pub colours: Vec<String>,
    /// Style tags.
    pub styles: Vec<String>,
    /// Material.
    pub material: String,
    /// Image URL.
    pub image: String,
    /// Popularity in 0..=1 (events and reviews, relative to the most popular).
    pub popularity: f64,
}

/// A place in an outfit and the categories that fill it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Its name in the API.
    pub name: &'static str,
    /// Categories that fill it.
    pub categories: &'static [&'static str],
}

const TOP: Slot = Slot {
    name: "top",
    categories: &["tops", "shirts", "knitwear"],
};
const BOTTOM: Slot = Slot {
    name: "bottom",
    categories: &["jeans", "trousers", "skirts"],
};
const DRESS: Slot = Slot {
    name: "dress",
    categories: &["dresses"],
};
const SHOES: Slot = Slot {
    name: "shoes",
    categories: &["shoes"],
};
const ACCESSORY: Slot = Slot {
    name: "accessory",
    categories: &["bags", "accessories", "jewellery"],
};
const FINISH: Slot = Slot {
    name: "bag or outerwear",
    categories: &["bags", "jackets", "coats"],
};

/// Top, bottom, shoes and an accessory.
pub const SEPARATES: &[Slot] = &[TOP, BOTTOM, SHOES, ACCESSORY];
/// A dress, shoes, and a bag or outerwear.
pub const DRESSED: &[Slot] = &[DRESS, SHOES, FINISH];

/// An outfit.
#[derive(Debug, Clone)]
pub struct Look {
    /// The style it is built around.
    pub style: &'static str,
    /// Its slots, in order, each with its item.
    pub items: Vec<(Slot, Item)>,
    /// Its score (mean item score plus the style's).
    pub score: f64,
}

impl Look {
    /// Total price in cents.
    pub fn total_cents(&self) -> i64 {
        self.items.iter().map(|(_, i)| i.price_cents).sum()
    }

    /// Its colours, main colours first, each once.
    pub fn colours(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let mains = self.items.iter().filter_map(|(_, i)| i.colours.first());
        let rest = self
            .items
            .iter()
            .flat_map(|(_, i)| i.colours.iter().skip(1));
        for c in mains.chain(rest) {
            if !out.contains(&c.as_str()) {
                out.push(c);
            }
        }
        out
    }
}

/// Weights of the profile dimensions in an item's score.
const DIMENSION_WEIGHTS: [(&str, f64); 5] = [
    ("style", 0.25),
    ("colour", 0.25),
    ("category", 0.25),
    ("price_band", 0.15),
    ("brand", 0.10),
];

/// Whether an item suits the season (`None`: not at all), and how well (0..=0.2).
pub fn season_fit(item: &Item, season: &str) -> Option<f64> {
    let has = |words: &[&str]| {
        words
            .iter()
            .any(|w| item.material.contains(w) || item.item_type.contains(w))
    };
    let warm = [
        "wool",
        "cashmere",
        "flannel",
        "teddy",
        "Boots",
        "Beanie",
        "Puffer",
        "Turtleneck",
        "Cable-Knit",
        "suede",
        "shearling",
    ];
    let light = [
        "linen",
        "raffia",
        "chiffon",
        "Sandals",
        "Tank Top",
        "Camisole",
        "Sundress",
        "Shorts",
        "Sunglasses",
        "Crop Top",
        "Bucket Hat",
    ];
    match season {
        _ if item.category == "swimwear" || item.category == "activewear" => None,
        "summer" if item.category == "coats" || item.category == "knitwear" || has(&warm) => None,
        "summer" => Some(
            if has(&light) || has(&["cotton", "silk", "poplin", "jersey"]) {
                0.2
            } else {
                0.0
            },
        ),
        "winter" if has(&light) || item.material == "canvas" => None,
        "winter" => Some(
            if has(&warm) || item.category == "coats" || item.category == "knitwear" {
                0.2
            } else {
                0.0
            },
        ),
        "autumn" if has(&["raffia", "Sandals", "Tank Top", "Sundress"]) => None,
        "autumn" => Some(if has(&warm) || item.category == "jackets" {
            0.1
        } else {
            0.0
        }),
        _ if item.category == "coats" || has(&["cashmere", "Puffer", "teddy"]) => None,
        _ => Some(if has(&["linen", "cotton", "silk"]) {
            0.1
        } else {
            0.0
        }),
    }
}

/// Scores items and assembles lookbooks for one request.
pub struct Assembler<'a> {
    request: &'a LookbookRequest,
    /// The shopper's affinities relative to their top values (empty without a profile).
    relative: Relative<'a>,
    /// Candidates by id with their score; only season-suitable items are kept.
    scored: Vec<(Item, f64)>,
    vectors: HashMap<String, Vec<f32>>,
}

impl<'a> Assembler<'a> {
    /// Scores `items` for the request and the shopper's profile (if any). `vectors` holds the
    /// product embeddings known (possibly none).
    pub fn new(
        request: &'a LookbookRequest,
        profile: Option<&'a Profile>,
        items: Vec<Item>,
        vectors: HashMap<String, Vec<f32>>,
    ) -> Self {
        let profile = profile.filter(|p| p.events > 0);
        let relative = profile.map(Relative::of).unwrap_or_default();
        // Items share a few hundred (category, type, material) kinds: judge each kind once.
        let mut kinds: HashMap<(&str, &str, &str), Option<f64>> = HashMap::new();
        let seasons: Vec<Option<f64>> = items
            .iter()
            .map(|i| {
                *kinds
                    .entry((&i.category, &i.item_type, &i.material))
                    .or_insert_with(|| season_fit(i, request.season))
            })
            .collect();
        let bought = |item: &Item| profile.is_some_and(|p| p.purchased.contains(&item.id));
        let mut scored: Vec<(Item, f64)> = items
            .into_iter()
            .zip(seasons)
            .filter_map(|(item, season)| {
                let season = season.filter(|_| !bought(&item))?;
                let personal = profile.map(|p| (p, &relative));
                let score = item_score(&item, personal, request, &vectors) + season;
                Some((item, score))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.id.cmp(&b.0.id)));
        Assembler {
            request,
            relative,
            scored,
            vectors,
        }
    }

    /// The best `per_group` items of every (category, style tag), for a second pass with
    /// their embeddings.
    /// The three cheapest of each group stay too, so a tight budget still finds its looks.
    pub fn shortlist(self, per_group: usize) -> Vec<Item> {
        let items: Vec<&Item> = self.scored.iter().map(|(item, _)| item).collect();
        let mut by_price: Vec<usize> = (0..items.len()).collect();
        by_price.sort_by(|a, b| {
            let (a, b) = (items[*a], items[*b]);
            a.price_cents
                .cmp(&b.price_cents)
                .then_with(|| a.id.cmp(&b.id))
        });
        let mut keep = vec![false; items.len()];
        for (order, quota) in [(by_price, 3), ((0..items.len()).collect(), per_group)] {
            let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
            for n in order {
                for style in &items[n].styles {
                    let count = counts.entry((&items[n].category, style)).or_default();
                    if *count < quota {
                        *count += 1;
                        keep[n] = true;
                    }
                }
            }
        }
        self.scored
            .into_iter()
            .zip(keep)
            .filter(|(_, keep)| *keep)
            .map(|((item, _), _)| item)
            .collect()
    }

    /// How much `style` suits this shopper and occasion.
    pub fn style_score(&self, style: &str) -> f64 {
        let personal = self.relative.get("style", style);
        let occasion = self.request.occasion().map_or(0.0, |o| {
            o.styles
                .iter()
                .position(|s| *s == style)
                .map_or(0.0, |i| 0.6 - 0.05 * i as f64)
        });
        // Without a shopper or an occasion, the catalogue's everyday styles lead.
        let prior = match style {
            "minimalist" | "classic" | "casual" => 0.1,
            _ => 0.0,
        };
        personal + occasion + prior
    }

    /// The lookbook: `request.looks` looks, best and most varied first.
    pub fn lookbook(&self) -> Vec<Look> {
        let mut styles: Vec<(&'static str, f64)> = style::LOOK_STYLES
            .iter()
            .map(|s| (*s, self.style_score(s)))
            .collect();
        styles.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let dressy = self.request.occasion().is_some_and(|o| o.dressy);
        let mut pool = Vec::new();
        for (style, style_score) in &styles {
            for shape in [SEPARATES, DRESSED] {
                let shape_bonus = match (shape == DRESSED, dressy) {
                    (true, true) => 0.15,
                    (false, false) if self.request.occasion.is_some() => 0.1,
                    _ => 0.0,
                };
                let mut used = BTreeSet::new();
                for _ in 0..self.request.looks {
                    let Some(mut look) = self.build(style, shape, &used) else {
                        break;
                    };
                    look.score += style_score + shape_bonus;
                    used.extend(look.items.iter().map(|(_, i)| i.id.clone()));
                    pool.push(look);
                }
            }
        }
        self.pick(pool)
    }

    /// One look of `style` and `shape`, greedily, avoiding `used` items.
    fn build(&self, style: &'static str, shape: &[Slot], used: &BTreeSet<String>) -> Option<Look> {
        let candidates: Vec<Vec<&(Item, f64)>> = shape
            .iter()
            .enumerate()
            .map(|(n, slot)| {
                self.scored
                    .iter()
                    .filter(|(item, _)| {
                        slot.categories.contains(&item.category.as_str())
                            && !used.contains(&item.id)
                            // The first slot carries the look's style itself.
                            && if n == 0 { item.styles.iter().any(|s| s == style) } else { style::fits(style, &item.styles) }
                    })
                    .collect()
            })
            .collect();
        let cheapest: Vec<i64> = candidates
            .iter()
            .map(|c| c.iter().map(|(i, _)| i.price_cents).min())
            .collect::<Option<_>>()?;
        let mut items: Vec<(Slot, Item)> = Vec::new();
        let mut total = 0.0;
        for (n, slot) in shape.iter().enumerate() {
            let reserve: i64 = cheapest[n + 1..].iter().sum();
            let spent: i64 = items.iter().map(|(_, i)| i.price_cents).sum();
            let (item, score) = candidates[n].iter().find(|(item, _)| {
                let fits_budget = self
                    .request
                    .budget_cents
                    .is_none_or(|b| spent + item.price_cents + reserve <= b);
                let colours = items
                    .iter()
                    .flat_map(|(_, i)| &i.colours)
                    .chain(&item.colours);
                let categories_differ = !items.iter().any(|(_, i)| i.category == item.category);
                fits_budget && categories_differ && style::harmonious(colours.map(String::as_str))
            })?;
            total += score;
            items.push((*slot, item.clone()));
        }
        let score = total / shape.len() as f64;
        Some(Look {
            style,
            items,
            score,
        })
    }

    /// Maximal marginal relevance over `pool`: `LAMBDA · score − (1 − LAMBDA) · similarity`.
    fn pick(&self, pool: Vec<Look>) -> Vec<Look> {
        const LAMBDA: f64 = 0.7;
        let best = pool
            .iter()
            .map(|l| l.score)
            .fold(f64::MIN, f64::max)
            .max(1e-9);
        let mut pool: Vec<(Look, Likeness)> = pool
            .into_iter()
            .map(|look| {
                let likeness = self.likeness(&look);
                (look, likeness)
            })
            .collect();
        let mut chosen: Vec<(Look, Likeness)> = Vec::new();
        while chosen.len() < self.request.looks {
            let taken: BTreeSet<&str> = chosen
                .iter()
                .flat_map(|(l, _)| l.items.iter().map(|(_, i)| i.id.as_str()))
                .collect();
            let value = |(look, likeness): &(Look, Likeness)| {
                let similarity = chosen
                    .iter()
                    .map(|(_, c)| likeness.similarity(c))
                    .fold(0.0, f64::max);
                LAMBDA * look.score / best - (1.0 - LAMBDA) * similarity
            };
            let next = pool
                .iter()
                .enumerate()
                .filter(|(_, (l, _))| l.items.iter().all(|(_, i)| !taken.contains(i.id.as_str())))
                .map(|(n, candidate)| (n, value(candidate)))
                .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
            match next {
                Some((n, _)) => chosen.push(pool.swap_remove(n)),
                None => break,
            }
        }
        chosen.into_iter().map(|(look, _)| look).collect()
    }

    /// What similarity between looks is computed from: the look's traits (its style, shape,
    /// colours and categories) and, when every item has an embedding, their mean (the dot
    /// product of two such means is the mean cosine over all item pairs).
    fn likeness(&self, look: &Look) -> Likeness {
        let vectors: Option<Vec<&Vec<f32>>> = look
            .items
            .iter()
            .map(|(_, i)| self.vectors.get(&i.id))
            .collect();
        let mean = vectors.filter(|v| !v.is_empty()).map(|vectors| {
            let mut mean = vec![0f32; vectors[0].len()];
            for v in &vectors {
                mean.iter_mut()
                    .zip(v.iter())
                    .for_each(|(m, x)| *m += x / vectors.len() as f32);
            }
            mean
        });
        let shape = look.items.first().map_or("", |(slot, _)| slot.name);
        let traits = [format!("style:{}", look.style), format!("shape:{shape}")]
            .into_iter()
            .chain(look.colours().into_iter().map(|c| format!("colour:{c}")))
            .chain(
                look.items
                    .iter()
                    .map(|(_, i)| format!("category:{}", i.category)),
            )
            .collect();
        Likeness { mean, traits }
    }
}

/// How a look is compared with others ([`Assembler::likeness`]).
struct Likeness {
    /// The mean of its items' embeddings, if every item has one.
    mean: Option<Vec<f32>>,
    /// Its style, shape, colours and categories.
    traits: BTreeSet<String>,
}

impl Likeness {
    /// The share of traits two looks have in common, averaged with the mean cosine of their
    /// items when both have embeddings (in 0..=1 for looks that are alike).
    fn similarity(&self, other: &Likeness) -> f64 {
        let (a, b) = (&self.traits, &other.traits);
        let shared = a.intersection(b).count() as f64 / a.union(b).count().max(1) as f64;
        match (&self.mean, &other.mean) {
            (Some(x), Some(y)) => 0.5 * shared + 0.5 * f64::from(embeddings::similarity(x, y)),
            _ => shared,
        }
    }
}

/// An item's score before the season: the shopper's affinities and taste, the occasion's
/// styles, popularity.
fn item_score(
    item: &Item,
    profile: Option<(&Profile, &Relative)>,
    request: &LookbookRequest,
    vectors: &HashMap<String, Vec<f32>>,
) -> f64 {
    let mut score = 0.4 * item.popularity;
    if let Some(occasion) = request.occasion() {
        if item
            .styles
            .iter()
            .any(|s| occasion.styles.contains(&s.as_str()))
        {
            score += 0.25;
        }
    }
    if let Some((p, relative)) = profile {
        for (dimension, weight) in DIMENSION_WEIGHTS {
            let best = match dimension {
                "style" => item
                    .styles
                    .iter()
                    .map(|s| relative.get(dimension, s))
                    .fold(0.0, f64::max),
                "colour" => item
                    .colours
                    .iter()
                    .map(|c| relative.get(dimension, c))
                    .fold(0.0, f64::max),
                "category" => relative.get(dimension, &item.category),
                "brand" => relative.get(dimension, &item.brand),
                _ => relative.get(dimension, price_band(item.price_cents)),
            };
            score += weight * best;
        }
        if let (Some(taste), Some(v)) = (&p.taste, vectors.get(&item.id)) {
            score += 0.5 * f64::from(embeddings::similarity(taste, v)).max(0.0);
        }
    }
    score
}

/// A shopper's affinities relative to the top value of their dimension (0..=1), looked up in
/// constant time: every candidate is scored against them.
#[derive(Default)]
struct Relative<'a>(HashMap<&'a str, HashMap<&'a str, f64>>);

impl<'a> Relative<'a> {
    fn of(profile: &'a Profile) -> Self {
        Relative(
            profile
                .affinities
                .iter()
                .map(|(dimension, values)| {
                    let top = values.first().map_or(0.0, |(_, a)| *a);
                    let relative = values
                        .iter()
                        .filter(|_| top > 0.0)
                        .map(|(v, a)| (v.as_str(), a / top))
                        .collect();
                    (*dimension, relative)
                })
                .collect(),
        )
    }

    fn get(&self, dimension: &str, value: &str) -> f64 {
        self.0
            .get(dimension)
            .and_then(|values| values.get(value))
            .copied()
            .unwrap_or(0.0)
    }
}

/// Whether a look obeys every assembly rule: a complete shape, one coherent style, harmonious
/// colours, in budget (if any), distinct categories.
pub fn valid(look: &Look, budget_cents: Option<i64>) -> bool {
    let slots: Vec<Slot> = look.items.iter().map(|(s, _)| *s).collect();
    let complete = slots == SEPARATES || slots == DRESSED;
    let filled = look
        .items
        .iter()
        .all(|(s, i)| s.categories.contains(&i.category.as_str()));
    let coherent = look
        .items
        .iter()
        .all(|(_, i)| style::fits(look.style, &i.styles));
    let colours = style::harmonious(
        look.items
            .iter()
            .flat_map(|(_, i)| i.colours.iter().map(String::as_str)),
    );
    let categories: BTreeSet<&str> = look
        .items
        .iter()
        .map(|(_, i)| i.category.as_str())
        .collect();
    complete
        && filled
        && coherent
        && colours
        && categories.len() == look.items.len()
        && budget_cents.is_none_or(|b| look.total_cents() <= b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn item(id: &str, category: &str, colour: &str, style: &str, price: i64) -> Item {
        Item {
            id: id.into(),
            title: format!("{id} {category}"),
            category: category.into(),
            item_type: "Thing".into(),
            brand: "Basalt".into(),
            price_cents: price,
            colours: vec![colour.into()],
            styles: vec![style.into()],
            material: "cotton".into(),
            image: format!("/images/products/{id}"),
            popularity: 0.5,
        }
    }

    /// A small catalogue: every slot in minimalist black and in romantic red, pink and green.
    fn catalogue() -> Vec<Item> {
        let mut items = Vec::new();
        let categories = [
            "tops",
            "jeans",
            "shoes",
            "bags",
            "dresses",
            "jewellery",
            "trousers",
        ];
        for (n, category) in categories.iter().enumerate() {
            for k in 0..3 {
                items.push(item(
                    &format!("m{n}{k}"),
                    category,
                    "black",
                    "minimalist",
                    3000 + 1000 * k,
                ));
                items.push(item(
                    &format!("r{n}{k}"),
                    category,
                    ["red", "pink", "green"][k as usize],
                    "romantic",
                    2000 + 500 * k,
                ));
            }
        }
        items
    }

    fn request(query: &str) -> LookbookRequest {
        LookbookRequest::parse(query, 6).unwrap()
    }

    #[test]
    fn looks_are_complete_valid_distinct_and_deterministic() {
        let r = request("looks=4");
        let looks = Assembler::new(&r, None, catalogue(), HashMap::new()).lookbook();
        assert_eq!(looks.len(), 4);
        let mut seen = BTreeSet::new();
        for look in &looks {
            assert!(valid(look, None), "{look:?}");
            for (_, i) in &look.items {
                assert!(seen.insert(i.id.clone()), "{} twice", i.id);
            }
        }
        let again = Assembler::new(&r, None, catalogue(), HashMap::new()).lookbook();
        let ids = |ls: &[Look]| {
            ls.iter()
                .map(|l| {
                    l.items
                        .iter()
                        .map(|(_, i)| i.id.clone())
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&looks), ids(&again));
        // Red with green breaks the colour rule: no look holds both.
        for look in &looks {
            let colours = look.colours();
            assert!(
                !(colours.contains(&"red") && colours.contains(&"green")),
                "{colours:?}"
            );
        }
    }

    #[test]
    fn the_budget_holds_and_an_impossible_one_gives_no_look() {
        let r = request("budget=110&looks=3");
        let looks = Assembler::new(&r, None, catalogue(), HashMap::new()).lookbook();
        assert!(!looks.is_empty());
        assert!(looks
            .iter()
            .all(|l| l.total_cents() <= 11_000 && valid(l, Some(11_000))));
        let r = request("budget=20");
        assert!(Assembler::new(&r, None, catalogue(), HashMap::new())
            .lookbook()
            .is_empty());
    }

    #[test]
    fn the_profile_and_the_occasion_lead_the_style() {
        let profile = Profile {
            events: 10,
            affinities: BTreeMap::from([
                (
                    "style",
                    vec![
                        ("minimalist".to_string(), 0.9),
                        ("romantic".to_string(), 0.1),
                    ],
                ),
                ("colour", vec![("black".to_string(), 1.0)]),
            ]),
            ..Profile::default()
        };
        let r = request("looks=2");
        let looks = Assembler::new(&r, Some(&profile), catalogue(), HashMap::new()).lookbook();
        assert_eq!(looks[0].style, "minimalist");
        let r = request("looks=2&occasion=date");
        let looks = Assembler::new(&r, None, catalogue(), HashMap::new()).lookbook();
        assert_eq!(looks[0].style, "romantic");
    }

    #[test]
    fn what_the_shopper_bought_is_not_offered_again() {
        let profile = Profile {
            events: 1,
            purchased: ["m40".to_string(), "m20".to_string()].into(),
            ..Profile::default()
        };
        let r = request("looks=3");
        let looks = Assembler::new(&r, Some(&profile), catalogue(), HashMap::new()).lookbook();
        assert!(!looks.is_empty());
        for look in &looks {
            assert!(
                look.items
                    .iter()
                    .all(|(_, i)| i.id != "m40" && i.id != "m20"),
                "{look:?}"
            );
        }
        let anyone = Assembler::new(&r, None, catalogue(), HashMap::new()).lookbook();
        let offered: Vec<&str> = anyone
            .iter()
            .flat_map(|l| l.items.iter().map(|(_, i)| i.id.as_str()))
            .collect();
        assert!(
            offered.contains(&"m40") && offered.contains(&"m20"),
            "{offered:?}"
        );
    }

    #[test]
    fn seasons_exclude_what_cannot_be_worn() {
        let mut sandal = item("s", "shoes", "black", "minimalist", 100);
        sandal.item_type = "Sandals".into();
        assert_eq!(season_fit(&sandal, "winter"), None);
        assert!(season_fit(&sandal, "summer").unwrap() > 0.0);
        let coat = item("c", "coats", "black", "minimalist", 100);
        assert_eq!(season_fit(&coat, "summer"), None);
        assert!(season_fit(&coat, "winter").unwrap() > 0.0);
    }
}
