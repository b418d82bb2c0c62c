//! Dynamic batching on vs off, over HTTP with binary tensors on loopback, for two models:
//!
//! - `wide-mlp`: the dense architecture at a serving size (256 → 2048 → 2048 → 16, random
//!   weights: only speed is measured). One row reads all 18 MB of weights; a batch reads them once.
//! - `shapes-cnn`: the built-in convolutional model (trained here first), whose compute per
//!   request is small next to the HTTP work.
//!
//! For each: (1) low load: one request at a time, batching off; (2) saturation: `CONCURRENCY`
//! clients in a closed loop, off then on; (3) an open loop at the unbatched saturation
//! throughput, batching on; (4) the same offered load for both, an open loop at 3× the unbatched
//! saturation throughput, off then on (requests that cannot start within 1 s are rejected by
//! their deadline and counted as failed).
//!
//! `cargo bench -p vitrine-worker --bench batching` (env `DURATION_S`, default 5;
//! `CONCURRENCY`, default 32; `MODELS`, default `wide-mlp,shapes-cnn`). Under `cargo test` it
//! makes a short smoke run of `wide-mlp` only.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use vitrine_worker::Worker;

const WIDE_CONFIG: &str = r#"
architecture = "mlp"
max_batch_size = 64
[[input]]
name = "x"
datatype = "FP32"
dims = [256]
[[output]]
name = "p"
datatype = "FP32"
dims = [16]
[dynamic_batching]
max_queue_delay_microseconds = 200
[parameters]
hidden = 2048
"#;

fn write_wide_mlp(root: &Path) -> anyhow::Result<()> {
    let mut tensors = HashMap::new();
    for (name, out, inp) in [("fc1", 2048, 256), ("fc2", 2048, 2048), ("fc3", 16, 2048)] {
        let bound = (1.0 / inp as f64).sqrt();
        tensors.insert(
            format!("{name}.weight"),
            candle_core::Tensor::rand(-bound, bound, (out, inp), &Device::Cpu)?
                .to_dtype(DType::F32)?,
        );
        tensors.insert(
            format!("{name}.bias"),
            candle_core::Tensor::zeros(out, DType::F32, &Device::Cpu)?,
        );
    }
    std::fs::create_dir_all(root.join("wide-mlp/1"))?;
    candle_core::safetensors::save(&tensors, root.join("wide-mlp/1/model.safetensors"))?;
    std::fs::write(root.join("wide-mlp/config.toml"), WIDE_CONFIG)?;
    Ok(())
}

/// Copies `model` as `<model>-on` (its config) and `<model>-off` (without dynamic batching).
fn batched_and_single(root: &Path, model: &str) -> anyhow::Result<()> {
    let config = std::fs::read_to_string(root.join(model).join("config.toml"))?;
    let (head, rest) = config
        .split_once("[dynamic_batching]")
        .expect("the model batches");
    let tail = rest.find("\n[").map(|i| &rest[i..]).unwrap_or("");
    for (suffix, text) in [("on", config.clone()), ("off", format!("{head}{tail}"))] {
        let dir = root.join(format!("{model}-{suffix}"));
        std::fs::create_dir_all(dir.join("1"))?;
        std::fs::copy(
            root.join(model).join("1/model.safetensors"),
            dir.join("1/model.safetensors"),
        )?;
        std::fs::write(dir.join("config.toml"), text)?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    vitrine_worker::backend::init_cpu_threads();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let duration = match smoke {
        true => Duration::from_millis(300),
        false => Duration::from_secs(env("DURATION_S", "5").parse()?),
    };
    let concurrency: usize = env("CONCURRENCY", "32").parse()?;
    let models = if smoke {
        "wide-mlp".to_string()
    } else {
        env("MODELS", "wide-mlp,shapes-cnn")
    };
    let dir = tempfile::tempdir()?;
    eprintln!("preparing models in {} …", dir.path().display());
    if models.contains("shapes-cnn") || models.contains("intent-mlp") {
        vitrine_worker::train::write_builtin_repository(dir.path(), 7, |_| {})?;
    }
    write_wide_mlp(dir.path())?;
    for model in models.split(',') {
        batched_and_single(dir.path(), model)?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let worker = Worker::open(dir.path(), None, Duration::from_secs(3600))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(vitrine_worker::serve(
            listener,
            worker,
            std::future::pending(),
        ));
        for model in models.split(',') {
            let (input, dims): (&str, &[usize]) = match model {
                "wide-mlp" => ("x", &[256]),
                _ => ("image", &[1, 28, 28]),
            };
            let client = Client::new(&base_url, input, dims);
            compare(&client, model, concurrency, duration).await;
        }
        anyhow::Ok(())
    })
}

async fn compare(client: &Client, model: &str, concurrency: usize, duration: Duration) {
    let (on, off) = (format!("{model}-on"), format!("{model}-off"));
    for m in [&off, &on] {
        closed_loop(client, m, 4, Duration::from_secs(1)).await; // warm up
    }
    println!(
        "\n{model}: binary tensors over HTTP on loopback, {} s per run",
        duration.as_secs()
    );
    let low = closed_loop(client, &off, 1, duration).await;
    println!(
        "  low load, 1 client, batching off      : {}",
        low.describe()
    );
    let sat_off = closed_loop(client, &off, concurrency, duration).await;
    println!(
        "  saturation, {concurrency} clients, batching off : {}",
        sat_off.describe()
    );
    let sat_on = closed_loop(client, &on, concurrency, duration).await;
    println!(
        "  saturation, {concurrency} clients, batching on  : {}",
        sat_on.describe()
    );
    let capacity = sat_off.throughput();
    let at_capacity = open_loop(client, &on, capacity, duration).await;
    println!(
        "  offered {capacity:5.0} req/s, batching on      : {}",
        at_capacity.describe()
    );
    let rate = 3.0 * capacity;
    let open_off = open_loop(client, &off, rate, duration).await;
    println!(
        "  offered {rate:5.0} req/s, batching off     : {}",
        open_off.describe()
    );
    let open_on = open_loop(client, &on, rate, duration).await;
    println!(
        "  offered {rate:5.0} req/s, batching on      : {}",
        open_on.describe()
    );
    println!(
        "  => throughput with batching: {:.2}x at saturation, {:.2}x at the same offered load (target >= 3x)",
        sat_on.throughput() / sat_off.throughput(),
        open_on.throughput() / open_off.throughput()
    );
    println!(
        "  => p95 with batching at that load: {:.2} ms = {:.2}x the unbatched low-load p95 of {:.2} ms (target <= 2x)",
        ms(open_on.percentile(0.95)),
        open_on.percentile(0.95).as_secs_f64() / low.percentile(0.95).as_secs_f64(),
        ms(low.percentile(0.95))
    );
    println!(
        "  => p95 with batching at the unbatched capacity ({capacity:.0} req/s): {:.2} ms = {:.2}x the low-load p95",
        ms(at_capacity.percentile(0.95)),
        at_capacity.percentile(0.95).as_secs_f64() / low.percentile(0.95).as_secs_f64()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    header: Vec<u8>,
    elements: usize,
}

impl Client {
    fn new(base: &str, input: &str, dims: &[usize]) -> Self {
        let elements: usize = dims.iter().product();
        let shape: Vec<usize> = std::iter::once(1).chain(dims.iter().copied()).collect();
        let header = serde_json::to_vec(&serde_json::json!({
            "inputs": [{ "name": input, "shape": shape, "datatype": "FP32",
                         "parameters": { "binary_data_size": elements * 4 } }],
            "parameters": { "binary_data_output": true, "timeout": 1_000_000 },
        }))
        .unwrap();
        Self {
            http: reqwest::Client::new(),
            base: base.to_string(),
            header,
            elements,
        }
    }

    /// One inference; `Ok(latency)` or `Err(status)`.
    async fn infer(&self, model: &str, seed: usize) -> Result<Duration, u16> {
        let mut body = self.header.clone();
        body.extend(
            (0..self.elements)
                .flat_map(|i| (((i * 7 + seed * 13) % 17) as f32 / 17.0).to_le_bytes()),
        );
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/v2/models/{model}/infer", self.base))
            .header("Inference-Header-Content-Length", self.header.len())
            .body(body)
            .send()
            .await
            .map_err(|_| 0u16)?;
        let status = response.status().as_u16();
        let _ = response.bytes().await;
        if status == 200 {
            Ok(started.elapsed())
        } else {
            Err(status)
        }
    }
}

struct Run {
    latencies: Vec<Duration>,
    failed: usize,
    elapsed: Duration,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted
            .get(((sorted.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!(
            "{:8.0} req/s   p50 {:6.2} ms   p95 {:6.2} ms   p99 {:6.2} ms   failed {}",
            self.throughput(),
            ms(self.percentile(0.5)),
            ms(self.percentile(0.95)),
            ms(self.percentile(0.99)),
            self.failed
        )
    }
}

async fn closed_loop(client: &Client, model: &str, clients: usize, duration: Duration) -> Run {
    let started = Instant::now();
    let end = started + duration;
    let results = futures_util::future::join_all((0..clients).map(|c| async move {
        let mut latencies = Vec::new();
        let mut failed = 0;
        let mut seed = c;
        while Instant::now() < end {
            match client.infer(model, seed).await {
                Ok(l) => latencies.push(l),
                Err(_) => failed += 1,
            }
            seed += clients;
        }
        (latencies, failed)
    }))
    .await;
    collect(results, started.elapsed())
}

async fn open_loop(client: &Client, model: &str, rate: f64, duration: Duration) -> Run {
    let client = Arc::new(client.clone());
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut next = started;
    let mut seed = 0;
    while next < started + duration {
        tokio::time::sleep_until(next.into()).await;
        let client = client.clone();
        let model = model.to_string();
        tasks.push(tokio::spawn(
            async move { client.infer(&model, seed).await },
        ));
        seed += 1;
        next += interval;
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(l) => latencies.push(l),
            Err(_) => failed += 1,
        }
    }
    Run {
        latencies,
        failed,
        elapsed: started.elapsed(),
    }
}

fn collect(results: Vec<(Vec<Duration>, usize)>, elapsed: Duration) -> Run {
    let mut latencies = Vec::new();
    let mut failed = 0;
    for (l, f) in results {
        latencies.extend(l);
        failed += f;
    }
    Run {
        latencies,
        failed,
        elapsed,
    }
}
