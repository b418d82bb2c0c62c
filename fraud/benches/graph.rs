//! The temporal graph at scale: insert rate (in memory and persisted), memory per edge, and
//! time-respecting 2-hop sampling latency, on a generated bank.
//! `cargo bench -p vitrine-fraud --bench graph` (env `ACCOUNTS`, default 20000, about a million
//! transactions). Under `cargo test` it makes a small smoke run.

use std::time::Instant;

use vitrine_fraud::graph::{Before, Event, TemporalGraph};
use vitrine_fraud::{generate, GenerateConfig};

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let accounts: usize = match smoke {
        true => 300,
        false => std::env::var("ACCOUNTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000),
    };
    let bank = generate(&GenerateConfig::new(accounts, 1), |_| {}).expect("generating");
    let edges: Vec<Event> = bank
        .transactions
        .iter()
        .map(Event::from_transaction)
        .collect();

    let started = Instant::now();
    let mut graph = TemporalGraph::new();
    graph.add_all(&edges).unwrap();
    let insert = started.elapsed();
    let bytes = graph.memory_bytes();
    println!(
        "{} nodes, {} edges from a generated bank of {accounts} accounts",
        graph.node_count(),
        graph.edge_count()
    );
    println!(
        "in memory: {:.0} edges/s inserted; {:.1} bytes per edge = {:.0} MB per million edges",
        edges.len() as f64 / insert.as_secs_f64(),
        bytes as f64 / graph.edge_count() as f64,
        bytes as f64 / graph.edge_count() as f64
    );

    let dir = tempfile::tempdir().unwrap();
    let persisted = &edges[..edges.len().min(200_000)];
    let started = Instant::now();
    let mut stored = TemporalGraph::open(&dir.path().join("graph.db"), |_| {}).unwrap();
    for chunk in persisted.chunks(1000) {
        stored.add_all(chunk).unwrap();
    }
    let batched = started.elapsed();
    let started = Instant::now();
    let singles = persisted.len().min(2000);
    for e in persisted.iter().take(singles) {
        stored.add(e).unwrap();
    }
    let single = started.elapsed();
    let started = Instant::now();
    let reopened = TemporalGraph::open(&dir.path().join("graph.db"), |_| {}).unwrap();
    println!(
        "persisted (SQLite, WAL): {:.0} edges/s in batches of 1000, {:.0} edges/s one by one; reopening {} edges took {:.2} s",
        persisted.len() as f64 / batched.as_secs_f64(),
        singles as f64 / single.as_secs_f64(),
        reopened.edge_count(),
        started.elapsed().as_secs_f64()
    );

    let mut timings = Vec::new();
    let mut sizes = 0;
    for e in edges.iter().step_by((edges.len() / 20_000).max(1)) {
        let seed = graph.node_id(&e.source).unwrap();
        let started = Instant::now();
        let sub = graph.sample(&[seed], Before::time(e.time), &[10, 5]);
        timings.push(started.elapsed().as_nanos() as u64);
        sizes += sub.edges.len();
    }
    timings.sort();
    let at = |p: f64| timings[((timings.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    println!(
        "2-hop sample (fan-out 10, 5; {} edges on average): p50 {:.1} µs, p99 {:.1} µs",
        sizes / timings.len(),
        at(0.5),
        at(0.99)
    );
}
