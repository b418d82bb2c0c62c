//! Catalogue webhooks and the picture-enhancement queue they feed ([`queue`]):
//!
//! - `POST /webhooks/catalog`: a partner's product event, signed per Standard Webhooks
//!   (`catalog_webhook_secrets`): `{"type": "product.created" | "product.updated" |
//!   "product.image_changed", "timestamp": …, "data": {"id": "<product id>"}}`. Each delivery
//!   (its `webhook-id`) queues one job, durably, before the `202`; a delivery again is `200`
//!   with `"duplicate": true`. A bad signature is `401`, a bad event `400`, nothing queued.
//! - `/api/admin/image-jobs/...` (admin bearer token), for the workers and for people:
//!   `GET` lists jobs (`?state=queued|working|published|done|dead&limit=N`: `dead` is the dead-letter
//!   list) with counts per state; `POST …/claim[?lease=S]` claims the next job (`204` when
//!   none is ready); `POST …/{id}/done`; `POST …/{id}/failed` with `{"error": "…"}`;
//!   `POST …/{id}/retry` puts a dead job back in the queue; `POST …/{id}/published` marks a
//!   claimed job as handed to NATS JetStream (by `vitrine images work --relay`).
//!
//! Variables: `catalog_webhook_secrets` (one or more `whsec_…`), `admin_token`,
//! `timestamp_tolerance_seconds`, `image_job_attempts` (before the dead-letter list, default
//! 5), `image_job_retry_seconds` (delay before the second attempt, doubled for each later one,
//! default 2).

mod queue;

use serde_json::{json, Value};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use vitrine_guest::http::{bearer_authorized, error, json_response, not_allowed};

/// The product events a job is queued for.
const EVENTS: [&str; 3] = [
    "product.created",
    "product.updated",
    "product.image_changed",
];
/// Lease of a claim when `lease` is not given, and its bounds (seconds).
const LEASE: i64 = 300;
const LEASES: std::ops::RangeInclusive<i64> = 5..=3600;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.path().trim_end_matches('/').to_string();
    if path == "/webhooks/catalog" {
        return Ok(match req.method() {
            Method::Post => event(&req),
            other => not_allowed(other, "POST"),
        });
    }
    let Some(rest) = path.strip_prefix("/api/admin/image-jobs") else {
        return Ok(error(404, format!("no route {path}")));
    };
    if let Err(denied) = bearer_authorized(&req, "admin_token") {
        return Ok(denied);
    }
    let db = match spin_sdk::sqlite::Connection::open_default() {
        Ok(db) => db,
        Err(e) => return Ok(error(503, format!("job queue unavailable: {e}"))),
    };
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    Ok(match (req.method(), parts.as_slice()) {
        (Method::Get, [""]) => list(&db, &req),
        (_, [""]) => not_allowed(req.method(), "GET"),
        (Method::Post, ["claim"]) => claim(&db, &req),
        (Method::Post, [id, "done"]) => finish(&db, id, None),
        (Method::Post, [id, "failed"]) => match failure(req.body()) {
            Ok(message) => finish(&db, id, Some(&message)),
            Err(message) => error(400, message),
        },
        (Method::Post, [id, "published"]) => match queue::publish(&db, id, now()) {
            Ok(Some(Ok(job))) => json_response(200, job),
            Ok(Some(Err(state))) => error(409, format!("job `{id}` is {state}, not claimed")),
            Ok(None) => error(404, format!("no job `{id}`")),
            Err(e) => error(503, format!("job queue unavailable: {e}")),
        },
        (Method::Post, [id, "retry"]) => match queue::retry(&db, id, now()) {
            Ok(Some(Ok(job))) => json_response(200, job),
            Ok(Some(Err(state))) => error(409, format!("job `{id}` is {state}, not dead")),
            Ok(None) => error(404, format!("no job `{id}`")),
            Err(e) => error(503, format!("job queue unavailable: {e}")),
        },
        (_, ["claim"] | [_, "done" | "failed" | "retry" | "published"]) => {
            not_allowed(req.method(), "POST")
        }
        _ => error(404, format!("no route {path}")),
    })
}

/// `POST /webhooks/catalog`.
fn event(req: &Request) -> Response {
    let tolerance = spin_sdk::variables::get("timestamp_tolerance_seconds")
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .unwrap_or(300);
    let id = match vitrine_guest::webhook::verify(req, "catalog_webhook_secrets", tolerance) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let id = id.as_str();
    if id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
    {
        return error(
            400,
            "webhook-id must be 1 to 128 letters, digits or _ - . : (it names the job)",
        );
    }
    let (event, product) = match parse(req.body()) {
        Ok(parsed) => parsed,
        Err(message) => return error(400, message),
    };
    let db = match spin_sdk::sqlite::Connection::open_default() {
        Ok(db) => db,
        Err(e) => return error(503, format!("job queue unavailable: {e}")),
    };
    match queue::push(&db, id, &product, &event, now()) {
        Ok(queued) => json_response(
            if queued { 202 } else { 200 },
            json!({ "job": id, "product": product, "event": event, "duplicate": !queued }),
        ),
        Err(e) => error(503, format!("job queue unavailable: {e}")),
    }
}

/// The event type and product id of an event body.
fn parse(body: &[u8]) -> Result<(String, String), String> {
    let event: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let kind = event["type"]
        .as_str()
        .ok_or("the event has no `type` (a string)")?;
    if !EVENTS.contains(&kind) {
        return Err(format!(
            "unknown event type `{kind}`; this webhook takes {}",
            EVENTS.join(", ")
        ));
    }
    let product = event["data"]["id"]
        .as_str()
        .ok_or("the event has no `data.id` (the product id, a string)")?;
    if product.is_empty() || product.len() > 128 || product.contains('/') {
        return Err("`data.id` must be a product id of 1 to 128 characters, without `/`".into());
    }
    Ok((kind.to_string(), product.to_string()))
}

fn list(db: &spin_sdk::sqlite::Connection, req: &Request) -> Response {
    let mut state = None;
    let mut limit = 100;
    for (key, value) in form_urlencoded::parse(req.query().as_bytes()) {
        match key.as_ref() {
            "state" if queue::STATES.contains(&value.as_ref()) => state = Some(value.into_owned()),
            "state" => {
                return error(
                    400,
                    format!("state must be one of {}", queue::STATES.join(", ")),
                )
            }
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=1000).contains(&n) => limit = n,
                _ => return error(400, "limit must be an integer from 1 to 1000"),
            },
            other => {
                return error(
                    400,
                    format!("unknown parameter '{other}'; use state, limit"),
                )
            }
        }
    }
    match queue::list(db, state.as_deref(), limit) {
        Ok(jobs) => json_response(200, jobs),
        Err(e) => error(503, format!("job queue unavailable: {e}")),
    }
}

fn claim(db: &spin_sdk::sqlite::Connection, req: &Request) -> Response {
    let mut lease = LEASE;
    for (key, value) in form_urlencoded::parse(req.query().as_bytes()) {
        match (key.as_ref(), value.parse::<i64>()) {
            ("lease", Ok(s)) if LEASES.contains(&s) => lease = s,
            ("lease", _) => {
                return error(
                    400,
                    format!(
                        "lease must be an integer from {} to {} (seconds)",
                        LEASES.start(),
                        LEASES.end()
                    ),
                )
            }
            (other, _) => return error(400, format!("unknown parameter '{other}'; use lease")),
        }
    }
    match queue::claim(db, now(), lease) {
        Ok(Some(job)) => json_response(200, job),
        Ok(None) => Response::builder().status(204).build(),
        Err(e) => error(503, format!("job queue unavailable: {e}")),
    }
}

/// The `error` of a `failed` body.
fn failure(body: &[u8]) -> Result<String, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let message = value["error"]
        .as_str()
        .ok_or("the body needs `error`: why the job failed (a string)")?;
    Ok(message.chars().take(2000).collect())
}

fn finish(db: &spin_sdk::sqlite::Connection, id: &str, failed: Option<&str>) -> Response {
    let variable = |name: &str, default: i64, range: std::ops::RangeInclusive<i64>| {
        match spin_sdk::variables::get(name)
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|v| range.contains(v))
                .ok_or_else(|| {
                    format!(
                        "variable {name} must be an integer from {} to {}",
                        range.start(),
                        range.end()
                    )
                }),
        }
    };
    let retries = match (
        variable("image_job_attempts", 5, 1..=100),
        variable("image_job_retry_seconds", 2, 0..=86_400),
    ) {
        (Ok(attempts), Ok(delay)) => queue::Retries { attempts, delay },
        (Err(message), _) | (_, Err(message)) => return error(500, message),
    };
    match queue::finish(db, id, failed, &retries, now()) {
        Ok(queue::Finished::Now(job)) => json_response(200, job),
        Ok(queue::Finished::Unknown) => error(404, format!("no job `{id}`")),
        Ok(queue::Finished::NotWorking(state)) => error(
            409,
            format!("job `{id}` is {state}, not working: claim it first"),
        ),
        Err(e) => error(503, format!("job queue unavailable: {e}")),
    }
}
