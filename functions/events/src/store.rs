//! Events and consent in the `default` SQLite database.
//!
//! Consent policy: a shopper's events are kept with their id only once the shopper has
//! consented to personalization (`PUT /api/shoppers/{id}/consent`). Without consent an event
//! is kept anonymously (no shopper, no session), so it still counts for popularity but can
//! never build a profile or be linked back. Erasure deletes every event and the consent record
//! of a shopper; anonymous events hold nothing to erase.

use serde_json::{json, Value};
use spin_sdk::sqlite::{Connection, Error, Value as Sql};

use crate::event::Event;

pub use vitrine_shoppers::{consent, marketing_consent, with_tables};

/// What storing a batch did.
pub enum Stored {
    /// Stored: `accepted` new events (of which `anonymous` without a shopper), `duplicates`
    /// already there.
    Done {
        accepted: usize,
        anonymous: usize,
        duplicates: usize,
    },
    /// An event id is already stored with other content: nothing was stored.
    Conflict { index: usize, id: String },
}

/// The event as stored: the shopper and session only with consent. The fingerprint covers the
/// fields kept, so a retry compares equal however consent changed in between.
fn row(e: &Event, consented: bool) -> Value {
    let (shopper, session) = match consented {
        true => (Some(&e.shopper), e.session.as_ref()),
        false => (None, None),
    };
    let mut row = json!({
        "id": e.id, "shopper": shopper, "kind": e.kind, "time": e.time, "product": e.product,
        "query": e.query, "campaign": e.campaign, "variant": e.variant, "quantity": e.quantity,
        "price": e.price, "session": session, "context": Value::Object(e.context.clone()).to_string(),
    });
    let fingerprint = json!([
        e.kind,
        e.time,
        e.product,
        e.query,
        e.campaign,
        e.variant,
        e.quantity,
        e.price,
        Value::Object(e.context.clone()),
    ])
    .to_string();
    row["fingerprint"] = json!(fingerprint);
    row
}

/// Stores `events` in one transaction: new ids inserted, known ids with the same content
/// counted as duplicates, a known id with other content refused (nothing stored).
pub fn store(db: &Connection, events: &[Event], now: i64) -> Result<Stored, Error> {
    let shoppers: Vec<&str> = events.iter().map(|e| e.shopper.as_str()).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    db.execute("BEGIN IMMEDIATE", &[])?;
    let result = (|| {
        let consented: std::collections::HashSet<String> = db
            .execute(
                "SELECT shopper FROM shopper_consent
                 WHERE personalization = 1 AND shopper IN (SELECT value FROM json_each(?))",
                &[Sql::Text(json!(shoppers).to_string())],
            )?
            .rows
            .iter()
            .filter_map(|r| r.get::<&str>(0).map(str::to_string))
            .collect();
        let known: std::collections::HashMap<String, String> = db
            .execute(
                "SELECT id, fingerprint FROM shopper_events
                 WHERE id IN (SELECT value FROM json_each(?))",
                &[Sql::Text(json!(ids).to_string())],
            )?
            .rows
            .iter()
            .filter_map(|r| Some((r.get::<&str>(0)?.to_string(), r.get::<&str>(1)?.to_string())))
            .collect();
        let mut new = Vec::new();
        let mut batch_ids = std::collections::HashSet::new();
        let (mut duplicates, mut anonymous) = (0, 0);
        for (index, e) in events.iter().enumerate() {
            let row = row(e, consented.contains(&e.shopper));
            match known.get(&e.id) {
                Some(f) if row["fingerprint"] == *f => duplicates += 1,
                Some(_) => {
                    return Ok(Stored::Conflict {
                        index,
                        id: e.id.clone(),
                    })
                }
                // Repeated inside the batch (identical, checked when parsing).
                None if !batch_ids.insert(e.id.as_str()) => duplicates += 1,
                None => {
                    anonymous += usize::from(row["shopper"].is_null());
                    new.push(row);
                }
            }
        }
        let new_json = Value::Array(new.clone()).to_string();
        db.execute(
            "INSERT INTO shopper_events (id, shopper, kind, time, product, query, campaign,
                variant, quantity, price, session, context, fingerprint, received)
             SELECT j.value->>'id', j.value->>'shopper', j.value->>'kind', j.value->>'time',
                j.value->>'product', j.value->>'query', j.value->>'campaign', j.value->>'variant',
                j.value->>'quantity', j.value->>'price', j.value->>'session', j.value->>'context',
                j.value->>'fingerprint', ?
             FROM json_each(?) AS j",
            &[Sql::Integer(now), Sql::Text(new_json.clone())],
        )?;
        vitrine_shoppers::add_popularity(db, &new_json)?;
        Ok(Stored::Done {
            accepted: new.len(),
            anonymous,
            duplicates,
        })
    })();
    match &result {
        Ok(Stored::Done { .. }) => db.execute("COMMIT", &[]).map(drop)?,
        _ => {
            let _ = db.execute("ROLLBACK", &[]);
        }
    }
    result
}

/// Sets a shopper's personalization consent.
pub fn set_consent(
    db: &Connection,
    shopper: &str,
    consent: &Consent,
    now: i64,
) -> Result<(), Error> {
    let flag = |b: Option<bool>| b.map_or(Sql::Null, |b| Sql::Integer(b.into()));
    db.execute(
        "INSERT INTO shopper_consent (shopper, personalization, marketing, updated)
         VALUES (?1, coalesce(?2, 0), ?3, ?4)
         ON CONFLICT (shopper) DO UPDATE SET
            personalization = coalesce(?2, personalization),
            marketing = coalesce(?3, marketing), updated = ?4",
        &[
            Sql::Text(shopper.into()),
            flag(consent.personalization),
            flag(consent.marketing),
            Sql::Integer(now),
        ],
    )
    .map(drop)
}

/// A change of consent: what the shopper said, `None` for what stays as it was.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// Personalization (profiles, personal looks).
    pub personalization: Option<bool>,
    /// Marketing (campaigns: an opt-out shows none).
    pub marketing: Option<bool>,
}

/// A shopper's stored events, newest first (at most `limit`).
pub fn events_of(db: &Connection, shopper: &str, limit: i64) -> Result<Vec<Value>, Error> {
    let result = db.execute(
        "SELECT id, kind, time, product, query, campaign, variant, quantity, price, session,
            context FROM shopper_events WHERE shopper = ? ORDER BY time DESC, id LIMIT ?",
        &[Sql::Text(shopper.into()), Sql::Integer(limit)],
    )?;
    Ok(result
        .rows
        .iter()
        .map(|row| {
            let mut event = serde_json::Map::new();
            for (name, value) in result.columns.iter().zip(&row.values) {
                let value = match value {
                    Sql::Integer(i) if name == "time" => {
                        json!(chrono::DateTime::from_timestamp(*i, 0)
                            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
                    }
                    Sql::Integer(i) => json!(i),
                    Sql::Real(r) => json!(r),
                    Sql::Text(t) if name == "context" => {
                        serde_json::from_str(t).unwrap_or(Value::Null)
                    }
                    Sql::Text(t) => json!(t),
                    Sql::Blob(_) | Sql::Null => continue,
                };
                event.insert(
                    if name == "kind" {
                        "type".into()
                    } else {
                        name.clone()
                    },
                    value,
                );
            }
            Value::Object(event)
        })
        .collect())
}

/// Erases a shopper: every event, the consent record, what functions derived from their events
/// (`vitrine_shoppers::derived`), the lookbook answers kept for them (`functions/lookbook`),
/// the campaign decisions made for them with their feedback, and their experiment exposures
/// (tables of `functions/campaigns`; each only when its function has created it).
/// Returns (events, campaign decisions) erased.
pub fn erase(db: &Connection, shopper: &str) -> Result<(i64, i64), Error> {
    let who = || [Sql::Text(shopper.into())];
    // Tables other functions create on first use.
    let exists = |table: &str| -> Result<bool, Error> {
        let found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            &[Sql::Text(table.into())],
        )?;
        Ok(!found.rows.is_empty())
    };
    vitrine_guest::sqlite::transaction(db, || {
        let erased = db
            .execute(
                "DELETE FROM shopper_events WHERE shopper = ? RETURNING 1",
                &who(),
            )?
            .rows
            .len() as i64;
        db.execute("DELETE FROM shopper_consent WHERE shopper = ?", &who())?;
        db.execute("DELETE FROM shopper_derived WHERE shopper = ?", &who())?;
        if exists("lookbook_answers")? {
            db.execute("DELETE FROM lookbook_answers WHERE shopper = ?", &who())?;
        }
        let mut decisions = 0;
        if exists("campaign_decisions")? {
            db.execute(
                "DELETE FROM campaign_feedback WHERE decision_id IN
                    (SELECT id FROM campaign_decisions WHERE shopper = ?)",
                &who(),
            )?;
            decisions = db
                .execute(
                    "DELETE FROM campaign_decisions WHERE shopper = ? RETURNING 1",
                    &who(),
                )?
                .rows
                .len() as i64;
        }
        if exists("experiment_exposures")? {
            db.execute("DELETE FROM experiment_exposures WHERE shopper = ?", &who())?;
        }
        Ok((erased, decisions))
    })
}
