//! Campaigns, their policies' state, decisions and feedback in the embedded SQLite database.
//!
//! Decisions and feedback are only inserted (a decide request is one multi-row `INSERT`), so
//! requests hold the database's write lock briefly. A policy learns by [`fold`]: the decisions
//! and first conversions recorded since its last fold are read in one snapshot and applied
//! to its state, which one conditional `UPDATE` stores with the moved fold marks. Folding
//! runs at most every [`FOLD_EVERY_MS`] per campaign: a decide request claims one stale
//! campaign ([`claim_fold`]) and folds it, and an admin read folds the campaign it shows; so
//! what a policy has learned lags by about a second under load; nothing recorded is lost (a
//! crash before a fold leaves the rows for the next one), and concurrent instances fold the
//! same rows once.

use spin_sdk::sqlite::{Connection, Error, Value};
use vitrine_campaigns::policy::Policy;

use crate::definition::Definition;

/// Tables, created on first use.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS campaigns (
        id TEXT PRIMARY KEY, definition TEXT NOT NULL, version INTEGER NOT NULL,
        policy TEXT NOT NULL, updated_at INTEGER NOT NULL,
        decisions_folded INTEGER NOT NULL DEFAULT 0, feedback_folded INTEGER NOT NULL DEFAULT 0,
        folded_at_ms INTEGER NOT NULL DEFAULT 0, impressions INTEGER NOT NULL DEFAULT 0,
        discount_spent REAL NOT NULL DEFAULT 0)",
    // Added after the table: databases from before get it on first use.
    "ALTER TABLE campaigns ADD COLUMN discount_spent REAL NOT NULL DEFAULT 0",
    // `seq` (the rowid) is AUTOINCREMENT: never reused after an erasure, so a fold mark never
    // skips a new row.
    "CREATE TABLE IF NOT EXISTS campaign_decisions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        campaign TEXT NOT NULL, version INTEGER NOT NULL,
        shopper TEXT, arm INTEGER NOT NULL, propensity REAL NOT NULL, policy TEXT NOT NULL,
        features TEXT NOT NULL, context TEXT NOT NULL, time INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS campaign_feedback (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,
        decision_id TEXT NOT NULL, event TEXT NOT NULL,
        value REAL, time INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS campaign_feedback_decision ON campaign_feedback (decision_id, event)",
    // On `campaign` alone: its entries are in rowid order, so a fold reads only the rows
    // after its mark.
    "CREATE INDEX IF NOT EXISTS campaign_decisions_campaign ON campaign_decisions (campaign)",
    "CREATE INDEX IF NOT EXISTS campaign_decisions_shopper ON campaign_decisions (shopper)",
];

/// How often a campaign's policy is brought up to date, at most.
pub const FOLD_EVERY_MS: i64 = 1_000;

/// A stored campaign.
pub struct Stored {
    /// Its id.
    pub id: String,
    /// Its definition.
    pub definition: Definition,
    /// Bumped by every `PUT`; decisions record it.
    pub version: i64,
    /// What its policy has learned (reset when the definition changes), as of its last fold.
    pub policy: Policy,
    /// When it was last folded (Unix milliseconds).
    pub folded_at_ms: i64,
    /// Decisions that showed an arm, over all versions, as of the last fold.
    pub impressions: i64,
    /// Discounts of its converted decisions, over all versions, as of the last fold.
    pub discount_spent: f64,
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
                folded_at_ms: row.get::<i64>("folded_at_ms").unwrap_or(0),
                impressions: row.get::<i64>("impressions").unwrap_or(0),
                discount_spent: row.get::<f64>("discount_spent").unwrap_or(0.0),
            })
        })
        .collect()
}

/// Every campaign, by id.
pub fn all(db: &Connection) -> Result<Vec<Stored>, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        rows_to_campaigns(db.execute(
            "SELECT id, definition, version, policy, folded_at_ms, impressions, discount_spent
             FROM campaigns ORDER BY id",
            &[],
        )?)
    })
}

/// The campaign `id`, if any.
pub fn get(db: &Connection, id: &str) -> Result<Option<Stored>, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            "SELECT id, definition, version, policy, folded_at_ms, impressions, discount_spent
             FROM campaigns WHERE id = ?",
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
                updated_at = excluded.updated_at, folded_at_ms = 0
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

/// Brings campaign `id`'s policy up to date (if it is still at `version`): the decisions and
/// the first conversions recorded since its last fold are applied to its state, read in one
/// snapshot without the write lock (decisions keep being logged meanwhile); then one
/// `UPDATE` stores the state and moves the fold marks past those rows — only if the marks
/// are still where they were read, so rows folded by a concurrent fold are never counted
/// twice (that fold's work is kept, this one's dropped).
pub fn fold(db: &Connection, id: &str, version: i64, now_ms: i64) -> Result<(), Error> {
    db.execute("BEGIN", &[])?;
    let read = read_fold(db, id, version);
    let _ = db.execute("COMMIT", &[]);
    let Some(fold) = read? else {
        return Ok(());
    };
    let policy = serde_json::to_string(&fold.policy).map_err(|e| Error::Io(e.to_string()))?;
    db.execute(
        "UPDATE campaigns SET policy = ?, decisions_folded = ?, feedback_folded = ?,
            folded_at_ms = ?, impressions = impressions + ?, discount_spent = discount_spent + ?
         WHERE id = ? AND version = ? AND decisions_folded = ? AND feedback_folded = ?",
        &[
            Value::Text(policy),
            Value::Integer(fold.decisions_folded),
            Value::Integer(fold.feedback_folded),
            Value::Integer(now_ms),
            Value::Integer(fold.new_impressions),
            Value::Real(fold.new_spend),
            Value::Text(id.into()),
            Value::Integer(version),
            Value::Integer(fold.marks.0),
            Value::Integer(fold.marks.1),
        ],
    )?;
    Ok(())
}

/// Claims the fold of campaign `id` (at `version`) last folded at `folded_at_ms`: true for
/// the one request that moves its fold time to `now_ms`, so concurrent requests do not all
/// fold it.
pub fn claim_fold(
    db: &Connection,
    id: &str,
    version: i64,
    folded_at_ms: i64,
    now_ms: i64,
) -> Result<bool, Error> {
    let claimed = db.execute(
        "UPDATE campaigns SET folded_at_ms = ? WHERE id = ? AND version = ? AND folded_at_ms = ?
         RETURNING 1",
        &[
            Value::Integer(now_ms),
            Value::Text(id.into()),
            Value::Integer(version),
            Value::Integer(folded_at_ms),
        ],
    )?;
    Ok(!claimed.rows.is_empty())
}

/// A fold computed from a snapshot: the new state and marks, and the marks it started from.
struct Fold {
    policy: Policy,
    decisions_folded: i64,
    feedback_folded: i64,
    new_impressions: i64,
    new_spend: f64,
    marks: (i64, i64),
}

/// Reads what campaign `id` has not folded yet and applies it to a copy of its policy.
fn read_fold(db: &Connection, id: &str, version: i64) -> Result<Option<Fold>, Error> {
    let rows = db.execute(
        "SELECT policy, definition, decisions_folded, feedback_folded FROM campaigns
         WHERE id = ? AND version = ?",
        &[Value::Text(id.into()), Value::Integer(version)],
    )?;
    let Some(row) = rows.rows().next() else {
        return Ok(None);
    };
    let mut policy: Policy =
        serde_json::from_str(&text(&row, "policy")).map_err(|e| corrupt("policy", e))?;
    let definition: Definition =
        serde_json::from_str(&text(&row, "definition")).map_err(|e| corrupt("campaign", e))?;
    let discounts: Vec<f64> = definition.arms.iter().map(|a| a.discount).collect();
    let (mut decisions_folded, mut feedback_folded) = (
        row.get::<i64>("decisions_folded").unwrap_or(0),
        row.get::<i64>("feedback_folded").unwrap_or(0),
    );
    let marks = (decisions_folded, feedback_folded);
    let campaign = [Value::Text(id.into()), Value::Integer(version)];
    // LinUCB learns from each decision's features; Thompson sampling only from counts per
    // arm; uniform from nothing.
    let contextual = matches!(policy, Policy::LinUcb { .. });
    let rows = |sql: &str, mark: i64| {
        let mut params = campaign.to_vec();
        params.push(Value::Integer(mark));
        db.execute(sql, &params)
    };
    let features = |row: &spin_sdk::sqlite::Row<'_>| -> Vec<f64> {
        serde_json::from_str(&text(row, "features")).unwrap_or_default()
    };
    let learns = !matches!(policy, Policy::Uniform { .. });
    // Impressions count every version's decisions since the mark; the policy learns from
    // its own version's only.
    let counted = db.execute(
        "SELECT count(*) AS n, coalesce(max(rowid), 0) AS last FROM campaign_decisions
         WHERE campaign = ? AND rowid > ?",
        &[Value::Text(id.into()), Value::Integer(decisions_folded)],
    )?;
    let (new_impressions, counted_through) = counted.rows().next().map_or((0, 0), |r| {
        (
            r.get::<i64>("n").unwrap_or(0),
            r.get::<i64>("last").unwrap_or(0),
        )
    });
    if learns {
        let shown = rows(
            match contextual {
                true => {
                    "SELECT arm, 1 AS n, features FROM campaign_decisions
                         WHERE campaign = ? AND version = ? AND rowid > ? ORDER BY rowid"
                }
                false => {
                    "SELECT arm, count(*) AS n, '[]' AS features
                          FROM campaign_decisions
                          WHERE campaign = ? AND version = ? AND rowid > ? GROUP BY arm"
                }
            },
            decisions_folded,
        )?;
        for row in shown.rows() {
            let (arm, x) = (row.get::<i64>("arm").unwrap_or(0) as usize, features(&row));
            for _ in 0..row.get::<i64>("n").unwrap_or(0) {
                policy.shown(arm, &x);
            }
        }
    }
    // A decision's first conversion only; its decision was folded above or before.
    // (CROSS JOIN: the feedback since the mark drives the join, never the whole history of
    // the campaign's decisions.) Each costs its arm's discount, and rewards the policy.
    let converted = rows(
        "SELECT d.arm AS arm, d.features AS features
         FROM campaign_feedback f CROSS JOIN campaign_decisions d ON d.id = f.decision_id
         WHERE d.campaign = ? AND d.version = ? AND f.rowid > ?
           AND f.event = 'conversion'
           AND NOT EXISTS (SELECT 1 FROM campaign_feedback e
                           WHERE e.decision_id = f.decision_id AND e.event = 'conversion'
                             AND e.rowid < f.rowid)",
        feedback_folded,
    )?;
    let mut new_spend = 0.0;
    for row in converted.rows() {
        let arm = row.get::<i64>("arm").unwrap_or(0) as usize;
        new_spend += discounts.get(arm).copied().unwrap_or(0.0);
        if learns {
            policy.rewarded(arm, &features(&row), 1.0);
        }
    }
    decisions_folded = decisions_folded.max(counted_through);
    // Every feedback row up to now has been seen (conversions of other campaigns are
    // theirs to fold: their marks are their own).
    let last = db.execute(
        "SELECT coalesce(max(rowid), 0) AS last FROM campaign_feedback",
        &[],
    )?;
    feedback_folded = feedback_folded.max(
        last.rows()
            .next()
            .and_then(|r| r.get::<i64>("last"))
            .unwrap_or(0),
    );
    Ok(Some(Fold {
        policy,
        decisions_folded,
        feedback_folded,
        new_impressions,
        new_spend,
        marks,
    }))
}

/// How often `shopper` has seen campaign `id`: (since `since`, in all).
pub fn seen_by(db: &Connection, id: &str, shopper: &str, since: i64) -> Result<(i64, i64), Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            "SELECT coalesce(sum(time >= ?), 0) AS recent, count(*) AS total
             FROM campaign_decisions WHERE shopper = ? AND campaign = ?",
            &[
                Value::Integer(since),
                Value::Text(shopper.into()),
                Value::Text(id.into()),
            ],
        )?;
        let seen = rows.rows().next().map_or((0, 0), |r| {
            (
                r.get::<i64>("recent").unwrap_or(0),
                r.get::<i64>("total").unwrap_or(0),
            )
        });
        Ok(seen)
    })
}

/// How many campaigns were shown to `shopper` since `since` (Unix seconds), over all
/// campaigns.
pub fn shown_to(db: &Connection, shopper: &str, since: i64) -> Result<i64, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            "SELECT count(*) FROM campaign_decisions WHERE shopper = ? AND time > ?",
            &[Value::Text(shopper.into()), Value::Integer(since)],
        )?;
        Ok(rows.rows.first().and_then(|r| r.get::<i64>(0)).unwrap_or(0))
    })
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

/// Logs `decisions`, in one statement.
pub fn log_decisions(db: &Connection, decisions: &[Decision]) -> Result<(), Error> {
    if decisions.is_empty() {
        return Ok(());
    }
    let mut params = Vec::with_capacity(decisions.len() * 10);
    for d in decisions {
        let features = serde_json::to_string(&d.features).map_err(|e| Error::Io(e.to_string()))?;
        params.extend([
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
        ]);
    }
    let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; decisions.len()].join(", ");
    db.execute(
        &format!(
            "INSERT INTO campaign_decisions
                (id, campaign, version, shopper, arm, propensity, policy, features, context, time)
             VALUES {rows}"
        ),
        &params,
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
    /// Stored.
    New,
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
    Ok(Recorded::New)
}
