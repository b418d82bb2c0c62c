//! Transaction webhooks scored for fraud, and anti-money-laundering alerts:
//!
//! - `POST /webhooks/transactions`: a partner's transaction, signed per Standard Webhooks. It is validated ([`payload`]), scored by the `fraud-gnn` model through
//!   `wasi:nn` and answered with `approve`, `review` or `decline`, the score, the thresholds and
//!   the reasons. The decision is recorded: a repeated delivery (same `webhook-id`) or the same
//!   transaction again gets the recorded decision back without being scored twice.
//!   Signatures are checked by [`vitrine_guest::webhook`].
//! - `GET /api/aml/alerts[?limit=N&min_risk=R]`: accounts whose laundering risk reached the AML
//!   threshold, riskiest first, with the detected pattern. Compliance data: only for a caller
//!   with `authorization: Bearer <admin_token>` (401 otherwise), so flagged accounts are never
//!   shown to whoever reaches the port.
//!
//! Variables: `webhook_secrets` (one or more `whsec_…`, space-separated), `admin_token`,
//! `review_threshold`, `decline_threshold`, `aml_threshold`, `timestamp_tolerance_seconds`,
//! `max_amount` (largest accepted amount, default 1e9). A
//! bad signature is a 401 and a bad payload a 400, both before anything is scored or stored.

mod payload;
mod store;

use serde_json::{json, Value};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use vitrine_guest::http::{bearer_authorized, error, json_response, not_allowed};
use vitrine_nn::{ErrorCode, Model, Tensor, TensorType};

use payload::Transaction;

/// The model this function scores with.
const MODEL: &str = "fraud-gnn";
/// Bytes per id and explanation line in the model's tensors.
const TEXT_BYTES: usize = 64;
/// Lines of the model's explanation (typology, then reasons).
const EXPLANATION_LINES: usize = 6;

/// Settings from Spin variables.
struct Settings {
    review: f64,
    decline: f64,
    aml: f64,
    tolerance: i64,
    max_amount: f64,
}

fn number(name: &str, default: f64) -> Result<f64, String> {
    match spin_sdk::variables::get(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("variable {name} is not a number")),
        _ => Ok(default),
    }
}

fn settings() -> Result<Settings, String> {
    let settings = Settings {
        review: number("review_threshold", 0.5)?,
        decline: number("decline_threshold", 0.9)?,
        aml: number("aml_threshold", 0.7)?,
        tolerance: number("timestamp_tolerance_seconds", 300.0)? as i64,
        max_amount: number("max_amount", 1e9)?,
    };
    if !(0.0..=1.0).contains(&settings.review) || settings.decline < settings.review {
        return Err("thresholds must satisfy 0 ≤ review_threshold ≤ decline_threshold".into());
    }
    Ok(settings)
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.path().trim_end_matches('/').to_string();
    let settings = match settings() {
        Ok(s) => s,
        Err(message) => return Ok(error(500, message)),
    };
    Ok(match (req.method(), path.as_str()) {
        (Method::Post, "/webhooks/transactions") => transaction(&req, &settings),
        (Method::Get, "/api/aml/alerts") => match bearer_authorized(&req, "admin_token") {
            Ok(()) => alerts(&req, &settings),
            Err(response) => response,
        },
        (_, "/webhooks/transactions") => not_allowed(req.method(), "POST"),
        (_, "/api/aml/alerts") => not_allowed(req.method(), "GET"),
        _ => error(404, format!("no route {path}")),
    })
}

fn transaction(req: &Request, settings: &Settings) -> Response {
    let webhook_id =
        match vitrine_guest::webhook::verify(req, "webhook_secrets", settings.tolerance) {
            Ok(id) => id,
            Err(response) => return response,
        };
    let webhook_id = webhook_id.as_str();
    let tx = match payload::parse(req.body(), store::now(), settings.max_amount) {
        Ok(tx) => tx,
        Err(message) => return error(400, message),
    };
    let db = match store::open() {
        Ok(db) => db,
        Err(e) => return error(503, format!("decision store unavailable: {e}")),
    };
    // A delivery seen before, or a transaction decided before: the recorded decision again.
    match store::with_tables(&db, |db| store::recorded(db, webhook_id, &tx)) {
        Ok(store::Recorded::Decision(decision)) => {
            return json_response(200, with_duplicate(decision, true))
        }
        Ok(store::Recorded::Conflict(message)) => return error(409, message),
        Ok(store::Recorded::New) => {}
        Err(e) => return error(503, format!("decision store unavailable: {e}")),
    }
    // One scoring per transaction, however many copies arrive at once.
    match store::with_tables(&db, |db| store::claim(db, webhook_id, &tx)) {
        Ok(store::Claim::Claimed) => {}
        Ok(store::Claim::Decided(decision)) => {
            return json_response(200, with_duplicate(decision, true))
        }
        Ok(store::Claim::Pending) => return await_decision(&db, &tx),
        Err(e) => return error(503, format!("decision store unavailable: {e}")),
    }
    let scored = match score(&tx) {
        Ok(s) => s,
        Err(err) => {
            // Nothing was decided: let a retry score it at once.
            let _ = store::release(&db, &tx);
            let status = match err.code {
                ErrorCode::InvalidArgument => 400,
                ErrorCode::Timeout => 504,
                _ => 503,
            };
            return error(status, format!("model '{MODEL}': {err}"));
        }
    };
    let decision = decide(&tx, &scored, settings);
    match store::record(&db, &tx, &decision, &scored, settings.aml) {
        // A concurrent delivery of the same transaction may have recorded first: answer
        // with whichever decision was stored.
        Ok((stored, first)) => {
            if first {
                // The decline rate, as a business metric (compared between releases during
                // a rollout: docs/deploy.md). Standard output elsewhere stays a log line.
                let declined = u8::from(stored["decision"] == "decline");
                println!("vitrine-metric fraud_declined={declined}");
            }
            json_response(200, with_duplicate(stored, !first))
        }
        Err(e) => error(503, format!("decision store unavailable: {e}")),
    }
}

/// How long a concurrent copy of a delivery waits for the first copy's decision.
const AWAIT_DECISION: std::time::Duration = std::time::Duration::from_secs(3);

/// Answers a copy of a delivery whose transaction another delivery is scoring: that
/// decision once stored, else a 503 the sender retries (nothing is dropped).
fn await_decision(db: &spin_sdk::sqlite::Connection, tx: &Transaction) -> Response {
    let started = std::time::Instant::now();
    while started.elapsed() < AWAIT_DECISION {
        std::thread::sleep(std::time::Duration::from_millis(10));
        match store::decision(db, &tx.id) {
            Ok(Some(decision)) => return json_response(200, with_duplicate(decision, true)),
            Ok(None) => {}
            Err(e) => return error(503, format!("decision store unavailable: {e}")),
        }
    }
    let mut response = error(
        503,
        format!(
            "transaction {} is being scored by another delivery; retry",
            tx.id
        ),
    );
    response.set_header("retry-after", "1");
    response
}

fn with_duplicate(mut decision: Value, duplicate: bool) -> Value {
    decision["duplicate"] = json!(duplicate);
    decision
}

/// What the model said about a transaction.
struct Scored {
    /// Fraud probability.
    fraud: f64,
    /// Laundering risk of the source account.
    source_risk: f64,
    /// Laundering risk of the target.
    target_risk: f64,
    /// The most likely typology.
    typology: String,
    /// Reasons with their weights, largest first.
    reasons: Vec<(String, f64)>,
}

fn padded(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(text.as_bytes());
    out.resize(out.len() + TEXT_BYTES - text.len(), 0);
}

fn score(tx: &Transaction) -> Result<Scored, vitrine_nn::Error> {
    let model = Model::load(MODEL)?;
    // The transaction id makes the model's graph insert idempotent: a retry (or a crash
    // between scoring and recording the decision) never adds the transaction twice.
    let mut ids = Vec::with_capacity(4 * TEXT_BYTES);
    for id in [&tx.source, &tx.target, &tx.device_id, &tx.id] {
        padded(id, &mut ids);
    }
    let event: Vec<u8> = [tx.time as f64, tx.amount, tx.channel_code as f64]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let outputs = model.infer(&[
        ("ids", Tensor::from_u8(&[1, 4, TEXT_BYTES as u32], &ids)?),
        ("event", Tensor::new(&[1, 3], TensorType::Fp64, event)?),
    ])?;
    let scores = outputs.get("scores")?.to_f32()?;
    let explanation = outputs.get("explanation")?.to_u8()?;
    let lines: Vec<String> = explanation
        .chunks(TEXT_BYTES)
        .take(EXPLANATION_LINES)
        .map(|line| {
            let end = line.iter().position(|b| *b == 0).unwrap_or(line.len());
            String::from_utf8_lossy(&line[..end]).into_owned()
        })
        .collect();
    if scores.len() < 3 || lines.is_empty() {
        return Err(vitrine_nn::Error {
            code: ErrorCode::RuntimeError,
            message: "the model's outputs do not have the fraud-gnn shapes".into(),
        });
    }
    let reasons = lines[1..]
        .iter()
        .filter_map(|line| {
            let (reason, weight) = line.rsplit_once(' ')?;
            Some((reason.to_string(), weight.parse().ok()?))
        })
        .collect();
    Ok(Scored {
        fraud: scores[0] as f64,
        source_risk: scores[1] as f64,
        target_risk: scores[2] as f64,
        typology: lines[0].clone(),
        reasons,
    })
}

/// The decision and its explanation, as answered and recorded.
fn decide(tx: &Transaction, scored: &Scored, settings: &Settings) -> Value {
    let decision = if scored.fraud >= settings.decline {
        "decline"
    } else if scored.fraud >= settings.review {
        "review"
    } else {
        "approve"
    };
    let reasons: Vec<Value> = scored
        .reasons
        .iter()
        .map(|(reason, weight)| {
            let (kind, name) = reason.split_once(' ').unwrap_or(("feature", reason));
            json!({ "kind": kind, "name": name, "weight": weight })
        })
        .collect();
    json!({
        "transaction_id": tx.id,
        "decision": decision,
        "score": round(scored.fraud),
        "thresholds": { "review": settings.review, "decline": settings.decline },
        "pattern": (decision != "approve").then_some(&scored.typology),
        "source_risk": round(scored.source_risk),
        "target_risk": round(scored.target_risk),
        "reasons": reasons,
    })
}

fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn alerts(req: &Request, settings: &Settings) -> Response {
    let query = req.query();
    let mut limit = 100usize;
    let mut min_risk = settings.aml;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => match value.parse::<usize>() {
                Ok(v) if (1..=1000).contains(&v) => limit = v,
                _ => return error(400, format!("limit must be 1 to 1000, got '{value}'")),
            },
            "min_risk" => match value.parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => min_risk = v,
                _ => return error(400, format!("min_risk must be 0 to 1, got '{value}'")),
            },
            other => {
                return error(
                    400,
                    format!("unknown parameter '{other}' (use limit, min_risk)"),
                )
            }
        }
    }
    let db = match store::open() {
        Ok(db) => db,
        Err(e) => return error(503, format!("decision store unavailable: {e}")),
    };
    match store::with_tables(&db, |db| store::alerts(db, min_risk, limit)) {
        Ok(alerts) => json_response(
            200,
            json!({ "threshold": min_risk, "count": alerts.len(), "alerts": alerts }),
        ),
        Err(e) => error(503, format!("decision store unavailable: {e}")),
    }
}
