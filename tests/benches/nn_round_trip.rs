//! `wasi:nn` round trip from a function to a local worker, for a 1 KB input tensor (256 × FP32):
//! the probe guest times `compute` itself (wasi monotonic clock), so the figure is the host
//! call → inference protocol over loopback → worker → back into the guest, without the
//! function's own HTTP request. Run with `cargo bench -p vitrine-tests --bench nn_round_trip`
//! (env `CALLS`, default 5000). Under `cargo test` it makes 50 calls as a smoke run.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use serde_json::json;
use vitrine_runtime::nn_pool::{self, DataType, PoolOptions, WorkerPool};
use vitrine_tests::{manifest, post_json, TestApp, TestWorker};

const FEATURES: usize = 256;

fn write_model(root: &std::path::Path) -> anyhow::Result<()> {
    let dir = root.join("bench-mlp");
    std::fs::create_dir_all(dir.join("1"))?;
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "architecture = \"mlp\"\nmax_batch_size = 64\n[[input]]\nname = \"x\"\ndatatype = \"FP32\"\ndims = [{FEATURES}]\n\
             [[output]]\nname = \"p\"\ndatatype = \"FP32\"\ndims = [4]\n[parameters]\nhidden = 32\n"
        ),
    )?;
    let mut tensors = HashMap::new();
    for (name, out, inp) in [("fc1", 32, FEATURES), ("fc2", 32, 32), ("fc3", 4, 32)] {
        tensors.insert(
            format!("{name}.weight"),
            Tensor::randn(0f32, 0.1, (out, inp), &Device::Cpu)?,
        );
        tensors.insert(
            format!("{name}.bias"),
            Tensor::zeros(out, candle_core::DType::F32, &Device::Cpu)?,
        );
    }
    candle_core::safetensors::save(&tensors, dir.join("1/model.safetensors"))?;
    Ok(())
}

fn summary(mut timings: Vec<u64>) -> String {
    timings.sort();
    let at = |p: f64| timings[((timings.len() - 1) as f64 * p) as usize];
    format!(
        "p50 {} µs   p95 {} µs   p99 {} µs",
        at(0.5),
        at(0.95),
        at(0.99)
    )
}

fn main() -> anyhow::Result<()> {
    vitrine_worker::backend::init_cpu_threads();
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let default_calls = if smoke { 50 } else { 5000 };
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_calls);
    let repo = tempfile::tempdir()?;
    write_model(repo.path())?;
    let worker = TestWorker::start(repo.path()).await?;
    let pool = Arc::new(WorkerPool::new(
        std::slice::from_ref(&worker.url),
        PoolOptions::default(),
    )?);
    let app = TestApp::start_with(
        &manifest("[[trigger.http]]\nroute = \"/p/...\"\ncomponent = \"p\"\n[component.p]\nsource = \"PROBE\"\nai_models = [\"bench-mlp\"]\n"),
        |c| c.nn_pool = Some(pool.clone()),
    )
    .await?;
    let input =
        json!({ "inputs": [{ "name": "x", "dims": [1, FEATURES], "fp32": vec![0.25; FEATURES] }] });
    let url = format!("{}/p/nn/bench-mlp?repeat=", app.url);
    // Warm up connections and caches.
    let (status, body) = post_json(&format!("{url}200"), &input).await?;
    anyhow::ensure!(status == 200, "probe failed: {body}");
    let mut timings = Vec::with_capacity(calls);
    while timings.len() < calls {
        let batch = (calls - timings.len()).min(1000);
        let (_, body) = post_json(&format!("{url}{batch}"), &input).await?;
        timings.extend(
            body["compute_us"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap()),
        );
    }
    println!("wasi:nn compute round trip, function -> local worker over loopback, 1 KB FP32 input ({calls} calls)");
    println!(
        "  from the function (guest clock) : {}   (target p50 <= 200 µs)",
        summary(timings)
    );

    // The same call from native code, without the guest and its bindings: the pool + worker share.
    let tensor = nn_pool::Tensor {
        name: "x".into(),
        datatype: DataType::F32,
        shape: vec![1, FEATURES as u64],
        data: (0..FEATURES).flat_map(|_| 0.25f32.to_le_bytes()).collect(),
    };
    let mut native = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = std::time::Instant::now();
        pool.infer("bench-mlp", vec![tensor.clone()]).await?;
        native.push(started.elapsed().as_micros() as u64);
    }
    println!("  from native code (WorkerPool)   : {}", summary(native));
    Ok(())
}
