//! Shopper profiles, computed when asked from the shopper's linked events and the catalogue:
//! affinities by category, colour, style tag, brand and price band. Each event weighs by its
//! type ([`weight`]) times its quantity, decayed by its age with a half-life of
//! [`HALF_LIFE_DAYS`]; an affinity is its share of the decayed weight of the dimension, so
//! the values of a dimension sum to 1. Nothing is stored: erasing the events erases the
//! profile.

use std::collections::HashMap;

use serde_json::{json, Value};
use spin_sdk::sqlite::{Connection, Error, Value as Sql};

/// Half-life of an event's weight, in days.
pub const HALF_LIFE_DAYS: f64 = 30.0;
/// Events read per profile (the newest).
const MAX_EVENTS: i64 = 5000;
/// Affinities listed per dimension.
const TOP: usize = 5;

/// How much one event of `kind` says about taste.
pub fn weight(kind: &str) -> f64 {
    match kind {
        "view" => 1.0,
        "click" => 1.5,
        "wishlist" => 3.0,
        "add_to_cart" => 4.0,
        "purchase" => 8.0,
        _ => 0.0,
    }
}

/// The price band of a price in cents (EUR).
fn price_band(cents: i64) -> &'static str {
    match cents {
        ..2_500 => "under 25",
        2_500..5_000 => "25-50",
        5_000..10_000 => "50-100",
        10_000..20_000 => "100-200",
        _ => "200 and more",
    }
}

/// Why a profile could not be built.
pub enum ProfileError {
    /// The catalogue has not been created yet (the catalog function seeds it on first use).
    NoCatalogue,
    /// The database failed.
    Store(Error),
}

/// The profile of `shopper` as of `now` (Unix seconds).
pub fn build(db: &Connection, shopper: &str, now: i64) -> Result<Value, ProfileError> {
    let rows = db
        .execute(
            "SELECT e.kind, e.time, e.quantity, p.category, p.colours, p.style_tags, p.brand,
                p.price_cents
             FROM shopper_events e JOIN products p ON p.id = e.product
             WHERE e.shopper = ? ORDER BY e.time DESC LIMIT ?",
            &[Sql::Text(shopper.into()), Sql::Integer(MAX_EVENTS)],
        )
        .map_err(|e| match e {
            Error::Io(m) if m.contains("no such table: products") => ProfileError::NoCatalogue,
            e => ProfileError::Store(e),
        })?;
    let dimensions = ["category", "colour", "style", "brand", "price_band"];
    let mut totals: HashMap<&str, HashMap<String, f64>> = HashMap::new();
    let (mut events, mut last_seen) = (0, None::<i64>);
    for row in &rows.rows {
        let kind = row.get::<&str>(0).unwrap_or_default();
        let time = row.get::<i64>(1).unwrap_or(now);
        let quantity = row.get::<i64>(2).unwrap_or(1).max(1) as f64;
        let age_days = (now - time).max(0) as f64 / 86_400.0;
        let w = weight(kind) * quantity * 0.5f64.powf(age_days / HALF_LIFE_DAYS);
        if w == 0.0 {
            continue;
        }
        events += 1;
        last_seen = Some(last_seen.map_or(time, |t| t.max(time)));
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
        add(
            "category",
            row.get::<&str>(3).map(str::to_string).into_iter().collect(),
        );
        add("colour", list(4));
        add("style", list(5));
        add(
            "brand",
            row.get::<&str>(6).map(str::to_string).into_iter().collect(),
        );
        add(
            "price_band",
            vec![price_band(row.get::<i64>(7).unwrap_or(0)).to_string()],
        );
    }
    let mut affinities = serde_json::Map::new();
    let mut tops: HashMap<&str, Vec<String>> = HashMap::new();
    for dimension in dimensions {
        let values = totals.remove(dimension).unwrap_or_default();
        let sum: f64 = values.values().sum();
        let mut ranked: Vec<(String, f64)> = values.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(TOP);
        tops.insert(
            dimension,
            ranked.iter().take(2).map(|(v, _)| v.clone()).collect(),
        );
        affinities.insert(
            dimension.to_string(),
            Value::Array(
                ranked
                    .into_iter()
                    .map(|(value, w)| json!({ "value": value, "affinity": round(w / sum) }))
                    .collect(),
            ),
        );
    }
    Ok(json!({
        "shopper": shopper,
        "events": events,
        "last_seen": last_seen.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "half_life_days": HALF_LIFE_DAYS,
        "affinities": affinities,
        "summary": summary(&tops),
    }))
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The top affinities in words, e.g. "Mostly dresses and shoes; black and navy; minimalist and
/// classic style; Arket; 50-100 EUR."
fn summary(tops: &HashMap<&str, Vec<String>>) -> String {
    let both = |d: &str| {
        tops.get(d)
            .filter(|v| !v.is_empty())
            .map(|v| v.join(" and "))
    };
    let parts: Vec<String> = [
        both("category").map(|c| format!("Mostly {c}")),
        both("colour"),
        both("style").map(|s| format!("{s} style")),
        both("brand"),
        tops.get("price_band")
            .and_then(|v| v.first())
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
        let tops = HashMap::from([
            ("category", vec!["dresses".to_string(), "shoes".to_string()]),
            ("colour", vec!["black".to_string()]),
            ("style", vec![]),
            ("price_band", vec!["50-100".to_string()]),
        ]);
        assert_eq!(
            summary(&tops),
            "Mostly dresses and shoes; black; 50-100 EUR."
        );
        assert_eq!(summary(&HashMap::new()), "No product events yet.");
    }
}
