//! Assembling looks: complete outfits from the shortlisted items ([`crate::shortlist`]), then
//! chosen for diversity.
//!
//! 1. Every item's score is its first-pass score plus its closeness to the shopper's taste
//!    embedding (`0.5 × max(0, cosine)`), when both are known.
//! 2. Styles are ranked by the shopper's style affinity plus the occasion's preference. For
//!    every style and both outfit shapes ([`SEPARATES`], [`DRESSED`]) a greedy pass fills
//!    the slots best-first under the rules: one coherent style ([`style::fits`]), harmonious
//!    colours ([`style::harmonious`]), within budget (keeping enough for the slots still to
//!    fill). Further variants exclude items already used.
//! 3. Looks are picked by maximal marginal relevance: score against similarity to the looks
//!    already picked (shared style, shape, colours and categories, averaged with the mean
//!    cosine of their items' embeddings when they have them), no product twice. Embeddings
//!    are fetched only for the looks that might still be picked.
//!
//! Everything is deterministic: ties break by product id.

use std::collections::{BTreeSet, HashMap};

use vitrine_catalog::embeddings;
use vitrine_shoppers::profile::Profile;

use crate::context::LookbookRequest;
use crate::shortlist::Relative;
use crate::style;

/// A catalogue product that may go into a look, its words borrowed from the candidates it was
/// shortlisted from.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'c> {
    /// Product id.
    pub id: &'c str,
    /// Category (`dresses`, `shoes`, …).
    pub category: &'c str,
    /// Item type (`Midi Dress`, `Sneakers`, …).
    pub item_type: &'c str,
    /// Brand.
    pub brand: &'c str,
    /// Price in cents (EUR).
    pub price_cents: i64,
    /// Colours, main first.
    pub colours: Vec<&'c str>,
    /// Style tags.
    pub styles: Vec<&'c str>,
    /// Material.
    pub material: &'c str,
    /// Its first-pass score: affinities, occasion, season, popularity ([`crate::shortlist`]).
    pub score: f64,
    /// Its position in the candidates it was shortlisted from.
    pub position: u32,
    /// The look styles it is tagged with (a bit per position in [`style::LOOK_STYLES`]).
    pub carries: u32,
    /// The look styles it belongs in ([`style::fits`]; bits as in `carries`).
    pub fits: u32,
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

/// An outfit, of items borrowed from the shortlist.
#[derive(Debug, Clone)]
pub struct Look<'a> {
    /// The style it is built around.
    pub style: &'static str,
    /// Its slots, in order, each with its item.
    pub items: Vec<(Slot, &'a Item<'a>)>,
    /// Its score (mean item score plus the style's).
    pub score: f64,
}

impl<'a> Look<'a> {
    /// Total price in cents.
    pub fn total_cents(&self) -> i64 {
        self.items.iter().map(|(_, i)| i.price_cents).sum()
    }

    /// Its colours, main colours first, each once.
    pub fn colours(&self) -> Vec<&'a str> {
        let mut out: Vec<&'a str> = Vec::new();
        let mains = self.items.iter().filter_map(|(_, i)| i.colours.first());
        let rest = self
            .items
            .iter()
            .flat_map(|(_, i)| i.colours.iter().skip(1));
        for c in mains.chain(rest) {
            if !out.contains(c) {
                out.push(c);
            }
        }
        out
    }
}

/// Scores the shortlisted items with the taste embedding and assembles lookbooks for one
/// request.
pub struct Assembler<'a> {
    request: &'a LookbookRequest,
    /// The shopper's affinities relative to their top values (empty without a profile).
    relative: Relative<'a>,
    /// The items with their score, best first.
    scored: Vec<(Item<'a>, f64)>,
}

/// A shortlisted item with its score, as the assembler holds it.
type Entry<'s> = &'s (Item<'s>, f64);

impl<'a> Assembler<'a> {
    /// Scores `items` (from [`crate::shortlist`]) with `closeness`: each one's cosine to the
    /// shopper's taste embedding, where known ([`crate::taste`]).
    pub fn new(
        request: &'a LookbookRequest,
        profile: Option<&'a Profile>,
        items: Vec<Item<'a>>,
        closeness: Vec<Option<f32>>,
    ) -> Self {
        let profile = profile.filter(|p| p.events > 0);
        let relative = profile.map(Relative::of).unwrap_or_default();
        let mut scored: Vec<(Item, f64)> = items
            .into_iter()
            .zip(closeness)
            .map(|(item, closeness)| {
                let closeness = match (profile, closeness) {
                    (Some(_), Some(cosine)) => 0.5 * f64::from(cosine).max(0.0),
                    _ => 0.0,
                };
                let score = item.score + closeness;
                (item, score)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.id.cmp(b.0.id)));
        Assembler {
            request,
            relative,
            scored,
        }
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

    /// What [`Self::pick`] chooses from: up to `request.looks` looks of every style and shape,
    /// scored.
    pub fn variants(&self) -> Vec<Look<'_>> {
        let mut styles: Vec<(&'static str, f64, u32)> = style::LOOK_STYLES
            .iter()
            .enumerate()
            .map(|(n, s)| (*s, self.style_score(s), 1 << n))
            .collect();
        styles.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let dressy = self.request.occasion().is_some_and(|o| o.dressy);
        // Each slot's items, best first.
        let by_slot: HashMap<&str, Vec<Entry>> = SEPARATES
            .iter()
            .chain(DRESSED)
            .map(|slot| {
                let items = self.scored.iter();
                let fill = items.filter(|(i, _)| slot.categories.contains(&i.category));
                (slot.name, fill.collect())
            })
            .collect();
        let mut pool = Vec::new();
        for (style, style_score, bit) in &styles {
            for shape in [SEPARATES, DRESSED] {
                let shape_bonus = match (shape == DRESSED, dressy) {
                    (true, true) => 0.15,
                    (false, false) if self.request.occasion.is_some() => 0.1,
                    _ => 0.0,
                };
                let slots = slot_items(&by_slot, *bit, shape);
                let mut used = Vec::new();
                for _ in 0..self.request.looks {
                    let Some((mut look, chosen)) = self.build(style, shape, &slots, &used) else {
                        break;
                    };
                    look.score += style_score + shape_bonus;
                    used.extend(chosen);
                    pool.push(look);
                }
            }
        }
        pool
    }

    /// One look of `style` and `shape` from the `slots`' items ([`slot_items`]),
    /// greedily, avoiding the `used` ones; with the items it chose. Items are compared by
    /// address: each product is in the shortlist once, and every slot refers to it there.
    fn build<'s>(
        &self,
        style: &'static str,
        shape: &[Slot],
        slots: &[Vec<Entry<'s>>],
        used: &[Entry<'s>],
    ) -> Option<(Look<'s>, Vec<Entry<'s>>)> {
        let free = |entry: &Entry<'s>| !used.iter().any(|u| std::ptr::eq(*u, *entry));
        let cheapest: Vec<i64> = slots
            .iter()
            .map(|items| {
                items
                    .iter()
                    .filter(|e| free(e))
                    .map(|(i, _)| i.price_cents)
                    .min()
            })
            .collect::<Option<_>>()?;
        let mut chosen: Vec<Entry<'s>> = Vec::new();
        for n in 0..shape.len() {
            let reserve: i64 = cheapest[n + 1..].iter().sum();
            let spent: i64 = chosen.iter().map(|(i, _)| i.price_cents).sum();
            let entry = *slots[n].iter().filter(|e| free(e)).find(|(item, _)| {
                let fits_budget = self
                    .request
                    .budget_cents
                    .is_none_or(|b| spent + item.price_cents + reserve <= b);
                let colours = chosen
                    .iter()
                    .flat_map(|(i, _)| &i.colours)
                    .chain(&item.colours);
                let categories_differ = !chosen.iter().any(|(i, _)| i.category == item.category);
                fits_budget && categories_differ && style::harmonious(colours.copied())
            })?;
            chosen.push(entry);
        }
        let total: f64 = chosen.iter().map(|(_, score)| score).sum();
        let look = Look {
            style,
            items: (shape.iter().zip(&chosen))
                .map(|(slot, (item, _))| (*slot, item))
                .collect(),
            score: total / shape.len() as f64,
        };
        Some((look, chosen))
    }

    /// Maximal marginal relevance over `pool`: `LAMBDA · score − (1 − LAMBDA) · similarity`,
    /// comparing looks by their items' embeddings where known. The lookbook: `request.looks`
    /// looks from `pool`, best and most varied first.
    ///
    /// `vectors` fetches embeddings by product id (leaving out products without one). It is
    /// asked only for the looks that might still be picked: a look's value only falls as looks
    /// are picked, so a look whose value before the latest comparisons is below the best found
    /// cannot win, and is neither compared nor fetched for. The result is the one comparing
    /// every look would give.
    pub fn pick<'s, E>(
        &self,
        pool: Vec<Look<'s>>,
        mut vectors: impl FnMut(&[&str]) -> Result<HashMap<String, Vec<f32>>, E>,
    ) -> Result<Vec<Look<'s>>, E> {
        const LAMBDA: f64 = 0.7;
        /// Looks whose items are fetched together when one of them needs its embeddings.
        const FETCH_LOOKS: usize = 8;
        let best = pool
            .iter()
            .map(|l| l.score)
            .fold(f64::MIN, f64::max)
            .max(1e-9);
        let mut pool: Vec<Candidate> = pool.into_iter().map(Candidate::new).collect();
        let mut chosen: Vec<Candidate> = Vec::new();
        let mut fetched = Fetched::default();
        let mut taken: BTreeSet<&str> = BTreeSet::new();
        let free = |look: &Look, taken: &BTreeSet<&str>| {
            look.items.iter().all(|(_, i)| !taken.contains(i.id))
        };
        // A candidate's value, exact once it has been compared with every chosen look; before,
        // an upper bound.
        let value = |c: &Candidate| LAMBDA * c.look.score / best - (1.0 - LAMBDA) * c.nearest;
        while chosen.len() < self.request.looks {
            // Free candidates by bound, best first (ties: the earlier in the pool).
            let mut order: Vec<usize> = (0..pool.len())
                .filter(|n| free(&pool[*n].look, &taken))
                .collect();
            order.sort_by(|a, b| value(&pool[*b]).total_cmp(&value(&pool[*a])).then(a.cmp(b)));
            let mut next: Option<(usize, f64)> = None;
            for (rank, &n) in order.iter().enumerate() {
                if let Some((m, v)) = next {
                    let bound = value(&pool[n]);
                    if bound < v || (bound == v && n > m) {
                        break;
                    }
                }
                if pool[n].compared < chosen.len() {
                    let looks = order[rank..].iter().take(FETCH_LOOKS).map(|n| &pool[*n]);
                    fetched.fetch(looks.chain(&chosen), &mut vectors)?;
                    for c in chosen.iter_mut() {
                        c.likeness.mean(&c.look, &fetched);
                    }
                    let candidate = &mut pool[n];
                    candidate.likeness.mean(&candidate.look, &fetched);
                    for c in &chosen[candidate.compared..] {
                        let similarity = candidate.likeness.similarity(&c.likeness);
                        candidate.nearest = candidate.nearest.max(similarity);
                    }
                    candidate.compared = chosen.len();
                }
                let v = value(&pool[n]);
                if next.is_none_or(|(m, best)| v > best || (v == best && n < m)) {
                    next = Some((n, v));
                }
            }
            let Some((n, _)) = next else {
                break;
            };
            let picked = pool.swap_remove(n);
            taken.extend(picked.look.items.iter().map(|(_, i)| i.id));
            chosen.push(picked);
        }
        Ok(chosen.into_iter().map(|c| c.look).collect())
    }
}

/// A look in [`Assembler::pick`], with how alike it is to the looks chosen so far.
struct Candidate<'s> {
    look: Look<'s>,
    likeness: Likeness<'s>,
    /// Its greatest similarity to the first `compared` chosen looks (at least 0).
    nearest: f64,
    compared: usize,
}

impl<'s> Candidate<'s> {
    fn new(look: Look<'s>) -> Self {
        Candidate {
            likeness: likeness(&look),
            look,
            nearest: 0.0,
            compared: 0,
        }
    }
}

/// The embeddings fetched so far in [`Assembler::pick`], and which products were asked for.
#[derive(Default)]
struct Fetched {
    vectors: HashMap<String, Vec<f32>>,
    asked: BTreeSet<String>,
}

impl Fetched {
    /// Fetches, in one call, the embeddings of the items of `looks` not asked for before.
    fn fetch<'a, 's: 'a, E>(
        &mut self,
        looks: impl Iterator<Item = &'a Candidate<'s>>,
        vectors: &mut impl FnMut(&[&str]) -> Result<HashMap<String, Vec<f32>>, E>,
    ) -> Result<(), E> {
        let mut ids: Vec<&str> = looks
            .filter(|c| c.likeness.mean.is_none())
            .flat_map(|c| c.look.items.iter().map(|(_, i)| i.id))
            .filter(|id| !self.asked.contains(*id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        self.vectors.extend(vectors(&ids)?);
        self.asked.extend(ids.iter().map(|id| id.to_string()));
        Ok(())
    }
}

/// What similarity between looks is computed from: the look's traits (its style, shape,
/// colours and categories); its items' mean embedding is added once fetched
/// ([`Likeness::mean`]).
fn likeness<'s>(look: &Look<'s>) -> Likeness<'s> {
    let shape = look.items.first().map_or("", |(slot, _)| slot.name);
    let mut traits: Vec<(Trait, &str)> = [(Trait::Style, look.style), (Trait::Shape, shape)]
        .into_iter()
        .chain(look.colours().into_iter().map(|c| (Trait::Colour, c)))
        .chain(
            look.items
                .iter()
                .map(|(_, i)| (Trait::Category, i.category)),
        )
        .collect();
    traits.sort_unstable();
    traits.dedup();
    Likeness { mean: None, traits }
}

/// For each slot of `shape`, the items that may fill it in a look of the style whose bit is
/// `style` ([`Item::carries`]), best first (`by_slot`: each slot's items, best first).
fn slot_items<'s>(
    by_slot: &HashMap<&str, Vec<Entry<'s>>>,
    style: u32,
    shape: &[Slot],
) -> Vec<Vec<Entry<'s>>> {
    shape
        .iter()
        .enumerate()
        .map(|(n, slot)| {
            by_slot[slot.name]
                .iter()
                .copied()
                .filter(|(item, _)| {
                    // The first slot carries the look's style itself.
                    let bits = if n == 0 { item.carries } else { item.fits };
                    bits & style != 0
                })
                .collect()
        })
        .collect()
}

/// What kind of trait a look has ([`Likeness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Trait {
    Style,
    Shape,
    Colour,
    Category,
}

/// How a look is compared with others ([`likeness`]).
struct Likeness<'s> {
    /// Once its items' embeddings were fetched: their mean, if every item has one (the dot
    /// product of two such means is the mean cosine over all item pairs).
    mean: Option<Option<Vec<f32>>>,
    /// Its style, shape, colours and categories, sorted, each once.
    traits: Vec<(Trait, &'s str)>,
}

impl Likeness<'_> {
    /// Computes the mean of `look`'s embeddings, if they were fetched and it is not known yet.
    fn mean(&mut self, look: &Look, fetched: &Fetched) {
        if self.mean.is_some() || !look.items.iter().all(|(_, i)| fetched.asked.contains(i.id)) {
            return;
        }
        let vectors: Option<Vec<&Vec<f32>>> = look
            .items
            .iter()
            .map(|(_, i)| fetched.vectors.get(i.id))
            .collect();
        self.mean = Some(vectors.filter(|v| !v.is_empty()).map(|vectors| {
            let mut mean = vec![0f32; vectors[0].len()];
            for v in &vectors {
                mean.iter_mut()
                    .zip(v.iter())
                    .for_each(|(m, x)| *m += x / vectors.len() as f32);
            }
            mean
        }));
    }

    /// The share of traits two looks have in common, averaged with the mean cosine of their
    /// items when both have embeddings (in 0..=1 for looks that are alike).
    fn similarity(&self, other: &Likeness) -> f64 {
        // Both sorted: the traits in common counted in one merge.
        let (a, b) = (&self.traits, &other.traits);
        let (mut i, mut j, mut common) = (0, 0, 0);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => (i, j, common) = (i + 1, j + 1, common + 1),
            }
        }
        let union = a.len() + b.len() - common;
        let shared = common as f64 / union.max(1) as f64;
        match (&self.mean, &other.mean) {
            (Some(Some(x)), Some(Some(y))) => {
                0.5 * shared + 0.5 * f64::from(embeddings::similarity(x, y))
            }
            _ => shared,
        }
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
        .all(|(s, i)| s.categories.contains(&i.category));
    let coherent = look
        .items
        .iter()
        .all(|(_, i)| style::fits(look.style, &i.styles));
    let colours = style::harmonious(
        look.items
            .iter()
            .flat_map(|(_, i)| i.colours.iter().copied()),
    );
    let categories: BTreeSet<&str> = look.items.iter().map(|(_, i)| i.category).collect();
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
    use crate::candidates::{Candidates, Product};
    use std::collections::BTreeMap;

    fn item(id: &str, category: &str, colour: &str, style: &str, price: i64) -> Product {
        Product {
            id: id.into(),
            category: category.into(),
            item_type: "Thing".into(),
            brand: "Basalt".into(),
            price_cents: price,
            colours: vec![colour.into()],
            styles: vec![style.into()],
            material: "cotton".into(),
            popularity: 0.5,
        }
    }

    /// Shortlists [`catalogue`], assembles its looks without embeddings, and hands them to
    /// `inspect` (they borrow from the shortlist).
    fn assemble<T>(
        r: &LookbookRequest,
        profile: Option<&Profile>,
        inspect: impl FnOnce(&[Look]) -> T,
    ) -> T {
        let candidates = Candidates::new(catalogue());
        let items = crate::shortlist::shortlist(&candidates, r, profile, 12);
        let closeness = vec![None; items.len()];
        let assembler = Assembler::new(r, profile, items, closeness);
        inspect(
            &assembler
                .pick(assembler.variants(), |_| Ok::<_, ()>(HashMap::new()))
                .unwrap(),
        )
    }

    /// The product ids of each look.
    fn ids(looks: &[Look]) -> Vec<Vec<String>> {
        looks
            .iter()
            .map(|l| l.items.iter().map(|(_, i)| i.id.to_string()).collect())
            .collect()
    }

    /// A small catalogue: every slot in minimalist black and in romantic red, pink and green.
    fn catalogue() -> Vec<Product> {
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

    /// The lookbook of maximal marginal relevance computed the plain way: every look compared
    /// with every pick.
    fn pick_comparing_all<'s>(
        looks: usize,
        pool: Vec<Look<'s>>,
        vectors: &HashMap<String, Vec<f32>>,
    ) -> Vec<Look<'s>> {
        let fetched = Fetched {
            vectors: vectors.clone(),
            asked: vectors.keys().cloned().collect(),
        };
        let best = pool
            .iter()
            .map(|l| l.score)
            .fold(f64::MIN, f64::max)
            .max(1e-9);
        let mut pool: Vec<(Look, Likeness, f64)> = pool
            .into_iter()
            .map(|look| {
                let mut likeness = likeness(&look);
                likeness.mean(&look, &fetched);
                (look, likeness, 0.0)
            })
            .collect();
        let mut chosen: Vec<Look> = Vec::new();
        let mut taken: BTreeSet<&str> = BTreeSet::new();
        while chosen.len() < looks {
            let next = pool
                .iter()
                .enumerate()
                .filter(|(_, (l, _, _))| l.items.iter().all(|(_, i)| !taken.contains(i.id)))
                .map(|(n, (l, _, nearest))| (n, 0.7 * l.score / best - 0.3 * nearest))
                .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
            let Some((n, _)) = next else { break };
            let (look, picked, _) = pool.swap_remove(n);
            taken.extend(look.items.iter().map(|(_, i)| i.id));
            for (_, likeness, nearest) in &mut pool {
                *nearest = nearest.max(likeness.similarity(&picked));
            }
            chosen.push(look);
        }
        chosen
    }

    #[test]
    fn picking_lazily_gives_what_comparing_every_look_gives() {
        let catalogue: Vec<Product> = (0..4)
            .flat_map(|copy| {
                catalogue().into_iter().map(move |mut p| {
                    p.id = format!("{}-{copy}", p.id);
                    p.price_cents += 100 * copy;
                    p.popularity = 0.2 * copy as f64;
                    p
                })
            })
            .collect();
        let candidates = Candidates::new(catalogue.clone());
        let mut fewer = false;
        for seed in 0..5u64 {
            // Pseudo-random unit vectors; a few products have none.
            let vectors: HashMap<String, Vec<f32>> = catalogue
                .iter()
                .enumerate()
                .filter(|(n, _)| !(*n as u64 + seed).is_multiple_of(11))
                .map(|(n, p)| {
                    let mut state = seed * 1_000_003 + n as u64 + 1;
                    let v: Vec<f32> = (0..8)
                        .map(|_| {
                            state = state
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                        })
                        .collect();
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    (p.id.clone(), v.into_iter().map(|x| x / norm).collect())
                })
                .collect();
            for looks in [1, 3, 6] {
                let r = request(&format!("looks={looks}"));
                let items = crate::shortlist::shortlist(&candidates, &r, None, 12);
                let assembler = Assembler::new(&r, None, items.clone(), vec![None; items.len()]);
                let mut asked = BTreeSet::new();
                let lazily = assembler
                    .pick(assembler.variants(), |ids| {
                        asked.extend(ids.iter().map(|id| id.to_string()));
                        Ok::<_, ()>(
                            ids.iter()
                                .filter_map(|id| Some((id.to_string(), vectors.get(*id)?.clone())))
                                .collect(),
                        )
                    })
                    .unwrap();
                let plainly = pick_comparing_all(looks, assembler.variants(), &vectors);
                assert_eq!(ids(&lazily), ids(&plainly), "seed {seed}, {looks} looks");
                let all: BTreeSet<&str> = assembler
                    .variants()
                    .iter()
                    .flat_map(|l| l.items.iter().map(|(_, i)| i.id))
                    .collect();
                assert!(asked.iter().all(|id| all.contains(id.as_str())));
                fewer |= looks > 1 && asked.len() < all.len();
            }
        }
        // Some lookbooks were picked without fetching every item's embedding.
        assert!(fewer);
    }

    #[test]
    fn looks_are_complete_valid_distinct_and_deterministic() {
        let r = request("looks=4");
        let first = assemble(&r, None, |looks| {
            assert_eq!(looks.len(), 4);
            let mut seen = BTreeSet::new();
            for look in looks {
                assert!(valid(look, None), "{look:?}");
                for (_, i) in &look.items {
                    assert!(seen.insert(i.id), "{} twice", i.id);
                }
                // Red with green breaks the colour rule: no look holds both.
                let colours = look.colours();
                assert!(
                    !(colours.contains(&"red") && colours.contains(&"green")),
                    "{colours:?}"
                );
            }
            ids(looks)
        });
        assert_eq!(first, assemble(&r, None, ids));
    }

    #[test]
    fn the_budget_holds_and_an_impossible_one_gives_no_look() {
        let r = request("budget=110&looks=3");
        assemble(&r, None, |looks| {
            assert!(!looks.is_empty());
            assert!(looks
                .iter()
                .all(|l| l.total_cents() <= 11_000 && valid(l, Some(11_000))));
        });
        let r = request("budget=20");
        assert!(assemble(&r, None, ids).is_empty());
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
        let style = |looks: &[Look]| looks[0].style;
        assert_eq!(assemble(&r, Some(&profile), style), "minimalist");
        let r = request("looks=2&occasion=date");
        assert_eq!(assemble(&r, None, style), "romantic");
    }

    #[test]
    fn what_the_shopper_bought_is_not_offered_again() {
        let r = request("looks=3");
        let ids = |looks: &[Look]| -> Vec<String> { ids(looks).concat() };
        // The shopper bought two of the products anyone else is offered.
        let offered = assemble(&r, None, ids);
        let bought = [offered[0].clone(), offered[offered.len() - 1].clone()];
        let profile = Profile {
            events: 1,
            purchased: bought.clone().into(),
            ..Profile::default()
        };
        let theirs = assemble(&r, Some(&profile), ids);
        assert!(!theirs.is_empty());
        assert!(
            theirs.iter().all(|id| !bought.contains(id)),
            "{theirs:?} holds {bought:?}"
        );
    }
}
