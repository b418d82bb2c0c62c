//! Campaigns, their policies' state, decisions and feedback in the embedded SQLite database.
//!
//! Decisions and feedback are only inserted (a decide request is one multi-row `INSERT`), so
//! requests hold the database's write lock briefly. Policies learn by [`fold`]: the decisions
//! and first conversions recorded since the last fold, up to the last rows when it starts,
//! are read in one pass for all campaigns and applied to their states, which one statement
//! stores with the moved fold marks. Folds run at most every [`FOLD_EVERY_MS`]: a decide
//! request that finds a campaign stale claims every stale one ([`claim_stale`]) and folds
//! them once it has answered, and an admin read folds them all; so what a policy has learned
//! lags by about a tenth of a second; nothing recorded is lost (a crash before a fold leaves
//! the rows for the next one), and concurrent instances fold the same rows once.

use spin_sdk::sqlite::{Connection, Error, Value};
use vitrine_campaigns::policy::Policy;

use crate::definition::Definition;

/// Tables, created on first use.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS campaigns (
        id TEXT PRIMARY KEY, definition TEXT NOT NULL, version INTEGER NOT NULL,
        policy BLOB NOT NULL, updated_at INTEGER NOT NULL,
        decisions_folded INTEGER NOT NULL DEFAULT 0, feedback_folded INTEGER NOT NULL DEFAULT 0,
        folded_at_ms INTEGER NOT NULL DEFAULT 0, impressions INTEGER NOT NULL DEFAULT 0,
        discount_spent REAL NOT NULL DEFAULT 0, probabilities TEXT NOT NULL DEFAULT '[]',
        compiled BLOB)",
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
    "CREATE INDEX IF NOT EXISTS campaign_decisions_shopper ON campaign_decisions (shopper)",
    // Added after the table: the arm probabilities of a policy that needs no context.
    "ALTER TABLE campaigns ADD COLUMN probabilities TEXT NOT NULL DEFAULT '[]'",
    // The definition again, as postcard bytes: what a decision reads (ten campaigns' JSON
    // cost it about 5% of its CPU). NULL for campaigns stored before: their JSON is read.
    "ALTER TABLE campaigns ADD COLUMN compiled BLOB",
    // Dropped: a request's ten decisions changed ten places of this index on `campaign`, a
    // fourth of all the pages each request wrote. A fold reads the rows after its mark by
    // rowid instead.
    "DROP INDEX IF EXISTS campaign_decisions_campaign",
    // A database of the first version, before folds, whose policies learned from every row
    // as it was written: its campaigns get fold marks past every row (-1 marks them until
    // then), and their impressions counted.
    "ALTER TABLE campaigns ADD COLUMN decisions_folded INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE campaigns ADD COLUMN feedback_folded INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE campaigns ADD COLUMN impressions INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE campaigns ADD COLUMN folded_at_ms INTEGER NOT NULL DEFAULT -1",
    "UPDATE campaigns SET folded_at_ms = 0,
        decisions_folded = (SELECT coalesce(max(rowid), 0) FROM campaign_decisions),
        feedback_folded = (SELECT coalesce(max(rowid), 0) FROM campaign_feedback),
        impressions = (SELECT count(*) FROM campaign_decisions d WHERE d.campaign = campaigns.id)
     WHERE folded_at_ms = -1",
];

/// How often a campaign's policy is brought up to date, at most.
pub const FOLD_EVERY_MS: i64 = 100;

/// Posterior draws that estimate a Thompson-sampling campaign's arm probabilities, once per
/// fold (standard error 0.016 at p = 0.5). The propensity logged is the probability the arm
/// was drawn with, so this noise does not bias off-policy estimates.
pub const PROBABILITY_DRAWS: usize = 1_000;

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
    /// Each arm's probability of being shown, as of the last fold, for a policy whose choice
    /// does not depend on the context (so a decision need not estimate it); else empty.
    pub probabilities: Vec<f64>,
}

/// `policy`'s arm probabilities for [`Stored::probabilities`], as JSON.
fn probabilities_json(policy: &Policy, epsilon: f64) -> String {
    use rand::SeedableRng;
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let p = policy.context_free_probabilities(epsilon, PROBABILITY_DRAWS, &mut rng);
    serde_json::to_string(&p.unwrap_or_default()).unwrap_or_else(|_| "[]".into())
}

fn text(row: &spin_sdk::sqlite::Row<'_>, i: &str) -> String {
    row.get::<&str>(i).unwrap_or_default().to_string()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("stored {what} is not readable: {e}"))
}

/// A stored policy state: [`Policy::to_bytes`], or the JSON text (`{"kind": "thompson", …}`)
/// that earlier versions stored.
fn stored_policy(row: &spin_sdk::sqlite::Row<'_>) -> Result<Policy, Error> {
    let bytes = row.get::<&[u8]>("policy").unwrap_or_default();
    if bytes.first() != Some(&b'{') {
        return Policy::from_bytes(bytes).map_err(|e| corrupt("policy", e));
    }
    let mut state: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt("policy", e))?;
    let kind = (state.as_object_mut())
        .and_then(|o| o.remove("kind"))
        .and_then(|k| k.as_str().map(str::to_string))
        .unwrap_or_default();
    serde_json::from_value(serde_json::json!({ kind: state })).map_err(|e| corrupt("policy", e))
}

/// A stored definition: its postcard bytes (`compiled`), or its JSON (`definition`) for a
/// campaign stored before those.
fn stored_definition(row: &spin_sdk::sqlite::Row<'_>) -> Result<Definition, Error> {
    match row.get::<&[u8]>("compiled") {
        Some(bytes) => postcard::from_bytes(bytes).map_err(|e| corrupt("campaign", e)),
        None => serde_json::from_str(&text(row, "definition")).map_err(|e| corrupt("campaign", e)),
    }
}

/// The columns [`rows_to_campaigns`] reads (the definition's JSON only where it has no bytes);
/// a fold reads them too.
const CAMPAIGN_COLUMNS: &str = "id, version, policy, folded_at_ms, impressions, discount_spent,
    probabilities, compiled, CASE WHEN compiled IS NULL THEN definition END AS definition";

fn rows_to_campaigns(rows: spin_sdk::sqlite::QueryResult) -> Result<Vec<Stored>, Error> {
    rows.rows()
        .map(|row| {
            Ok(Stored {
                id: text(&row, "id"),
                definition: stored_definition(&row)?,
                version: row.get::<i64>("version").unwrap_or(0),
                policy: stored_policy(&row)?,
                folded_at_ms: row.get::<i64>("folded_at_ms").unwrap_or(0),
                impressions: row.get::<i64>("impressions").unwrap_or(0),
                discount_spent: row.get::<f64>("discount_spent").unwrap_or(0.0),
                probabilities: serde_json::from_str(&text(&row, "probabilities"))
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Every campaign, by id.
pub fn all(db: &Connection) -> Result<Vec<Stored>, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        rows_to_campaigns(db.execute(
            &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id"),
            &[],
        )?)
    })
}

/// The campaign `id`, if any.
pub fn get(db: &Connection, id: &str) -> Result<Option<Stored>, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            &format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?"),
            &[Value::Text(id.into())],
        )?;
        Ok(rows_to_campaigns(rows)?.into_iter().next())
    })
}

/// Stores `definition` as campaign `id` (a new version, with a fresh policy); returns the
/// version. A new campaign's fold marks start at the last rows (it has none before them);
/// a new version keeps its campaign's, so the impressions count every version's decisions.
pub fn put(
    db: &Connection,
    id: &str,
    definition: &Definition,
    policy: &Policy,
    now: i64,
) -> Result<i64, Error> {
    let probabilities = probabilities_json(policy, definition.epsilon);
    let compiled = postcard::to_allocvec(definition).map_err(|e| Error::Io(e.to_string()))?;
    let definition = serde_json::to_string(definition).map_err(|e| Error::Io(e.to_string()))?;
    let policy = policy.to_bytes();
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            "INSERT INTO campaigns (id, definition, version, policy, updated_at, probabilities,
                compiled, decisions_folded, feedback_folded, folded_at_ms)
             VALUES (?, ?, 1, ?, ?, ?, ?,
                (SELECT coalesce(max(rowid), 0) FROM campaign_decisions),
                (SELECT coalesce(max(rowid), 0) FROM campaign_feedback), 0)
             ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                version = campaigns.version + 1, policy = excluded.policy,
                updated_at = excluded.updated_at, folded_at_ms = 0,
                probabilities = excluded.probabilities, compiled = excluded.compiled
             RETURNING version",
            &[
                Value::Text(id.into()),
                Value::Text(definition.clone()),
                Value::Blob(policy.clone()),
                Value::Integer(now),
                Value::Text(probabilities.clone()),
                Value::Blob(compiled.clone()),
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

/// Brings the policies of `campaigns` (id and version; those of another version now are
/// left alone) up to date: the decisions and the first conversions recorded since their
/// last fold, up to the last rows when it starts, are applied to their states, read without
/// the write lock (decisions keep being logged meanwhile), in one pass over the new rows for
/// all of them;
/// then one statement stores each state and moves its fold marks past those rows — only
/// if its marks are still where they were read, so rows folded by a concurrent fold are
/// never counted twice (that fold's work is kept, this one's dropped).
pub fn fold(db: &Connection, campaigns: &[(String, i64)], now_ms: i64) -> Result<(), Error> {
    if campaigns.is_empty() {
        return Ok(());
    }
    let folds = read_folds(db, campaigns)?;
    if folds.is_empty() {
        return Ok(());
    }
    // One statement for all the campaigns: the write lock is held for it alone (a transaction
    // of one statement per campaign held it across as many calls, and decisions queued).
    let mut params = Vec::with_capacity(folds.len() * 11);
    for fold in &folds {
        params.extend([
            Value::Text(fold.id.clone()),
            Value::Integer(fold.version),
            Value::Integer(fold.marks.0),
            Value::Integer(fold.marks.1),
            Value::Blob(fold.policy.to_bytes()),
            Value::Text(probabilities_json(&fold.policy, fold.epsilon)),
            Value::Integer(fold.marks_to.0),
            Value::Integer(fold.marks_to.1),
            Value::Integer(fold.new_impressions),
            Value::Real(fold.new_spend),
            Value::Integer(now_ms),
        ]);
    }
    let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; folds.len()].join(", ");
    db.execute(
        &format!(
            "UPDATE campaigns SET policy = u.column5, probabilities = u.column6,
                decisions_folded = u.column7, feedback_folded = u.column8,
                impressions = impressions + u.column9, discount_spent = discount_spent + u.column10,
                folded_at_ms = u.column11
             FROM (VALUES {rows}) AS u
             WHERE campaigns.id = u.column1 AND campaigns.version = u.column2
               AND campaigns.decisions_folded = u.column3 AND campaigns.feedback_folded = u.column4"
        ),
        &params,
    )?;
    Ok(())
}

/// Claims the folds of the campaigns last folded [`FOLD_EVERY_MS`] or more before `now_ms`:
/// one statement moves their fold time to `now_ms`, so of concurrent requests only one
/// claims each. Returns them (id and version).
pub fn claim_stale(db: &Connection, now_ms: i64) -> Result<Vec<(String, i64)>, Error> {
    let claimed = db.execute(
        "UPDATE campaigns SET folded_at_ms = ?1 WHERE folded_at_ms <= ?1 - ?2
         RETURNING id, version",
        &[Value::Integer(now_ms), Value::Integer(FOLD_EVERY_MS)],
    )?;
    Ok(claimed
        .rows()
        .map(|r| (text(&r, "id"), r.get::<i64>("version").unwrap_or(0)))
        .collect())
}

/// A campaign's fold, computed from the rows read: its new state, and its fold marks (decisions
/// and feedback rowids) before and after.
struct Fold {
    id: String,
    version: i64,
    policy: Policy,
    epsilon: f64,
    discounts: Vec<f64>,
    marks: (i64, i64),
    marks_to: (i64, i64),
    new_impressions: i64,
    new_spend: f64,
}

/// Reads what `campaigns` have not folded yet and applies it to copies of their policies.
fn read_folds(db: &Connection, campaigns: &[(String, i64)]) -> Result<Vec<Fold>, Error> {
    // The last rows now: the fold reads the rows up to them. Every row up to a committed one is
    // committed (rows get their rowids in the order their serialized writes commit), and
    // AUTOINCREMENT never gives a rowid twice, so each statement below sees the same rows
    // without one snapshot held across them all (which kept the log from starting over).
    let last = db.execute(
        "SELECT (SELECT coalesce(max(rowid), 0) FROM campaign_decisions),
                (SELECT coalesce(max(rowid), 0) FROM campaign_feedback)",
        &[],
    )?;
    let last = |i: usize| {
        (last.rows.first())
            .and_then(|r| r.get::<i64>(i))
            .unwrap_or(0)
    };
    let (last_decision, last_feedback) = (last(0), last(1));
    let ids = serde_json::to_string(&campaigns.iter().map(|c| &c.0).collect::<Vec<_>>())
        .map_err(|e| Error::Io(e.to_string()))?;
    let states = db.execute(
        &format!(
            "SELECT {CAMPAIGN_COLUMNS}, decisions_folded, feedback_folded
             FROM campaigns WHERE id IN (SELECT value FROM json_each(?))"
        ),
        &[Value::Text(ids)],
    )?;
    let mut folds = Vec::new();
    for row in states.rows() {
        let (id, version) = (text(&row, "id"), row.get::<i64>("version").unwrap_or(0));
        if !campaigns.contains(&(id.clone(), version)) {
            continue;
        }
        let definition = stored_definition(&row)?;
        folds.push(Fold {
            id,
            version,
            policy: stored_policy(&row)?,
            epsilon: definition.epsilon,
            discounts: definition.arms.iter().map(|a| a.discount).collect(),
            marks: (
                row.get::<i64>("decisions_folded").unwrap_or(0),
                row.get::<i64>("feedback_folded").unwrap_or(0),
            ),
            marks_to: (0, 0),
            new_impressions: 0,
            new_spend: 0.0,
        });
    }
    let Some(from) = folds
        .iter()
        .map(|f| f.marks)
        .reduce(|a, b| (a.0.min(b.0), a.1.min(b.1)))
    else {
        return Ok(folds);
    };
    let features = |row: &spin_sdk::sqlite::Row<'_>| -> Vec<f64> {
        serde_json::from_str(&text(row, "features")).unwrap_or_default()
    };
    // The decisions after the marks, in one pass over the new rows (by rowid), grouped: every
    // version's count (impressions); per arm, the folded version's, from which Thompson
    // sampling learns; and for LinUCB per arm and features, applied at once (one update
    // weighted by their count), so each distinct context crosses into the guest once.
    // Campaigns folded together share their marks; one pass per distinct mark otherwise (a
    // campaign added since the last fold).
    let contextual: Vec<&str> = (folds.iter())
        .filter(|f| matches!(f.policy, Policy::LinUcb { .. }))
        .map(|f| f.id.as_str())
        .collect();
    let contextual = serde_json::to_string(&contextual).map_err(|e| Error::Io(e.to_string()))?;
    let mut marks: Vec<i64> = folds.iter().map(|f| f.marks.0).collect();
    marks.sort_unstable();
    marks.dedup();
    for mark in marks {
        let groups = db.execute(
            "SELECT campaign, version, arm, count(*) AS n,
                    CASE WHEN campaign IN (SELECT value FROM json_each(?3)) THEN features END
                        AS features
             FROM campaign_decisions WHERE rowid > ?1 AND rowid <= ?2
             GROUP BY campaign, version, arm, 5",
            &[
                Value::Integer(mark),
                Value::Integer(last_decision),
                Value::Text(contextual.clone()),
            ],
        )?;
        for row in groups.rows() {
            let campaign = row.get::<&str>("campaign").unwrap_or_default();
            let Some(fold) = (folds.iter_mut()).find(|f| f.id == campaign && f.marks.0 == mark)
            else {
                continue;
            };
            let arm = row.get::<i64>("arm").unwrap_or(0);
            let n = row.get::<i64>("n").unwrap_or(0);
            fold.new_impressions += n;
            if row.get::<i64>("version") == Some(fold.version) {
                // Uniform learns nothing; Thompson sampling needs no features.
                fold.policy.shown(arm as usize, &features(&row), n as u64);
            }
        }
    }
    // A decision's first conversion only; its decision was folded above or before.
    // (CROSS JOIN: the feedback since the mark drives the join, never the whole history of
    // the decisions.) Each costs its arm's discount, and rewards the policy.
    let converted = db.execute(
        "SELECT f.rowid AS seq, d.campaign AS campaign, d.version AS version, d.arm AS arm,
                d.features AS features
         FROM campaign_feedback f CROSS JOIN campaign_decisions d ON d.id = f.decision_id
         WHERE f.rowid > ? AND f.rowid <= ? AND f.event = 'conversion'
           AND NOT EXISTS (SELECT 1 FROM campaign_feedback e
                           WHERE e.decision_id = f.decision_id AND e.event = 'conversion'
                             AND e.rowid < f.rowid)",
        &[Value::Integer(from.1), Value::Integer(last_feedback)],
    )?;
    for row in converted.rows() {
        let (campaign, seq) = (row.get::<&str>("campaign"), row.get::<i64>("seq"));
        let Some(fold) =
            (folds.iter_mut()).find(|f| Some(f.id.as_str()) == campaign && seq > Some(f.marks.1))
        else {
            continue;
        };
        // Only the folded version's: an older version's arms and discounts are not kept.
        if row.get::<i64>("version") != Some(fold.version) {
            continue;
        }
        let arm = row.get::<i64>("arm").unwrap_or(0) as usize;
        fold.new_spend += fold.discounts.get(arm).copied().unwrap_or(0.0);
        if !matches!(fold.policy, Policy::Uniform { .. }) {
            fold.policy.rewarded(arm, &features(&row), 1.0);
        }
    }
    for fold in &mut folds {
        fold.marks_to = (
            fold.marks.0.max(last_decision),
            fold.marks.1.max(last_feedback),
        );
    }
    Ok(folds)
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
