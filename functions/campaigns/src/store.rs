//! Campaigns, their policies' state, decisions and feedback in the embedded SQLite database.
//! A decision and the policy update it causes are one transaction, so concurrent instances
//! learn consistently and a crash loses neither.

use spin_sdk::sqlite::{Connection, Error, Value};
use vitrine_campaigns::policy::Policy;

use crate::definition::Definition;

/// Tables, created on first use.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS campaigns (
        id TEXT PRIMARY KEY, definition TEXT NOT NULL, version INTEGER NOT NULL,
        policy TEXT NOT NULL, updated_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS campaign_decisions (
        id TEXT PRIMARY KEY, campaign TEXT NOT NULL, version INTEGER NOT NULL,
        shopper TEXT, arm INTEGER NOT NULL, propensity REAL NOT NULL, policy TEXT NOT NULL,
        features TEXT NOT NULL, context TEXT NOT NULL, time INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS campaign_feedback (
        event_id TEXT PRIMARY KEY, decision_id TEXT NOT NULL, event TEXT NOT NULL,
        value REAL, time INTEGER NOT NULL)",
];

/// A stored campaign.
pub struct Stored {
    /// Its id.
    pub id: String,
    /// Its definition.
    pub definition: Definition,
    /// Bumped by every `PUT`; decisions record it.
    pub version: i64,
    /// What its policy has learned (reset when the definition changes).
    pub policy: Policy,
}

fn text(row: &spin_sdk::sqlite::Row<'_>, i: &str) -> String {
    row.get::<&str>(i).unwrap_or_default().to_string()
}

fn corrupt(what: &str, e: serde_json::Error) -> Error {
    Error::Io(format!("stored {what} is not readable: {e}"))
}

fn rows_to_campaigns(rows: spin_sdk::sqlite::QueryResult) -> Result<Vec<Stored>, Error> {
    rows.rows()
        .map(|row| {
            Ok(Stored {
                id: text(&row, "id"),
                definition: serde_json::from_str(&text(&row, "definition"))
                    .map_err(|e| corrupt("campaign", e))?,
                version: row.get::<i64>("version").unwrap_or(0),
                policy: serde_json::from_str(&text(&row, "policy"))
                    .map_err(|e| corrupt("policy", e))?,
            })
        })
        .collect()
}

/// Every campaign, by id.
pub fn all(db: &Connection) -> Result<Vec<Stored>, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        rows_to_campaigns(db.execute(
            "SELECT id, definition, version, policy FROM campaigns ORDER BY id",
            &[],
        )?)
    })
}

/// The campaign `id`, if any.
pub fn get(db: &Connection, id: &str) -> Result<Option<Stored>, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            "SELECT id, definition, version, policy FROM campaigns WHERE id = ?",
            &[Value::Text(id.into())],
        )?;
        Ok(rows_to_campaigns(rows)?.into_iter().next())
    })
}

/// Stores `definition` as campaign `id` (a new version, with a fresh policy); returns the
/// version.
pub fn put(
    db: &Connection,
    id: &str,
    definition: &Definition,
    policy: &Policy,
    now: i64,
) -> Result<i64, Error> {
    let definition = serde_json::to_string(definition).map_err(|e| Error::Io(e.to_string()))?;
    let policy = serde_json::to_string(policy).map_err(|e| Error::Io(e.to_string()))?;
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            "INSERT INTO campaigns (id, definition, version, policy, updated_at) VALUES (?, ?, 1, ?, ?)
             ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                version = campaigns.version + 1, policy = excluded.policy,
                updated_at = excluded.updated_at
             RETURNING version",
            &[
                Value::Text(id.into()),
                Value::Text(definition.clone()),
                Value::Text(policy.clone()),
                Value::Integer(now),
            ],
        )?;
        let version = rows
            .rows()
            .next()
            .and_then(|r| r.get::<i64>("version"))
            .unwrap_or(1);
        Ok(version)
    })
}

/// Applies `change` to the policy of campaign `id` at `version` inside the current
/// transaction; nothing if the campaign changed since (its new policy starts afresh).
pub fn update_policy(
    db: &Connection,
    id: &str,
    version: i64,
    change: impl FnOnce(&mut Policy),
) -> Result<(), Error> {
    let rows = db.execute(
        "SELECT policy FROM campaigns WHERE id = ? AND version = ?",
        &[Value::Text(id.into()), Value::Integer(version)],
    )?;
    let Some(row) = rows.rows().next() else {
        return Ok(());
    };
    let mut policy: Policy =
        serde_json::from_str(&text(&row, "policy")).map_err(|e| corrupt("policy", e))?;
    change(&mut policy);
    let policy = serde_json::to_string(&policy).map_err(|e| Error::Io(e.to_string()))?;
    db.execute(
        "UPDATE campaigns SET policy = ? WHERE id = ? AND version = ?",
        &[
            Value::Text(policy),
            Value::Text(id.into()),
            Value::Integer(version),
        ],
    )?;
    Ok(())
}

/// A logged decision.
pub struct Decision {
    /// Its id.
    pub id: String,
    /// The campaign.
    pub campaign: String,
    /// The campaign's version then.
    pub version: i64,
    /// The shopper, if known.
    pub shopper: Option<String>,
    /// The arm shown (index).
    pub arm: usize,
    /// Its probability.
    pub propensity: f64,
    /// The policy's kind.
    pub policy: String,
    /// The context features the policy saw.
    pub features: Vec<f64>,
    /// The request's context, as sent.
    pub context: String,
    /// When (Unix seconds).
    pub time: i64,
}

/// Logs `decision` (inside the current transaction).
pub fn log_decision(db: &Connection, d: &Decision) -> Result<(), Error> {
    let features = serde_json::to_string(&d.features).map_err(|e| Error::Io(e.to_string()))?;
    db.execute(
        "INSERT INTO campaign_decisions
            (id, campaign, version, shopper, arm, propensity, policy, features, context, time)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            Value::Text(d.id.clone()),
            Value::Text(d.campaign.clone()),
            Value::Integer(d.version),
            d.shopper.clone().map_or(Value::Null, Value::Text),
            Value::Integer(d.arm as i64),
            Value::Real(d.propensity),
            Value::Text(d.policy.clone()),
            Value::Text(features),
            Value::Text(d.context.clone()),
            Value::Integer(d.time),
        ],
    )?;
    Ok(())
}

/// The decision `id`, if any.
pub fn decision(db: &Connection, id: &str) -> Result<Option<Decision>, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            "SELECT id, campaign, version, shopper, arm, propensity, policy, features, context, time
             FROM campaign_decisions WHERE id = ?",
            &[Value::Text(id.into())],
        )?;
        let found = rows.rows().next().map(|row| Decision {
            id: text(&row, "id"),
            campaign: text(&row, "campaign"),
            version: row.get::<i64>("version").unwrap_or(0),
            shopper: row.get::<&str>("shopper").map(str::to_string),
            arm: row.get::<i64>("arm").unwrap_or(0) as usize,
            propensity: row.get::<f64>("propensity").unwrap_or(0.0),
            policy: text(&row, "policy"),
            features: serde_json::from_str(&text(&row, "features")).unwrap_or_default(),
            context: text(&row, "context"),
            time: row.get::<i64>("time").unwrap_or(0),
        });
        Ok(found)
    })
}

/// What recording a feedback event did.
pub enum Recorded {
    /// Stored; `first_conversion` when it is the decision's first conversion.
    New {
        /// The decision's first conversion.
        first_conversion: bool,
    },
    /// This event id was recorded before, for the same decision.
    Duplicate,
    /// This event id was recorded before, for another decision.
    Conflict,
}

/// Records feedback `event_id` of `decision_id` (inside the current transaction).
pub fn record_feedback(
    db: &Connection,
    event_id: &str,
    decision_id: &str,
    event: &str,
    value: Option<f64>,
    now: i64,
) -> Result<Recorded, Error> {
    let seen = db.execute(
        "SELECT decision_id FROM campaign_feedback WHERE event_id = ?",
        &[Value::Text(event_id.into())],
    )?;
    if let Some(row) = seen.rows().next() {
        return Ok(match row.get::<&str>("decision_id") == Some(decision_id) {
            true => Recorded::Duplicate,
            false => Recorded::Conflict,
        });
    }
    let converted_before = db.execute(
        "SELECT 1 FROM campaign_feedback WHERE decision_id = ? AND event = 'conversion'",
        &[Value::Text(decision_id.into())],
    )?;
    db.execute(
        "INSERT INTO campaign_feedback (event_id, decision_id, event, value, time) VALUES (?, ?, ?, ?, ?)",
        &[
            Value::Text(event_id.into()),
            Value::Text(decision_id.into()),
            Value::Text(event.into()),
            value.map_or(Value::Null, Value::Real),
            Value::Integer(now),
        ],
    )?;
    Ok(Recorded::New {
        first_conversion: event == "conversion" && converted_before.rows.is_empty(),
    })
}
