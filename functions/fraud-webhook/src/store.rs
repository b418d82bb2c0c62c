//! Decisions, delivered webhook ids, scoring claims and AML alerts in the `default` SQLite
//! database.
//!
//! A transaction is scored once even when copies are delivered concurrently: the first
//! delivery [`claim`]s it, the others wait for its decision. A claim left by an instance that
//! died (deadline, crash) expires after [`CLAIM_SECONDS`], so a retry can score it.

use serde_json::{json, Value};
use spin_sdk::sqlite::{Connection, Error, Value as Sql};

use crate::payload::Transaction;
use crate::Scored;

/// Opens the `default` database.
pub fn open() -> Result<Connection, Error> {
    Connection::open_default()
}

/// Runs `f`, creating the tables first if they are missing (first use of the database).
pub fn with_tables<T>(
    db: &Connection,
    f: impl Fn(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, f)
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS fraud_decisions (
        transaction_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
        decision TEXT NOT NULL, created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fraud_webhooks (
        webhook_id TEXT PRIMARY KEY, transaction_id TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fraud_claims (
        transaction_id TEXT PRIMARY KEY, claimed_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS aml_alerts (
        account_id TEXT PRIMARY KEY, risk REAL NOT NULL, pattern TEXT NOT NULL,
        transactions INTEGER NOT NULL, last_transaction_id TEXT NOT NULL,
        updated_at INTEGER NOT NULL)",
];

/// What the store already knows about a delivery.
pub enum Recorded {
    /// Nothing: score it.
    New,
    /// The decision recorded for this delivery or transaction.
    Decision(Value),
    /// The transaction id was decided with different details, or the webhook id was used
    /// for another transaction.
    Conflict(String),
}

fn text(s: &str) -> Sql {
    Sql::Text(s.to_string())
}

fn decision_of(db: &Connection, transaction_id: &str) -> Result<Option<(String, Value)>, Error> {
    let rows = db.execute(
        "SELECT fingerprint, decision FROM fraud_decisions WHERE transaction_id = ?",
        &[text(transaction_id)],
    )?;
    let found = rows.rows().next().and_then(|row| {
        let fingerprint = row.get::<&str>("fingerprint")?.to_string();
        let decision = serde_json::from_str(row.get::<&str>("decision")?).ok()?;
        Some((fingerprint, decision))
    });
    Ok(found)
}

/// Looks up a delivery by webhook id, then its transaction by id.
pub fn recorded(db: &Connection, webhook_id: &str, tx: &Transaction) -> Result<Recorded, Error> {
    let seen = db.execute(
        "SELECT transaction_id FROM fraud_webhooks WHERE webhook_id = ?",
        &[text(webhook_id)],
    )?;
    let replayed = seen
        .rows()
        .next()
        .and_then(|r| r.get::<&str>("transaction_id").map(str::to_string));
    // Standard Webhooks: one id, one message. An id reused for another transaction is a
    // sender's mistake, answered 409 rather than with the other transaction's decision.
    if let Some(id) = replayed.filter(|id| *id != tx.id) {
        return Ok(Recorded::Conflict(format!(
            "webhook-id {webhook_id} was already used for transaction {id}; \
             send transaction {} with its own webhook-id",
            tx.id
        )));
    }
    Ok(match decision_of(db, &tx.id)? {
        Some((fingerprint, decision)) if fingerprint == tx.fingerprint() => {
            db.execute(
                "INSERT OR IGNORE INTO fraud_webhooks (webhook_id, transaction_id) VALUES (?, ?)",
                &[text(webhook_id), text(&tx.id)],
            )?;
            Recorded::Decision(decision)
        }
        Some(_) => Recorded::Conflict(format!(
            "transaction {} was already decided with different details",
            tx.id
        )),
        None => Recorded::New,
    })
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// How long a claim holds off other deliveries of its transaction.
pub const CLAIM_SECONDS: i64 = 30;

/// Whether this delivery may score its transaction.
pub enum Claim {
    /// Yes: score it, then [`record`] (or [`release`] on failure).
    Claimed,
    /// Already decided: the stored decision.
    Decided(Value),
    /// Another delivery is scoring it right now.
    Pending,
}

/// Remembers `webhook_id` as a delivery of `tx`, and claims `tx` for scoring unless it is
/// decided or claimed by a live delivery.
pub fn claim(db: &Connection, webhook_id: &str, tx: &Transaction) -> Result<Claim, Error> {
    vitrine_guest::sqlite::transaction(db, || {
        db.execute(
            "INSERT OR IGNORE INTO fraud_webhooks (webhook_id, transaction_id) VALUES (?, ?)",
            &[text(webhook_id), text(&tx.id)],
        )?;
        if let Some((_, stored)) = decision_of(db, &tx.id)? {
            return Ok(Claim::Decided(stored));
        }
        let at = now();
        let claimed = db.execute(
            "INSERT INTO fraud_claims (transaction_id, claimed_at) VALUES (?, ?)
             ON CONFLICT(transaction_id) DO UPDATE SET claimed_at = excluded.claimed_at
             WHERE claimed_at <= ? RETURNING transaction_id",
            &[
                text(&tx.id),
                Sql::Integer(at),
                Sql::Integer(at - CLAIM_SECONDS),
            ],
        )?;
        Ok(if claimed.rows().next().is_some() {
            Claim::Claimed
        } else {
            Claim::Pending
        })
    })
}

/// Gives up a claim (scoring failed), so a retry can score the transaction at once.
pub fn release(db: &Connection, tx: &Transaction) -> Result<(), Error> {
    db.execute(
        "DELETE FROM fraud_claims WHERE transaction_id = ?",
        &[text(&tx.id)],
    )
    .map(drop)
}

/// The decision of `transaction_id`, if one is stored.
pub fn decision(db: &Connection, transaction_id: &str) -> Result<Option<Value>, Error> {
    Ok(decision_of(db, transaction_id)?.map(|(_, decision)| decision))
}

/// Records a decision and any AML alert in one transaction, and drops the claim. If the transaction was recorded meanwhile, keeps that one. Returns the stored
/// decision and whether this call stored it.
pub fn record(
    db: &Connection,
    tx: &Transaction,
    decision: &Value,
    scored: &Scored,
    aml_threshold: f64,
) -> Result<(Value, bool), Error> {
    vitrine_guest::sqlite::transaction(db, || {
        if let Some((_, stored)) = decision_of(db, &tx.id)? {
            return Ok((stored, false));
        }
        release(db, tx)?;
        let at = now();
        db.execute(
            "INSERT INTO fraud_decisions (transaction_id, fingerprint, decision, created_at) VALUES (?, ?, ?, ?)",
            &[text(&tx.id), text(&tx.fingerprint()), text(&decision.to_string()), Sql::Integer(at)],
        )?;
        // The typology only of a flagged transaction: an approved one's typology head names
        // the likeliest fraud were it fraud, which says nothing about the account.
        let pattern = decision["pattern"].as_str().unwrap_or_default();
        // Merchants (ids starting with M, see docs/fraud-data.md) get no AML alert.
        for (account, risk) in [
            (&tx.source, scored.source_risk),
            (&tx.target, scored.target_risk),
        ] {
            if risk < aml_threshold || account.starts_with('M') {
                continue;
            }
            db.execute(
                "INSERT INTO aml_alerts (account_id, risk, pattern, transactions, last_transaction_id, updated_at)
                 VALUES (?, ?, ?, 1, ?, ?)
                 ON CONFLICT(account_id) DO UPDATE SET
                    pattern = CASE WHEN excluded.pattern != '' AND (excluded.risk >= risk OR pattern = '')
                        THEN excluded.pattern ELSE pattern END,
                    risk = MAX(risk, excluded.risk),
                    transactions = transactions + 1,
                    last_transaction_id = excluded.last_transaction_id,
                    updated_at = excluded.updated_at",
                &[text(account), Sql::Real(risk), text(pattern), text(&tx.id), Sql::Integer(at)],
            )?;
        }
        Ok((decision.clone(), true))
    })
}

/// Accounts at or above `min_risk`, riskiest first.
pub fn alerts(db: &Connection, min_risk: f64, limit: usize) -> Result<Vec<Value>, Error> {
    let rows = db.execute(
        "SELECT account_id, risk, pattern, transactions, last_transaction_id, updated_at
         FROM aml_alerts WHERE risk >= ? ORDER BY risk DESC, account_id LIMIT ?",
        &[Sql::Real(min_risk), Sql::Integer(limit as i64)],
    )?;
    Ok(rows
        .rows()
        .map(|row| {
            json!({
                "account_id": row.get::<&str>("account_id"),
                "risk": row.get::<f64>("risk").map(|r| (r * 1e6).round() / 1e6),
                "pattern": row.get::<&str>("pattern").filter(|p| !p.is_empty()),
                "flagged_transactions": row.get::<i64>("transactions"),
                "last_transaction_id": row.get::<&str>("last_transaction_id"),
                "updated_at": row.get::<i64>("updated_at"),
            })
        })
        .collect())
}
