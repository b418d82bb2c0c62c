//! The admin listener's `/admin/...` endpoints, with `Authorization: Bearer <token>`:
//!
//! - `GET`/`PUT /admin/traffic`: the traffic split (`{"v1": 95, "v2": 5}`). Releases not live
//!   yet are loaded and pre-instantiated before the split changes, so one that fails to load
//!   never gets traffic; releases left out (or weighted 0) stop getting new requests at once.
//!   The last [`KEEP_LOADED`] releases that served stay loaded, so a rollback is instant.
//! - `POST`/`GET`/`DELETE /admin/rollout`: a staged canary rollout ([`crate::rollout`]): started
//!   from a plan, shown with its verdicts, aborted. While one runs, the split is its own.
//!
//! Every change of the split is appended to `<state>/traffic-audit.jsonl` (when, who — the
//! admin API or the rollout —, the split, why) and kept in `<state>/traffic.json`; a rollout's
//! state is kept in `<state>/rollout.json`. A restarted server resumes a running rollout, or
//! else restores the last split, so a promotion outlives a restart.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::app::App;
use crate::metrics::Metrics;
use crate::rollout::{Plan, ReleaseStats, RolloutState, Status, Verdict};
use crate::traffic::{Release, Split, Traffic};

/// Loads a stored release by label or digest, ready to serve (the error says why not).
pub type ReleaseLoader = Arc<dyn Fn(&str) -> Result<App, String> + Send + Sync>;

/// Largest request body.
const MAX_BODY: usize = 64 * 1024;

/// How long a loaded release may take to become ready before it is refused.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// How many recently served releases stay loaded.
pub const KEEP_LOADED: usize = 4;

/// An error answer: status and message.
type Refusal = (StatusCode, String);

fn bad(message: String) -> Refusal {
    (StatusCode::BAD_REQUEST, message)
}

/// What the `/admin` endpoints need.
pub struct TrafficAdmin {
    traffic: Arc<Traffic>,
    metrics: Arc<Metrics>,
    stats: Arc<ReleaseStats>,
    loader: ReleaseLoader,
    token: String,
    /// The application's address, for the loaded releases' self-requests.
    addr: SocketAddr,
    state_dir: PathBuf,
    /// Releases that served recently, most recent last (one change at a time holds it).
    loaded: tokio::sync::Mutex<Vec<Arc<Release>>>,
    /// The rollout, running or ended, if any.
    rollout: Mutex<Option<RolloutState>>,
    /// Wakes a running rollout's task when it is aborted.
    abort: tokio::sync::Notify,
    /// Held while the rollout or the split changes (start, step, end, abort, a manual
    /// split), so that no two of them interleave.
    control: tokio::sync::Mutex<()>,
}

impl TrafficAdmin {
    /// Changes `traffic` (whose requests `stats` records), loading releases with `loader`,
    /// for requests bearing `token`; keeps its records in `state_dir`. A rollout that was
    /// running there resumes; otherwise the last split stored there is restored (a release
    /// that cannot load leaves the split as it is, and says so in the log).
    pub async fn start(
        traffic: Arc<Traffic>,
        metrics: Arc<Metrics>,
        stats: Arc<ReleaseStats>,
        loader: ReleaseLoader,
        token: String,
        addr: SocketAddr,
        state_dir: PathBuf,
    ) -> Arc<Self> {
        let serving = traffic
            .current()
            .weights()
            .map(|(r, _)| r.clone())
            .collect();
        let path = state_dir.join("rollout.json");
        let stored = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<RolloutState>(&bytes) {
                Ok(state) => Some(state),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "the stored rollout is unreadable: it is not resumed");
                    None
                }
            },
            Err(_) => None,
        };
        let admin = Arc::new(Self {
            traffic,
            metrics,
            stats,
            loader,
            token,
            addr,
            state_dir,
            loaded: tokio::sync::Mutex::new(serving),
            rollout: Mutex::new(stored.clone()),
            abort: tokio::sync::Notify::new(),
            control: tokio::sync::Mutex::new(()),
        });
        match stored.filter(|s| s.status == Status::Running) {
            Some(state) => {
                // A rollout was running: its split again, and on with its steps.
                let weights = split_of(&state, state.weight());
                tracing::info!(release = %state.plan.release, step = state.step, "resuming the rollout");
                let control = admin.control.lock().await;
                match admin
                    .apply(weights, "rollout", "resumed after a restart")
                    .await
                {
                    Ok(()) => {
                        drop(control);
                        let runner = admin.clone();
                        tokio::spawn(async move { runner.run_rollout().await });
                    }
                    Err((_, reason)) => admin.end_rollout(Status::RolledBack(reason)).await,
                }
            }
            None => admin.restore_last_split().await,
        }
        admin
    }

    /// Puts the split stored by the last change back in force, unless it is the one serving.
    async fn restore_last_split(&self) {
        let path = self.state_dir.join("traffic.json");
        let Ok(bytes) = std::fs::read(&path) else {
            return;
        };
        let split: BTreeMap<String, u32> = match serde_json::from_slice(&bytes) {
            Ok(split) => split,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "the stored traffic split is unreadable: not restored");
                return;
            }
        };
        let live: BTreeMap<String, u32> = (split.iter())
            .filter(|(_, w)| **w > 0)
            .map(|(l, w)| (l.clone(), *w))
            .collect();
        let serving: BTreeMap<String, u32> = (self.traffic.current().weights())
            .map(|(r, w)| (r.label.clone(), w))
            .collect();
        if live == serving {
            return;
        }
        let _control = self.control.lock().await;
        tracing::info!(split = ?live, "restoring the last traffic split");
        if let Err((_, e)) = self
            .apply(split, "startup", "restored after a restart")
            .await
        {
            tracing::error!(error = %e, "the last traffic split could not be restored: serving the release given at startup");
        }
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Every byte compared, whatever the first difference.
        given.len() == self.token.len()
            && given
                .bytes()
                .zip(self.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// The split in force, as JSON.
    fn current(&self) -> serde_json::Value {
        let split = self.traffic.current();
        let releases: Vec<_> = split
            .weights()
            .map(|(release, weight)| json!({ "release": release.label, "weight": weight }))
            .collect();
        json!({ "releases": releases })
    }

    fn running(&self) -> Option<RolloutState> {
        self.rollout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|s| s.status == Status::Running)
    }

    /// Puts the split `wanted` in force (loading what is not live), records it in the audit
    /// log as done by `actor` for `reason`, or says why not.
    async fn apply(
        &self,
        wanted: BTreeMap<String, u32>,
        actor: &str,
        reason: &str,
    ) -> Result<(), Refusal> {
        if let Some((label, weight)) = wanted.iter().find(|(_, w)| **w > 100) {
            return Err(bad(format!(
                "release `{label}`: weight {weight} is over 100"
            )));
        }
        let total: u32 = wanted.values().sum();
        if total != 100 {
            return Err(bad(format!("the weights add up to {total}, not 100")));
        }
        let mut loaded = self.loaded.lock().await;
        let mut releases = Vec::new();
        for (label, weight) in wanted.iter().filter(|(_, w)| **w > 0) {
            let release = match loaded.iter().find(|r| r.label == *label) {
                Some(release) => release.clone(),
                None => {
                    let loader = self.loader.clone();
                    let name = label.clone();
                    let app = tokio::task::spawn_blocking(move || loader(&name))
                        .await
                        .map_err(|e| bad(format!("loading release `{label}`: {e}")))?
                        .map_err(|e| bad(format!("cannot load release `{label}`: {e}")))?;
                    // Loaded is not enough: what it needs (models, stores) must answer, within
                    // [`READY_WITHIN`].
                    let started = std::time::Instant::now();
                    while let Err(e) = app.readiness() {
                        if started.elapsed() >= READY_WITHIN {
                            return Err(bad(format!("release `{label}` is not ready: {e}")));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    app.set_address(self.addr);
                    Arc::new(Release {
                        label: label.clone(),
                        app: Arc::new(app),
                    })
                }
            };
            releases.push((release, *weight));
        }
        let split = Split::weighted(releases).map_err(bad)?;
        // The split's releases become the most recent; the oldest beyond the limit unload
        // (once their last requests end).
        for (release, _) in split.weights() {
            loaded.retain(|r| r.label != release.label);
            loaded.push(release.clone());
        }
        let excess = loaded
            .len()
            .saturating_sub(KEEP_LOADED.max(split.weights().count()));
        loaded.drain(..excess);
        for (label, weight) in &wanted {
            self.metrics.set_traffic(label, *weight);
        }
        for (old, _) in self.traffic.current().weights() {
            if !wanted.contains_key(&old.label) {
                self.metrics.set_traffic(&old.label, 0);
            }
        }
        self.traffic.set(split);
        self.keep(
            "traffic.json",
            &wanted,
            "traffic split not stored: a restart would not restore it",
        );
        self.audit(json!({ "actor": actor, "split": wanted, "reason": reason }));
        Ok(())
    }

    /// Writes `value` as JSON to `name` in the state directory through a temporary file and a
    /// rename, so a restart never reads half of it; a failure is logged as `lost`.
    fn keep(&self, name: &str, value: &impl serde::Serialize, lost: &str) {
        let path = self.state_dir.join(name);
        let tmp = self.state_dir.join(format!("{name}.tmp"));
        let written = serde_json::to_vec_pretty(value)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "{lost}");
        }
    }

    /// Appends `entry` (with the time) to the audit log; a failure is logged, not fatal.
    fn audit(&self, mut entry: serde_json::Value) {
        entry["at"] = json!(now());
        let path = self.state_dir.join("traffic-audit.jsonl");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{entry}"));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "traffic audit entry not written");
        }
        tracing::info!(change = %entry, "traffic changed");
    }

    /// Stores the rollout's state (atomically), so a restart resumes it.
    fn save(&self, state: &RolloutState) {
        self.keep(
            "rollout.json",
            state,
            "rollout state not stored: a restart would not resume it",
        );
        *self.rollout.lock().unwrap_or_else(|e| e.into_inner()) = Some(state.clone());
    }

    /// Starts a rollout of `plan`, or says why not.
    async fn start_rollout(self: &Arc<Self>, plan: Plan) -> Result<RolloutState, Refusal> {
        plan.check().map_err(bad)?;
        let _control = self.control.lock().await;
        if let Some(running) = self.running() {
            return Err((
                StatusCode::CONFLICT,
                format!(
                    "the rollout of `{}` is running: abort it first",
                    running.plan.release
                ),
            ));
        }
        let stable = self
            .traffic
            .current()
            .weights()
            .max_by_key(|(_, w)| *w)
            .map(|(r, _)| r.label.clone())
            .unwrap_or_default();
        if stable == plan.release {
            return Err(bad(format!("`{stable}` is already the stable release")));
        }
        let state = RolloutState {
            plan,
            stable,
            step: 0,
            status: Status::Running,
            started: now(),
            history: Vec::new(),
        };
        // The canary is loaded before it gets traffic; one that cannot load never does.
        self.apply(
            split_of(&state, state.weight()),
            "rollout",
            "rollout started",
        )
        .await?;
        self.save(&state);
        let admin = self.clone();
        tokio::spawn(async move { admin.run_rollout().await });
        Ok(state)
    }

    /// Steps the running rollout until it is promoted, rolled back or aborted.
    async fn run_rollout(self: Arc<Self>) {
        let Some(mut state) = self.running() else {
            return;
        };
        let canary = state.plan.release.clone();
        let stable = state.stable.clone();
        let interval = Duration::from_millis(state.plan.interval_ms);
        self.stats.take(&[&canary, &stable]);
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.abort.notified() => return,
            }
            let _control = self.control.lock().await;
            if self.running().is_none() {
                return;
            }
            let analysis = &state.plan.analysis;
            // Too few canary requests to judge: the step goes on.
            if self.stats.peek(&canary).requests < analysis.min_requests {
                continue;
            }
            let mut windows = self.stats.take(&[&canary, &stable]).into_iter();
            let (c, s) = (
                windows.next().unwrap_or_default(),
                windows.next().unwrap_or_default(),
            );
            let judged = analysis.judge(&c, &s);
            state.history.push(Verdict {
                at: now(),
                weight: state.weight(),
                passed: judged.is_ok(),
                reason: judged.clone().unwrap_or_else(|e| e),
                canary: c,
                stable: s,
            });
            match judged {
                Err(reason) => {
                    let reason = format!("step {} ({}%): {reason}", state.step + 1, state.weight());
                    self.save(&state);
                    return self.end_rollout(Status::RolledBack(reason)).await;
                }
                Ok(_) if state.plan.steps[state.step + 1] == 100 => {
                    self.save(&state);
                    return self.end_rollout(Status::Promoted).await;
                }
                Ok(_) => {
                    state.step += 1;
                    let weights = split_of(&state, state.weight());
                    let reason = format!("step {} passed", state.step);
                    if let Err((_, e)) = self.apply(weights, "rollout", &reason).await {
                        return self.end_rollout(Status::RolledBack(e)).await;
                    }
                    self.save(&state);
                }
            }
        }
    }

    /// Ends the rollout with `status`: all traffic to the canary when promoted, else back
    /// to the stable release. The caller holds `control`.
    async fn end_rollout(&self, status: Status) {
        let Some(mut state) = self
            .rollout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        state.status = status;
        let reason = match &state.status {
            Status::Promoted => "promoted: every step passed".to_string(),
            Status::RolledBack(reason) => format!("rolled back: {reason}"),
            Status::Aborted => "aborted".to_string(),
            Status::Running => "running".to_string(),
        };
        let weights = split_of(&state, state.weight());
        if let Err((_, e)) = self.apply(weights, "rollout", &reason).await {
            tracing::error!(error = %e, "the rollout's last split could not be applied");
        }
        if state.status == Status::Promoted {
            state.stable = state.plan.release.clone();
        }
        tracing::info!(release = %state.plan.release, "rollout {reason}");
        self.save(&state);
    }

    /// Aborts the running rollout.
    async fn abort_rollout(&self) -> Result<RolloutState, Refusal> {
        let _control = self.control.lock().await;
        if self.running().is_none() {
            return Err((StatusCode::CONFLICT, "no rollout is running".into()));
        }
        self.abort.notify_waiters();
        self.end_rollout(Status::Aborted).await;
        self.rollout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or((StatusCode::CONFLICT, "no rollout".into()))
    }
}

/// The split of a rollout in `state` with the canary at `weight`.
fn split_of(state: &RolloutState, weight: u32) -> BTreeMap<String, u32> {
    let mut split = BTreeMap::from([(state.stable.clone(), 100 - weight)]);
    *split.entry(state.plan.release.clone()).or_default() += weight;
    split
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Answers a request to `/admin/...`.
pub async fn respond(
    admin: Option<&Arc<TrafficAdmin>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let Some(admin) = admin else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({ "error": "traffic changes are off: start `vitrine up` with --traffic-token (or VITRINE_TRAFFIC_TOKEN)" }),
        );
    };
    let path = req.uri().path().to_string();
    if path != "/admin/traffic" && path != "/admin/rollout" {
        return answer(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no admin resource `{path}` (there are /admin/traffic and /admin/rollout)") }),
        );
    }
    if !admin.authorized(&req) {
        let mut response = answer(
            StatusCode::UNAUTHORIZED,
            json!({ "error": "missing or wrong bearer token" }),
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
        return response;
    }
    let method = req.method().clone();
    let refused = |(status, message): Refusal| answer(status, json!({ "error": message }));
    match (path.as_str(), method) {
        ("/admin/traffic", Method::GET) => answer(StatusCode::OK, admin.current()),
        ("/admin/traffic", Method::PUT) => {
            let wanted: BTreeMap<String, u32> =
                match body(req, "{\"<release>\": <weight 0-100>, ...}").await {
                    Ok(wanted) => wanted,
                    Err(refusal) => return refused(refusal),
                };
            let _control = admin.control.lock().await;
            if let Some(running) = admin.running() {
                return refused((
                    StatusCode::CONFLICT,
                    format!(
                        "the rollout of `{}` is running: abort it first (DELETE /admin/rollout)",
                        running.plan.release
                    ),
                ));
            }
            match admin.apply(wanted, "admin", "PUT /admin/traffic").await {
                Ok(()) => answer(StatusCode::OK, admin.current()),
                Err(refusal) => refused(refusal),
            }
        }
        ("/admin/rollout", Method::GET) => {
            match admin
                .rollout
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                Some(state) => answer(StatusCode::OK, rollout_json(admin, &state)),
                None => refused((StatusCode::NOT_FOUND, "no rollout yet".into())),
            }
        }
        ("/admin/rollout", Method::POST) => {
            let plan: Plan = match body(
                req,
                "a plan {\"release\", \"steps\", \"interval_ms\", \"analysis\"}",
            )
            .await
            {
                Ok(plan) => plan,
                Err(refusal) => return refused(refusal),
            };
            match admin.start_rollout(plan).await {
                Ok(state) => answer(StatusCode::CREATED, rollout_json(admin, &state)),
                Err(refusal) => refused(refusal),
            }
        }
        ("/admin/rollout", Method::DELETE) => match admin.abort_rollout().await {
            Ok(state) => answer(StatusCode::OK, rollout_json(admin, &state)),
            Err(refusal) => refused(refusal),
        },
        (_, _) => {
            let allow = match path.as_str() {
                "/admin/traffic" => "GET, PUT",
                _ => "GET, POST, DELETE",
            };
            let mut response = answer(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({ "error": format!("use {allow}") }),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, allow.parse().expect("valid"));
            response
        }
    }
}

/// A rollout's state with the split in force and the current windows.
fn rollout_json(admin: &TrafficAdmin, state: &RolloutState) -> serde_json::Value {
    let mut value = serde_json::to_value(state).unwrap_or_default();
    value["weights"] = admin.current()["releases"].clone();
    value["window"] = json!({
        "canary": admin.stats.peek(&state.plan.release),
        "stable": admin.stats.peek(&state.stable),
    });
    value
}

/// The JSON body of `req` as a `T` (`expected` describes it in the error).
async fn body<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    expected: &str,
) -> Result<T, Refusal> {
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {MAX_BODY} bytes"),
            ))
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("expected {expected}: {e}")))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}
