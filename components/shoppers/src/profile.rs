//! Shopper profiles, computed when asked from the shopper's linked events and the catalogue.
//!
//! - Affinities by category, colour, style tag, brand and price band. Each event weighs by its
//!   type ([`weight`]) times its quantity, decayed by its age with a half-life of
//!   [`HALF_LIFE_DAYS`]; an affinity is its share of the decayed weight of the dimension, so
//!   the values of a dimension sum to 1.
//! - A taste embedding: the same weights over the products' stored text embeddings, averaged
//!   and L2-normalised (absent until the catalogue's embeddings exist).
//! - Sizes where known: the size (`context.size`) most often carted or bought per category.
//!
//! Nothing is stored here: a function that keeps a profile between requests does so with
//! [`crate::derived`], which erasing the shopper empties. Only the events up to `now` shape a
//! profile, not `now` itself: decay scales every weight alike, so the shares and the taste
//! direction stay the same as time passes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use spin_sdk::sqlite::{Connection, Error, Value as Sql};
use vitrine_catalog::embeddings;

/// Half-life of an event's weight, in days.
pub const HALF_LIFE_DAYS: f64 = 30.0;
/// Events read per profile (the newest).
const MAX_EVENTS: i64 = 5000;
/// Affinities listed per dimension in the API.
const TOP: usize = 5;
/// The dimensions of taste, in the order they are shown.
pub const DIMENSIONS: [&str; 5] = ["category", "colour", "style", "brand", "price_band"];

/// How much one event of each kind says about taste (other kinds: nothing).
const WEIGHTS: [(&str, f64); 5] = [
    ("view", 1.0),
    ("click", 1.5),
    ("wishlist", 3.0),
    ("add_to_cart", 4.0),
    ("purchase", 8.0),
];

/// How much one event of `kind` says about taste.
pub fn weight(kind: &str) -> f64 {
    WEIGHTS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0.0, |(_, w)| *w)
}

/// [`weight`] as SQL, of the event kind in the expression `kind`.
pub fn weight_sql(kind: &str) -> String {
    let cases: String = WEIGHTS
        .iter()
        .map(|(k, w)| format!(" WHEN '{k}' THEN {w:.1}"))
        .collect();
    format!("(CASE {kind}{cases} ELSE 0.0 END)")
}

/// The price band of a price in cents (EUR).
pub fn price_band(cents: i64) -> &'static str {
    match cents {
        ..2_500 => "under 25",
        2_500..5_000 => "25-50",
        5_000..10_000 => "50-100",
        10_000..20_000 => "100-200",
        _ => "200 and more",
    }
}

/// Per dimension of [`DIMENSIONS`], every value with its affinity, highest first.
pub type Affinities = BTreeMap<&'static str, Vec<(String, f64)>>;

/// A shopper's taste as of one moment. Functions keep it between requests ([`crate::derived`],
/// postcard): a change to its fields must come with a new format number where it is kept
/// (`functions/lookbook/src/taste.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    /// The shopper's id.
    pub shopper: String,
    /// Product events that counted.
    pub events: usize,
    /// Time of the newest event (Unix seconds).
    pub last_seen: Option<i64>,
    /// Per dimension of [`DIMENSIONS`], every value with its affinity (summing to 1), highest
    /// first.
    #[serde(deserialize_with = "dimensions")]
    pub affinities: Affinities,
    /// Decayed mean of the interacted products' embeddings, L2-normalised.
    pub taste: Option<Vec<f32>>,
    /// Products the taste embedding is made from.
    pub taste_products: usize,
    /// Size per category, where a cart or purchase named one.
    pub sizes: BTreeMap<String, String>,
    /// Products the shopper bought.
    pub purchased: std::collections::BTreeSet<String>,
}

impl Profile {
    /// The affinity of `value` in `dimension` (0 when never seen).
    pub fn affinity(&self, dimension: &str, value: &str) -> f64 {
        self.affinities
            .get(dimension)
            .and_then(|values| values.iter().find(|(v, _)| v == value))
            .map_or(0.0, |(_, a)| *a)
    }

    /// The top `n` values of `dimension`.
    pub fn top(&self, dimension: &str, n: usize) -> Vec<&str> {
        self.affinities
            .get(dimension)
            .map(|values| values.iter().take(n).map(|(v, _)| v.as_str()).collect())
            .unwrap_or_default()
    }

    /// The profile as the API shows it: top affinities, the summary in words, the taste
    /// embedding's provenance (not its 384 numbers) and sizes.
    pub fn to_json(&self) -> Value {
        let affinities: serde_json::Map<String, Value> = DIMENSIONS
            .iter()
            .map(|d| {
                let values = self.affinities.get(d).map(Vec::as_slice).unwrap_or(&[]);
                let top = values
                    .iter()
                    .take(TOP)
                    .map(|(value, a)| json!({ "value": value, "affinity": round(*a) }));
                (d.to_string(), Value::Array(top.collect()))
            })
            .collect();
        json!({
            "shopper": self.shopper,
            "events": self.events,
            "last_seen": self.last_seen.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "half_life_days": HALF_LIFE_DAYS,
            "affinities": affinities,
            "taste_embedding": self.taste.as_ref().map(|_| json!({
                "model": embeddings::MODEL, "products": self.taste_products,
            })),
            "sizes": self.sizes,
            "summary": self.summary(),
        })
    }

    /// The top affinities in words, e.g. "Mostly dresses and shoes; black and navy;
    /// minimalist and classic style; Wren and Basalt; 50-100 EUR."
    pub fn summary(&self) -> String {
        let both = |d: &str| {
            Some(self.top(d, 2))
                .filter(|v| !v.is_empty())
                .map(|v| v.join(" and "))
        };
        let parts: Vec<String> = [
            both("category").map(|c| format!("Mostly {c}")),
            both("colour"),
            both("style").map(|s| format!("{s} style")),
            both("brand"),
            self.top("price_band", 1)
                .first()
                .map(|p| format!("{p} EUR")),
        ]
        .into_iter()
        .flatten()
        .collect();
        match parts.is_empty() {
            true => "No product events yet.".into(),
            false => format!("{}.", parts.join("; ")),
        }
    }
}

/// The profile of `shopper` as of `now` (Unix seconds), from the events linked to them up to
/// then (an earlier `now` replays the past, for evaluation).
/// The catalogue must exist: open the database with `vitrine_catalog::open`, which creates it.
pub fn build(db: &Connection, shopper: &str, now: i64) -> Result<Profile, Error> {
    let rows = db.execute(
        "SELECT e.kind, e.time, e.quantity, p.category, p.colours, p.style_tags, p.brand,
                p.price_cents, p.id, e.context ->> 'size'
             FROM shopper_events e JOIN products p ON p.id = e.product
             WHERE e.shopper = ? AND e.time <= ? ORDER BY e.time DESC LIMIT ?",
        &[
            Sql::Text(shopper.into()),
            Sql::Integer(now),
            Sql::Integer(MAX_EVENTS),
        ],
    )?;
    let mut totals: HashMap<&str, HashMap<String, f64>> = HashMap::new();
    let mut product_weights: HashMap<String, f64> = HashMap::new();
    let mut size_votes: HashMap<(String, String), f64> = HashMap::new();
    let mut profile = Profile {
        shopper: shopper.to_string(),
        ..Profile::default()
    };
    for row in &rows.rows {
        let kind = row.get::<&str>(0).unwrap_or_default();
        let time = row.get::<i64>(1).unwrap_or(now);
        let quantity = row.get::<i64>(2).unwrap_or(1).max(1) as f64;
        let age_days = (now - time).max(0) as f64 / 86_400.0;
        let w = weight(kind) * quantity * 0.5f64.powf(age_days / HALF_LIFE_DAYS);
        if w == 0.0 {
            continue;
        }
        profile.events += 1;
        profile.last_seen = Some(profile.last_seen.map_or(time, |t| t.max(time)));
        let text = |i: usize| row.get::<&str>(i).unwrap_or_default().to_string();
        let list = |i: usize| -> Vec<String> {
            row.get::<&str>(i)
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default()
        };
        let mut add = |dimension: &'static str, values: Vec<String>| {
            let share = w / values.len().max(1) as f64;
            let totals = totals.entry(dimension).or_default();
            for v in values {
                *totals.entry(v).or_default() += share;
            }
        };
        add("category", vec![text(3)]);
        add("colour", list(4));
        add("style", list(5));
        add("brand", vec![text(6)]);
        let band = price_band(row.get::<i64>(7).unwrap_or(0));
        add("price_band", vec![band.to_string()]);
        *product_weights.entry(text(8)).or_default() += w;
        if kind == "purchase" {
            profile.purchased.insert(text(8));
        }
        if let Some(size) = row
            .get::<&str>(9)
            .filter(|_| kind == "purchase" || kind == "add_to_cart")
        {
            *size_votes.entry((text(3), size.to_string())).or_default() += w;
        }
    }
    for dimension in DIMENSIONS {
        let values = totals.remove(dimension).unwrap_or_default();
        let sum: f64 = values.values().sum();
        let mut ranked: Vec<(String, f64)> =
            values.into_iter().map(|(v, w)| (v, w / sum)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        profile.affinities.insert(dimension, ranked);
    }
    let mut sizes: Vec<((String, String), f64)> = size_votes.into_iter().collect();
    sizes.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
    for ((category, size), _) in sizes {
        profile.sizes.insert(category, size);
    }
    let ids: Vec<&str> = product_weights.keys().map(String::as_str).collect();
    let vectors = embeddings::of_products(db, &ids)?;
    let mut taste = vec![0f32; embeddings::DIM];
    for (id, vector) in &vectors {
        let w = product_weights[id] as f32;
        taste.iter_mut().zip(vector).for_each(|(t, v)| *t += w * v);
    }
    let norm = taste.iter().map(|t| t * t).sum::<f32>().sqrt();
    if norm > 0.0 {
        taste.iter_mut().for_each(|t| *t /= norm);
        profile.taste = Some(taste);
        profile.taste_products = vectors.len();
    }
    Ok(profile)
}

/// Reads affinities back with their dimensions as the names in [`DIMENSIONS`].
fn dimensions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Affinities, D::Error> {
    BTreeMap::<String, Vec<(String, f64)>>::deserialize(d)?
        .into_iter()
        .map(
            |(name, values)| match DIMENSIONS.iter().find(|d| **d == name) {
                Some(dimension) => Ok((*dimension, values)),
                None => Err(serde::de::Error::custom(format!("no dimension `{name}`"))),
            },
        )
        .collect()
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_words() {
        assert_eq!(price_band(2_499), "under 25");
        assert_eq!(price_band(5_000), "50-100");
        assert_eq!(price_band(1_000_000), "200 and more");
        assert!(
            weight("purchase") > weight("add_to_cart") && weight("add_to_cart") > weight("view")
        );
        assert_eq!(weight("search"), 0.0);
        assert_eq!(
            weight_sql("e.kind"),
            "(CASE e.kind WHEN 'view' THEN 1.0 WHEN 'click' THEN 1.5 WHEN 'wishlist' THEN 3.0 \
             WHEN 'add_to_cart' THEN 4.0 WHEN 'purchase' THEN 8.0 ELSE 0.0 END)"
        );
        let values = |v: &[&str]| v.iter().map(|s| (s.to_string(), 0.5)).collect::<Vec<_>>();
        let profile = Profile {
            affinities: BTreeMap::from([
                ("category", values(&["dresses", "shoes", "bags"])),
                ("colour", values(&["black"])),
                ("style", vec![]),
                ("price_band", values(&["50-100"])),
            ]),
            ..Profile::default()
        };
        assert_eq!(
            profile.summary(),
            "Mostly dresses and shoes; black; 50-100 EUR."
        );
        assert_eq!(profile.affinity("category", "shoes"), 0.5);
        assert_eq!(profile.affinity("category", "coats"), 0.0);
        assert_eq!(Profile::default().summary(), "No product events yet.");
    }
}
