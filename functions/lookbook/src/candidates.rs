//! The catalogue items a lookbook may use: in stock, in an outfit's categories, within the
//! budget, with their popularity (event weight up to `now`, plus reviews).
//!
//! Thousands of products are read per request, so each query returns one JSON value built by
//! SQLite (`json_group_array`) rather than a dozen values per product, and only what scoring
//! needs: titles and images are read afterwards for the products chosen ([`details`]).
//! Measured on the demo catalogue: 17 ms → about 8 ms.

use std::collections::HashMap;

use serde_json::Value as Json;
use spin_sdk::sqlite::{Connection, Error, Value};

use crate::assemble::{Item, Look};
use crate::context::LookbookRequest;

/// Items kept per (category, style tag) before embeddings are read: the best by score.
pub const PER_GROUP: usize = 12;

/// The first column of the first row as text (a JSON aggregate).
fn single_text(db: &Connection, sql: &str, params: &[Value]) -> Result<String, Error> {
    let rows = vitrine_shoppers::with_tables(db, |db| db.execute(sql, params))?;
    Ok(rows
        .rows
        .first()
        .and_then(|r| r.get::<&str>(0))
        .unwrap_or("[]")
        .to_string())
}

fn malformed(what: &str, e: serde_json::Error) -> Error {
    Error::Io(format!("{what} are not the JSON expected: {e}"))
}

/// Loads the candidates. Popularity is the all-time event weight up to `now`: the running
/// totals for a live request, summed from the events for an earlier `as_of`.
pub fn load(db: &Connection, request: &LookbookRequest, now: i64) -> Result<Vec<Item>, Error> {
    let budget = Value::Integer(request.budget_cents.unwrap_or(i64::MAX));
    let products = single_text(
        db,
        "SELECT json_group_array(json_array(p.id, p.category, p.item_type, p.brand,
            p.price_cents, json(p.colours), json(p.style_tags), p.material, p.review_count))
         FROM products p
         WHERE p.stock > 0 AND p.price_cents <= ? AND p.category NOT IN ('swimwear', 'activewear')",
        &[budget],
    )?;
    let popularity = match request.as_of {
        None => single_text(
            db,
            "SELECT json_group_object(product, weight) FROM product_popularity",
            &[],
        )?,
        Some(_) => single_text(
            db,
            &format!(
                "SELECT json_group_object(product, weight) FROM (
                    SELECT product, sum(quantity * {}) AS weight FROM shopper_events
                    WHERE product IS NOT NULL AND time <= ? GROUP BY product)",
                vitrine_shoppers::profile::weight_sql("kind")
            ),
            &[Value::Integer(now)],
        )?,
    };
    type Row = (
        String,
        String,
        String,
        String,
        i64,
        Vec<String>,
        Vec<String>,
        String,
        i64,
    );
    let rows: Vec<Row> = serde_json::from_str(&products).map_err(|e| malformed("candidates", e))?;
    let weights: HashMap<&str, f64> = match popularity.as_str() {
        "[]" => HashMap::new(),
        text => serde_json::from_str(text).map_err(|e| malformed("popularity weights", e))?,
    };
    let raw: Vec<(Item, f64)> = rows
        .into_iter()
        .map(
            |(id, category, item_type, brand, price_cents, colours, styles, material, reviews)| {
                let events = weights.get(id.as_str()).copied().unwrap_or(0.0);
                let popularity = (reviews as f64).ln_1p() + 2.0 * events.ln_1p();
                let item = Item {
                    id,
                    title: String::new(),
                    category,
                    item_type,
                    brand,
                    price_cents,
                    colours,
                    styles,
                    material,
                    image: String::new(),
                    popularity: 0.0,
                };
                (item, popularity)
            },
        )
        .collect();
    let top = raw.iter().map(|(_, p)| *p).fold(0.0, f64::max).max(1e-9);
    Ok(raw
        .into_iter()
        .map(|(mut item, p)| {
            item.popularity = p / top;
            item
        })
        .collect())
}

/// Fills in the titles and images of the looks' items.
pub fn details(db: &Connection, looks: &mut [Look]) -> Result<(), Error> {
    let ids: Vec<Json> = looks
        .iter()
        .flat_map(|l| l.items.iter().map(|(_, i)| Json::from(i.id.as_str())))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let rows = db.execute(
        "SELECT p.id, p.title, p.image FROM products p
         WHERE p.id IN (SELECT value FROM json_each(?))",
        &[Value::Text(Json::Array(ids).to_string())],
    )?;
    let found: HashMap<&str, (&str, &str)> = rows
        .rows
        .iter()
        .filter_map(|r| Some((r.get::<&str>(0)?, (r.get::<&str>(1)?, r.get::<&str>(2)?))))
        .collect();
    for (_, item) in looks.iter_mut().flat_map(|l| l.items.iter_mut()) {
        if let Some((title, image)) = found.get(item.id.as_str()) {
            item.title = title.to_string();
            item.image = image.to_string();
        }
    }
    Ok(())
}
