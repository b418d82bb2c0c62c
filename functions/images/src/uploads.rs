//! The shop's own product pictures, stored in the `default` database: JPEG, PNG, WebP or GIF,
//! checked by their first bytes against the declared `content-type` and decoded once; and
//! their enhanced versions (written by the picture-enhancement workers), each naming the
//! picture it was made from.

use spin_sdk::sqlite::{Connection, Error, Value};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS product_images (
        product TEXT PRIMARY KEY, content_type TEXT NOT NULL, bytes BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS product_images_enhanced (
        product TEXT PRIMARY KEY, content_type TEXT NOT NULL, bytes BLOB NOT NULL,
        source TEXT NOT NULL, model TEXT NOT NULL)",
];

/// Why a picture was not stored.
pub enum UploadError {
    /// The body is not a picture of the declared type (the message says why).
    Invalid(String),
    /// The database failed.
    Store(Error),
}

/// The picture types accepted, with the bytes their files start with.
const TYPES: &[(&str, &[u8])] = &[
    ("image/jpeg", b"\xFF\xD8\xFF"),
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/gif", b"GIF8"),
    ("image/webp", b"RIFF"),
];

/// Checks that `bytes` are a picture of the declared `content_type`; the type's canonical
/// name.
fn checked(content_type: &str, bytes: &[u8]) -> Result<&'static str, UploadError> {
    let declared = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, magic)) = TYPES.iter().find(|(t, _)| *t == declared) else {
        let names: Vec<&str> = TYPES.iter().map(|(t, _)| *t).collect();
        return Err(UploadError::Invalid(format!(
            "content-type '{content_type}' is not a picture type; use one of {}",
            names.join(", ")
        )));
    };
    let webp = declared != "image/webp" || bytes.get(8..12) == Some(b"WEBP");
    if !bytes.starts_with(magic) || !webp {
        return Err(UploadError::Invalid(format!("the body is not {kind} data")));
    }
    if let Err(e) = crate::raster::check(bytes) {
        return Err(UploadError::Invalid(format!(
            "the {kind} picture does not decode: {e}"
        )));
    }
    Ok(kind)
}

/// Stores `bytes` as the picture of `product`.
pub fn put(
    db: &Connection,
    product: &str,
    content_type: &str,
    bytes: &[u8],
) -> Result<(), UploadError> {
    let kind = checked(content_type, bytes)?;
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "INSERT OR REPLACE INTO product_images (product, content_type, bytes) VALUES (?, ?, ?)",
            &[
                Value::Text(product.into()),
                Value::Text(kind.into()),
                Value::Blob(bytes.to_vec()),
            ],
        )
        .map(drop)
    })
    .map_err(UploadError::Store)
}

/// The stored picture of `product`: its content type and bytes.
pub fn get(db: &Connection, product: &str) -> Result<Option<(String, Vec<u8>)>, Error> {
    let rows = vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "SELECT content_type, bytes FROM product_images WHERE product = ?",
            &[Value::Text(product.into())],
        )
    })?;
    Ok(rows
        .rows
        .first()
        .and_then(|r| Some((r.get::<&str>(0)?.to_string(), r.get::<&[u8]>(1)?.to_vec()))))
}

/// The picture of `product` as served: its enhanced version while that was made from the
/// stored picture, else the stored picture (content type and bytes); `None` without one.
pub fn current(db: &Connection, product: &str) -> Result<Option<(String, Vec<u8>)>, Error> {
    let Some((content_type, bytes)) = get(db, product)? else {
        return Ok(None);
    };
    Ok(Some(match get_enhanced(db, product)? {
        Some(e) if e.source == crate::tag(&[&bytes]) => (e.content_type, e.bytes),
        _ => (content_type, bytes),
    }))
}

/// Removes the stored picture of `product` and its enhanced version; whether there was one.
pub fn delete(db: &Connection, product: &str) -> Result<bool, Error> {
    let rows = vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "DELETE FROM product_images_enhanced WHERE product = ?",
            &[Value::Text(product.into())],
        )?;
        db.execute(
            "DELETE FROM product_images WHERE product = ? RETURNING 1",
            &[Value::Text(product.into())],
        )
    })?;
    Ok(!rows.rows.is_empty())
}

/// An enhanced version of a product's picture.
pub struct Enhanced {
    /// Its content type.
    pub content_type: String,
    /// The picture.
    pub bytes: Vec<u8>,
    /// The `ETag` of the picture it was made from.
    pub source: String,
    /// The model that made it (`name/version`).
    pub model: String,
}

/// Stores the enhanced version of `product`'s picture.
pub fn put_enhanced(
    db: &Connection,
    product: &str,
    enhanced: &Enhanced,
) -> Result<(), UploadError> {
    let kind = checked(&enhanced.content_type, &enhanced.bytes)?;
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "INSERT OR REPLACE INTO product_images_enhanced
             (product, content_type, bytes, source, model) VALUES (?, ?, ?, ?, ?)",
            &[
                Value::Text(product.into()),
                Value::Text(kind.into()),
                Value::Blob(enhanced.bytes.clone()),
                Value::Text(enhanced.source.clone()),
                Value::Text(enhanced.model.clone()),
            ],
        )
        .map(drop)
    })
    .map_err(UploadError::Store)
}

/// The enhanced version of `product`'s picture, if one was stored.
pub fn get_enhanced(db: &Connection, product: &str) -> Result<Option<Enhanced>, Error> {
    let rows = vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "SELECT content_type, bytes, source, model FROM product_images_enhanced
             WHERE product = ?",
            &[Value::Text(product.into())],
        )
    })?;
    Ok(rows.rows.first().and_then(|r| {
        Some(Enhanced {
            content_type: r.get::<&str>(0)?.to_string(),
            bytes: r.get::<&[u8]>(1)?.to_vec(),
            source: r.get::<&str>(2)?.to_string(),
            model: r.get::<&str>(3)?.to_string(),
        })
    }))
}

/// Removes the enhanced version of `product`'s picture; whether there was one.
pub fn delete_enhanced(db: &Connection, product: &str) -> Result<bool, Error> {
    let rows = vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "DELETE FROM product_images_enhanced WHERE product = ? RETURNING 1",
            &[Value::Text(product.into())],
        )
    })?;
    Ok(!rows.rows.is_empty())
}
