//! `vitrine fraud replay`: posts transactions from a file to the transaction webhook as a
//! partner would, signed per Standard Webhooks, in time order, at an offered rate or as fast as
//! the service answers. Prints the decisions, the latency percentiles and, for labelled files,
//! how the decisions compare with the ground truth.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};
use vitrine_fraud::schema::Transaction;

/// The development secret of `spin.toml` (`webhook_secrets`), used when `--secret` is not given.
const DEV_SECRET: &str = "whsec_S3qCDRVuna4JPqvcTNvEpuziLXY5u1HR";

#[derive(Args)]
pub struct ReplayArgs {
    /// The webhook endpoint.
    #[arg(long, default_value = "http://127.0.0.1:3000/webhooks/transactions")]
    url: String,
    /// Folder with `transactions.csv` in the documented format.
    #[arg(long)]
    data: PathBuf,
    /// Signing secret (`whsec_…`); default: the development secret of spin.toml.
    #[arg(long, env = "VITRINE_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Start at this share of the file (e.g. 0.8: the last 20%, after the training history).
    #[arg(long, default_value_t = 0.0)]
    from: f64,
    /// Send at most this many transactions.
    #[arg(long)]
    limit: Option<usize>,
    /// Offered load in requests per second (open loop); default: one at a time, back to back.
    #[arg(long)]
    rate: Option<f64>,
}

/// The Standard Webhooks delivery body of a transaction record.
pub fn delivery_body(t: &Transaction) -> Value {
    json!({
        "type": "transaction.created",
        "timestamp": t.timestamp,
        "data": {
            "transaction_id": t.transaction_id,
            "timestamp": t.timestamp,
            "source": t.source,
            "target": t.target,
            "amount": t.amount,
            "currency": t.currency,
            "channel": t.channel,
            "device_id": t.device_id,
        }
    })
}

struct Outcome {
    status: u16,
    latency: Duration,
    decision: Option<String>,
    score: Option<f64>,
    fraud: bool,
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    index: usize,
    t: &Transaction,
) -> Result<(u16, Value)> {
    let body = delivery_body(t).to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let id = format!("msg_{}_{index}", t.transaction_id);
    let signature = vitrine_webhooks::sign(secret, &id, now, body.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Replays the file and prints the summary.
pub fn run(args: ReplayArgs) -> Result<()> {
    let secret = args.secret.unwrap_or_else(|| DEV_SECRET.to_string());
    vitrine_webhooks::Secrets::parse(&secret).map_err(|e| anyhow::anyhow!("--secret: {e}"))?;
    anyhow::ensure!(
        (0.0..1.0).contains(&args.from),
        "--from must be at least 0 and below 1"
    );
    let path = args.data.join("transactions.csv");
    let mut reader =
        csv::Reader::from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let all: Vec<Transaction> = reader
        .deserialize()
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not in the documented format", path.display()))?;
    let start = (all.len() as f64 * args.from) as usize;
    let end = args.limit.map_or(all.len(), |l| (start + l).min(all.len()));
    let transactions = Arc::new(all[start..end].to_vec());
    eprintln!(
        "replaying {} transactions to {}{}",
        transactions.len(),
        args.url,
        args.rate
            .map_or(" one at a time".into(), |r| format!(" at {r} per second"))
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcomes = runtime.block_on(replay(args.url, secret, transactions, args.rate))?;
    report(&outcomes);
    Ok(())
}

async fn replay(
    url: String,
    secret: String,
    transactions: Arc<Vec<Transaction>>,
    rate: Option<f64>,
) -> Result<Vec<Outcome>> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..transactions.len() {
        let (client, url, secret, txs) = (
            client.clone(),
            url.clone(),
            secret.clone(),
            transactions.clone(),
        );
        // Open loop: each request has a scheduled start, and its latency counts from there,
        // so a slow answer cannot hide the requests queued behind it.
        let scheduled = rate.map(|r| started + Duration::from_secs_f64(i as f64 / r));
        let task = async move {
            if let Some(at) = scheduled {
                tokio::time::sleep_until(at.into()).await;
            }
            let from = scheduled.unwrap_or_else(Instant::now);
            let t = &txs[i];
            let result = send(&client, &url, &secret, i, t).await;
            let latency = from.elapsed();
            let (status, body) = match result {
                Ok(answer) => answer,
                Err(e) => {
                    // Status 0: no HTTP answer at all (connection refused, reset, timeout).
                    // The first few say why; the summary counts them all.
                    static SHOWN: AtomicUsize = AtomicUsize::new(0);
                    if SHOWN.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("{}: {e:#}", t.transaction_id);
                    }
                    (0, Value::Null)
                }
            };
            Outcome {
                status,
                latency,
                decision: body["decision"].as_str().map(str::to_string),
                score: body["score"].as_f64(),
                fraud: t.is_fraud == 1,
            }
        };
        match rate {
            Some(_) => tasks.push(tokio::spawn(task)),
            None => outcomes.push(task.await),
        }
        if i % 1000 == 999 {
            eprintln!("{} sent", i + 1);
        }
    }
    for task in tasks {
        outcomes.push(task.await?);
    }
    Ok(outcomes)
}

fn report(outcomes: &[Outcome]) {
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut decisions: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in outcomes {
        *statuses.entry(o.status).or_default() += 1;
        if let Some(d) = &o.decision {
            let entry = decisions.entry(d.as_str()).or_default();
            if o.fraud {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        }
    }
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort();
    let at = |p: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{} requests; status {}",
        outcomes.len(),
        statuses
            .iter()
            .map(|(s, n)| match s {
                0 => format!("no answer: {n}"),
                s => format!("{s}: {n}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "latency p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.95),
        at(0.99),
        at(1.0)
    );
    for (decision, (normal, fraud)) in &decisions {
        println!("{decision}: {normal} normal, {fraud} labelled fraud");
    }
    let mean = |fraud: bool| {
        let scores: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.fraud == fraud)
            .filter_map(|o| o.score)
            .collect();
        match scores.len() {
            0 => "-".to_string(),
            n => format!("{:.3}", scores.iter().sum::<f64>() / n as f64),
        }
    };
    println!(
        "mean score: {} for labelled fraud, {} for normal transactions",
        mean(true),
        mean(false)
    );
}
