//! Shoppers in the `default` SQLite database, shared by the functions that read them: the
//! event and consent tables ([`with_tables`]), a shopper's consent ([`consent`]) and profile
//! ([`profile`]). The events function writes them; its docs state the consent policy.

pub mod profile;

use spin_sdk::sqlite::{Connection, Error, Value as Sql};

/// Runs `f`, creating the tables first if they are missing (first use of the database).
pub fn with_tables<T>(
    db: &Connection,
    f: impl Fn(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, f)
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS shopper_events (
        id TEXT PRIMARY KEY, shopper TEXT, kind TEXT NOT NULL, time INTEGER NOT NULL,
        product TEXT, query TEXT, campaign TEXT, variant TEXT, quantity INTEGER NOT NULL,
        price REAL, session TEXT, context TEXT NOT NULL, fingerprint TEXT NOT NULL,
        received INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS shopper_events_shopper ON shopper_events (shopper, time)",
    "CREATE INDEX IF NOT EXISTS shopper_events_product ON shopper_events (product, kind)",
    "CREATE TABLE IF NOT EXISTS shopper_consent (
        shopper TEXT PRIMARY KEY, personalization INTEGER NOT NULL, updated INTEGER NOT NULL)",
];

/// A shopper's personalization consent (false when never given).
pub fn consent(db: &Connection, shopper: &str) -> Result<bool, Error> {
    Ok(db
        .execute(
            "SELECT personalization FROM shopper_consent WHERE shopper = ?",
            &[Sql::Text(shopper.into())],
        )?
        .rows
        .first()
        .and_then(|r| r.get::<i64>(0))
        == Some(1))
}
