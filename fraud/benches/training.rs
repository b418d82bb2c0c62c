//! Speed of the transaction GNN: batch building (time-respecting 2-hop sampling), training
//! samples per second and batch scoring transactions per second, on a generated bank.
//! `cargo bench -p vitrine-fraud --bench training` (env `ACCOUNTS`, default 5000; `EPOCHS`,
//! default 2; `BATCH`, default 256; `CANDLE_NUM_THREADS`, default 1 as in `vitrine fraud`).
//! Under `cargo test` it makes a small smoke run.

use std::time::Instant;

use vitrine_fraud::training::{score_rows, train, Prepared, TrainOptions};
use vitrine_fraud::{generate, GenerateConfig};

/// The allocator of the `vitrine` binary, whose commands these figures stand for.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // As `vitrine fraud` runs candle, unless set.
    vitrine_fraud::training::one_element_wise_thread();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let setting = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (accounts, epochs) = match smoke {
        true => (300, 1),
        false => (setting("ACCOUNTS", 5_000), setting("EPOCHS", 2)),
    };
    let bank = generate(&GenerateConfig::new(accounts, 1), |_| {}).expect("generating");
    let started = Instant::now();
    let data = Prepared::new(&bank.transactions, &bank.accounts);
    let n = data.events.len();
    println!(
        "{n} transactions of a generated bank of {accounts} accounts: features and graph in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let options = TrainOptions {
        epochs,
        batch_size: setting("BATCH", TrainOptions::new(1).batch_size),
        ..TrainOptions::new(1)
    };
    let fanouts = &options.config.fanouts;
    let rows: Vec<usize> = (0..n).step_by((n / 20_000).max(1)).collect();
    let started = Instant::now();
    let mut nodes = 0;
    for chunk in rows.chunks(options.batch_size) {
        nodes += data.batch(chunk, fanouts).graph_nodes();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "batch building: {:.0} samples/s ({:.0} sampled nodes per sample)",
        rows.len() as f64 / seconds,
        nodes as f64 / rows.len() as f64
    );
    let mut samples = 0;
    let started = Instant::now();
    train(&data, 0..n * 7 / 10, &options, |line| {
        if let Some(count) = line.split(" over ").nth(1) {
            samples += count
                .split(' ')
                .next()
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(0);
        }
    })
    .expect("training");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "training: {:.0} samples/s ({samples} samples in {seconds:.1} s, {epochs} epochs)",
        samples as f64 / seconds
    );
    let (model, _) = train(
        &data,
        0..n * 7 / 10,
        &TrainOptions {
            epochs: 1,
            ..options.clone()
        },
        |_| {},
    )
    .expect("training");
    let held_out = n * 7 / 10..n;
    let started = Instant::now();
    let scores = score_rows(&model, &data, held_out.clone()).expect("scoring");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(scores.len(), held_out.len());
    println!(
        "batch scoring: {:.0} transactions/s ({} in {seconds:.1} s)",
        held_out.len() as f64 / seconds,
        held_out.len()
    );
}
