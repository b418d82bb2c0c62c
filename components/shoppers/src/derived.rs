//! What a function computes from one shopper's events (their profile and whatever it derives
//! from it), kept between requests: one body per (shopper, purpose), under a key that names
//! what it was computed from ([`events_state`] and whatever else the caller adds). A body whose
//! key no longer matches is computed again; bodies are dropped [`TTL_SECONDS`] after they were
//! stored; erasing the shopper deletes theirs (`functions/events`).

use spin_sdk::sqlite::{Connection, Error, Value as Sql};

/// How long a body is kept after it was stored, in seconds.
pub const TTL_SECONDS: i64 = 600;

/// The state of a shopper's events as seen at `now`: how many there are up to then, how many
/// in all, and the newest row. Any event stored, or one dated in the future whose time comes,
/// changes it. (Rows are only ever deleted with the whole shopper.)
pub fn events_state(db: &Connection, shopper: &str, now: i64) -> Result<String, Error> {
    let rows = crate::with_tables(db, |db| {
        db.execute(
            "SELECT count(*) FILTER (WHERE time <= ?) || ':' || count(*) || ':' ||
                coalesce(max(rowid), 0)
             FROM shopper_events WHERE shopper = ?",
            &[Sql::Integer(now), Sql::Text(shopper.into())],
        )
    })?;
    Ok(rows
        .rows
        .first()
        .and_then(|r| r.get::<&str>(0))
        .unwrap_or_default()
        .to_string())
}

/// The body `purpose` stored for `shopper` under `key`, if there is one.
pub fn get(
    db: &Connection,
    shopper: &str,
    purpose: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, Error> {
    let rows = crate::with_tables(db, |db| {
        db.execute(
            "SELECT body FROM shopper_derived WHERE shopper = ? AND purpose = ? AND key = ?",
            &[
                Sql::Text(shopper.into()),
                Sql::Text(purpose.into()),
                Sql::Text(key.into()),
            ],
        )
    })?;
    Ok(rows
        .rows
        .first()
        .and_then(|r| r.get::<&[u8]>(0))
        .map(<[u8]>::to_vec))
}

/// Stores `body` for `shopper` and `purpose` under `key` (replacing what was there), and drops
/// the bodies older than [`TTL_SECONDS`].
pub fn put(
    db: &Connection,
    shopper: &str,
    purpose: &str,
    key: &str,
    body: Vec<u8>,
    now: i64,
) -> Result<(), Error> {
    crate::with_tables(db, |db| {
        db.execute(
            "INSERT OR REPLACE INTO shopper_derived (shopper, purpose, key, created, body)
             VALUES (?, ?, ?, ?, ?)",
            &[
                Sql::Text(shopper.into()),
                Sql::Text(purpose.into()),
                Sql::Text(key.into()),
                Sql::Integer(now),
                Sql::Blob(body.clone()),
            ],
        )?;
        db.execute(
            "DELETE FROM shopper_derived WHERE created <= ?",
            &[Sql::Integer(now - TTL_SECONDS)],
        )
        .map(drop)
    })
}
