//! Shopper events, consent and erasure:
//!
//! - `POST /api/events`: one event or `{"events": [...]}` (up to 500), validated as a whole
//!   ([`event`]: a 400 names the event index and the field) and stored in one transaction,
//!   idempotent by event id: a known id with the same content is a duplicate, with other
//!   content a 409 (nothing stored). Answers `{"accepted", "duplicates", "anonymous"}`.
//! - `PUT /api/shoppers/{id}/consent` `{"personalization": bool, "marketing": bool}` (either or
//!   both) and `GET` of it;
//! - `GET /api/shoppers/{id}/events[?limit=N]`: what is stored about the shopper (newest first);
//! - `GET /api/shoppers/{id}/profile`: affinities from the shopper's events ([`profile`]); 404
//!   for a shopper who has not consented (no profile);
//! - `DELETE /api/shoppers/{id}`: erases the shopper's events and consent (right to erasure).
//!
//! The `/api/shoppers` endpoints hold personal data: they need
//! `authorization: Bearer <admin_token>` (401 otherwise). The consent policy is in [`store`].

mod event;
mod store;

use serde_json::json;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::sqlite::Connection;
use vitrine_guest::http::{bearer_authorized, error, json_response, not_allowed};
use vitrine_shoppers::profile;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `{"shopper", "personalization": bool, "marketing": bool | null}` (null: never stated).
fn consent_answer(db: &Connection, shopper: &str) -> Result<Response, spin_sdk::sqlite::Error> {
    Ok(json_response(
        200,
        json!({
            "shopper": shopper,
            "personalization": store::consent(db, shopper)?,
            "marketing": store::marketing_consent(db, shopper)?,
        }),
    ))
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let db = match Connection::open_default() {
        Ok(db) => db,
        Err(e) => return Ok(error(503, format!("event store unavailable: {e}"))),
    };
    Ok(match segments[..] {
        ["api", "events"] => match req.method() {
            Method::Post => ingest(&db, req.body()),
            other => not_allowed(other, "POST"),
        },
        ["api", "shoppers", shopper, ..] if shopper.is_empty() || shopper.len() > event::MAX_ID => {
            error(400, format!("a shopper id is 1 to {} bytes", event::MAX_ID))
        }
        ["api", "shoppers", shopper, ref rest @ ..] => match bearer_authorized(&req, "admin_token")
        {
            Err(refused) => refused,
            Ok(()) => shopper_api(&db, &req, shopper, rest),
        },
        _ => error(404, format!("no endpoint {path}")),
    })
}

fn ingest(db: &Connection, body: &[u8]) -> Response {
    let now = now();
    let events = match event::parse(body, now) {
        Ok(events) => events,
        Err(event::Invalid(message)) => return error(400, message),
    };
    match store::with_tables(db, |db| store::store(db, &events, now)) {
        Ok(store::Stored::Done {
            accepted,
            anonymous,
            duplicates,
        }) => json_response(
            200,
            json!({ "accepted": accepted, "duplicates": duplicates, "anonymous": anonymous }),
        ),
        Ok(store::Stored::Conflict { index, id }) => error(
            409,
            format!("events[{index}].id: '{id}' is already stored with other content; nothing was stored"),
        ),
        Err(e) => error(500, format!("storing the events failed: {e}")),
    }
}

fn shopper_api(db: &Connection, req: &Request, shopper: &str, rest: &[&str]) -> Response {
    let done = |result: Result<Response, spin_sdk::sqlite::Error>| {
        result.unwrap_or_else(|e| error(500, format!("event store: {e}")))
    };
    match (req.method(), rest) {
        (Method::Delete, []) => done(store::with_tables(db, |db| {
            let (events, decisions) = store::erase(db, shopper)?;
            Ok(json_response(
                200,
                json!({
                    "shopper": shopper,
                    "erased_events": events,
                    "erased_campaign_decisions": decisions,
                }),
            ))
        })),
        (Method::Get, ["consent"]) => {
            done(store::with_tables(db, |db| consent_answer(db, shopper)))
        }
        (Method::Put, ["consent"]) => {
            let change = match serde_json::from_slice::<store::Consent>(req.body()) {
                Ok(c) if c.personalization.is_some() || c.marketing.is_some() => c,
                Ok(_) => return error(400, "body must set personalization or marketing (true or false)"),
                Err(e) => return error(400, format!("body: {e} (expected {{\"personalization\": bool, \"marketing\": bool}}, either or both)")),
            };
            done(store::with_tables(db, |db| {
                store::set_consent(db, shopper, &change, now())?;
                consent_answer(db, shopper)
            }))
        }
        (Method::Get, ["profile"]) => {
            match store::with_tables(db, |db| store::consent(db, shopper)) {
                Ok(true) => {}
                Ok(false) => {
                    return error(
                        404,
                        format!(
                            "no profile: shopper '{shopper}' has not consented to personalization"
                        ),
                    )
                }
                Err(e) => return error(500, format!("event store: {e}")),
            }
            // The catalogue is created on first use, whichever function comes first.
            let built = vitrine_catalog::open().and_then(|db| profile::build(&db, shopper, now()));
            match built {
                Ok(profile) => json_response(200, profile.to_json()),
                Err(e) => error(500, format!("profile: {e}")),
            }
        }
        (Method::Get, ["events"]) => {
            let limit = match req
                .query()
                .split('&')
                .find_map(|p| p.strip_prefix("limit="))
                .map(|v| v.parse::<i64>())
            {
                None => 100,
                Some(Ok(n)) if (1..=1000).contains(&n) => n,
                Some(_) => return error(400, "limit must be an integer from 1 to 1000"),
            };
            done(store::with_tables(db, |db| {
                let events = store::events_of(db, shopper, limit)?;
                Ok(json_response(
                    200,
                    json!({ "shopper": shopper, "events": events }),
                ))
            }))
        }
        (method, []) => not_allowed(method, "DELETE"),
        (method, ["consent"]) => not_allowed(method, "GET, PUT"),
        (method, ["events" | "profile"]) => not_allowed(method, "GET"),
        _ => error(404, format!("no endpoint {}", req.path())),
    }
}
