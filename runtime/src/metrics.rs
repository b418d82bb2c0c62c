//! Prometheus metrics of the HTTP trigger, and the admin listener that serves them with
//! `/healthz`.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    component: String,
    release: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabel {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReleaseLabels {
    component: String,
    release: String,
}

/// The runtime's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ReleaseLabels, Histogram>,
    instantiation: Family<ComponentLabel, Histogram>,
    in_flight: Gauge<i64, AtomicI64>,
    guests_waiting: Gauge<i64, AtomicI64>,
    traffic_weight: Family<ReleaseLabel, Gauge<i64, AtomicI64>>,
    business_sum: Family<BusinessLabels, Counter<f64, AtomicU64>>,
    business_count: Family<BusinessLabels, Counter>,
    business_label_sets: AtomicUsize,
}

/// At most this many business metric names are exported (guests choose them).
const MAX_BUSINESS_NAMES: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BusinessLabels {
    name: String,
    release: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReleaseLabel {
    release: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~26 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 20))
}

impl Metrics {
    /// The runtime's metrics, plus whatever `register` adds (the worker pool's).
    pub fn new(register: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::with_prefix("vitrine");
        register(&mut registry);
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<ReleaseLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let instantiation = Family::<ComponentLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let in_flight = Gauge::<i64, AtomicI64>::default();
        let guests_waiting = Gauge::<i64, AtomicI64>::default();
        let traffic_weight = Family::<ReleaseLabel, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "traffic_weight_percent",
            "Share of new requests each release gets (0 once it stops getting traffic)",
            traffic_weight.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by component, release and status (component \"-\" when no route matched)",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers, by component and release",
            latency.clone(),
        );
        registry.register(
            "instantiation_duration_seconds",
            "Time to instantiate a component for a request",
            instantiation.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being handled now",
            in_flight.clone(),
        );
        registry.register(
            "guests_waiting_for_cpu",
            "Requests whose guest waits for a turn on a processor (one turn per worker thread)",
            guests_waiting.clone(),
        );
        let business_sum = Family::<BusinessLabels, Counter<f64, AtomicU64>>::default();
        let business_count = Family::<BusinessLabels, Counter>::default();
        registry.register(
            "business_metric_sum",
            "Sum of the values guests reported for a business metric (`vitrine-metric name=value` lines), by name and release",
            business_sum.clone(),
        );
        registry.register(
            "business_metric_reports",
            "Reports of a business metric, by name and release (sum / reports = its mean)",
            business_count.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            instantiation,
            in_flight,
            guests_waiting,
            traffic_weight,
            business_sum,
            business_count,
            business_label_sets: AtomicUsize::new(0),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(|_| {})
    }
}

impl Metrics {
    /// Counts a request to `release` answered with `status` after `elapsed`.
    pub fn record_request(
        &self,
        component: &str,
        release: &str,
        status: StatusCode,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                component: component.to_string(),
                release: release.to_string(),
                status: status.as_u16(),
            })
            .inc();
        self.latency
            .get_or_create(&ReleaseLabels {
                component: component.to_string(),
                release: release.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records how long an instantiation took.
    pub fn record_instantiation(&self, component: &str, elapsed: Duration) {
        self.instantiation
            .get_or_create(&ComponentLabel {
                component: component.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records a business metric a guest of `release` reported. Exported as counters, so only
    /// values ≥ 0 are (the rollout analysis sees all); names beyond the first
    /// [`MAX_BUSINESS_NAMES`] label sets are not.
    pub fn record_business(&self, release: &str, name: &str, value: f64) {
        if !(value >= 0.0 && value.is_finite()) {
            return;
        }
        let labels = BusinessLabels {
            name: name.to_string(),
            release: release.to_string(),
        };
        if self.business_count.get(&labels).is_none()
            && self.business_label_sets.fetch_add(1, Ordering::Relaxed) >= MAX_BUSINESS_NAMES
        {
            self.business_label_sets.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.business_sum.get_or_create(&labels).inc_by(value);
        self.business_count.get_or_create(&labels).inc();
    }

    /// Records that `release` gets `weight` percent of new requests.
    pub fn set_traffic(&self, release: &str, weight: u32) {
        self.traffic_weight
            .get_or_create(&ReleaseLabel {
                release: release.to_string(),
            })
            .set(i64::from(weight));
    }

    /// The gauge of guests waiting for a turn on a processor (`crate::cpu_gate`).
    pub fn guests_waiting(&self) -> Gauge<i64, AtomicI64> {
        self.guests_waiting.clone()
    }

    /// Marks a request as in flight until the guard is dropped.
    pub fn in_flight(self: &Arc<Self>) -> InFlight {
        self.in_flight.inc();
        InFlight(self.clone())
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// Answers the admin endpoints: `GET /metrics`, and `GET /healthz` from `readiness` (`200 ok`,
/// or `503` saying what is missing).
pub fn admin_response<B>(
    metrics: &Metrics,
    readiness: impl FnOnce() -> Result<(), String>,
    req: &Request<B>,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        (&Method::GET, "/healthz") => match readiness() {
            Ok(()) => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            Err(missing) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {missing}\n"),
            ),
        },
        (_, "/metrics" | "/healthz") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "admin endpoints: GET /metrics, GET /healthz\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
