//! Event ingest: batches of 500 events posted by 4 concurrent clients to `POST /api/events`
//! (runtime + `events` function + SQLite in the state directory), every event new; prints
//! events per second and the batch latency. Target (issue 9): at least 5,000 events/s.
//!
//! Run with `cargo bench -p vitrine-tests --bench events` (env `BENCH_SECONDS`, default 10).
//! Under `cargo test` it makes a short smoke run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vitrine_tests::{manifest, TestApp};

const BATCH: usize = 500;
const CLIENTS: usize = 4;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let seconds: f64 = match smoke {
        true => 1.0,
        false => std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10.0),
    };
    let app = Arc::new(
        TestApp::start(&manifest(
            "[[trigger.http]]\nroute = \"/api/events\"\ncomponent = \"events\"\n[component.events]\nsource = \"EVENTS\"\nsqlite_databases = [\"default\"]\n",
        ))
        .await?,
    );
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (app, next) = (app.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let first = next.fetch_add(BATCH, Ordering::Relaxed);
                let events: Vec<_> = (first..first + BATCH)
                    .map(|n| json!({
                        "id": format!("bench-{n}"), "type": if n % 10 == 0 { "purchase" } else { "view" },
                        "shopper": format!("shopper-{}", n % 977), "time": "2026-12-01T10:00:00Z",
                        "product": format!("p-{:05}", 1 + n % 6000), "context": { "client": client.to_string() },
                    }))
                    .collect();
                let sent = Instant::now();
                let response = http
                    .post(format!("{}/api/events", app.url))
                    .json(&json!({ "events": events }))
                    .send()
                    .await?;
                anyhow::ensure!(response.status() == 200, "{}", response.text().await?);
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let events = latencies.len() * BATCH;
    println!(
        "event ingest, batches of {BATCH}, {CLIENTS} clients: {events} events in {elapsed:.1} s = {:.0} events/s; batch p50 {:.1} ms, p99 {:.1} ms (target >= 5,000 events/s)",
        events as f64 / elapsed,
        at(0.5),
        at(0.99)
    );
    Ok(())
}
