//! The scheduler through the HTTP API, with a model whose speed and output the test controls:
//! dynamic batching under concurrency, deadlines, a full queue, and priority levels.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use vitrine_worker::backend::{Backend, ModelInstance, Options};
use vitrine_worker::config::ModelConfig;
use vitrine_worker::metrics::Metrics;
use vitrine_worker::repository::Repository;
use vitrine_worker::tensor::Tensor;
use vitrine_worker::{InferError, LoadError, Worker};

/// Doubles its input after sleeping (or multiplies it by the request option `scale`); records
/// the first value of every batch it computes, and the batch's scale.
struct Doubler {
    delay: Duration,
    batches: Arc<Mutex<Vec<(usize, f32)>>>,
    scales: Arc<Mutex<Vec<String>>>,
}

impl ModelInstance for Doubler {
    fn compute(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferError> {
        self.compute_with(inputs, &Options::new(), &|| false)
    }

    fn options(&self) -> &'static [&'static str] {
        &["scale"]
    }

    fn check_options(&self, options: &Options) -> Result<(), InferError> {
        match options.get("scale").map(|s| s.parse::<f32>()) {
            Some(Err(_)) => Err(InferError::Invalid("scale must be a number".into())),
            _ => Ok(()),
        }
    }

    fn compute_with(
        &self,
        inputs: &[Tensor],
        options: &Options,
        _stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Tensor>, InferError> {
        std::thread::sleep(self.delay);
        let x = inputs[0].to_f32();
        self.batches
            .lock()
            .unwrap()
            .push((inputs[0].shape[0], x[0]));
        let scale = options.get("scale").cloned().unwrap_or_else(|| "2".into());
        let factor: f32 = scale.parse().unwrap();
        self.scales.lock().unwrap().push(scale);
        let y: Vec<f32> = x.iter().map(|v| v * factor).collect();
        Ok(vec![Tensor::from_f32("y", inputs[0].shape.clone(), &y)?])
    }
}

struct TestBackend(Arc<Doubler>);

impl Backend for TestBackend {
    fn load(&self, _: &ModelConfig, _: &Path) -> Result<Arc<dyn ModelInstance>, LoadError> {
        Ok(self.0.clone())
    }
}

struct Server {
    url: String,
    batches: Arc<Mutex<Vec<(usize, f32)>>>,
    scales: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

async fn serve(config: &str, delay: Duration) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("double/1")).unwrap();
    std::fs::write(dir.path().join("double/config.toml"), config).unwrap();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let scales = Arc::new(Mutex::new(Vec::new()));
    let backend = Arc::new(TestBackend(Arc::new(Doubler {
        delay,
        batches: batches.clone(),
        scales: scales.clone(),
    })));
    let metrics = Arc::new(Metrics::default());
    let repository = Arc::new(Repository::open(dir.path(), backend, metrics.clone()).unwrap());
    assert_eq!(
        repository.index()[0].state,
        "READY",
        "{:?}",
        repository.index()
    );
    let worker = Arc::new(Worker {
        repository,
        metrics,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v2/models/double/infer",
        listener.local_addr().unwrap()
    );
    tokio::spawn(vitrine_worker::serve(
        listener,
        worker,
        std::future::pending(),
    ));
    (
        Server {
            url,
            batches,
            scales,
            client: reqwest::Client::new(),
        },
        dir,
    )
}

impl Server {
    /// Sends rows `[value, value + 1]` (one per row) with request parameters.
    async fn infer(&self, value: f32, rows: usize, parameters: Value) -> (u16, Value) {
        let data: Vec<f32> = (0..rows)
            .flat_map(|r| [value + r as f32 * 10.0, value + 1.0 + r as f32 * 10.0])
            .collect();
        let body = json!({
            "inputs": [{ "name": "x", "shape": [rows, 2], "datatype": "FP32", "data": data }],
            "parameters": parameters,
        });
        let r = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

fn config(max_batch: usize, batching: &str) -> String {
    format!(
        r#"
architecture = "test"
max_batch_size = {max_batch}
[[input]]
name = "x"
datatype = "FP32"
dims = [2]
[[output]]
name = "y"
datatype = "FP32"
dims = [2]
{batching}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_batched_and_each_gets_its_own_rows() {
    let batching =
        "[dynamic_batching]\nmax_queue_delay_microseconds = 200000\npreferred_batch_size = [16]";
    let (s, _dir) = serve(&config(16, batching), Duration::from_millis(5)).await;
    let s = Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..48 {
        let s = s.clone();
        // Requests of one and two rows, so rows are split back at uneven offsets.
        tasks.push(tokio::spawn(async move {
            (i, s.infer(i as f32 * 100.0, 1 + i % 2, json!({})).await)
        }));
    }
    for task in tasks {
        let (i, (status, answer)) = task.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        let rows = 1 + i % 2;
        let base = i as f32 * 100.0;
        let want: Vec<f64> = (0..rows)
            .flat_map(|r| {
                [
                    2.0 * (base + r as f32 * 10.0),
                    2.0 * (base + 1.0 + r as f32 * 10.0),
                ]
            })
            .map(f64::from)
            .collect();
        assert_eq!(answer["outputs"][0]["shape"], json!([rows, 2]));
        let got: Vec<f64> = answer["outputs"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got, want, "request {i} got another request's rows");
    }
    let batches = s.batches.lock().unwrap().clone();
    let rows: usize = batches.iter().map(|b| b.0).sum();
    assert_eq!(rows, 72, "every row computed exactly once");
    assert!(
        batches.iter().all(|b| b.0 <= 16),
        "max_batch_size respected: {batches:?}"
    );
    assert!(
        batches.len() <= 12,
        "48 concurrent requests should share batches, got {} batches",
        batches.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_asking_for_different_options_never_share_a_batch() {
    let batching =
        "[dynamic_batching]\nmax_queue_delay_microseconds = 200000\npreferred_batch_size = [16]";
    let (s, _dir) = serve(&config(16, batching), Duration::from_millis(5)).await;
    let s = Arc::new(s);
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let s = s.clone();
            let scale = if i % 2 == 0 { "3" } else { "5" };
            tokio::spawn(async move {
                (
                    scale,
                    i,
                    s.infer(i as f32, 1, json!({ "scale": scale })).await,
                )
            })
        })
        .collect();
    for task in tasks {
        let (scale, i, (status, answer)) = task.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        let factor: f64 = scale.parse().unwrap();
        assert_eq!(
            answer["outputs"][0]["data"][0].as_f64().unwrap(),
            factor * i as f64,
            "request {i} computed with another request's scale"
        );
    }
    let batches = s.batches.lock().unwrap().clone();
    assert!(
        batches.len() < 24,
        "requests still share batches: {batches:?}"
    );
    assert_eq!(batches.iter().map(|b| b.0).sum::<usize>(), 24);
    let (status, refused) = s.infer(1.0, 1, json!({ "scale": "big" })).await;
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = s.infer(1.0, 1, json!({ "scale": 4 })).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .contains("'scale' must be a string"));
    assert_eq!(
        s.scales.lock().unwrap().len(),
        batches.len(),
        "refused ones never computed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_dynamic_batching_each_request_runs_alone() {
    let (s, _dir) = serve(&config(16, ""), Duration::from_millis(2)).await;
    let s = Arc::new(s);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.infer(i as f32, 2, json!({})).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().0, 200);
    }
    let batches = s.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 8);
    assert!(batches.iter().all(|b| b.0 == 2), "{batches:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_requests_get_a_timeout_and_are_never_computed() {
    let batching = "[dynamic_batching]\nmax_queue_delay_microseconds = 0";
    let (s, _dir) = serve(&config(1, batching), Duration::from_millis(300)).await;
    let s = Arc::new(s);
    let busy = {
        let s = s.clone();
        tokio::spawn(async move { s.infer(1.0, 1, json!({})).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Queued behind a 300 ms computation with a 50 ms deadline (microseconds, as in Triton).
    let (status, err) = s.infer(7.0, 1, json!({ "timeout": 50_000 })).await;
    assert_eq!(status, 504, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("timed out"),
        "{err}"
    );
    assert_eq!(busy.await.unwrap().0, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let batches = s.batches.lock().unwrap().clone();
    assert!(
        batches.iter().all(|b| b.1 != 7.0),
        "the expired request was computed: {batches:?}"
    );
    // A deadline long enough is met.
    assert_eq!(
        s.infer(9.0, 1, json!({ "timeout": 5_000_000 })).await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_429_and_recovers() {
    let batching = "[dynamic_batching]\nmax_queue_delay_microseconds = 0\nmax_queue_size = 2";
    let (s, _dir) = serve(&config(1, batching), Duration::from_millis(200)).await;
    let s = Arc::new(s);
    let first = {
        let s = s.clone();
        tokio::spawn(async move { s.infer(1.0, 1, json!({})).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await; // computing now
    let queued: Vec<_> = (0..2)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.infer(10.0 + i as f32, 1, json!({})).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await; // both queued
    let (status, err) = s.infer(99.0, 1, json!({})).await;
    assert_eq!(status, 429, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("max_queue_size"),
        "{err}"
    );
    assert_eq!(first.await.unwrap().0, 200);
    for q in queued {
        assert_eq!(q.await.unwrap().0, 200);
    }
    assert_eq!(s.infer(5.0, 1, json!({})).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interactive_priority_is_served_before_bulk() {
    let batching = "[dynamic_batching]\nmax_queue_delay_microseconds = 0\npriority_levels = 2\ndefault_priority_level = 2";
    let (s, _dir) = serve(&config(1, batching), Duration::from_millis(150)).await;
    let s = Arc::new(s);
    let busy = {
        let s = s.clone();
        tokio::spawn(async move { s.infer(1.0, 1, json!({})).await })
    };
    tokio::time::sleep(Duration::from_millis(40)).await;
    let mut waiting = Vec::new();
    for value in [20.0, 21.0] {
        let s = s.clone();
        waiting.push(tokio::spawn(
            async move { s.infer(value, 1, json!({})).await },
        )); // default: bulk (2)
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s2 = s.clone();
    waiting.push(tokio::spawn(async move {
        s2.infer(30.0, 1, json!({ "priority": 1 })).await
    }));
    assert_eq!(busy.await.unwrap().0, 200);
    for w in waiting {
        assert_eq!(w.await.unwrap().0, 200);
    }
    let order: Vec<f32> = s.batches.lock().unwrap().iter().map(|b| b.1).collect();
    assert_eq!(
        order,
        vec![1.0, 30.0, 20.0, 21.0],
        "priority 1 jumps the bulk queue, bulk keeps FIFO order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_deadline_bounds_the_queue_wait_not_the_computation() {
    let batching = "[dynamic_batching]\nmax_queue_delay_microseconds = 0";
    let (s, _dir) = serve(&config(1, batching), Duration::from_millis(300)).await;
    // Started at once (empty queue), computing for 300 ms past a 100 ms deadline: answered.
    let (status, answer) = s.infer(4.0, 1, json!({ "timeout": 100_000 })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"][0]["data"], json!([8.0, 10.0]));
}
