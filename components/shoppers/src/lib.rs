//! Shoppers in the `default` SQLite database, shared by the functions that read them: the
//! event, consent and product popularity tables ([`with_tables`]), a shopper's consent
//! ([`consent`]) and profile ([`profile`]), and what functions derive from a shopper's events
//! ([`derived`]). The events function writes them; its docs state the consent policy.

pub mod derived;
pub mod profile;

use spin_sdk::sqlite::{Connection, Error, Value as Sql};

/// Runs `f`, creating the tables first if they are missing (first use of the database).
pub fn with_tables<T>(
    db: &Connection,
    f: impl Fn(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    let backfill = POPULARITY_BACKFILL.replace("{weight}", &profile::weight_sql("kind"));
    let schema: Vec<&str> = SCHEMA.iter().copied().chain([backfill.as_str()]).collect();
    vitrine_guest::sqlite::with_schema(db, &schema, f)
}

/// Adds new events (a JSON array of objects with `product`, `kind` and `quantity`) to the
/// products' popularity: the all-time event weight per product, anonymous events included.
/// Call it in the transaction that stores them.
pub fn add_popularity(db: &Connection, events_json: &str) -> Result<(), Error> {
    db.execute(
        &format!(
            "INSERT INTO product_popularity (product, weight)
             SELECT j.value->>'product', sum((j.value->>'quantity') * {})
             FROM json_each(?) AS j WHERE j.value->>'product' IS NOT NULL GROUP BY 1
             ON CONFLICT (product) DO UPDATE SET weight = weight + excluded.weight",
            profile::weight_sql("j.value->>'kind'")
        ),
        &[Sql::Text(events_json.to_string())],
    )
    .map(drop)
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS shopper_events (
        id TEXT PRIMARY KEY, shopper TEXT, kind TEXT NOT NULL, time INTEGER NOT NULL,
        product TEXT, query TEXT, campaign TEXT, variant TEXT, quantity INTEGER NOT NULL,
        price REAL, session TEXT, context TEXT NOT NULL, fingerprint TEXT NOT NULL,
        received INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS shopper_events_shopper ON shopper_events (shopper, time)",
    // Covers the popularity sums (`GROUP BY product`, up to a time for `as_of`) without
    // reading the events themselves: 6–10× faster at 260k events.
    "CREATE INDEX IF NOT EXISTS shopper_events_popularity
        ON shopper_events (product, time, kind, quantity)",
    // `marketing`: NULL when the shopper never said (campaigns may be shown), 0 after an
    // opt-out, 1 after an opt-in.
    "CREATE TABLE IF NOT EXISTS shopper_consent (
        shopper TEXT PRIMARY KEY, personalization INTEGER NOT NULL, updated INTEGER NOT NULL,
        marketing INTEGER)",
    // Added after the table: databases from before get it on first use.
    "ALTER TABLE shopper_consent ADD COLUMN marketing INTEGER",
    "CREATE TABLE IF NOT EXISTS product_popularity (product TEXT PRIMARY KEY, weight REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS shopper_derived (
        shopper TEXT NOT NULL, purpose TEXT NOT NULL, key TEXT NOT NULL, created INTEGER NOT NULL,
        body BLOB NOT NULL, PRIMARY KEY (shopper, purpose))",
    "CREATE INDEX IF NOT EXISTS shopper_derived_created ON shopper_derived (created)",
];

/// Filled in from the events when the popularity table is new (a database from before it).
const POPULARITY_BACKFILL: &str = "INSERT OR IGNORE INTO product_popularity (product, weight)
    SELECT product, sum(quantity * {weight}) FROM shopper_events WHERE product IS NOT NULL
    GROUP BY product";

/// A shopper's marketing consent: `None` when never stated, `Some(false)` after an opt-out.
pub fn marketing_consent(db: &Connection, shopper: &str) -> Result<Option<bool>, Error> {
    Ok(db
        .execute(
            "SELECT marketing FROM shopper_consent WHERE shopper = ?",
            &[Sql::Text(shopper.into())],
        )?
        .rows
        .first()
        .and_then(|r| r.get::<i64>(0))
        .map(|m| m == 1))
}

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
