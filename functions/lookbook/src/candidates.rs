//! The catalogue items a lookbook may use: in stock, in an outfit's categories, within the
//! budget, with their popularity (event weight up to `now`, plus reviews).

use spin_sdk::sqlite::{Connection, Error, Value};

use crate::assemble::Item;
use crate::context::LookbookRequest;

/// Items kept per (category, style tag) before embeddings are read: the best by score.
pub const PER_GROUP: usize = 12;

/// Loads the candidates. Popularity is the all-time event weight up to `now`: the running
/// totals for a live request, summed from the events for an earlier `as_of`.
pub fn load(db: &Connection, request: &LookbookRequest, now: i64) -> Result<Vec<Item>, Error> {
    let budget = Value::Integer(request.budget_cents.unwrap_or(i64::MAX));
    let (popularity, params) = match request.as_of {
        None => ("product_popularity".to_string(), vec![budget]),
        Some(_) => (
            format!(
                "(SELECT product, sum(quantity * {}) AS weight FROM shopper_events
                  WHERE product IS NOT NULL AND time <= ? GROUP BY product)",
                vitrine_shoppers::profile::weight_sql("kind")
            ),
            vec![Value::Integer(now), budget],
        ),
    };
    let rows = vitrine_shoppers::with_tables(db, |db| {
        db.execute(
            &format!(
                "SELECT p.id, p.title, p.category, p.item_type, p.brand, p.price_cents, p.colours,
                    p.style_tags, p.material, p.image, p.review_count, coalesce(e.weight, 0.0)
                 FROM products p LEFT JOIN {popularity} e ON e.product = p.id
                 WHERE p.stock > 0 AND p.price_cents <= ?
                    AND p.category NOT IN ('swimwear', 'activewear')"
            ),
            &params,
        )
    })?;
    let list = |text: Option<&str>| -> Vec<String> {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    };
    let raw: Vec<(Item, f64)> = rows
        .rows
        .iter()
        .map(|row| {
            let text = |i| row.get::<&str>(i).unwrap_or_default().to_string();
            let reviews = row.get::<i64>(10).unwrap_or(0) as f64;
            let events = row
                .get::<f64>(11)
                .or_else(|| row.get::<i64>(11).map(|v| v as f64))
                .unwrap_or(0.0);
            let item = Item {
                id: text(0),
                title: text(1),
                category: text(2),
                item_type: text(3),
                brand: text(4),
                price_cents: row.get::<i64>(5).unwrap_or(0),
                colours: list(row.get::<&str>(6)),
                styles: list(row.get::<&str>(7)),
                material: text(8),
                image: text(9),
                popularity: 0.0,
            };
            (item, reviews.ln_1p() + 2.0 * events.ln_1p())
        })
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
