//! Rendered pictures kept in the `default` database, so that each drawing or thumbnail is
//! made once: rows are keyed by product and variant (size and encoding) and carry the
//! `ETag` of what they were made from, so a changed product or upload is made again. At most
//! [`CAPACITY`] rows are kept; the oldest go first.

use spin_sdk::sqlite::{Connection, Error, Value};

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS product_renders (
    product TEXT NOT NULL, variant TEXT NOT NULL, etag TEXT NOT NULL, bytes BLOB NOT NULL,
    PRIMARY KEY (product, variant))"];

/// How many renders are kept (about 40 KB each at the default 400 pixels).
pub const CAPACITY: i64 = 20_000;

/// The kept render of `product`'s `variant` (which names its size and encoding), if it was
/// made from what `etag` names.
pub fn get(
    db: &Connection,
    product: &str,
    variant: &str,
    etag: &str,
) -> Result<Option<Vec<u8>>, Error> {
    let rows = vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "SELECT bytes FROM product_renders
             WHERE product = ? AND variant = ? AND etag = ?",
            &[
                Value::Text(product.into()),
                Value::Text(variant.into()),
                Value::Text(etag.into()),
            ],
        )
    })?;
    Ok(rows
        .rows
        .first()
        .and_then(|r| Some(r.get::<&[u8]>(0)?.to_vec())))
}

/// Keeps a render (replacing the variant's previous one), then drops the oldest beyond
/// [`CAPACITY`].
pub fn put(
    db: &Connection,
    product: &str,
    variant: &str,
    etag: &str,
    bytes: &[u8],
) -> Result<(), Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "INSERT OR REPLACE INTO product_renders (product, variant, etag, bytes)
             VALUES (?, ?, ?, ?)",
            &[
                Value::Text(product.into()),
                Value::Text(variant.into()),
                Value::Text(etag.into()),
                Value::Blob(bytes.to_vec()),
            ],
        )?;
        // A replaced row gets a new, largest rowid: the smallest are the oldest.
        db.execute(
            "DELETE FROM product_renders
             WHERE rowid <= (SELECT max(rowid) FROM product_renders) - ?",
            &[Value::Integer(CAPACITY)],
        )
        .map(drop)
    })
}

/// Drops every render of `product` (its picture changed or it is gone).
pub fn forget(db: &Connection, product: &str) -> Result<(), Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "DELETE FROM product_renders WHERE product = ?",
            &[Value::Text(product.into())],
        )
        .map(drop)
    })
}
