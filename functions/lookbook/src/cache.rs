//! Lookbook answers kept for up to [`TTL_SECONDS`], so a shopper reloading a page or a banner
//! asking again costs a lookup instead of an assembly.
//!
//! The key holds the request's parameters (with the season resolved), the shopper's consent,
//! their events (count and newest), the catalogue (products, stock, import generations) and the
//! embeddings' coverage: any of these changing misses at once. Only other shoppers' events
//! (popularity) and the clock may be up to [`TTL_SECONDS`] stale. `as_of` answers are never
//! cached.

use spin_sdk::sqlite::{Connection, Error, Value};

use crate::context::LookbookRequest;

/// How long an answer is served again, in seconds.
pub const TTL_SECONDS: i64 = 60;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS lookbook_cache (
        key TEXT PRIMARY KEY, created INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS lookbook_cache_created ON lookbook_cache (created)",
];

/// The cache key of a request (a hash of everything its answer depends on, see the module).
pub fn key(db: &Connection, request: &LookbookRequest, consented: bool) -> Result<String, Error> {
    let shopper = request.shopper.clone().unwrap_or_default();
    let rows = vitrine_shoppers::with_tables(db, |db| {
        db.execute(
            "SELECT (SELECT count(*) || ':' || coalesce(max(rowid), 0) || ':' || total(generation)
                        || ':' || total(stock) FROM products),
                    (SELECT count(*) FROM product_embeddings),
                    (SELECT count(*) || ':' || coalesce(max(time), 0) || ':' || coalesce(max(received), 0)
                        FROM shopper_events WHERE shopper = ?)",
            &[Value::Text(shopper.clone())],
        )
    })?;
    let row = rows.rows.first();
    let text = |i| row.and_then(|r| r.get::<&str>(i)).unwrap_or("").to_string();
    let embedded = row.and_then(|r| r.get::<i64>(1)).unwrap_or(0);
    let state = format!("{request:?}|{consented}|{}|{embedded}|{}", text(0), text(2));
    Ok(format!("{:016x}", vitrine_guest::fnv1a(state.as_bytes())))
}

/// The answer stored under `key` less than [`TTL_SECONDS`] before `now`.
pub fn get(db: &Connection, key: &str, now: i64) -> Result<Option<String>, Error> {
    let rows = vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "SELECT body FROM lookbook_cache WHERE key = ? AND created > ?",
            &[Value::Text(key.into()), Value::Integer(now - TTL_SECONDS)],
        )
    })?;
    Ok(rows
        .rows
        .first()
        .and_then(|r| r.get::<&str>(0))
        .map(str::to_string))
}

/// Stores an answer, dropping the expired ones.
pub fn put(db: &Connection, key: &str, body: &str, now: i64) -> Result<(), Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "INSERT OR REPLACE INTO lookbook_cache (key, created, body) VALUES (?, ?, ?)",
            &[
                Value::Text(key.into()),
                Value::Integer(now),
                Value::Text(body.into()),
            ],
        )?;
        db.execute(
            "DELETE FROM lookbook_cache WHERE created <= ?",
            &[Value::Integer(now - TTL_SECONDS)],
        )
        .map(drop)
    })
}
