//! Campaign decisions at the edge (docs/campaigns.md):
//!
//! - `GET /api/admin/campaigns`, `GET`/`PUT /api/admin/campaigns/{id}` (bearer `admin_token`):
//!   campaign definitions ([`definition`]); a `PUT` of a changed definition is a new version
//!   with a fresh policy (of the same one, nothing);
//! - `POST /api/campaigns/decide` `{shopper, context: {page, device, locale, time, cart}}`: for
//!   each campaign, the arm shown (or none, and why: consent — the shopper opted out of
//!   marketing —, schedule, eligibility, holdout, budget, cap), its rendered message, a decision id and the propensity of the choice, logged with
//!   the context features and the campaign's version;
//! - `POST /api/campaigns/feedback` `{event_id, decision_id, event: click|conversion|dismiss,
//!   value}` or `{"events": [...]}`: idempotent by event id; a decision's first conversion
//!   rewards its arm.
//!
//! Policies learn from the stored decisions and feedback by folds ([`store::fold`]).
//! Experiments — sticky variants and exposure logging — are in [`experiments`].

mod definition;
mod experiments;
mod store;

use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::http::{Method, OutgoingResponse, Request, Response, ResponseOutparam};
use spin_sdk::http_component;
use vitrine_campaigns::policy::{self, Policy};
use vitrine_guest::http::{bearer_authorized, error, json_response, not_allowed};

use definition::{Definition, PolicyKind};

/// Features the contextual policy sees: from the context, a bias, the device (mobile,
/// tablet), `ln(1 + cart) / 5`, the hour of day as a point on a circle and whether a shopper
/// is known; from the shopper's history ([`History`]), recency, purchases, views and the
/// price level of the products. A campaign defined before keeps its first 7 or 10.
const FEATURES: usize = 11;

/// How far back a shopper's history counts, in seconds (90 days).
const HISTORY_SECONDS: i64 = 90 * 86_400;

/// What the contextual policy knows of a shopper's past: their events linked to them (so
/// only for shoppers who consented to personalization) in the 90 days before the decision.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct History {
    purchases: f64,
    views: f64,
    /// Days since the last event; none without events.
    days_since_last: Option<f64>,
    /// The mean catalogue price of the products of their events, in EUR (the single-number
    /// form of the profile's price-band affinity); none without product events or without a
    /// catalogue.
    mean_price: Option<f64>,
}

impl History {
    /// Reads it; nothing for an anonymous shopper or an app without events.
    fn of(
        db: &spin_sdk::sqlite::Connection,
        shopper: Option<&str>,
        time: i64,
    ) -> Result<Self, spin_sdk::sqlite::Error> {
        let Some(shopper) = shopper else {
            return Ok(Self::default());
        };
        // With the catalogue's prices if the app has a catalogue.
        let query = |prices: bool| {
            let (price, join) = match prices {
                true => (
                    "avg(p.price_cents) / 100.0",
                    "LEFT JOIN products p ON p.id = e.product",
                ),
                false => ("NULL", ""),
            };
            db.execute(
                &format!(
                    "SELECT count(*) FILTER (WHERE e.kind = 'purchase'),
                            count(*) FILTER (WHERE e.kind = 'view'), max(e.time), {price}
                       FROM shopper_events e {join}
                      WHERE e.shopper = ? AND e.time > ? AND e.time <= ?"
                ),
                &[
                    spin_sdk::sqlite::Value::Text(shopper.into()),
                    spin_sdk::sqlite::Value::Integer(time - HISTORY_SECONDS),
                    spin_sdk::sqlite::Value::Integer(time),
                ],
            )
        };
        let missing = |e: &spin_sdk::sqlite::Error, table: &str| match e {
            spin_sdk::sqlite::Error::Io(m) => m.contains(&format!("no such table: {table}")),
            _ => false,
        };
        let rows = match query(true) {
            Err(e) if missing(&e, "products") => query(false),
            other => other,
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) if missing(&e, "shopper_events") => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        let row = rows.rows.first();
        let number = |i: usize| row.and_then(|r| r.get::<i64>(i)).unwrap_or(0) as f64;
        let last = row.and_then(|r| r.get::<i64>(2));
        Ok(Self {
            purchases: number(0),
            views: number(1),
            days_since_last: last.map(|l| (time - l).max(0) as f64 / 86_400.0),
            mean_price: row.and_then(|r| r.get::<f64>(3)),
        })
    }

    /// Recency `exp(−days / 30)` (0 without events), `ln(1 + purchases) / 3`,
    /// `ln(1 + views) / 5`, `ln(1 + mean price) / 6` (0 without one).
    fn features(&self) -> [f64; 4] {
        [
            self.days_since_last.map_or(0.0, |d| (-d / 30.0).exp()),
            self.purchases.ln_1p() / 3.0,
            self.views.ln_1p() / 5.0,
            self.mean_price.map_or(0.0, |p| p.max(0.0).ln_1p() / 6.0),
        ]
    }
}

/// Largest request body.
const MAX_BODY: usize = 64 * 1024;

/// Answers, then — the answer sent — folds the stale campaigns if a decision found any, so
/// that no decision waits for a fold ([`store::fold`]).
#[http_component]
async fn handle(req: Request, response_out: ResponseOutparam) {
    let db = match spin_sdk::sqlite::Connection::open_default() {
        Ok(db) => db,
        Err(e) => {
            let unavailable = error(503, format!("campaign store unavailable: {e}"));
            return send(response_out, unavailable).await;
        }
    };
    let (response, fold) = answer(&db, &req);
    send(response_out, response).await;
    if fold {
        // Learning only lags when a fold fails: the rows stay for the next one. Of concurrent
        // requests, only the one that claims a campaign folds it.
        let now_ms = chrono::Utc::now().timestamp_millis();
        let folded = store::claim_stale(&db, now_ms).and_then(|c| store::fold(&db, &c, now_ms));
        if let Err(e) = folded {
            eprintln!("campaigns not folded: {e}");
        }
    }
}

/// Sends `response` (as `#[http_component]` does for a handler that returns one).
async fn send(out: ResponseOutparam, mut response: Response) {
    let body = std::mem::take(response.body_mut());
    match OutgoingResponse::try_from(response) {
        Ok(outgoing) => {
            if let Err(e) = out.set_with_body(outgoing, body).await {
                eprintln!("campaigns: the answer was not sent: {e}");
            }
        }
        Err(e) => eprintln!("campaigns: the answer was not sent: {e}"),
    }
}

/// The answer to `req`, and whether a campaign's policy is due a fold.
fn answer(db: &spin_sdk::sqlite::Connection, req: &Request) -> (Response, bool) {
    let path = req.path().trim_end_matches('/').to_string();
    if req.body().len() > MAX_BODY {
        return (
            error(413, format!("the body is over {MAX_BODY} bytes")),
            false,
        );
    }
    let now = chrono::Utc::now().timestamp();
    let mut fold_due = false;
    let response = match path.as_str() {
        "/api/campaigns/decide" => match req.method() {
            Method::Post => decide(db, req.body(), now, &mut fold_due),
            m => not_allowed(m, "POST"),
        },
        "/api/campaigns/feedback" => match req.method() {
            Method::Post => feedback(db, req.body(), now),
            m => not_allowed(m, "POST"),
        },
        "/api/admin/campaigns" => match bearer_authorized(req, "admin_token") {
            Err(denied) => denied,
            Ok(()) if *req.method() == Method::Get => list(db),
            Ok(()) => not_allowed(req.method(), "GET"),
        },
        p if p.starts_with("/api/admin/campaigns/") => {
            let id = &p["/api/admin/campaigns/".len()..];
            match bearer_authorized(req, "admin_token") {
                Err(denied) => denied,
                Ok(()) => match req.method() {
                    Method::Get => show(db, id),
                    Method::Put => put(db, id, req.body(), now),
                    m => not_allowed(m, "GET, PUT"),
                },
            }
        }
        p if p.starts_with("/api/admin/experiments/") => {
            let id = &p["/api/admin/experiments/".len()..];
            match bearer_authorized(req, "admin_token") {
                Err(denied) => denied,
                Ok(()) => match req.method() {
                    Method::Get => experiments::show(db, id),
                    Method::Put => experiments::put(db, id, req.body(), now),
                    m => not_allowed(m, "GET, PUT"),
                },
            }
        }
        p if p.starts_with("/api/experiments/") && p.ends_with("/assign") => {
            let id = &p["/api/experiments/".len()..p.len() - "/assign".len()];
            match req.method() {
                Method::Post => experiments::assign(db, id, req.body(), now),
                m => not_allowed(m, "POST"),
            }
        }
        other => error(404, format!("no such resource `{other}`")),
    };
    (response, fold_due)
}

fn store_error(e: spin_sdk::sqlite::Error) -> Response {
    error(503, format!("campaign store unavailable: {e}"))
}

/// A campaign as the admin API shows it.
fn campaign_json(c: &store::Stored) -> Value {
    let learned = match &c.policy {
        Policy::Thompson { alpha, beta } => json!(c
            .definition
            .arms
            .iter()
            .zip(alpha.iter().zip(beta))
            .map(
                |(arm, (a, b))| json!({ "arm": arm.id, "conversions": a - 1.0, "misses": b - 1.0 })
            )
            .collect::<Vec<_>>()),
        _ => Value::Null,
    };
    json!({
        "id": c.id,
        "version": c.version,
        "definition": c.definition,
        "learned": learned,
        "impressions": c.impressions,
        "discount_spent": c.discount_spent,
    })
}

fn list(db: &spin_sdk::sqlite::Connection) -> Response {
    match store::all(db) {
        Ok(all) => json_response(
            200,
            json!({ "campaigns": all.iter().map(campaign_json).collect::<Vec<_>>() }),
        ),
        Err(e) => store_error(e),
    }
}

fn show(db: &spin_sdk::sqlite::Connection, id: &str) -> Response {
    // What it has learned, up to now: every campaign is folded (so all keep the same fold
    // marks, and the next fold is one pass over the new rows).
    if let Ok(all) = store::all(db) {
        let campaigns: Vec<(String, i64)> = all.into_iter().map(|c| (c.id, c.version)).collect();
        if let Err(e) = store::fold(db, &campaigns, chrono::Utc::now().timestamp_millis()) {
            return store_error(e);
        }
    }
    match store::get(db, id) {
        Ok(Some(c)) => json_response(200, campaign_json(&c)),
        Ok(None) => error(404, format!("no campaign `{id}`")),
        Err(e) => store_error(e),
    }
}

fn put(db: &spin_sdk::sqlite::Connection, id: &str, body: &[u8], now: i64) -> Response {
    if !definition::is_id(id) {
        return error(
            400,
            format!("campaign id `{id}` must be 1–64 letters, digits, `-` or `_`"),
        );
    }
    let definition = match Definition::parse(body) {
        Ok(d) => d,
        Err(message) => return error(400, message),
    };
    // The same definition again changes nothing: no new version, the policy keeps what it
    // learned (so a definitions file can be applied any number of times).
    match store::get(db, id) {
        Ok(Some(c)) if c.definition == definition => {
            let mut answer = campaign_json(&c);
            answer["changed"] = false.into();
            return json_response(200, answer);
        }
        Ok(_) => {}
        Err(e) => return store_error(e),
    }
    let arms = definition.arms.len();
    let policy = match definition.policy {
        PolicyKind::Uniform => Policy::uniform(arms),
        PolicyKind::Thompson => Policy::thompson(arms),
        PolicyKind::Linucb => Policy::linucb(arms, FEATURES),
    };
    match store::put(db, id, &definition, &policy, now).and_then(|_| store::get(db, id)) {
        Ok(Some(c)) => {
            let mut answer = campaign_json(&c);
            answer["changed"] = true.into();
            json_response(200, answer)
        }
        Ok(None) => error(500, "the campaign was not stored"),
        Err(e) => store_error(e),
    }
}

/// `POST /api/campaigns/decide`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideRequest {
    shopper: Option<String>,
    #[serde(default)]
    context: Context,
}

/// Where and when a shopper is (logged with each decision, without its unset fields).
#[derive(Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Context {
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locale: Option<String>,
    /// RFC 3339; default: now.
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cart: Option<f64>,
    /// ISO 3166 country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    /// The shop's segment of the shopper.
    #[serde(skip_serializing_if = "Option::is_none")]
    segment: Option<String>,
}

/// The features of [`FEATURES`], to 4 decimals (what the policy sees is what is logged, in
/// fewer bytes).
fn features(context: &Context, known: bool, time: i64, history: &History) -> Vec<f64> {
    let device = context.device.as_deref().unwrap_or("");
    let hour = (time.rem_euclid(86_400)) as f64 / 3_600.0;
    let angle = hour / 24.0 * std::f64::consts::TAU;
    vec![
        1.0,
        f64::from(u8::from(device == "mobile")),
        f64::from(u8::from(device == "tablet")),
        context.cart.unwrap_or(0.0).max(0.0).ln_1p() / 5.0,
        angle.sin(),
        angle.cos(),
        f64::from(u8::from(known)),
    ]
    .into_iter()
    .chain(history.features())
    .map(|x| (x * 1e4).round() / 1e4)
    .collect()
}

/// Why `definition` is not shown for this request, if it is not.
fn not_shown(
    id: &str,
    d: &Definition,
    request: &DecideRequest,
    time: i64,
    local_minute: u32,
) -> Option<&'static str> {
    let (start, end) = d.schedule();
    if start.is_some_and(|s| time < s) || end.is_some_and(|e| time >= e) {
        return Some("schedule");
    }
    if d.quiet_hours
        .as_ref()
        .is_some_and(|q| q.contains(local_minute))
    {
        return Some("quiet_hours");
    }
    let e = &d.eligibility;
    let context = &request.context;
    let listed = |allowed: &[String], value: &Option<String>| {
        allowed.is_empty() || value.as_ref().is_some_and(|v| allowed.contains(v))
    };
    if !listed(&e.locales, &context.locale) {
        return Some("not_eligible: locale");
    }
    if !listed(&e.pages, &context.page) {
        return Some("not_eligible: page");
    }
    if context.cart.unwrap_or(0.0) < e.min_cart {
        return Some("not_eligible: cart");
    }
    if !listed(&e.countries, &context.country) {
        return Some("not_eligible: country");
    }
    if !listed(&e.segments, &context.segment) {
        return Some("not_eligible: segment");
    }
    if let Some(shopper) = &request.shopper {
        let bucket = vitrine_guest::fnv1a(format!("{id}\0{shopper}").as_bytes()) % 10_000;
        if (bucket as f64) < d.holdout * 10_000.0 {
            return Some("holdout");
        }
    }
    None
}

/// Whether the campaign's budget or its caps for `shopper` stop it: `budget` (impressions or
/// discount spend, as of the last fold: it may overshoot by a tenth of a second of traffic) or
/// `cap`.
fn limited(
    db: &spin_sdk::sqlite::Connection,
    campaign: &store::Stored,
    shopper: Option<&str>,
    time: i64,
) -> Result<Option<&'static str>, spin_sdk::sqlite::Error> {
    let d = &campaign.definition;
    if d.budget
        .impressions
        .is_some_and(|b| campaign.impressions >= b as i64)
        || (d.budget.discount_spend).is_some_and(|b| campaign.discount_spent >= b)
    {
        return Ok(Some("budget"));
    }
    let (Some(shopper), caps) = (shopper, &d.caps) else {
        return Ok(None);
    };
    if caps.per_shopper_per_day.is_none() && caps.per_shopper.is_none() {
        return Ok(None);
    }
    let (today, total) = store::seen_by(db, &campaign.id, shopper, time - 86_400)?;
    let over = |cap: Option<u32>, seen: i64| cap.is_some_and(|c| seen >= i64::from(c));
    Ok((over(caps.per_shopper_per_day, today) || over(caps.per_shopper, total)).then_some("cap"))
}

/// The shopper's three strongest category affinities, from their profile; none for an
/// anonymous shopper, one who has not consented to personalization, or an app without a
/// catalogue.
fn strongest_categories(
    db: &spin_sdk::sqlite::Connection,
    shopper: Option<&str>,
    now: i64,
) -> Result<Vec<String>, spin_sdk::sqlite::Error> {
    let Some(shopper) = shopper else {
        return Ok(Vec::new());
    };
    if !vitrine_shoppers::with_tables(db, |db| vitrine_shoppers::consent(db, shopper))? {
        return Ok(Vec::new());
    }
    match vitrine_shoppers::profile::build(db, shopper, now) {
        Ok(profile) => Ok(profile
            .top("category", 3)
            .into_iter()
            .map(str::to_string)
            .collect()),
        Err(spin_sdk::sqlite::Error::Io(m)) if m.contains("no such table") => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The Spin variable `campaigns_per_shopper_per_day`: how many campaigns one shopper may see
/// in 24 hours, over all campaigns (those with the lowest ids first); unset or empty: no cap.
fn cap_across_campaigns() -> Result<Option<u32>, String> {
    const NAME: &str = "campaigns_per_shopper_per_day";
    match spin_sdk::variables::get(NAME) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => (value.trim().parse::<u32>().map(Some))
            .map_err(|_| format!("variable {NAME}: `{value}` is not a whole number")),
        Err(_) => Ok(None),
    }
}

fn render(template: &str, shopper: Option<&str>, arm: &definition::Arm, campaign: &str) -> String {
    template
        .replace("{shopper}", shopper.unwrap_or("there"))
        .replace("{offer}", &arm.offer)
        .replace("{arm}", &arm.id)
        .replace("{campaign}", campaign)
}

/// `POST /api/campaigns/decide`; sets `fold_due` when the decisions are logged and a
/// campaign's policy is due a fold.
fn decide(
    db: &spin_sdk::sqlite::Connection,
    body: &[u8],
    now: i64,
    fold_due: &mut bool,
) -> Response {
    let request: DecideRequest = match definition::parse_json(body, "") {
        Ok(r) => r,
        Err(message) => return error(400, format!("invalid decide request: {message}")),
    };
    if request
        .shopper
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.len() > 128)
    {
        return error(400, "shopper: must be 1–128 characters");
    }
    if request
        .context
        .cart
        .is_some_and(|c| !c.is_finite() || c < 0.0)
    {
        return error(400, "context.cart: must be a number, 0 or more");
    }
    // The shopper's local time of day comes from the offset of `context.time` (UTC without one).
    let (time, local_minute) = match &request.context.time {
        None => (now, (now.rem_euclid(86_400) / 60) as u32),
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => {
                use chrono::Timelike;
                (t.timestamp(), t.hour() * 60 + t.minute())
            }
            Err(e) => {
                return error(
                    400,
                    format!("context.time: `{t}` is not an RFC 3339 time: {e}"),
                )
            }
        },
    };
    let campaigns = match store::all(db) {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    // A shopper who opted out of marketing sees no campaign; the log says so.
    if let Some(shopper) = &request.shopper {
        match vitrine_shoppers::with_tables(db, |db| {
            vitrine_shoppers::marketing_consent(db, shopper)
        }) {
            Ok(Some(false)) => {
                println!("campaigns: shopper `{shopper}` opted out of marketing: none shown");
                let decisions = (campaigns.iter())
                    .map(|c| Outcome::NotShown {
                        arm: (),
                        campaign: &c.id,
                        reason: "consent",
                    })
                    .collect();
                return decided(&request.shopper, decisions);
            }
            Ok(_) => {}
            Err(e) => return store_error(e),
        }
    }
    let context_text = serde_json::to_string(&request.context).unwrap_or_default();
    // A fast generator, seeded from the system's: the draws need no cryptographic strength.
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let mut decisions = Vec::new();
    let mut logged = Vec::new();
    let now_ms = chrono::Utc::now().timestamp_millis();
    // How many more campaigns the shopper may see in 24 hours, over all campaigns.
    let mut across = match (&request.shopper, cap_across_campaigns()) {
        (_, Err(message)) => return error(500, message),
        (Some(shopper), Ok(Some(cap))) => match store::shown_to(db, shopper, time - 86_400) {
            Ok(seen) => Some((i64::from(cap) - seen).max(0)),
            Err(e) => return store_error(e),
        },
        _ => None,
    };
    // The shopper's strongest category affinities, read once if a campaign needs them.
    let mut interests: Option<Vec<String>> = None;
    let mut history: Option<History> = None;
    // Whether a campaign's policy is out of date: this request then folds those that are,
    // once it has answered.
    let stale = (campaigns.iter()).any(|c| now_ms - c.folded_at_ms >= store::FOLD_EVERY_MS);
    for campaign in &campaigns {
        let d = &campaign.definition;
        let mut reason = not_shown(&campaign.id, d, &request, time, local_minute);
        if reason.is_none() && !d.eligibility.categories.is_empty() {
            if interests.is_none() {
                match strongest_categories(db, request.shopper.as_deref(), now) {
                    Ok(top) => interests = Some(top),
                    Err(e) => return store_error(e),
                }
            }
            let top = interests.as_deref().unwrap_or_default();
            if !d.eligibility.categories.iter().any(|c| top.contains(c)) {
                reason = Some("not_eligible: category");
            }
        }
        if reason.is_none() {
            reason = match limited(db, campaign, request.shopper.as_deref(), time) {
                Ok(None) if across == Some(0) => Some("cap"),
                Ok(limit) => limit,
                Err(e) => return store_error(e),
            };
        }
        if let Some(reason) = reason {
            decisions.push(Outcome::NotShown {
                arm: (),
                campaign: &campaign.id,
                reason,
            });
            continue;
        }
        across = across.map(|left| left - 1);
        if history.is_none() {
            // Read once, for the first campaign shown.
            match History::of(db, request.shopper.as_deref(), time) {
                Ok(h) => history = Some(h),
                Err(e) => return store_error(e),
            }
        }
        let past = history.unwrap_or_default();
        let x = features(&request.context, request.shopper.is_some(), time, &past);
        // Thompson sampling's probabilities are estimated once per fold, not per decision.
        let p = match &campaign.probabilities {
            p if p.len() == d.arms.len() => p.clone(),
            _ => (campaign.policy).probabilities(&x, d.epsilon, store::PROBABILITY_DRAWS, &mut rng),
        };
        let arm = policy::draw(&p, &mut rng);
        let decision = store::Decision {
            // The time first (48 bits of milliseconds, then 80 random bits): a request's
            // decisions are added at the end of the index of ids, not in ten places of it.
            id: format!("dc-{now_ms:012x}{:020x}", rng.random::<u128>() >> 48),
            campaign: campaign.id.clone(),
            version: campaign.version,
            shopper: request.shopper.clone(),
            arm,
            propensity: p[arm],
            policy: serde_json::to_value(d.policy)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            features: x.clone(),
            context: context_text.clone(),
            time,
        };
        let chosen = &d.arms[arm];
        decisions.push(Outcome::Shown {
            arm: &chosen.id,
            campaign: &campaign.id,
            channel: d.channel,
            decision_id: decision.id.clone(),
            message: render(
                &chosen.message,
                request.shopper.as_deref(),
                chosen,
                &campaign.id,
            ),
            offer: &chosen.offer,
            policy: d.policy,
            propensity: decision.propensity,
            version: campaign.version,
        });
        logged.push(decision);
    }
    // One statement for all the decisions; the policies learn from them at their next fold.
    if let Err(e) = store::log_decisions(db, &logged) {
        return store_error(e);
    }
    *fold_due = stale;
    decided(&request.shopper, decisions)
}

/// A campaign's part of a decide answer (fields in the order of their names, as JSON
/// objects list them elsewhere).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Outcome<'a> {
    /// An arm shown.
    Shown {
        arm: &'a str,
        campaign: &'a str,
        channel: definition::Channel,
        decision_id: String,
        message: String,
        offer: &'a str,
        policy: definition::PolicyKind,
        propensity: f64,
        version: i64,
    },
    /// Nothing shown, and why.
    NotShown {
        /// Always null.
        arm: (),
        campaign: &'a str,
        reason: &'static str,
    },
}

/// The answer to a decide request.
fn decided(shopper: &Option<String>, decisions: Vec<Outcome>) -> Response {
    #[derive(serde::Serialize)]
    struct Decided<'a> {
        decisions: Vec<Outcome<'a>>,
        shopper: &'a Option<String>,
    }
    match serde_json::to_string(&Decided { decisions, shopper }) {
        Ok(body) => vitrine_guest::http::json_text_response(200, body),
        Err(e) => error(500, format!("the answer could not be written: {e}")),
    }
}

/// `POST /api/campaigns/feedback`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Feedback {
    event_id: String,
    decision_id: String,
    event: FeedbackEvent,
    value: Option<f64>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum FeedbackEvent {
    Click,
    Conversion,
    Dismiss,
}

/// `{"events": [...]}`: a batch of feedback.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBatch {
    events: Vec<Feedback>,
}

/// Most feedback events in one request.
const MAX_FEEDBACK_BATCH: usize = 500;

/// A refusal of a whole feedback request: status and message.
type Refusal = (u16, String);

fn feedback(db: &spin_sdk::sqlite::Connection, body: &[u8], now: i64) -> Response {
    // One event, or a batch: all checked before any is stored, stored in one transaction.
    let batch = serde_json::from_slice::<Value>(body)
        .ok()
        .is_some_and(|v| v.get("events").is_some());
    let events: Vec<Feedback> = match batch {
        true => match definition::parse_json::<FeedbackBatch>(body, "") {
            Ok(b) => b.events,
            Err(message) => return error(400, format!("invalid feedback: {message}")),
        },
        false => match definition::parse_json::<Feedback>(body, "") {
            Ok(f) => vec![f],
            Err(message) => return error(400, format!("invalid feedback: {message}")),
        },
    };
    if events.is_empty() || events.len() > MAX_FEEDBACK_BATCH {
        return error(
            400,
            format!(
                "events: 1 to {MAX_FEEDBACK_BATCH} per request, not {}",
                events.len()
            ),
        );
    }
    match record_all(db, &events, batch, now) {
        Ok((accepted, duplicates)) if batch => json_response(
            200,
            json!({ "accepted": accepted, "duplicates": duplicates }),
        ),
        Ok((_, duplicates)) => json_response(
            200,
            json!({ "recorded": events[0].event_id, "duplicate": duplicates == 1 }),
        ),
        Err((status, message)) => error(status, message),
    }
}

/// Checks and records `events` in one transaction: (new, duplicates), or the refusal of the
/// whole request. `batch`: name events by their index in errors.
fn record_all(
    db: &spin_sdk::sqlite::Connection,
    events: &[Feedback],
    batch: bool,
    now: i64,
) -> Result<(usize, usize), Refusal> {
    let at = |i: usize| {
        if batch {
            format!("events[{i}].")
        } else {
            String::new()
        }
    };
    let unavailable =
        |e: spin_sdk::sqlite::Error| (503, format!("campaign store unavailable: {e}"));
    let mut windows = std::collections::HashMap::new();
    let mut checked = Vec::new();
    for (i, f) in events.iter().enumerate() {
        if f.event_id.is_empty() || f.event_id.len() > 128 {
            return Err((400, format!("{}event_id: must be 1–128 characters", at(i))));
        }
        if f.value.is_some_and(|v| !v.is_finite()) {
            return Err((400, format!("{}value: must be a finite number", at(i))));
        }
        let Some(decision) = store::decision(db, &f.decision_id).map_err(unavailable)? else {
            return Err((
                404,
                format!("{}decision_id: no decision `{}`", at(i), f.decision_id),
            ));
        };
        let window = match windows.get(&decision.campaign) {
            Some(window) => *window,
            None => {
                let window = store::get(db, &decision.campaign)
                    .map_err(unavailable)?
                    .map_or(0, |c| i64::from(c.definition.attribution_hours) * 3_600);
                windows.insert(decision.campaign.clone(), window);
                window
            }
        };
        if now - decision.time > window {
            return Err((
                422,
                format!(
                    "{}decision_id: decision `{}` is past its attribution window ({} h)",
                    at(i),
                    decision.id,
                    window / 3_600
                ),
            ));
        }
        checked.push((f, decision));
    }
    let result = vitrine_guest::sqlite::transaction(db, || {
        let (mut accepted, mut duplicates) = (0, 0);
        for (i, (f, decision)) in checked.iter().enumerate() {
            let event = match f.event {
                FeedbackEvent::Click => "click",
                FeedbackEvent::Conversion => "conversion",
                FeedbackEvent::Dismiss => "dismiss",
            };
            // The policy learns a decision's first conversion at its next fold.
            match store::record_feedback(db, &f.event_id, &decision.id, event, f.value, now)? {
                store::Recorded::New => accepted += 1,
                store::Recorded::Duplicate => duplicates += 1,
                // Rolls the batch back: nothing of it is stored.
                store::Recorded::Conflict => {
                    return Err(spin_sdk::sqlite::Error::Io(format!(
                        "conflict:{i}:{}",
                        f.event_id
                    )))
                }
            }
        }
        Ok((accepted, duplicates))
    });
    result.map_err(|e| match e {
        spin_sdk::sqlite::Error::Io(m) if m.starts_with("conflict:") => {
            let mut parts = m.splitn(3, ':').skip(1);
            let i: usize = parts.next().and_then(|i| i.parse().ok()).unwrap_or(0);
            let id = parts.next().unwrap_or_default();
            (
                409,
                format!(
                    "{}event_id: `{id}` was recorded for another decision",
                    at(i)
                ),
            )
        }
        e => unavailable(e),
    })
}
