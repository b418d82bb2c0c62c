//! The fraud path under load, everything on this machine (load generator included):
//!
//! 1. webhook → decision latency: signed transaction deliveries at 200 and 1,000 requests per
//!    second offered (open loop: latency counts from each request's scheduled start), through
//!    the runtime, the `fraud-webhook` function, `wasi:nn` and a worker running `fraud-gnn`;
//! 2. `fraud-gnn` inference throughput straight to the worker, with dynamic batching and
//!    without it, 32 requests of one transaction in flight, and with client-side batches of 64.
//!
//! Run with `cargo bench -p vitrine-tests --bench fraud_webhook` (env `BENCH_SECONDS` per load level,
//! default 10; `MAX_INSTANCES`, the runtime's concurrent requests, default 64). Under
//! `cargo test` it makes a short smoke run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vitrine_fraud::schema::Transaction;
use vitrine_runtime::nn_pool::{PoolOptions, WorkerPool};
use vitrine_tests::{
    live_transactions, test_models, transaction_delivery, webhook_manifest, TestApp, TestWorker,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() -> anyhow::Result<()> {
    vitrine_worker::backend::init_cpu_threads();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p) as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn run() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let seconds: f64 = if smoke {
        1.0
    } else {
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10.0)
    };
    let rates: &[f64] = if smoke { &[50.0] } else { &[200.0, 1000.0] };
    let live = Arc::new(live_transactions());

    let worker = TestWorker::start(&test_models()).await?;
    let pool = Arc::new(WorkerPool::new(
        std::slice::from_ref(&worker.url),
        PoolOptions::default(),
    )?);
    let instances: u32 = std::env::var("MAX_INSTANCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let app = TestApp::start_with(&webhook_manifest(SECRET), |c| {
        c.nn_pool = Some(pool);
        c.max_instances = instances;
    })
    .await?;
    let url = format!("{}/webhooks/transactions", app.url);
    let client = reqwest::Client::new();
    let mut next = 0usize;
    println!("webhook → decision (runtime + fraud-webhook + wasi:nn + fraud-gnn worker):");
    for rate in rates {
        let count = (rate * seconds) as usize;
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(count);
        for i in 0..count {
            let t: Transaction = live[(next + i) % live.len()].clone();
            let (client, url) = (client.clone(), url.clone());
            let scheduled = started + Duration::from_secs_f64(i as f64 / rate);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(scheduled.into()).await;
                let body = transaction_delivery(&t);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                let id = format!("msg_bench_{rate}_{i}");
                let signature = vitrine_webhooks::sign(SECRET, &id, now, body.as_bytes()).unwrap();
                let status = client
                    .post(&url)
                    .header("webhook-id", id)
                    .header("webhook-timestamp", now.to_string())
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                (status, scheduled.elapsed())
            }));
        }
        next += count;
        let mut latencies = Vec::with_capacity(count);
        let mut statuses = std::collections::BTreeMap::new();
        for task in tasks {
            let (status, latency) = task.await?;
            *statuses.entry(status).or_insert(0usize) += 1;
            if status == 200 {
                latencies.push(latency);
            }
        }
        let ok = latencies.len();
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        println!(
            "  {rate:>6.0} req/s offered: {count} requests in {elapsed:.1} s, {ok} decided ({:.0}/s), statuses {statuses:?}; decided in p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ok as f64 / elapsed,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0)
        );
    }
    drop(app);
    drop(worker);

    println!("fraud-gnn inference throughput, straight to the worker (one transaction per row):");
    let batched = test_models();
    let unbatched = tempfile::tempdir()?;
    copy_dir(
        &batched.join("fraud-gnn"),
        &unbatched.path().join("fraud-gnn"),
    )?;
    let config = unbatched.path().join("fraud-gnn/config.toml");
    let text = std::fs::read_to_string(&config)?;
    let cut = text.find("[dynamic_batching]").unwrap_or(text.len());
    std::fs::write(&config, &text[..cut])?;
    let requests = if smoke { 64 } else { 4000 };
    for (label, repo, rows, in_flight) in [
        ("dynamic batching, 32 in flight", batched.as_path(), 1, 32),
        ("no batching, 32 in flight", unbatched.path(), 1, 32),
        ("client batches of 64 rows", unbatched.path(), 64, 4),
    ] {
        let worker = TestWorker::start(repo).await?;
        let started = Instant::now();
        let total = infer_load(&worker.url, &live, requests / rows.max(1), rows, in_flight).await?;
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "  {label:<32} {total} transactions in {elapsed:.2} s: {:.0} transactions/s",
            total as f64 / elapsed
        );
    }
    Ok(())
}

/// Sends `requests` requests of `rows` transactions each, `in_flight` at a time; returns the
/// transactions scored.
async fn infer_load(
    url: &str,
    live: &Arc<Vec<Transaction>>,
    requests: usize,
    rows: usize,
    in_flight: usize,
) -> anyhow::Result<usize> {
    let client = reqwest::Client::new();
    let endpoint = format!("{url}/v2/models/fraud-gnn/infer");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let (client, endpoint, next, live) =
            (client.clone(), endpoint.clone(), next.clone(), live.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return Ok::<_, anyhow::Error>(done);
                }
                let batch: Vec<&Transaction> = (0..rows)
                    .map(|r| &live[(i * rows + r) % live.len()])
                    .collect();
                let response = client
                    .post(&endpoint)
                    .body(request_bytes(&batch))
                    .header("content-type", "application/json")
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "worker answered {}",
                    response.status()
                );
                done += rows;
            }
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total)
}

/// The inference request (JSON) of transaction records.
fn request_bytes(batch: &[&Transaction]) -> String {
    const TEXT: usize = vitrine_worker::models::fraud_gnn::TEXT_BYTES;
    let mut ids = Vec::new();
    let mut values = Vec::new();
    for t in batch {
        let event = vitrine_fraud::graph::Event::from_transaction(t);
        // No transaction id (the fourth row): rows are scored even when the bench repeats them.
        for text in [&event.source, &event.target, &event.device, &String::new()] {
            let mut bytes = text.as_bytes().to_vec();
            bytes.resize(TEXT, 0);
            ids.extend(bytes);
        }
        values.extend([event.time as f64, event.amount, event.channel as f64]);
    }
    serde_json::json!({ "inputs": [
        { "name": "ids", "shape": [batch.len(), 4, TEXT], "datatype": "UINT8", "data": ids },
        { "name": "event", "shape": [batch.len(), 3], "datatype": "FP64", "data": values },
    ]})
    .to_string()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
