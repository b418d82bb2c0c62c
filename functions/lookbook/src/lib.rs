//! Lookbooks: complete outfits from the catalogue for a shopper and an occasion.
//!
//! - `GET /api/lookbooks?shopper=ID&occasion=…&season=…&budget=…&looks=4&locale=…&as_of=…`
//!   → JSON (`as_of`: assemble as at an earlier time, for evaluation);
//! - `GET /lookbook?…` (same parameters) → the same looks as an HTML page.
//!
//! A shopper who consented to personalization gets looks from their profile (affinities and
//! taste embedding); anyone else gets looks from the occasion, the season and popularity. The
//! rules are in [`assemble`] and [`style`]; docs/lookbooks.md describes them.

mod assemble;
mod cache;
mod candidates;
mod context;
mod describe;
mod page;
mod shortlist;
mod style;
mod taste;

use std::collections::HashMap;

use serde_json::{json, Value};
use spin_sdk::http::{IntoResponse, Method, Request};
use spin_sdk::http_component;
use vitrine_guest::http::{error, json_text_response, not_allowed};
use vitrine_shoppers::profile::Profile;

use assemble::{Assembler, Look};
use candidates::Details;
use context::LookbookRequest;
use describe::Consent;
use taste::Taste;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let page = match req.path().trim_end_matches('/') {
        "/api/lookbooks" => false,
        "/lookbook" => true,
        other => return Ok(error(404, format!("no such resource `{other}`"))),
    };
    if *req.method() != Method::Get {
        return Ok(not_allowed(req.method(), "GET"));
    }
    let request = match LookbookRequest::parse(req.query(), context::this_month()) {
        Ok(request) => request,
        Err(message) if page => return Ok(page::error(400, &message)),
        Err(message) => return Ok(error(400, message)),
    };
    // `Cache-Control: no-cache` asks for looks assembled from the data as it is now.
    let fresh = req
        .header("cache-control")
        .and_then(|v| v.as_str())
        .is_some_and(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
        });
    let lookbook = match lookbook(&request, fresh) {
        Ok(lookbook) => lookbook,
        Err(e) if page => return Ok(page::error(500, &format!("lookbook failed: {e}"))),
        Err(e) => return Ok(error(500, format!("lookbook failed: {e}"))),
    };
    Ok(match page {
        true => page::render(&lookbook.value),
        false => json_text_response(200, lookbook.text),
    })
}

/// A lookbook as the API answers it, and its JSON text (serialized once, for the answer cache
/// and the response).
struct Answer {
    value: Value,
    text: String,
}

/// The lookbook for a request, as the API answers it; `fresh`: from the current data, not
/// from cached answers or candidates.
fn lookbook(request: &LookbookRequest, fresh: bool) -> Result<Answer, spin_sdk::sqlite::Error> {
    let db = vitrine_catalog::open()?;
    let now = request
        .as_of
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    let revision = vitrine_catalog::revision(&db)?;
    let consent = match &request.shopper {
        None => Consent::Anonymous,
        Some(shopper) => {
            match vitrine_shoppers::with_tables(&db, |db| vitrine_shoppers::consent(db, shopper))? {
                true => Consent::Given,
                false => Consent::NotGiven,
            }
        }
    };
    // The state of a consenting shopper's events, which their looks depend on.
    let events = match (&request.shopper, consent) {
        (Some(shopper), Consent::Given) => Some((
            shopper,
            vitrine_shoppers::derived::events_state(&db, shopper, now)?,
        )),
        _ => None,
    };
    let cached = match request.as_of {
        Some(_) => None,
        None => Some(cache::key(
            request,
            consent,
            revision,
            events.as_ref().map(|(_, e)| e.as_str()),
        )),
    };
    // The cache only saves work: when it fails, the lookbook is assembled (and the failure
    // logged), never refused.
    if let Some(key) = cached.as_ref().filter(|_| !fresh) {
        match cache::get(&db, key, now) {
            Ok(Some(body)) => {
                if let Ok(mut value) = serde_json::from_str::<Value>(&body) {
                    // Shoppers without a profile share answers ([`cache::key`]).
                    let shopper = json!(request.shopper);
                    if value["shopper"] == shopper {
                        return Ok(Answer { value, text: body });
                    }
                    value["shopper"] = shopper;
                    let text = value.to_string();
                    return Ok(Answer { value, text });
                }
            }
            Ok(None) => {}
            Err(e) => eprintln!("lookbook cache unreadable, assembling: {e}"),
        }
    }
    let keep = request.as_of.is_none();
    let mut taste = match &events {
        Some((shopper, events)) => Some(Taste::load(
            &db, shopper, now, events, revision, keep, fresh,
        )?),
        None => None,
    };
    let profile = taste.as_ref().map(|t| &t.profile);
    let candidates = candidates::load(&db, request, revision, now, fresh)?;
    let shortlist = shortlist::shortlist(&candidates, request, profile, shortlist::PER_GROUP);
    let closeness = match &mut taste {
        Some(taste) => taste.closeness(&db, &shortlist)?,
        None => vec![None; shortlist.len()],
    };
    let profile = taste.as_ref().map(|t| &t.profile);
    let assembler = Assembler::new(request, profile, shortlist, closeness);
    let variants = assembler.variants();
    let looks = assembler.pick(variants, |ids| {
        vitrine_catalog::embeddings::of_products(&db, ids)
    })?;
    let details = candidates::details(&db, &looks)?;
    let mut answer = json!({
        "shopper": request.shopper,
        "personalized": profile.is_some_and(|p| p.events > 0),
        "context": {
            "occasion": request.occasion,
            "season": request.season,
            "budget": request.budget_cents.map(|c| c as f64 / 100.0),
            "locale": request.locale,
        },
        "profile_summary": profile.map(Profile::summary),
        "looks": looks.iter().map(|l| look_json(l, &details, profile, request, consent)).collect::<Vec<_>>(),
    });
    if looks.len() < request.looks {
        answer["note"] = json!(match (looks.len(), request.budget_cents) {
            (0, Some(b)) => format!(
                "no complete look fits a budget of {} EUR",
                describe::euros(b)
            ),
            (_, Some(_)) => format!(
                "only {} distinct looks fit the budget, season and rules",
                looks.len()
            ),
            _ => format!(
                "only {} distinct looks fit the season and rules",
                looks.len()
            ),
        });
    }
    let text = answer.to_string();
    if let Some(key) = &cached {
        let shopper = events.as_ref().map(|(shopper, _)| shopper.as_str());
        if let Err(e) = cache::put(&db, key, shopper, &text, now) {
            eprintln!("lookbook cache not written: {e}");
        }
    }
    if let Some(Err(e)) = taste.as_ref().map(|t| t.keep(&db, now)) {
        eprintln!("lookbook taste not kept: {e}");
    }
    Ok(Answer {
        value: answer,
        text,
    })
}

/// A look as the API shows it; `details`: the titles and images of its items.
fn look_json(
    look: &Look,
    details: &HashMap<String, Details>,
    profile: Option<&Profile>,
    request: &LookbookRequest,
    consent: Consent,
) -> Value {
    let unknown = Details::default();
    let details_of = |id: &str| details.get(id).unwrap_or(&unknown);
    let items: Vec<Value> = look
        .items
        .iter()
        .map(|(slot, i)| {
            let details = details_of(i.id);
            json!({
                "slot": slot.name, "id": i.id, "title": details.title, "brand": i.brand,
                "category": i.category, "colours": i.colours, "price": i.price_cents as f64 / 100.0,
                "image": details.image, "url": format!("/api/products/{}", i.id),
            })
        })
        .collect();
    let id = look_id(look);
    let mut hero = form_urlencoded::Serializer::new(String::new());
    for (_, i) in &look.items {
        hero.append_pair("item", i.id);
    }
    json!({
        "hero_image": format!("/images/looks/{id}?{}", hero.finish()),
        "id": id,
        "title": describe::title(look, request),
        "description": describe::description(look),
        "style": look.style,
        "colours": look.colours(),
        "total": look.total_cents() as f64 / 100.0,
        "currency": "EUR",
        "image": look.items.first().map(|(_, i)| &details_of(i.id).image),
        "why": describe::why(look, profile, request, consent),
        "rules_met": assemble::valid(look, request.budget_cents),
        "items": items,
    })
}

/// A look's stable id: FNV-1a of its product ids, in order, each ended by a NUL (the pictures
/// function checks a hero picture's items against it: functions/images/src/looks.rs).
fn look_id(look: &Look) -> String {
    let ids: String = look
        .items
        .iter()
        .map(|(_, i)| format!("{}\0", i.id))
        .collect();
    format!("lk-{:016x}", vitrine_guest::fnv1a(ids.as_bytes()))
}
