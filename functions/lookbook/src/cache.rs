//! Lookbook answers kept for up to [`TTL_SECONDS`], so a shopper reloading a page or a banner
//! asking again costs a lookup instead of an assembly.
//!
//! The key holds the request's parameters (with the season resolved), the shopper's consent,
//! the state of their events (counts and newest) and the catalogue's revision (any write to a
//! product or an embedding): any of these changing misses at once. Shoppers without consent, or without a
//! shopper id, get looks from the context alone and share answers. Only other shoppers' events
//! (popularity) and the clock may be up to [`TTL_SECONDS`] stale. `as_of` answers are never
//! cached. A consenting shopper's answers are stored with their id, so that erasing the shopper
//! deletes them (`functions/events`).

use spin_sdk::sqlite::{Connection, Error, Value};

use crate::context::LookbookRequest;
use crate::describe::Consent;

/// How long an answer is served again, in seconds.
pub const TTL_SECONDS: i64 = 60;

/// The table of answers, `lookbook_answers`; it replaced `lookbook_cache`, whose answers did
/// not name their shopper.
const SCHEMA: &[&str] = &[
    "DROP TABLE IF EXISTS lookbook_cache",
    "CREATE TABLE IF NOT EXISTS lookbook_answers (
        key TEXT PRIMARY KEY, created INTEGER NOT NULL, shopper TEXT, body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS lookbook_answers_created ON lookbook_answers (created)",
    "CREATE INDEX IF NOT EXISTS lookbook_answers_shopper ON lookbook_answers (shopper)
        WHERE shopper IS NOT NULL",
];

/// The cache key of a request (a hash of everything its answer depends on, see the module):
/// `events` is the state of a consenting shopper's events (`vitrine_shoppers::derived::
/// events_state`), `None` for anyone else. Without consent, looks depend on the context alone:
/// such shoppers share one answer, whose `shopper` the caller sets.
pub fn key(
    request: &LookbookRequest,
    consent: Consent,
    revision: i64,
    events: Option<&str>,
) -> String {
    let request = match events {
        Some(_) => request.clone(),
        None => LookbookRequest {
            shopper: None,
            ..request.clone()
        },
    };
    let events = events.unwrap_or_default();
    let state = format!("{request:?}|{consent:?}|{revision}|{events}");
    format!("{:016x}", vitrine_guest::fnv1a(state.as_bytes()))
}

/// The answer stored under `key` less than [`TTL_SECONDS`] before `now`.
pub fn get(db: &Connection, key: &str, now: i64) -> Result<Option<String>, Error> {
    let rows = vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "SELECT body FROM lookbook_answers WHERE key = ? AND created > ?",
            &[Value::Text(key.into()), Value::Integer(now - TTL_SECONDS)],
        )
    })?;
    Ok(rows
        .rows
        .first()
        .and_then(|r| r.get::<&str>(0))
        .map(str::to_string))
}

/// Stores an answer, for `shopper` if it holds their personal looks (`None`: a shared one);
/// one put in 16 (by key) also drops the expired answers, which are never served meanwhile
/// ([`get`]).
pub fn put(
    db: &Connection,
    key: &str,
    shopper: Option<&str>,
    body: &str,
    now: i64,
) -> Result<(), Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "INSERT OR REPLACE INTO lookbook_answers (key, created, shopper, body)
             VALUES (?, ?, ?, ?)",
            &[
                Value::Text(key.into()),
                Value::Integer(now),
                shopper.map_or(Value::Null, |s| Value::Text(s.into())),
                Value::Text(body.into()),
            ],
        )?;
        if !key.ends_with('0') {
            return Ok(());
        }
        db.execute(
            "DELETE FROM lookbook_answers WHERE created <= ?",
            &[Value::Integer(now - TTL_SECONDS)],
        )
        .map(drop)
    })
}
