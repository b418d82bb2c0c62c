//! Experiments (docs/campaigns.md#experiments): variants with weights, sticky assignment of
//! shoppers ([`vitrine_campaigns::experiments::assign`]) and exposure logging, in the
//! `default` database:
//!
//! - `GET`/`PUT /api/admin/experiments/{id}` (bearer `admin_token`): the definition, and how
//!   many shoppers each variant has;
//! - `POST /api/experiments/{id}/assign` `{"shopper"}`: the shopper's variant, logged as an
//!   exposure (the first one's time starts the shopper's post-period in the report).
//!
//! A shopper keeps the variant of their first exposure, even if the weights change later;
//! the salt, variants and control are fixed once anyone is exposed.

use serde::{Deserialize, Serialize};
use serde_json::json;
use spin_sdk::http::Response;
use spin_sdk::sqlite::{Connection, Error, Value as Sql};
use vitrine_guest::http::{error, json_response};

use crate::definition::{is_id, parse_json};

/// Tables, created on first use.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS experiments (
        id TEXT PRIMARY KEY, definition TEXT NOT NULL, updated_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS experiment_exposures (
        experiment TEXT NOT NULL, shopper TEXT NOT NULL, variant TEXT NOT NULL,
        first_exposed INTEGER NOT NULL, exposures INTEGER NOT NULL,
        PRIMARY KEY (experiment, shopper))",
    "CREATE INDEX IF NOT EXISTS experiment_exposures_shopper ON experiment_exposures (shopper)",
];

/// An experiment's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// What it tests.
    pub name: String,
    /// Hashed with the shopper id; default: the experiment id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// 2–10 variants.
    pub variants: Vec<Variant>,
    /// The variant the others are compared with; default: the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
}

/// A variant and its share of shoppers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Its id, unique in the experiment.
    pub id: String,
    /// Relative weight, 0–10,000 (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl Experiment {
    /// Parses and checks a definition; the error names the field.
    fn parse(body: &[u8]) -> Result<Self, String> {
        let e: Self = parse_json(body, "experiment: ")?;
        if e.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        if !(2..=10).contains(&e.variants.len()) {
            return Err("variants: give 2 to 10".into());
        }
        for (i, v) in e.variants.iter().enumerate() {
            if v.id.is_empty() || v.id.len() > 64 {
                return Err(format!("variants[{i}].id: must be 1–64 characters"));
            }
            if e.variants[..i].iter().any(|w| w.id == v.id) {
                return Err(format!("variants[{i}].id: `{}` is given twice", v.id));
            }
            if v.weight > 10_000 {
                return Err(format!("variants[{i}].weight: at most 10000"));
            }
        }
        if e.variants.iter().all(|v| v.weight == 0) {
            return Err("variants: at least one weight must be above 0".into());
        }
        if let Some(control) = &e.control {
            if !e.variants.iter().any(|v| &v.id == control) {
                return Err(format!("control: `{control}` is not a variant"));
            }
        }
        Ok(e)
    }

    fn salt<'a>(&'a self, id: &'a str) -> &'a str {
        self.salt.as_deref().unwrap_or(id)
    }

    fn control(&self) -> &str {
        self.control.as_deref().unwrap_or(&self.variants[0].id)
    }
}

fn with_tables<T>(
    db: &Connection,
    f: impl Fn(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    vitrine_guest::sqlite::with_schema(db, SCHEMA, f)
}

fn store_error(e: Error) -> Response {
    error(503, format!("experiment store unavailable: {e}"))
}

fn load(db: &Connection, id: &str) -> Result<Option<Experiment>, Error> {
    with_tables(db, |db| {
        let rows = db.execute(
            "SELECT definition FROM experiments WHERE id = ?",
            &[Sql::Text(id.into())],
        )?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| r.get::<&str>(0))
            .and_then(|d| serde_json::from_str(d).ok()))
    })
}

/// Exposed shoppers per variant.
fn exposed(db: &Connection, id: &str) -> Result<Vec<(String, i64)>, Error> {
    with_tables(db, |db| {
        let rows = db.execute(
            "SELECT variant, count(*) FROM experiment_exposures WHERE experiment = ?
             GROUP BY variant ORDER BY variant",
            &[Sql::Text(id.into())],
        )?;
        Ok(rows
            .rows
            .iter()
            .map(|r| {
                (
                    r.get::<&str>(0).unwrap_or_default().to_string(),
                    r.get::<i64>(1).unwrap_or(0),
                )
            })
            .collect())
    })
}

/// `GET /api/admin/experiments/{id}`.
pub fn show(db: &Connection, id: &str) -> Response {
    match (load(db, id), exposed(db, id)) {
        (Ok(Some(e)), Ok(counts)) => {
            let shoppers: serde_json::Map<String, serde_json::Value> =
                counts.into_iter().map(|(v, n)| (v, n.into())).collect();
            json_response(
                200,
                json!({ "id": id, "control": e.control(), "definition": e, "exposed": shoppers }),
            )
        }
        (Ok(None), _) => error(404, format!("no experiment `{id}`")),
        (Err(e), _) | (_, Err(e)) => store_error(e),
    }
}

/// `PUT /api/admin/experiments/{id}`.
pub fn put(db: &Connection, id: &str, body: &[u8], now: i64) -> Response {
    if !is_id(id) {
        return error(
            400,
            format!("experiment id `{id}` must be 1–64 letters, digits, `-` or `_`"),
        );
    }
    let new = match Experiment::parse(body) {
        Ok(e) => e,
        Err(message) => return error(400, message),
    };
    let (old, counts) = match (load(db, id), exposed(db, id)) {
        (Ok(old), Ok(counts)) => (old, counts),
        (Err(e), _) | (_, Err(e)) => return store_error(e),
    };
    let shoppers: i64 = counts.iter().map(|(_, n)| n).sum();
    if let Some(old) = old.filter(|_| shoppers > 0) {
        let ids = |e: &Experiment| e.variants.iter().map(|v| v.id.clone()).collect::<Vec<_>>();
        if old.salt(id) != new.salt(id) || ids(&old) != ids(&new) || old.control() != new.control()
        {
            return error(
                409,
                format!("experiment `{id}` has {shoppers} exposed shoppers: its salt, variants and control are fixed (weights and name may change); start a new experiment"),
            );
        }
    }
    let stored = with_tables(db, |db| {
        db.execute(
            "INSERT INTO experiments (id, definition, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                updated_at = excluded.updated_at",
            &[
                Sql::Text(id.into()),
                Sql::Text(serde_json::to_string(&new).unwrap_or_default()),
                Sql::Integer(now),
            ],
        )
    });
    match stored {
        Ok(_) => show(db, id),
        Err(e) => store_error(e),
    }
}

/// `POST /api/experiments/{id}/assign` `{"shopper"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignRequest {
    shopper: String,
}

/// `POST /api/experiments/{id}/assign`: the shopper's variant, logged as an exposure.
pub fn assign(db: &Connection, id: &str, body: &[u8], now: i64) -> Response {
    let request: AssignRequest = match parse_json(body, "") {
        Ok(r) => r,
        Err(message) => return error(400, format!("invalid assign request: {message}")),
    };
    if request.shopper.is_empty() || request.shopper.len() > 128 {
        return error(400, "shopper: must be 1–128 characters");
    }
    let experiment = match load(db, id) {
        Ok(Some(e)) => e,
        Ok(None) => return error(404, format!("no experiment `{id}`")),
        Err(e) => return store_error(e),
    };
    let weights: Vec<u32> = experiment.variants.iter().map(|v| v.weight).collect();
    let Some(index) =
        vitrine_campaigns::experiments::assign(experiment.salt(id), &request.shopper, &weights)
    else {
        return error(
            409,
            format!("experiment `{id}` has no variant with a weight"),
        );
    };
    // The first exposure decides; later ones only count.
    let logged = with_tables(db, |db| {
        db.execute(
            "INSERT INTO experiment_exposures (experiment, shopper, variant, first_exposed, exposures)
             VALUES (?, ?, ?, ?, 1)
             ON CONFLICT (experiment, shopper) DO UPDATE SET exposures = exposures + 1
             RETURNING variant, first_exposed",
            &[
                Sql::Text(id.into()),
                Sql::Text(request.shopper.clone()),
                Sql::Text(experiment.variants[index].id.clone()),
                Sql::Integer(now),
            ],
        )
    });
    match logged {
        Ok(rows) => {
            let row = rows.rows.first();
            let variant = row.and_then(|r| r.get::<&str>(0)).unwrap_or_default();
            let first = row.and_then(|r| r.get::<i64>(1)).unwrap_or(now);
            let first = chrono::DateTime::from_timestamp(first, 0).map(|t| t.to_rfc3339());
            json_response(
                200,
                json!({ "experiment": id, "shopper": request.shopper, "variant": variant, "first_exposed": first }),
            )
        }
        Err(e) => store_error(e),
    }
}
