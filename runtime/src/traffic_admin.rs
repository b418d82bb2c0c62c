//! `/admin/traffic` on the admin listener: the traffic split, read (`GET`) and changed (`PUT`
//! `{"v1": 95, "v2": 5}`), with `Authorization: Bearer <token>`. Releases not live yet are
//! loaded and pre-instantiated before the split changes, so one that fails to load never gets
//! traffic; releases left out (or weighted 0) stop getting new requests at once. The last
//! [`KEEP_LOADED`] releases that served stay loaded, so a rollback is instant.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::app::App;
use crate::traffic::{Release, Split, Traffic};

/// Loads a stored release by label or digest, ready to serve (the error says why not).
pub type ReleaseLoader = Arc<dyn Fn(&str) -> Result<App, String> + Send + Sync>;

/// Largest `PUT /admin/traffic` body.
const MAX_BODY: usize = 64 * 1024;

/// How many recently served releases stay loaded.
pub const KEEP_LOADED: usize = 4;

/// What `/admin/traffic` needs.
pub struct TrafficAdmin {
    traffic: Arc<Traffic>,
    loader: ReleaseLoader,
    token: String,
    /// The application's address, for the loaded releases' self-requests.
    addr: SocketAddr,
    /// Releases that served recently, most recent last (one change at a time holds it).
    loaded: tokio::sync::Mutex<Vec<Arc<Release>>>,
}

impl TrafficAdmin {
    /// Changes `traffic`, loading releases with `loader`, for requests bearing `token`.
    pub fn new(
        traffic: Arc<Traffic>,
        loader: ReleaseLoader,
        token: String,
        addr: SocketAddr,
    ) -> Self {
        let serving = traffic
            .current()
            .weights()
            .map(|(r, _)| r.clone())
            .collect();
        Self {
            traffic,
            loader,
            token,
            addr,
            loaded: tokio::sync::Mutex::new(serving),
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

    /// Puts the split `wanted` in force (loading what is not live), or says why not.
    async fn change(&self, wanted: BTreeMap<String, u32>) -> Result<(), (StatusCode, String)> {
        let bad = |message: String| (StatusCode::BAD_REQUEST, message);
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
        for (label, weight) in wanted.into_iter().filter(|(_, w)| *w > 0) {
            let release = match loaded.iter().find(|r| r.label == label) {
                Some(release) => release.clone(),
                None => {
                    let loader = self.loader.clone();
                    let name = label.clone();
                    let app = tokio::task::spawn_blocking(move || loader(&name))
                        .await
                        .map_err(|e| bad(format!("loading release `{label}`: {e}")))?
                        .map_err(|e| bad(format!("cannot load release `{label}`: {e}")))?;
                    app.set_address(self.addr);
                    Arc::new(Release {
                        label,
                        app: Arc::new(app),
                    })
                }
            };
            releases.push((release, weight));
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
        self.traffic.set(split);
        Ok(())
    }
}

/// Answers a request to `/admin/...`.
pub async fn respond(
    admin: Option<&TrafficAdmin>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let Some(admin) = admin else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({ "error": "traffic changes are off: start `vitrine up` with --admin-token (or VITRINE_ADMIN_TOKEN)" }),
        );
    };
    if req.uri().path() != "/admin/traffic" {
        return answer(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no admin resource `{}` (there is /admin/traffic)", req.uri().path()) }),
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
    match *req.method() {
        Method::GET => answer(StatusCode::OK, admin.current()),
        Method::PUT => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    return answer(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        json!({ "error": format!("the body is over {MAX_BODY} bytes") }),
                    )
                }
            };
            let wanted: BTreeMap<String, u32> = match serde_json::from_slice(&body) {
                Ok(wanted) => wanted,
                Err(e) => {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        json!({ "error": format!("expected {{\"<release>\": <weight 0-100>, ...}}: {e}") }),
                    )
                }
            };
            match admin.change(wanted).await {
                Ok(()) => answer(StatusCode::OK, admin.current()),
                Err((status, message)) => answer(status, json!({ "error": message })),
            }
        }
        _ => {
            let mut response = answer(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({ "error": "use GET or PUT" }),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, "GET, PUT".parse().expect("valid"));
            response
        }
    }
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}
