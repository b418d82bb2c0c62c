//! The picture-enhancement job queue, a table of the `default` database: one job per
//! delivered event, `queued` → `working` (claimed by a worker for a lease) → `done`; a failed
//! attempt goes back to `queued` after a delay that doubles each time, and after the last
//! allowed attempt to `dead`, the dead-letter list ([`Retries`]). When jobs are worked from
//! NATS JetStream, a relay claims them and marks them `published` once the stream has them;
//! their outcomes come back here as from any worker. A claim whose lease ran out (its worker died) is claimed again, so
//! every job is worked at least once; workers make their work idempotent.

use serde_json::{json, Value};
use spin_sdk::sqlite::{Connection, Error, Value as Sql};
use vitrine_guest::sqlite::{transaction, with_schema};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS image_jobs (
        id TEXT PRIMARY KEY, product TEXT NOT NULL, event TEXT NOT NULL,
        state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        not_before INTEGER NOT NULL, lease_until INTEGER, last_error TEXT,
        created INTEGER NOT NULL, updated INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS image_jobs_ready ON image_jobs (state, not_before)",
];

/// How failed jobs are retried.
pub struct Retries {
    /// Attempts before a job goes to the dead-letter list.
    pub attempts: i64,
    /// Delay before the second attempt, in seconds (doubled for each later one).
    pub delay: i64,
}

/// The job states, as stored and listed (`published`: handed to a NATS JetStream stream,
/// whose consumers report the outcome).
pub const STATES: [&str; 5] = ["queued", "working", "published", "done", "dead"];

const COLUMNS: &str =
    "id, product, event, state, attempts, not_before, lease_until, last_error, created, updated";

fn job(row: &spin_sdk::sqlite::RowResult) -> Value {
    let text = |i| row.get::<&str>(i).map(str::to_string);
    let number = |i| row.get::<i64>(i);
    json!({
        "id": text(0), "product": text(1), "event": text(2), "state": text(3),
        "attempts": number(4), "not_before": number(5), "lease_until": number(6),
        "last_error": text(7), "created": number(8), "updated": number(9),
    })
}

/// Queues a job for delivery `id` (an event about `product`); `false` if that delivery was
/// queued before (nothing changes).
pub fn push(
    db: &Connection,
    id: &str,
    product: &str,
    event: &str,
    now: i64,
) -> Result<bool, Error> {
    with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            "INSERT INTO image_jobs (id, product, event, state, not_before, created, updated)
             VALUES (?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING 1",
            &[
                Sql::Text(id.into()),
                Sql::Text(product.into()),
                Sql::Text(event.into()),
                Sql::Integer(now),
                Sql::Integer(now),
                Sql::Integer(now),
            ],
        )?;
        Ok(!rows.rows.is_empty())
    })
}

/// Claims the oldest job that is ready (queued and due, or working with its lease run out)
/// for `lease` seconds, counting an attempt.
pub fn claim(db: &Connection, now: i64, lease: i64) -> Result<Option<Value>, Error> {
    with_schema(db, SCHEMA, |db| {
        transaction(db, || {
            let rows = db.execute(
                &format!(
                    "UPDATE image_jobs SET state = 'working', attempts = attempts + 1,
                       lease_until = ?1, updated = ?2
                     WHERE id = (SELECT id FROM image_jobs
                                 WHERE (state = 'queued' AND not_before <= ?2)
                                    OR (state = 'working' AND lease_until <= ?2)
                                 ORDER BY not_before, created LIMIT 1)
                     RETURNING {COLUMNS}"
                ),
                &[Sql::Integer(now + lease), Sql::Integer(now)],
            )?;
            Ok(rows.rows.first().map(job))
        })
    })
}

/// What finishing a job did.
pub enum Finished {
    /// The job is in this state now (`done`, `queued` for a retry, or `dead`).
    Now(Value),
    /// No job has this id.
    Unknown,
    /// The job is not being worked (its state is given): nothing changed.
    NotWorking(String),
}

/// Records the outcome of a claimed job: done, or failed with `error` (queued again after
/// the retry delay, or dead after the last attempt).
pub fn finish(
    db: &Connection,
    id: &str,
    error: Option<&str>,
    retries: &Retries,
    now: i64,
) -> Result<Finished, Error> {
    with_schema(db, SCHEMA, |db| {
        transaction(db, || {
            let rows = db.execute(
                "SELECT state, attempts FROM image_jobs WHERE id = ?",
                &[Sql::Text(id.into())],
            )?;
            let Some(row) = rows.rows.first() else {
                return Ok(Finished::Unknown);
            };
            let state = row.get::<&str>(0).unwrap_or_default().to_string();
            let attempts = row.get::<i64>(1).unwrap_or_default();
            if state != "working" && state != "published" {
                return Ok(Finished::NotWorking(state));
            }
            // A published job counts its attempts as their outcomes arrive (its stream
            // delivers it again after the delay given here).
            let attempts = attempts + i64::from(state == "published" && error.is_some());
            let retry = if state == "published" {
                "published"
            } else {
                "queued"
            };
            let (state, not_before) = match error {
                None => ("done", now),
                Some(_) if attempts >= retries.attempts => ("dead", now),
                Some(_) => (
                    retry,
                    now + retries.delay * (1i64 << (attempts - 1).clamp(0, 16)),
                ),
            };
            let rows = db.execute(
                &format!(
                    "UPDATE image_jobs SET state = ?, attempts = ?, not_before = ?,
                       lease_until = NULL, last_error = coalesce(?, last_error), updated = ?
                     WHERE id = ? RETURNING {COLUMNS}"
                ),
                &[
                    Sql::Text(state.into()),
                    Sql::Integer(attempts),
                    Sql::Integer(not_before),
                    error.map_or(Sql::Null, |e| Sql::Text(e.into())),
                    Sql::Integer(now),
                    Sql::Text(id.into()),
                ],
            )?;
            Ok(rows
                .rows
                .first()
                .map_or(Finished::Unknown, |row| Finished::Now(job(row))))
        })
    })
}

/// Marks a claimed job as handed to a stream (its attempts start from zero there); `None`
/// if no job has this id, `Some(Err(state))` if it was not claimed.
pub fn publish(
    db: &Connection,
    id: &str,
    now: i64,
) -> Result<Option<Result<Value, String>>, Error> {
    with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            &format!(
                "UPDATE image_jobs SET state = 'published', attempts = 0, lease_until = NULL,
                   updated = ?1
                 WHERE id = ?2 AND state IN ('working', 'published') RETURNING {COLUMNS}"
            ),
            &[Sql::Integer(now), Sql::Text(id.into())],
        )?;
        if let Some(row) = rows.rows.first() {
            return Ok(Some(Ok(job(row))));
        }
        state_of(db, id)
    })
}

/// The state of job `id` as an error, `None` if there is no such job.
fn state_of(db: &Connection, id: &str) -> Result<Option<Result<Value, String>>, Error> {
    let rows = db.execute(
        "SELECT state FROM image_jobs WHERE id = ?",
        &[Sql::Text(id.into())],
    )?;
    Ok(rows
        .rows
        .first()
        .map(|row| Err(row.get::<&str>(0).unwrap_or_default().to_string())))
}

/// Puts a dead job back in the queue with its attempts reset; `None` if no job has this id,
/// `Some(Err(state))` if it is not dead.
pub fn retry(db: &Connection, id: &str, now: i64) -> Result<Option<Result<Value, String>>, Error> {
    with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            &format!(
                "UPDATE image_jobs SET state = 'queued', attempts = 0, not_before = ?1, updated = ?1
                 WHERE id = ?2 AND state = 'dead' RETURNING {COLUMNS}"
            ),
            &[Sql::Integer(now), Sql::Text(id.into())],
        )?;
        if let Some(row) = rows.rows.first() {
            return Ok(Some(Ok(job(row))));
        }
        state_of(db, id)
    })
}

/// Jobs in `state` (all when `None`), newest first, at most `limit`; and the count per state.
pub fn list(db: &Connection, state: Option<&str>, limit: i64) -> Result<Value, Error> {
    with_schema(db, SCHEMA, |db| {
        let rows = db.execute(
            &format!(
                "SELECT {COLUMNS} FROM image_jobs WHERE ?1 IS NULL OR state = ?1
                 ORDER BY updated DESC, id LIMIT ?2"
            ),
            &[
                state.map_or(Sql::Null, |s| Sql::Text(s.into())),
                Sql::Integer(limit),
            ],
        )?;
        let jobs: Vec<Value> = rows.rows.iter().map(job).collect();
        let counts = db.execute("SELECT state, count(*) FROM image_jobs GROUP BY state", &[])?;
        let mut totals = serde_json::Map::new();
        for state in STATES {
            totals.insert(state.into(), json!(0));
        }
        for row in &counts.rows {
            if let (Some(state), Some(count)) = (row.get::<&str>(0), row.get::<i64>(1)) {
                totals.insert(state.into(), json!(count));
            }
        }
        Ok(json!({ "counts": totals, "jobs": jobs }))
    })
}
