//! Prometheus metrics of the worker: queue depth, batch sizes, queue and compute time,
//! inferences and errors, per model.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    model: String,
    kind: String,
}

/// The worker's metrics registry.
pub struct Metrics {
    registry: Registry,
    queue_depth: Family<ModelLabel, Gauge<i64, AtomicI64>>,
    batch_size: Family<ModelLabel, Histogram>,
    queue_time: Family<ModelLabel, Histogram>,
    compute_time: Family<ModelLabel, Histogram>,
    inferences: Family<ModelLabel, Counter>,
    batches: Family<ModelLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
}

fn seconds_histogram() -> Histogram {
    // 10 µs … ~10 s.
    Histogram::new(exponential_buckets(0.00001, 2.0, 21))
}

fn batch_histogram() -> Histogram {
    // 1, 2, 4, … 1024 rows.
    Histogram::new(exponential_buckets(1.0, 2.0, 11))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vitrine_worker");
        let queue_depth = Family::default();
        let batch_size = Family::new_with_constructor(batch_histogram as fn() -> Histogram);
        let queue_time = Family::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let compute_time = Family::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let inferences = Family::default();
        let batches = Family::default();
        let errors = Family::default();
        registry.register(
            "queue_depth",
            "Requests waiting in the model's queue",
            queue_depth.clone(),
        );
        registry.register("batch_size", "Rows per computed batch", batch_size.clone());
        registry.register(
            "queue_duration_seconds",
            "Time a request waited in the queue before its batch started",
            queue_time.clone(),
        );
        registry.register(
            "compute_duration_seconds",
            "Time to compute one batch",
            compute_time.clone(),
        );
        registry.register(
            "inferences",
            "Requests answered with outputs",
            inferences.clone(),
        );
        registry.register("batches", "Batches computed", batches.clone());
        registry.register("errors", "Requests that failed, by kind", errors.clone());
        Self {
            registry,
            queue_depth,
            batch_size,
            queue_time,
            compute_time,
            inferences,
            batches,
            errors,
        }
    }
}

impl Metrics {
    fn label(model: &str) -> ModelLabel {
        ModelLabel {
            model: model.to_string(),
        }
    }

    /// Sets the number of queued requests of `model`.
    pub fn set_queue_depth(&self, model: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&Self::label(model))
            .set(depth as i64);
    }

    /// Records a computed batch of `rows` serving `requests` requests.
    pub fn record_batch(&self, model: &str, rows: usize, requests: usize, compute: Duration) {
        let label = Self::label(model);
        self.batch_size.get_or_create(&label).observe(rows as f64);
        self.compute_time
            .get_or_create(&label)
            .observe(compute.as_secs_f64());
        self.batches.get_or_create(&label).inc();
        self.inferences
            .get_or_create(&label)
            .inc_by(requests as u64);
    }

    /// Records how long a request waited before its batch started.
    pub fn record_queue_time(&self, model: &str, waited: Duration) {
        self.queue_time
            .get_or_create(&Self::label(model))
            .observe(waited.as_secs_f64());
    }

    /// Counts a failed request.
    pub fn record_error(&self, model: &str, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                model: model.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
