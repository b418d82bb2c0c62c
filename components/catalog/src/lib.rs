//! The product catalogue in the `default` SQLite database, shared by every function that reads
//! it: the schema, the demo catalogue created on first use ([`open`]), products as API objects
//! ([`PRODUCT_JSON`], [`get`]) and their stored text embeddings ([`embeddings`]).

pub mod embeddings;
mod seed;

use spin_sdk::sqlite::{Connection, Error, Value};

pub use seed::PRODUCT_COUNT;

/// Bumped when the schema changes. A database at the previous version is migrated in place
/// ([`migrate`]); one at an older version is rebuilt with the demo catalogue, unless it holds
/// imported products: then it is left alone and refused, so that no shop loses its products.
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS products (
        id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, description TEXT NOT NULL,
        category TEXT NOT NULL, item_type TEXT NOT NULL, brand TEXT NOT NULL,
        price_cents INTEGER NOT NULL, currency TEXT NOT NULL,
        colours TEXT NOT NULL, style_tags TEXT NOT NULL, material TEXT NOT NULL,
        sizes TEXT NOT NULL, image TEXT NOT NULL, rating REAL NOT NULL,
        review_count INTEGER NOT NULL, stock INTEGER NOT NULL, created_at TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}', generation INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS products_category_price ON products (category, price_cents)",
    "CREATE INDEX IF NOT EXISTS products_price ON products (price_cents)",
    "CREATE INDEX IF NOT EXISTS products_brand ON products (brand COLLATE NOCASE)",
    "CREATE TABLE IF NOT EXISTS product_colours (product INTEGER NOT NULL, colour TEXT NOT NULL, PRIMARY KEY (colour, product)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS product_styles (product INTEGER NOT NULL, style TEXT NOT NULL, PRIMARY KEY (style, product)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS product_embeddings (product INTEGER PRIMARY KEY, vector BLOB NOT NULL)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS product_search USING fts5 (title, description, brand, category, tags, tokenize = 'unicode61 remove_diacritics 2')",
];

/// What version 4 adds: `catalog_meta.revision`, bumped by triggers on every write to the
/// products or their embeddings, so that readers can tell in one lookup whether the catalogue
/// changed ([`revision`]); an index by category alone, whose entries are in rowid order, so a
/// page of one category in catalogue order reads only that page instead of sorting the whole
/// category.
const VERSION_4: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS products_category ON products (category)",
    "INSERT OR IGNORE INTO catalog_meta (key, value) VALUES ('revision', 1)",
    "CREATE TRIGGER IF NOT EXISTS products_revision_insert AFTER INSERT ON products
        BEGIN UPDATE catalog_meta SET value = value + 1 WHERE key = 'revision'; END",
    "CREATE TRIGGER IF NOT EXISTS products_revision_update AFTER UPDATE ON products
        BEGIN UPDATE catalog_meta SET value = value + 1 WHERE key = 'revision'; END",
    "CREATE TRIGGER IF NOT EXISTS products_revision_delete AFTER DELETE ON products
        BEGIN UPDATE catalog_meta SET value = value + 1 WHERE key = 'revision'; END",
    "CREATE TRIGGER IF NOT EXISTS product_embeddings_revision_insert AFTER INSERT ON product_embeddings
        BEGIN UPDATE catalog_meta SET value = value + 1 WHERE key = 'revision'; END",
    "CREATE TRIGGER IF NOT EXISTS product_embeddings_revision_update AFTER UPDATE ON product_embeddings
        BEGIN UPDATE catalog_meta SET value = value + 1 WHERE key = 'revision'; END",
    "CREATE TRIGGER IF NOT EXISTS product_embeddings_revision_delete AFTER DELETE ON product_embeddings
        BEGIN UPDATE catalog_meta SET value = value + 1 WHERE key = 'revision'; END",
];

/// What `product_search` (full text) indexes of a product `p`: title, description, brand,
/// category and type, and its style tags, colours and material as tags.
pub const SEARCH_COLUMNS: &str = "p.title, p.description, p.brand, p.category || ' ' || p.item_type, \
     coalesce((SELECT group_concat(value, ' ') FROM json_each(p.style_tags)), '') || ' ' || \
     coalesce((SELECT group_concat(value, ' ') FROM json_each(p.colours)), '') || ' ' || p.material";

/// A product `p` (of `products`) as its API object, built by SQLite as JSON text: keys in
/// alphabetical order, `price` in euros, the JSON columns as JSON (`null` if malformed).
/// Pages of products are read as one such text per row: far fewer values to hand from the
/// host to the function than a dozen columns per product.
pub const PRODUCT_JSON: &str = "json_object(\
     'attributes', CASE WHEN json_valid(p.attributes) THEN json(p.attributes) END, \
     'brand', p.brand, 'category', p.category, \
     'colours', CASE WHEN json_valid(p.colours) THEN json(p.colours) END, \
     'created_at', p.created_at, 'currency', p.currency, 'description', p.description, \
     'id', p.id, 'image', p.image, 'item_type', p.item_type, 'material', p.material, \
     'price', p.price_cents / 100.0, 'rating', p.rating, 'review_count', p.review_count, \
     'sizes', CASE WHEN json_valid(p.sizes) THEN json(p.sizes) END, 'stock', p.stock, \
     'style_tags', CASE WHEN json_valid(p.style_tags) THEN json(p.style_tags) END, \
     'title', p.title)";

/// The schema version the catalogue was created at, if it exists.
fn stored_version(db: &Connection) -> Option<String> {
    db.execute(
        "SELECT value FROM catalog_meta WHERE key = 'schema_version'",
        &[],
    )
    .ok()
    .and_then(|r| {
        r.rows
            .first()
            .and_then(|row| row.get::<&str>(0).map(str::to_string))
    })
}

/// Opens the `default` database, creating and seeding the catalogue on first use.
pub fn open() -> Result<Connection, Error> {
    let db = Connection::open_default()?;
    if stored_version(&db).as_deref() != Some(&SCHEMA_VERSION.to_string()) {
        upgrade_catalogue(&db)?;
    }
    Ok(db)
}

/// The catalogue's revision: it grows with every write to a product or an embedding (so a
/// reader may keep what it derived from the catalogue while the revision stays the same).
pub fn revision(db: &Connection) -> Result<i64, Error> {
    let rows = db.execute(
        "SELECT CAST(value AS INTEGER) FROM catalog_meta WHERE key = 'revision'",
        &[],
    )?;
    rows.rows
        .first()
        .and_then(|row| row.get::<i64>(0))
        .ok_or_else(|| Error::Io("the catalogue has no revision".into()))
}

/// Migrates a catalogue from the previous schema version to this one, keeping its data.
fn migrate(db: &Connection, from: &str) -> Result<bool, Error> {
    if from != "3" {
        return Ok(false);
    }
    for statement in VERSION_4 {
        db.execute(statement, &[])?;
    }
    db.execute(
        "UPDATE catalog_meta SET value = ? WHERE key = 'schema_version'",
        &[Value::Text(SCHEMA_VERSION.to_string())],
    )?;
    Ok(true)
}

/// Brings the catalogue to this schema version in one transaction: migrates the previous
/// version in place, or creates the schema and loads the demo catalogue. Concurrent first
/// requests wait for it and then find it done.
fn upgrade_catalogue(db: &Connection) -> Result<(), Error> {
    vitrine_guest::sqlite::transaction(db, || {
        let version = stored_version(db);
        if version.as_deref() == Some(&SCHEMA_VERSION.to_string()) {
            return Ok(());
        }
        if let Some(from) = &version {
            if migrate(db, from)? {
                return Ok(());
            }
        }
        // Imported products (generation > 0) are never dropped for a rebuild. Catalogues from
        // before imports have no `generation` column: the query fails, nothing to keep.
        let imported = db
            .execute("SELECT count(*) FROM products WHERE generation > 0", &[])
            .ok()
            .and_then(|r| r.rows.first().and_then(|row| row.get::<i64>(0)))
            .unwrap_or(0);
        if imported > 0 {
            return Err(Error::Io(format!(
                "the catalogue holds {imported} imported products at schema version {}; this \
                 build's version {SCHEMA_VERSION} needs a migration it does not have, so \
                 nothing was changed",
                version.as_deref().unwrap_or("unknown")
            )));
        }
        for table in [
            "product_embeddings",
            "product_search",
            "product_styles",
            "product_colours",
            "products",
            "catalog_meta",
        ] {
            db.execute(&format!("DROP TABLE IF EXISTS {table}"), &[])?;
        }
        for statement in SCHEMA.iter().chain(VERSION_4) {
            db.execute(statement, &[])?;
        }
        let products = Value::Text(seed::products().to_string());
        db.execute(
            "INSERT INTO products (id, title, description, category, item_type, brand, price_cents,
                currency, colours, style_tags, material, sizes, image, rating, review_count, stock, created_at)
             SELECT j.value->>'id', j.value->>'title', j.value->>'description', j.value->>'category',
                j.value->>'item_type', j.value->>'brand', j.value->>'price_cents', j.value->>'currency',
                j.value->'colours', j.value->'style_tags', j.value->>'material', j.value->'sizes',
                j.value->>'image', j.value->>'rating', j.value->>'review_count', j.value->>'stock',
                j.value->>'created_at'
             FROM json_each(?) AS j",
            &[products],
        )?;
        db.execute(
            "INSERT INTO product_colours (product, colour)
             SELECT p.rowid, c.value FROM products p, json_each(p.colours) c",
            &[],
        )?;
        db.execute(
            "INSERT INTO product_styles (product, style)
             SELECT p.rowid, s.value FROM products p, json_each(p.style_tags) s",
            &[],
        )?;
        db.execute(
            &format!(
                "INSERT INTO product_search (rowid, title, description, brand, category, tags)
                 SELECT rowid, {SEARCH_COLUMNS} FROM products p"
            ),
            &[],
        )?;
        db.execute(
            "INSERT INTO catalog_meta (key, value) VALUES ('schema_version', ?)",
            &[Value::Text(SCHEMA_VERSION.to_string())],
        )?;
        Ok(())
    })
}

/// One product by id, as its API object's JSON text.
pub fn get(db: &Connection, id: &str) -> Result<Option<String>, Error> {
    let rows = db.execute(
        &format!("SELECT {PRODUCT_JSON} FROM products p WHERE p.id = ?"),
        &[Value::Text(id.to_string())],
    )?;
    Ok(rows
        .rows
        .first()
        .and_then(|row| row.get::<&str>(0))
        .map(str::to_string))
}
