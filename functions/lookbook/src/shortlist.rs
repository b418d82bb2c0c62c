//! The first pass over the candidates: every product scored for the shopper and the context,
//! and the best of every (category, style tag) kept. Assembly ([`crate::assemble`]) adds the
//! closeness to the taste embedding for these few hundred ([`crate::taste`]).
//!
//! A product's score (higher is better):
//! - the shopper's affinities, each relative to the shopper's top value of its dimension
//!   ([`DIMENSION_WEIGHTS`]; the best of the product's styles, and of its colours with the
//!   first counting fully and the others 0.3);
//! - 0.25 if it has one of the occasion's styles;
//! - how well it suits the season ([`crate::style::season_fit`]; products that do not suit
//!   it are left out, as are those the shopper bought);
//! - popularity: 0.4 × its popularity relative to the most popular candidate within budget.
//!
//! Scores are sums over the candidates' word numbers: each word's affinity is looked up once
//! per request, not once per product.

use std::collections::HashMap;

use vitrine_shoppers::profile::Profile;

use crate::assemble::Item;
use crate::candidates::{Candidate, Candidates};
use crate::context::{LookbookRequest, SEASONS};
use crate::style;

/// Products kept per (category, style tag), besides the three cheapest.
pub const PER_GROUP: usize = 12;

/// Weights of the profile dimensions in a product's score, chosen by measurement on one
/// simulation and checked on another (docs/lookbooks.md, "How the weights were chosen"):
/// colour at 0.5 made lookbooks one-coloured. Added in this order: style, colour, category,
/// price band, brand.
pub const DIMENSION_WEIGHTS: Weights = Weights {
    style: 0.5,
    colour: 0.25,
    category: 0.5,
    price_band: 0.15,
    brand: 0.10,
};

/// A weight per profile dimension.
pub struct Weights {
    /// Style tags.
    pub style: f64,
    /// Colours.
    pub colour: f64,
    /// Category.
    pub category: f64,
    /// Price band.
    pub price_band: f64,
    /// Brand.
    pub brand: f64,
}

/// The shopper's relative affinity for every word, per dimension (0 for words not of it).
struct Affinities {
    style: Vec<f64>,
    colour: Vec<f64>,
    category: Vec<f64>,
    price_band: Vec<f64>,
    brand: Vec<f64>,
}

impl Affinities {
    /// The affinities of `relative` by word number of `words`.
    fn of(relative: &Relative, words: &[String]) -> Self {
        let numbers: HashMap<&str, usize> = words
            .iter()
            .enumerate()
            .map(|(n, w)| (w.as_str(), n))
            .collect();
        let per_word = |dimension: &str| {
            let mut per_word = vec![0.0; words.len()];
            for (value, affinity) in relative.values(dimension) {
                if let Some(n) = numbers.get(value) {
                    per_word[*n] = affinity;
                }
            }
            per_word
        };
        Affinities {
            style: per_word("style"),
            colour: per_word("colour"),
            category: per_word("category"),
            price_band: per_word("price_band"),
            brand: per_word("brand"),
        }
    }

    /// `score` plus the weighted affinities of `p`: the best of its styles, of its colours (the
    /// first is the one seen: the others count 0.3), its category, price band and brand.
    fn add(&self, candidates: &Candidates, p: &Candidate, mut score: f64) -> f64 {
        let best = |table: &[f64], words: &[u32], others: f64| {
            let mut best = 0.0;
            for (k, w) in words.iter().enumerate() {
                let affinity = match k {
                    0 => table[*w as usize],
                    _ => others * table[*w as usize],
                };
                if affinity > best {
                    best = affinity;
                }
            }
            best
        };
        let one = std::slice::from_ref;
        let w = &DIMENSION_WEIGHTS;
        score += w.style * best(&self.style, candidates.styles(p), 1.0);
        score += w.colour * best(&self.colour, candidates.colours(p), 0.3);
        score += w.category * best(&self.category, one(&p.category), 1.0);
        score += w.price_band * best(&self.price_band, one(&p.price_band), 1.0);
        score += w.brand * best(&self.brand, one(&p.brand), 1.0);
        score
    }
}

/// The best `per_group` products of every (category, style tag) by score, best first, as items
/// carrying their score. The three cheapest of each group stay too, so that a tight budget
/// still finds its looks.
pub fn shortlist<'c>(
    candidates: &'c Candidates,
    request: &LookbookRequest,
    profile: Option<&Profile>,
    per_group: usize,
) -> Vec<Item<'c>> {
    let profile = profile.filter(|p| p.events > 0);
    let relative = profile.map(Relative::of).unwrap_or_default();
    let words = candidates.words();
    let affinities = profile.map(|_| Affinities::of(&relative, words));
    let occasion: Vec<bool> = words
        .iter()
        .map(|w| {
            request
                .occasion()
                .is_some_and(|o| o.styles.contains(&w.as_str()))
        })
        .collect();
    let season = SEASONS.iter().position(|s| *s == request.season);
    let products = &candidates.products;
    let mut excluded = vec![false; products.len()];
    for id in profile.iter().flat_map(|p| &p.purchased) {
        if let Some(n) = candidates.position(id) {
            excluded[n] = true;
        }
    }
    let budget = request.budget_cents.unwrap_or(i64::MAX);
    for (n, p) in products.iter().enumerate() {
        excluded[n] |= p.price_cents > budget;
    }
    let mut top = 1e-9;
    for p in products.iter().filter(|p| p.price_cents <= budget) {
        if p.popularity > top {
            top = p.popularity;
        }
    }
    let mut scored: Vec<(usize, f64)> = products
        .iter()
        .enumerate()
        .filter(|(n, _)| !excluded[*n])
        .filter_map(|(n, p)| {
            let season = match season {
                Some(s) => p.season(s),
                None => style::season_fit(
                    candidates.word(p.category),
                    candidates.word(p.item_type),
                    candidates.word(p.material),
                    request.season,
                ),
            }?;
            let mut score = 0.4 * p.popularity / top;
            if candidates.styles(p).iter().any(|s| occasion[*s as usize]) {
                score += 0.25;
            }
            if let Some(affinities) = &affinities {
                score = affinities.add(candidates, p, score);
            }
            Some((n, score + season))
        })
        .collect();
    // Ties break by id: positions are in id order.
    scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut keep = vec![false; products.len()];
    let mut present = vec![false; products.len()];
    scored.iter().for_each(|(n, _)| present[*n] = true);
    let by_price: Vec<usize> = candidates
        .by_price
        .iter()
        .map(|n| *n as usize)
        .filter(|n| present[*n])
        .collect();
    let by_score: Vec<usize> = scored.iter().map(|(n, _)| *n).collect();
    for (order, quota) in [(by_price, 3), (by_score, per_group)] {
        let mut counts = vec![0usize; candidates.groups()];
        for n in order {
            let p = &products[n];
            for style in candidates.styles(p) {
                let count = &mut counts[candidates.group(p, *style)];
                if *count < quota {
                    *count += 1;
                    keep[n] = true;
                }
            }
        }
    }
    scored
        .into_iter()
        .filter(|(n, _)| keep[*n])
        .map(|(n, score)| candidates.item(n, score))
        .collect()
}

/// A shopper's affinities relative to the top value of their dimension (0..=1), looked up in
/// constant time.
#[derive(Default)]
pub struct Relative<'a>(HashMap<&'a str, HashMap<&'a str, f64>>);

impl<'a> Relative<'a> {
    /// The relative affinities of `profile`.
    pub fn of(profile: &'a Profile) -> Self {
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

    /// Every value of `dimension` the shopper has an affinity for, with its relative affinity.
    pub fn values(&self, dimension: &str) -> impl Iterator<Item = (&'a str, f64)> + '_ {
        self.0
            .get(dimension)
            .into_iter()
            .flat_map(|values| values.iter().map(|(v, a)| (*v, *a)))
    }

    /// The relative affinity of `value` in `dimension` (0 when never seen).
    pub fn get(&self, dimension: &str, value: &str) -> f64 {
        self.0
            .get(dimension)
            .and_then(|values| values.get(value))
            .copied()
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::Product;
    use std::collections::BTreeMap;

    fn product(id: &str, colours: &[&str], style: &str) -> Product {
        Product {
            id: id.into(),
            category: "tops".into(),
            item_type: "Blouse".into(),
            brand: "Basalt".into(),
            price_cents: 4_000,
            colours: colours.iter().map(|c| c.to_string()).collect(),
            styles: vec![style.into()],
            material: "cotton".into(),
            popularity: 1.0,
        }
    }

    #[test]
    fn affinities_rank_the_first_colour_above_the_others() {
        let candidates = Candidates::new(vec![
            product("a", &["black", "red"], "classic"),
            product("b", &["red", "black"], "classic"),
            product("c", &["white"], "edgy"),
        ]);
        let profile = Profile {
            events: 5,
            affinities: BTreeMap::from([
                (
                    "colour",
                    vec![("red".to_string(), 0.8), ("white".to_string(), 0.2)],
                ),
                ("style", vec![("classic".to_string(), 1.0)]),
            ]),
            ..Profile::default()
        };
        let request = LookbookRequest::parse("season=autumn", 10).unwrap();
        let items = shortlist(&candidates, &request, Some(&profile), 12);
        let order: Vec<&str> = items.iter().map(|i| i.id).collect();
        assert_eq!(order, ["b", "a", "c"]);
        // Without a profile, ties keep id order.
        let items = shortlist(&candidates, &request, None, 12);
        let order: Vec<&str> = items.iter().map(|i| i.id).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }
}
