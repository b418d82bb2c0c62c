//! The catalogue items a lookbook may use: in stock, in an outfit's categories, within the
//! budget, with their popularity (decayed-free event weight of the last 90 days, plus reviews).

use spin_sdk::sqlite::{Connection, Error, Value};

use crate::assemble::Item;
use crate::context::LookbookRequest;

/// Items kept per (category, style tag) before embeddings are read: the best by score.
pub const PER_GROUP: usize = 12;

/// Popularity window, in seconds.
const WINDOW: i64 = 90 * 86_400;

/// Loads the candidates.
pub fn load(db: &Connection, request: &LookbookRequest, now: i64) -> Result<Vec<Item>, Error> {
    let budget = request.budget_cents.unwrap_or(i64::MAX);
    let rows = vitrine_shoppers::with_tables(db, |db| {
        db.execute(
            "SELECT p.id, p.title, p.category, p.item_type, p.brand, p.price_cents, p.colours,
                p.style_tags, p.material, p.image, p.review_count, coalesce(e.w, 0)
             FROM products p LEFT JOIN (
                SELECT product, sum(quantity * CASE kind WHEN 'purchase' THEN 8 WHEN 'add_to_cart' THEN 4
                    WHEN 'wishlist' THEN 3 WHEN 'click' THEN 1.5 WHEN 'view' THEN 1 ELSE 0 END) AS w
                FROM shopper_events WHERE product IS NOT NULL AND time >= ? AND time <= ? GROUP BY product
             ) e ON e.product = p.id
             WHERE p.stock > 0 AND p.price_cents <= ? AND p.category NOT IN ('swimwear', 'activewear')",
            &[Value::Integer(now - WINDOW), Value::Integer(now), Value::Integer(budget)],
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
