//! The event schema and its validation. A request is `{"events": [...]}` (up to [`MAX_BATCH`])
//! or one event object:
//!
//! ```json
//! {"id": "e-1", "type": "purchase", "shopper": "demo-1", "time": "2026-12-01T10:00:00Z",
//!  "product": "p-00012", "quantity": 1, "price": 89.95, "session": "s-9",
//!  "context": {"occasion": "wedding", "season": "summer", "locale": "en-GB"}}
//! ```
//!
//! Every event needs `id`, `type`, `shopper` and `time` (RFC 3339, from 2000 to a day after
//! now). `view`, `click`, `add_to_cart`, `purchase` and `wishlist` need `product`; `search`
//! needs `query`; `campaign_exposure` and `campaign_conversion` need `campaign`. Unknown
//! fields are refused, so a typo never passes silently.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Most events in one request.
pub const MAX_BATCH: usize = 500;
/// Longest id (event, shopper, product, session, campaign, variant).
pub const MAX_ID: usize = 128;
/// Longest search query.
pub const MAX_QUERY: usize = 200;
/// Earliest accepted time: 2000-01-01T00:00:00Z.
const EARLIEST: i64 = 946_684_800;

/// The event types.
pub const TYPES: &[&str] = &[
    "view",
    "click",
    "add_to_cart",
    "purchase",
    "wishlist",
    "search",
    "campaign_exposure",
    "campaign_conversion",
];

/// A validated event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The sender's event id: an event is stored once per id.
    pub id: String,
    /// One of [`TYPES`].
    pub kind: &'static str,
    /// The shopper.
    pub shopper: String,
    /// Unix seconds.
    pub time: i64,
    /// The time as sent (RFC 3339).
    pub time_text: String,
    /// The product, for product events.
    pub product: Option<String>,
    /// The query, for `search`.
    pub query: Option<String>,
    /// The campaign, for campaign events.
    pub campaign: Option<String>,
    /// The campaign's variant (offer, message), if any.
    pub variant: Option<String>,
    /// Items, for `add_to_cart` and `purchase` (default 1).
    pub quantity: i64,
    /// Unit price, if given.
    pub price: Option<f64>,
    /// The shopping session, if any.
    pub session: Option<String>,
    /// Context: occasion, season, locale (strings).
    pub context: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<Value>,
    shopper: Option<Value>,
    time: Option<Value>,
    product: Option<Value>,
    query: Option<Value>,
    campaign: Option<Value>,
    variant: Option<Value>,
    quantity: Option<Value>,
    price: Option<Value>,
    session: Option<Value>,
    context: Option<Value>,
}

/// Why a request was refused: the message names the event index and the field.
#[derive(Debug, PartialEq)]
pub struct Invalid(pub String);

/// Parses a request body received at `now` (Unix seconds) into its events, all checked.
pub fn parse(body: &[u8], now: i64) -> Result<Vec<Event>, Invalid> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Invalid(format!("body is not JSON: {e}")))?;
    let items = match value {
        Value::Object(mut object) if object.contains_key("events") => {
            if object.len() > 1 {
                return Err(Invalid("a batch has only the field `events`".into()));
            }
            match object.remove("events") {
                Some(Value::Array(items)) => items,
                _ => return Err(Invalid("`events` must be an array".into())),
            }
        }
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(Invalid(
                "body must be an event object or {\"events\": [...]}".into(),
            ))
        }
    };
    if items.is_empty() {
        return Err(Invalid("`events` is empty".into()));
    }
    if items.len() > MAX_BATCH {
        return Err(Invalid(format!(
            "{} events; at most {MAX_BATCH} per request",
            items.len()
        )));
    }
    let events = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| event(item, now).map_err(|m| Invalid(format!("events[{i}]: {m}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if let Some(first) = seen.insert(e.id.as_str(), i) {
            if events[first] != *e {
                return Err(Invalid(format!(
                    "events[{i}].id: '{}' is also events[{first}], with other content",
                    e.id
                )));
            }
        }
    }
    Ok(events)
}

fn text(value: Option<Value>, field: &str, max: usize) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!("{field} is empty")),
        Some(Value::String(s)) if s.len() > max => {
            Err(format!("{field} is longer than {max} bytes"))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{field} must be a string")),
    }
}

fn required(value: Option<String>, field: &str, why: &str) -> Result<String, String> {
    value.ok_or_else(|| format!("{field} is required{why}"))
}

fn event(item: Value, now: i64) -> Result<Event, String> {
    if !item.is_object() {
        return Err("must be an object".into());
    }
    let raw: Raw = serde_json::from_value(item).map_err(|e| {
        let message = e.to_string();
        match message.split_once("unknown field ") {
            Some((_, rest)) => format!("unknown field {}", rest.split(',').next().unwrap_or(rest)),
            None => message,
        }
    })?;
    let id = required(text(raw.id, "id", MAX_ID)?, "id", "")?;
    let kind_text = required(text(raw.kind, "type", 32)?, "type", "")?;
    let kind = *TYPES
        .iter()
        .find(|t| **t == kind_text)
        .ok_or_else(|| format!("type '{kind_text}' is not one of {}", TYPES.join(", ")))?;
    let shopper = required(text(raw.shopper, "shopper", MAX_ID)?, "shopper", "")?;
    let time_text = required(text(raw.time, "time", 64)?, "time", " (RFC 3339)")?;
    let time = chrono::DateTime::parse_from_rfc3339(&time_text)
        .map_err(|_| format!("time '{time_text}' is not RFC 3339 (e.g. 2026-12-01T10:00:00Z)"))?
        .timestamp();
    if !(EARLIEST..=now + 86_400).contains(&time) {
        return Err(format!(
            "time '{time_text}' is outside 2000-01-01 .. a day from now"
        ));
    }
    let product = text(raw.product, "product", MAX_ID)?;
    let query = text(raw.query, "query", MAX_QUERY)?;
    let campaign = text(raw.campaign, "campaign", MAX_ID)?;
    let product = match kind {
        "view" | "click" | "add_to_cart" | "purchase" | "wishlist" => {
            Some(required(product, "product", &format!(" for {kind}"))?)
        }
        _ => product,
    };
    let query = match kind {
        "search" => Some(required(query, "query", " for search")?),
        _ => query,
    };
    let campaign = match kind {
        "campaign_exposure" | "campaign_conversion" => {
            Some(required(campaign, "campaign", &format!(" for {kind}"))?)
        }
        _ => campaign,
    };
    let quantity = match raw.quantity {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_i64()
            .filter(|q| (1..=10_000).contains(q))
            .ok_or("quantity must be an integer from 1 to 10000")?,
    };
    let price = match raw.price {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|p| p.is_finite() && (0.0..=1e9).contains(p))
                .ok_or("price must be a number from 0 to 1e9")?,
        ),
    };
    let context = match raw.context {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => {
            for (key, value) in &map {
                if !matches!(value, Value::String(s) if s.len() <= MAX_ID) {
                    return Err(format!(
                        "context.{key} must be a string of at most {MAX_ID} bytes"
                    ));
                }
            }
            map
        }
        Some(_) => return Err("context must be an object".into()),
    };
    Ok(Event {
        id,
        kind,
        shopper,
        time,
        time_text,
        product,
        query,
        campaign,
        variant: text(raw.variant, "variant", MAX_ID)?,
        quantity,
        price,
        session: text(raw.session, "session", MAX_ID)?,
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn one(json: &str) -> Result<Vec<Event>, Invalid> {
        parse(json.as_bytes(), NOW)
    }

    #[test]
    fn names_the_event_and_the_field() {
        let ok = r#"{"id":"e1","type":"view","shopper":"s","time":"2026-12-01T10:00:00Z","product":"p-1"}"#;
        assert_eq!(one(ok).unwrap()[0].product.as_deref(), Some("p-1"));
        let batch = format!(
            r#"{{"events":[{ok},{{"id":"e2","type":"view","shopper":"s","time":"2026-12-01T10:00:00Z"}}]}}"#
        );
        assert_eq!(
            one(&batch).unwrap_err().0,
            "events[1]: product is required for view"
        );
        for (body, says) in [
            (
                r#"{"id":"e","type":"buy","shopper":"s","time":"2026-12-01T10:00:00Z"}"#,
                "events[0]: type 'buy'",
            ),
            (
                r#"{"id":"e","type":"search","shopper":"s","time":"2026-12-01T10:00:00Z"}"#,
                "query is required",
            ),
            (
                r#"{"id":"e","type":"view","shopper":"s","time":"yesterday","product":"p"}"#,
                "RFC 3339",
            ),
            (
                r#"{"id":"e","type":"view","shopper":"s","time":"1999-12-31T23:00:00Z","product":"p"}"#,
                "outside",
            ),
            (
                r#"{"id":"e","type":"view","shopper":"s","time":"2026-12-01T10:00:00Z","product":"p","colour":"red"}"#,
                "unknown field `colour`",
            ),
            (
                r#"{"id":"e","type":"purchase","shopper":"s","time":"2026-12-01T10:00:00Z","product":"p","quantity":0}"#,
                "quantity",
            ),
            (
                r#"{"id":"","type":"view","shopper":"s","time":"2026-12-01T10:00:00Z","product":"p"}"#,
                "id is empty",
            ),
            (r#"{"events":[]}"#, "empty"),
            (r#"[1]"#, "body must be"),
        ] {
            let err = one(body).unwrap_err().0;
            assert!(err.contains(says), "{body}: {err}");
        }
    }

    #[test]
    fn batches_are_bounded_and_ids_consistent() {
        let e = |id: &str, p: &str| {
            format!(
                r#"{{"id":"{id}","type":"view","shopper":"s","time":"2026-12-01T10:00:00Z","product":"{p}"}}"#
            )
        };
        let many = vec![e("x", "p"); MAX_BATCH + 1].join(",");
        assert!(one(&format!(r#"{{"events":[{many}]}}"#))
            .unwrap_err()
            .0
            .contains("at most 500"));
        // The same event twice is fine (a retry inside a batch); the same id with other content is not.
        assert_eq!(
            one(&format!(
                r#"{{"events":[{},{}]}}"#,
                e("a", "p"),
                e("a", "p")
            ))
            .unwrap()
            .len(),
            2
        );
        let err = one(&format!(
            r#"{{"events":[{},{}]}}"#,
            e("a", "p"),
            e("a", "q")
        ))
        .unwrap_err()
        .0;
        assert!(err.contains("events[1].id"), "{err}");
    }
}
