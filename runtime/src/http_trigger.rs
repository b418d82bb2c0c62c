//! The HTTP trigger: serves an [`App`] as Spin does — most specific route, Spin's request
//! headers, the full URL — with a fresh instance per request, body limit (413), deadline (504),
//! metrics, and a graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;
use wasmtime::Trap;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::app::{App, LoadedComponent};
use crate::cpu_gate::CpuGate;
use crate::guest_log::MetricSink;
use crate::metrics::{admin_response, Metrics};
use crate::rollout::ReleaseStats;
use crate::routes::{RouteMatch, RoutePattern};
use crate::traffic::{Release, Split, StickyKey, Traffic, OVERRIDE_HEADER};
use crate::traffic_admin::{ReleaseLoader, TrafficAdmin};

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The label of an application served from its sources rather than from a stored release.
pub const LOCAL_RELEASE: &str = "local";

/// A bound server, ready to run.
pub struct Server {
    traffic: Arc<Traffic>,
    sticky: Arc<StickyKey>,
    stats: Arc<ReleaseStats>,
    metrics: Arc<Metrics>,
    cpu: Arc<CpuGate>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    traffic_admin: Option<Arc<TrafficAdmin>>,
}

impl Server {
    /// Binds the application listener and, if given, the admin listener (metrics, health),
    /// to serve `app` as release [`LOCAL_RELEASE`].
    pub async fn bind(
        app: App,
        addr: SocketAddr,
        admin: Option<SocketAddr>,
    ) -> std::io::Result<Self> {
        Self::bind_release(LOCAL_RELEASE, app, addr, admin).await
    }

    /// As [`Self::bind`], serving `app` as release `label`.
    pub async fn bind_release(
        label: &str,
        app: App,
        addr: SocketAddr,
        admin: Option<SocketAddr>,
    ) -> std::io::Result<Self> {
        let listener = bind(addr, "the application").await?;
        let admin = match admin {
            Some(addr) => Some(bind(addr, "the admin endpoints (metrics, health)").await?),
            None => None,
        };
        app.set_address(listener.local_addr()?);
        let metrics = Metrics::new(|registry| app.register_metrics(registry));
        metrics.set_traffic(label, 100);
        let release = Release {
            label: label.to_string(),
            app: Arc::new(app),
        };
        // One turn per worker thread, shared by every release this server runs.
        let turns = tokio::runtime::Handle::current().metrics().num_workers();
        let cpu = CpuGate::new(turns, metrics.guests_waiting());
        Ok(Self {
            traffic: Arc::new(Traffic::new(Split::single(release))),
            sticky: Arc::new(StickyKey::default()),
            stats: Arc::new(ReleaseStats::default()),
            metrics: Arc::new(metrics),
            cpu,
            listener,
            admin,
            traffic_admin: None,
        })
    }

    /// Lets the admin listener change the traffic split and run rollouts (`/admin/traffic`,
    /// `/admin/rollout`, bearer `token`), loading releases with `loader` and keeping records
    /// in `state_dir`: a rollout that was running there resumes, else the last split is
    /// restored, before this returns.
    pub async fn traffic_admin(
        mut self,
        loader: ReleaseLoader,
        token: String,
        state_dir: &std::path::Path,
    ) -> std::io::Result<Self> {
        let addr = self.listener.local_addr()?;
        self.traffic_admin = Some(
            TrafficAdmin::start(
                self.traffic.clone(),
                self.metrics.clone(),
                self.stats.clone(),
                loader,
                token,
                addr,
                state_dir.to_path_buf(),
            )
            .await,
        );
        Ok(self)
    }

    /// Reads requests' sticky keys (which keep a shopper on one release) from `key`.
    pub fn sticky(mut self, key: StickyKey) -> Self {
        self.sticky = Arc::new(key);
        self
    }

    /// The traffic split, to change it from the embedding program.
    pub fn traffic(&self) -> Arc<Traffic> {
        self.traffic.clone()
    }

    /// Where the application is served.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where metrics and health are served, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then stops accepting and drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Server {
            traffic,
            sticky,
            stats,
            metrics,
            cpu,
            listener,
            admin,
            traffic_admin,
        } = self;
        if let Some(admin) = admin {
            tokio::spawn(serve_admin(
                admin,
                metrics.clone(),
                traffic.clone(),
                traffic_admin,
            ));
        }
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // With a timer, hyper drops connections whose request headers take over 30 s.
        builder.http1().timer(TokioTimer::new());
        tokio::pin!(shutdown);
        loop {
            let (stream, client) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let routing = Routing {
                traffic: traffic.clone(),
                sticky: sticky.clone(),
                stats: stats.clone(),
                cpu: cpu.clone(),
            };
            let metrics = metrics.clone();
            let service = service_fn(move |req| {
                let (routing, metrics) = (routing.clone(), metrics.clone());
                async move { Ok::<_, Infallible>(handle(&routing, &metrics, req, client).await) }
            });
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, %client, "connection ended with an error");
                }
            });
        }
        drop(listener);
        tracing::info!("shutting down: waiting for in-flight requests");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all requests drained"),
            () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("gave up waiting for in-flight requests"),
        }
        Ok(())
    }
}

/// Binds `addr`; the error names the address and what it was for.
async fn bind(addr: SocketAddr, purpose: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for {purpose}: {e}"),
        )
    })
}

async fn serve_admin(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    traffic: Arc<Traffic>,
    traffic_admin: Option<Arc<TrafficAdmin>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, traffic, traffic_admin) =
            (metrics.clone(), traffic.clone(), traffic_admin.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (metrics, traffic, traffic_admin) =
                    (metrics.clone(), traffic.clone(), traffic_admin.clone());
                async move {
                    if req.uri().path().starts_with("/admin/") {
                        return Ok::<_, Infallible>(
                            crate::traffic_admin::respond(traffic_admin.as_ref(), req).await,
                        );
                    }
                    let ready = || {
                        let split = traffic.current();
                        let ready = split.weights().try_for_each(|(release, _)| {
                            release
                                .app
                                .readiness()
                                .map_err(|e| format!("release `{}`: {e}", release.label))
                        });
                        ready
                    };
                    Ok(admin_response(&metrics, ready, &req))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A short unique id for each request: in logs, and in the response header the manifest names.
fn next_request_id() -> Arc<str> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32)
    });
    format!("{prefix:08x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed)).into()
}

fn text_response(status: StatusCode, message: String) -> Response<HyperOutgoingBody> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(
            Full::new(Bytes::from(message + "\n"))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("static response parts are valid")
}

/// What picks a request's release and records its outcome per release.
#[derive(Clone)]
struct Routing {
    traffic: Arc<Traffic>,
    sticky: Arc<StickyKey>,
    stats: Arc<ReleaseStats>,
    cpu: Arc<CpuGate>,
}

async fn handle(
    routing: &Routing,
    metrics: &Arc<Metrics>,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Response<HyperOutgoingBody> {
    let started = Instant::now();
    let _in_flight = metrics.in_flight();
    let request_id = next_request_id();
    let release = {
        let wanted = req
            .headers()
            .get(OVERRIDE_HEADER)
            .and_then(|v| v.to_str().ok());
        let key = routing.sticky.of(req.headers(), req.uri().query());
        routing
            .traffic
            .current()
            .pick(wanted, key, request_id.as_bytes())
            .clone()
    };
    let app: &App = &release.app;
    let path = req.uri().path().to_string();
    let (component_id, mut response) = match app.route(&path) {
        None => (
            "-".into(),
            text_response(StatusCode::NOT_FOUND, format!("no route matches {path}")),
        ),
        Some((pattern, component, matched)) => {
            let span = tracing::info_span!(
                "request",
                id = %request_id,
                component = %component.id,
                method = %req.method(),
                path = %path,
            );
            let sink: MetricSink = {
                let (stats, label) = (routing.stats.clone(), release.label.clone());
                let exported = metrics.clone();
                Arc::new(move |name: &str, value: f64| {
                    stats.record_metric(&label, name, value);
                    exported.record_business(&label, name, value);
                })
            };
            let observed = Observed {
                request_id: &request_id,
                metrics,
                business_metrics: sink,
                cpu: &routing.cpu,
            };
            let response = serve(component, pattern, matched, req, client, observed)
                .instrument(span)
                .await;
            (component.id.clone(), response)
        }
    };
    if let (Some(name), Ok(id)) = (&app.request_id_header, HeaderValue::from_str(&request_id)) {
        response.headers_mut().insert(name.clone(), id);
    }
    let elapsed = started.elapsed();
    metrics.record_request(&component_id, &release.label, response.status(), elapsed);
    (routing.stats).record(&release.label, response.status().as_u16(), elapsed);
    tracing::debug!(id = %request_id, status = response.status().as_u16(), ?elapsed, "answered");
    response
}

/// Adds the `spin-*` headers and turns the URI into the full URL the guest sees.
fn prepare_request(
    req: &mut Request<Incoming>,
    pattern: &RoutePattern,
    matched: &RouteMatch,
    client: SocketAddr,
) -> Result<(), String> {
    let host = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        // Like Spin, a request without a Host header is taken as addressed to `localhost`.
        .unwrap_or_else(|| "localhost".to_string());
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let full_url = format!("http://{host}{path_and_query}");
    let uri: Uri = full_url
        .parse()
        .map_err(|_| format!("invalid Host header `{host}`"))?;
    let client = client.to_string();
    let mut spin_headers: Vec<(HeaderName, &str)> = vec![
        (
            HeaderName::from_static("spin-path-info"),
            &matched.path_info,
        ),
        (HeaderName::from_static("spin-full-url"), &full_url),
        (
            HeaderName::from_static("spin-matched-route"),
            pattern.as_str(),
        ),
        (HeaderName::from_static("spin-base-path"), "/"),
        (
            HeaderName::from_static("spin-raw-component-route"),
            pattern.as_str(),
        ),
        (
            HeaderName::from_static("spin-component-route"),
            pattern.prefix(),
        ),
        (HeaderName::from_static("spin-client-addr"), &client),
    ];
    for (name, value) in &matched.params {
        // Spin's header for `:user_id` is `spin-path-match-user-id`.
        let name = format!("spin-path-match-{}", name.replace('_', "-")).to_ascii_lowercase();
        let name = HeaderName::try_from(name).map_err(|e| e.to_string())?;
        spin_headers.push((name, value));
    }
    let headers = req.headers_mut();
    for (name, value) in spin_headers {
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("`{value}` cannot be a header value"))?;
        // The runtime's value replaces any a client sent under the same name, so a guest
        // never sees a forged one; other `spin-*` request headers pass through, as in Spin.
        headers.insert(name, value);
    }
    *req.uri_mut() = uri;
    Ok(())
}

/// What records a request: its id (in logs), the runtime's metrics, and where its guest's
/// business metrics go.
struct Observed<'a> {
    request_id: &'a Arc<str>,
    metrics: &'a Arc<Metrics>,
    business_metrics: MetricSink,
    cpu: &'a Arc<CpuGate>,
}

/// Runs one request through a fresh instance of `component`.
async fn serve(
    component: &Arc<LoadedComponent>,
    pattern: &RoutePattern,
    matched: RouteMatch,
    mut req: Request<Incoming>,
    client: SocketAddr,
    observed: Observed<'_>,
) -> Response<HyperOutgoingBody> {
    let Observed {
        request_id,
        metrics,
        business_metrics,
        cpu,
    } = observed;
    let limits = component.limits;
    let declared_length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > limits.max_request_body) {
        return too_large(limits.max_request_body);
    }
    if let Err(problem) = prepare_request(&mut req, pattern, &matched, client) {
        return text_response(StatusCode::BAD_REQUEST, problem);
    }

    // The body streams to the guest; going over the limit mid-stream fails the read and
    // turns the answer into 413.
    let exceeded = Arc::new(AtomicBool::new(false));
    let req = {
        let exceeded = exceeded.clone();
        let limit = limits.max_request_body;
        req.map(move |body| {
            Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).map_err(move |e| {
                if e.is::<LengthLimitError>() {
                    exceeded.store(true, Ordering::Relaxed);
                    wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit))
                } else {
                    match e.downcast::<hyper::Error>() {
                        Ok(e) => wasmtime_wasi_http::Error::Hyper(*e),
                        Err(e) => wasmtime_wasi_http::Error::InternalError(Some(e.to_string())),
                    }
                }
            })
        })
    };

    let mut store = component.new_store(request_id, Some(business_metrics));
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let prepared = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .and_then(|incoming| {
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok((incoming, out))
        });
    let (incoming, out) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("invalid request: {e}")),
    };

    let pre = component.pre().clone();
    let id = component.id.clone();
    let instantiation_metrics = metrics.clone();
    let cpu = cpu.clone();
    let task = tokio::spawn(
        async move {
            let run = cpu.run(async {
                let started = Instant::now();
                let proxy = pre.instantiate_async(&mut store).await?;
                instantiation_metrics.record_instantiation(&id, started.elapsed());
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, out)
                    .await
            });
            let result = tokio::time::timeout(limits.timeout, run).await;
            (result, store.data().memory_exceeded())
        }
        .in_current_span(),
    );

    let outcome = receiver.await;
    if exceeded.load(Ordering::Relaxed) {
        return too_large(limits.max_request_body);
    }
    let failure = match outcome {
        Ok(Ok(response)) => return response,
        Ok(Err(code)) => {
            tracing::warn!(?code, "component answered with an error code");
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{}` failed: {code:?}", component.id),
            );
        }
        // The guest never set a response: find out why.
        Err(_) => task.await,
    };
    if exceeded.load(Ordering::Relaxed) {
        return too_large(limits.max_request_body);
    }
    failure_response(component, failure)
}

/// How a request's instance ended without a response: the deadline passed, the instance pool
/// was full, the memory limit was hit, the guest trapped or returned without answering.
type Failure = Result<
    (
        Result<wasmtime::Result<()>, tokio::time::error::Elapsed>,
        bool,
    ),
    tokio::task::JoinError,
>;

/// The answer for a request whose component gave none, and why (see [`Failure`]).
fn failure_response(component: &LoadedComponent, failure: Failure) -> Response<HyperOutgoingBody> {
    let limits = component.limits;
    let id = &component.id;
    let timed_out = || {
        text_response(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "component `{id}` did not answer within {:?}",
                limits.timeout
            ),
        )
    };
    let failed = |reason: String| {
        text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("component `{id}` {reason}"),
        )
    };
    match failure {
        Ok((Err(_elapsed), _)) => timed_out(),
        Ok((Ok(Err(e)), memory_exceeded)) => {
            if let Some(full) = e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
                tracing::warn!(error = %full, "instance pool exhausted");
                let mut busy = text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("server busy: {full}; retry shortly"),
                );
                busy.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                busy
            } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                timed_out()
            } else if memory_exceeded {
                tracing::warn!("component exceeded its memory limit");
                failed(format!(
                    "exceeded its memory limit of {} MiB",
                    limits.memory >> 20
                ))
            } else {
                tracing::warn!(error = ?e, "component failed");
                let reason = e
                    .downcast_ref::<Trap>()
                    .map_or_else(|| e.to_string(), |t| format!("trap: {t}"));
                failed(format!("failed: {reason}"))
            }
        }
        Ok((Ok(Ok(())), _)) => failed("returned without sending a response".into()),
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            failed("failed".into())
        }
    }
}

fn too_large(limit: u64) -> Response<HyperOutgoingBody> {
    text_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than the limit of {limit} bytes"),
    )
}
