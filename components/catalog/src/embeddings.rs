//! Products' text embeddings, stored next to the catalogue: one L2-normalised vector of
//! [`DIM`] floats per product from the [`MODEL`] model (all-MiniLM-L6-v2), computed from
//! [`text`] by whoever fills the table (the catalog function's backfill endpoint) and read by
//! search and the lookbooks. Vectors are little-endian `f32` blobs keyed by the product's rowid.

use std::collections::HashMap;

use spin_sdk::sqlite::{Connection, Error, Value};

/// The embedding model, by its name in the worker's repository.
pub const MODEL: &str = "text-embed";
/// Floats per vector.
pub const DIM: usize = 384;

/// The text a product is embedded from: what it is, what it is made of, its colours and
/// styles, and its description.
pub const TEXT_SQL: &str =
    "p.title || '. ' || p.category || ', ' || lower(p.item_type) || ' in ' || \
     p.material || ', ' || coalesce((SELECT group_concat(value, ' and ') FROM json_each(p.colours)), '') || \
     ', ' || coalesce((SELECT group_concat(value, ', ') FROM json_each(p.style_tags)), '') || ' style. ' || \
     p.description";

/// Products without an embedding: up to `limit` of `(rowid, text)`, in catalogue order, only
/// of these `categories` unless empty.
pub fn missing(
    db: &Connection,
    limit: i64,
    categories: &[String],
) -> Result<Vec<(i64, String)>, Error> {
    let mut params: Vec<Value> = categories.iter().cloned().map(Value::Text).collect();
    let only = match categories.len() {
        0 => String::new(),
        n => format!("AND p.category IN ({})", vec!["?"; n].join(", ")),
    };
    params.push(Value::Integer(limit));
    let rows = db.execute(
        &format!(
            "SELECT p.rowid, {TEXT_SQL} FROM products p
             WHERE NOT EXISTS (SELECT 1 FROM product_embeddings e WHERE e.product = p.rowid) {only}
             ORDER BY p.rowid LIMIT ?"
        ),
        &params,
    )?;
    Ok(rows
        .rows
        .iter()
        .filter_map(|row| Some((row.get::<i64>(0)?, row.get::<&str>(1)?.to_string())))
        .collect())
}

/// Stores vectors (each [`DIM`] floats) for products by `(rowid, text embedded)`, in one
/// transaction. A product whose text changed meanwhile (an import updated it, or deleted it
/// and another took its rowid) keeps no vector: the backfill embeds it again.
pub fn store(db: &Connection, vectors: &[(i64, &str, &[f32])]) -> Result<(), Error> {
    vitrine_guest::sqlite::transaction(db, || {
        vectors.iter().try_for_each(|(product, text, vector)| {
            db.execute(
                &format!(
                    "INSERT OR REPLACE INTO product_embeddings (product, vector)
                 SELECT p.rowid, ? FROM products p WHERE p.rowid = ? AND {TEXT_SQL} = ?"
                ),
                &[
                    Value::Blob(encode(vector)),
                    Value::Integer(*product),
                    Value::Text(text.to_string()),
                ],
            )
            .map(drop)
        })
    })
}

/// `(embedded, products)`: how far the embeddings cover the catalogue.
pub fn coverage(db: &Connection) -> Result<(i64, i64), Error> {
    let rows = db.execute(
        "SELECT (SELECT count(*) FROM product_embeddings e JOIN products p ON p.rowid = e.product),
            (SELECT count(*) FROM products)",
        &[],
    )?;
    let row = rows.rows.first();
    let get = |i| row.and_then(|r| r.get::<i64>(i)).unwrap_or(0);
    Ok((get(0), get(1)))
}

/// The stored vectors of the products with these ids (products without one are left out).
pub fn of_products(db: &Connection, ids: &[&str]) -> Result<HashMap<String, Vec<f32>>, Error> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let params: Vec<Value> = chunk.iter().map(|id| Value::Text(id.to_string())).collect();
        let rows = db.execute(
            &format!(
                "SELECT p.id, e.vector FROM products p JOIN product_embeddings e ON e.product = p.rowid
                 WHERE p.id IN ({marks})"
            ),
            &params,
        )?;
        for row in &rows.rows {
            if let (Some(id), Some(blob)) = (row.get::<&str>(0), row.get::<&[u8]>(1)) {
                if let Some(vector) = decode(blob) {
                    out.insert(id.to_string(), vector);
                }
            }
        }
    }
    Ok(out)
}

/// A vector as a little-endian blob.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A blob as a vector; `None` unless it holds exactly [`DIM`] floats.
pub fn decode(blob: &[u8]) -> Option<Vec<f32>> {
    (blob.len() == DIM * 4).then(|| {
        blob.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}

/// Dot product: the cosine similarity of two L2-normalised vectors.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_reject_wrong_lengths() {
        let v: Vec<f32> = (0..DIM).map(|i| i as f32 / 7.0 - 3.0).collect();
        assert_eq!(decode(&encode(&v)), Some(v.clone()));
        assert_eq!(decode(&encode(&v[..DIM - 1])), None);
        assert!((similarity(&[0.6, 0.8], &[0.6, 0.8]) - 1.0).abs() < 1e-6);
    }
}
