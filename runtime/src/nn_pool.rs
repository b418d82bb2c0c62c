//! The worker pool behind `wasi:nn`: inference calls forwarded to Open Inference Protocol v2
//! workers over HTTP (binary tensor extension), balanced by least outstanding requests, with
//! connection reuse, per-call timeouts, health checks, and retry on another worker when a worker
//! fails before answering.
//!
//! The pool knows which models the application needs ([`WorkerPool::require`]) and says whether
//! some worker is ready to serve each ([`WorkerPool::readiness`]), for the runtime's health
//! endpoint. Messages that reach guests (and so clients) name workers by number, never by
//! address; the log has the addresses.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use vitrine_oip::binary::{decode_response, encode_request};
use vitrine_oip::HEADER_LENGTH;

pub use vitrine_oip::{DataType, Tensor};

/// Why a pool call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// The worker rejected the request as malformed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The model does not exist on the workers (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The call did not finish within its timeout, or the worker's deadline passed.
    #[error("{0}")]
    Timeout(String),
    /// The worker is overloaded (HTTP 429).
    #[error("{0}")]
    Busy(String),
    /// No worker could answer, or a worker failed.
    #[error("{0}")]
    Unavailable(String),
}

/// Why a pool could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PoolSetupError {
    /// No worker URL was given.
    #[error("the worker pool needs at least one worker URL")]
    NoWorkers,
    /// A worker URL does not parse.
    #[error("worker URL `{url}`: {source}")]
    Url {
        /// The URL.
        url: String,
        /// Why it does not parse.
        source: http::uri::InvalidUri,
    },
    /// A worker URL is not `http://host:port`.
    #[error("worker URL `{0}` must look like http://host:port")]
    NotHttp(String),
}

/// A failed exchange with a worker, before any answer.
type SendError = Box<dyn std::error::Error + Send + Sync>;

/// `error` and its causes, `: `-separated (hyper's own message is only "client error (Connect)").
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        cause = e.source();
    }
    text
}

/// Settings of the pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Deadline of one inference call, retries included.
    pub timeout: Duration,
    /// How often each worker's `/v2/health/ready` is probed.
    pub health_interval: Duration,
    /// Models whose every call goes to the first worker only: models that keep state of their
    /// own (the fraud GNN's live graph), which several workers would split.
    pub pinned: BTreeSet<String>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            health_interval: Duration::from_secs(1),
            pinned: BTreeSet::new(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    model: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: String,
}

/// The pool's metrics, registered into the runtime's registry by [`WorkerPool::register_metrics`].
struct PoolMetrics {
    calls: Family<CallLabels, Counter>,
    duration: Family<CallLabels, Histogram>,
    retries: Counter,
    healthy: Family<WorkerLabel, Gauge>,
    restarts: Family<WorkerLabel, Counter>,
}

impl PoolMetrics {
    fn new() -> Self {
        Self {
            calls: Family::default(),
            // 50 µs … ~26 s.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.00005, 2.0, 20))
            }),
            retries: Counter::default(),
            healthy: Family::default(),
            restarts: Family::default(),
        }
    }
}

fn outcome(result: &Result<Vec<Tensor>, PoolError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(PoolError::Invalid(_)) => "invalid",
        Err(PoolError::NotFound(_)) => "not_found",
        Err(PoolError::Timeout(_)) => "timeout",
        Err(PoolError::Busy(_)) => "busy",
        Err(PoolError::Unavailable(_)) => "unavailable",
    }
}

struct Endpoint {
    base: String,
    outstanding: AtomicUsize,
    healthy: AtomicBool,
    /// The required models this worker said it is ready to serve at its last probe.
    ready_models: Mutex<BTreeSet<String>>,
}

/// A set of inference workers.
pub struct WorkerPool {
    endpoints: Vec<Endpoint>,
    client: Client<HttpConnector, Full<Bytes>>,
    options: PoolOptions,
    next: AtomicUsize,
    /// Models whose metadata the workers gave, with their `BYTES` inputs.
    known_models: Mutex<HashMap<String, Arc<BTreeSet<String>>>>,
    required: Mutex<BTreeSet<String>>,
    metrics: PoolMetrics,
}

impl WorkerPool {
    /// A pool over the workers at `urls` (`http://host:port`).
    pub fn new(urls: &[String], options: PoolOptions) -> Result<Self, PoolSetupError> {
        if urls.is_empty() {
            return Err(PoolSetupError::NoWorkers);
        }
        let endpoints = urls
            .iter()
            .map(|url| {
                let uri: Uri = url.parse().map_err(|source| PoolSetupError::Url {
                    url: url.clone(),
                    source,
                })?;
                if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                    return Err(PoolSetupError::NotHttp(url.clone()));
                }
                Ok(Endpoint {
                    base: format!("http://{}", uri.authority().unwrap()),
                    outstanding: AtomicUsize::new(0),
                    healthy: AtomicBool::new(true),
                    ready_models: Mutex::new(BTreeSet::new()),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            endpoints,
            client,
            options,
            next: AtomicUsize::new(0),
            known_models: Mutex::new(HashMap::new()),
            required: Mutex::new(BTreeSet::new()),
            metrics: PoolMetrics::new(),
        })
    }

    /// The workers' base URLs (`http://host:port`), in order.
    pub fn urls(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.base.clone()).collect()
    }

    /// Adds models the application needs: [`Self::readiness`] asks that each has a worker.
    pub fn require<'a>(&self, models: impl IntoIterator<Item = &'a String>) {
        self.required
            .lock()
            .unwrap()
            .extend(models.into_iter().cloned());
    }

    /// `Ok` when every required model has a healthy worker that is ready to serve it (as of
    /// the last health probe); otherwise the models without one.
    pub fn readiness(&self) -> Result<(), String> {
        let required = self.required.lock().unwrap().clone();
        let unserved: Vec<String> = required
            .into_iter()
            .filter(|model| {
                !self.endpoints.iter().any(|e| {
                    e.healthy.load(Ordering::Relaxed)
                        && e.ready_models.lock().unwrap().contains(model)
                })
            })
            .collect();
        if unserved.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "no inference worker is ready to serve {}",
                unserved.join(", ")
            ))
        }
    }

    /// Counts a restart of worker number `index` (a supervised local worker that died).
    pub fn record_restart(&self, index: usize) {
        if let Some(endpoint) = self.endpoints.get(index) {
            self.metrics
                .restarts
                .get_or_create(&WorkerLabel {
                    worker: endpoint.base.clone(),
                })
                .inc();
        }
    }

    /// Adds the pool's metrics to `registry` (prefix `nn_`): calls and their duration by model
    /// and outcome, retries, and each worker's health.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let m = &self.metrics;
        registry.register(
            "nn_calls",
            "wasi:nn compute calls, by model and outcome",
            m.calls.clone(),
        );
        registry.register(
            "nn_call_duration_seconds",
            "Time of a wasi:nn compute call through the pool, retries included",
            m.duration.clone(),
        );
        registry.register(
            "nn_retries",
            "Calls retried on another worker",
            m.retries.clone(),
        );
        registry.register(
            "nn_worker_healthy",
            "1 when the worker answered its last health probe",
            m.healthy.clone(),
        );
        registry.register(
            "nn_worker_restarts",
            "Times a supervised local worker died and was started again",
            m.restarts.clone(),
        );
        for e in &self.endpoints {
            m.healthy
                .get_or_create(&WorkerLabel {
                    worker: e.base.clone(),
                })
                .set(1);
        }
    }

    /// Probes every worker's readiness now and then every `health_interval`, on the current
    /// tokio runtime, for as long as the pool lives.
    pub fn start_health_checks(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let interval = self.options.health_interval;
        tokio::spawn(async move {
            loop {
                let Some(pool) = weak.upgrade() else { return };
                pool.check_health().await;
                drop(pool);
                tokio::time::sleep(interval).await;
            }
        });
    }

    async fn check_health(&self) {
        let required = self.required.lock().unwrap().clone();
        for endpoint in &self.endpoints {
            let healthy = self.probe(endpoint, "/v2/health/ready").await;
            let mut ready = BTreeSet::new();
            if healthy {
                for model in &required {
                    if self
                        .probe(endpoint, &format!("/v2/models/{model}/ready"))
                        .await
                    {
                        ready.insert(model.clone());
                    }
                }
            }
            *endpoint.ready_models.lock().unwrap() = ready;
            self.metrics
                .healthy
                .get_or_create(&WorkerLabel {
                    worker: endpoint.base.clone(),
                })
                .set(healthy as i64);
            if endpoint.healthy.swap(healthy, Ordering::Relaxed) != healthy {
                tracing::info!(worker = %endpoint.base, healthy, "worker health changed");
            }
        }
    }

    /// Whether `GET path` on the worker answers 200 within 2 s.
    async fn probe(&self, endpoint: &Endpoint, path: &str) -> bool {
        let probe = self.send(endpoint, Method::GET, path, None, Bytes::new());
        matches!(
            tokio::time::timeout(Duration::from_secs(2), probe).await,
            Ok(Ok((StatusCode::OK, _, _)))
        )
    }

    /// Checks that the workers serve `model` (its metadata, asked once and then remembered);
    /// returns the names of its `BYTES` inputs
    /// ([`vitrine_oip::messages::ModelMetadata::bytes_inputs`]).
    pub async fn check_model(&self, name: &str) -> Result<Arc<BTreeSet<String>>, PoolError> {
        if let Some(known) = self.known_models.lock().unwrap().get(name) {
            return Ok(known.clone());
        }
        let path = format!("/v2/models/{name}");
        let deadline = Instant::now() + self.options.timeout;
        let (_, body) = self
            .call(Method::GET, &path, None, Bytes::new(), deadline, None)
            .await?;
        let metadata: vitrine_oip::messages::ModelMetadata = serde_json::from_slice(&body)
            .map_err(|e| PoolError::Unavailable(format!("invalid metadata of '{name}': {e}")))?;
        let bytes_inputs = Arc::new(metadata.bytes_inputs());
        self.known_models
            .lock()
            .unwrap()
            .insert(name.to_string(), bytes_inputs.clone());
        Ok(bytes_inputs)
    }

    /// Runs `model` on `inputs` on the least busy healthy worker and returns every output.
    pub async fn infer(&self, model: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, PoolError> {
        let started = Instant::now();
        let result = self.infer_once(model, inputs).await;
        let labels = CallLabels {
            model: model.to_string(),
            outcome: outcome(&result),
        };
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics
            .duration
            .get_or_create(&labels)
            .observe(elapsed);
        self.metrics.calls.get_or_create(&labels).inc();
        result
    }

    async fn infer_once(&self, model: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, PoolError> {
        let deadline = Instant::now() + self.options.timeout;
        let mut parameters = vitrine_oip::messages::Parameters::new();
        parameters.insert(
            "timeout".into(),
            json!(self.options.timeout.as_micros() as u64),
        );
        let (body, header_length) = encode_request(&inputs, parameters);
        let path = format!("/v2/models/{model}/infer");
        let only = self.options.pinned.contains(model).then_some(0);
        let (length, response) = self
            .call(
                Method::POST,
                &path,
                Some(header_length),
                body.into(),
                deadline,
                only,
            )
            .await?;
        decode_response(&response, length).map_err(|e| {
            PoolError::Unavailable(format!("worker sent an invalid inference response: {e}"))
        })
    }

    /// Sends a request, retrying on other workers while they fail before answering; `only`
    /// restricts it to one worker.
    async fn call(
        &self,
        method: Method,
        path: &str,
        header_length: Option<usize>,
        body: Bytes,
        deadline: Instant,
        only: Option<usize>,
    ) -> Result<(Option<usize>, Bytes), PoolError> {
        let mut tried: Vec<bool> = (0..self.endpoints.len())
            .map(|i| only.is_some_and(|only| only != i))
            .collect();
        let mut last_failure = String::from("no healthy inference worker");
        while let Some(index) = self.pick(&tried) {
            if tried.iter().any(|t| *t) {
                self.metrics.retries.inc();
            }
            tried[index] = true;
            let endpoint = &self.endpoints[index];
            endpoint.outstanding.fetch_add(1, Ordering::Relaxed);
            let attempt = tokio::time::timeout_at(
                deadline.into(),
                self.send(endpoint, method.clone(), path, header_length, body.clone()),
            )
            .await;
            endpoint.outstanding.fetch_sub(1, Ordering::Relaxed);
            match attempt {
                Err(_) => {
                    tracing::warn!(worker = %endpoint.base, "no answer within the call's timeout");
                    return Err(PoolError::Timeout(format!(
                        "no answer from inference worker #{} within {:?}",
                        index + 1,
                        self.options.timeout
                    )));
                }
                Ok(Err(failure)) => {
                    // The worker failed before answering: try the next one.
                    let failure = with_causes(&*failure);
                    tracing::warn!(worker = %endpoint.base, error = %failure, "worker failed; retrying elsewhere");
                    endpoint.healthy.store(false, Ordering::Relaxed);
                    last_failure = format!("inference worker #{}: {failure}", index + 1);
                }
                Ok(Ok((status, length, body))) if status.is_success() => return Ok((length, body)),
                Ok(Ok((status, _, body))) => {
                    let message = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_string))
                        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                    match status {
                        StatusCode::BAD_REQUEST => return Err(PoolError::Invalid(message)),
                        StatusCode::NOT_FOUND => return Err(PoolError::NotFound(message)),
                        StatusCode::TOO_MANY_REQUESTS => return Err(PoolError::Busy(message)),
                        StatusCode::GATEWAY_TIMEOUT => return Err(PoolError::Timeout(message)),
                        // Not loaded on this worker: another may have it.
                        StatusCode::SERVICE_UNAVAILABLE => last_failure = message,
                        _ => {
                            tracing::warn!(worker = %endpoint.base, %status, %message, "worker failed");
                            return Err(PoolError::Unavailable(format!(
                                "inference worker #{} answered {status}: {message}",
                                index + 1
                            )));
                        }
                    }
                }
            }
        }
        Err(PoolError::Unavailable(format!(
            "no inference worker could answer ({last_failure})"
        )))
    }

    /// The untried worker with the fewest outstanding requests, healthy ones first.
    fn pick(&self, tried: &[bool]) -> Option<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.endpoints.len();
        (0..n)
            .map(|i| (start + i) % n)
            .filter(|i| !tried[*i])
            .min_by_key(|i| {
                let e = &self.endpoints[*i];
                (
                    !e.healthy.load(Ordering::Relaxed),
                    e.outstanding.load(Ordering::Relaxed),
                )
            })
    }

    async fn send(
        &self,
        endpoint: &Endpoint,
        method: Method,
        path: &str,
        header_length: Option<usize>,
        body: Bytes,
    ) -> Result<(StatusCode, Option<usize>, Bytes), SendError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", endpoint.base));
        if let Some(length) = header_length {
            request = request
                .header(HEADER_LENGTH, length)
                .header(http::header::CONTENT_TYPE, "application/octet-stream");
        }
        let request = request.body(Full::new(body))?;
        let response = self.client.request(request).await?;
        let status = response.status();
        let length = response
            .headers()
            .get(HEADER_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, length, body))
    }
}
