//! `vitrine rollout start|status|abort`: staged canary rollouts on a running `vitrine up`,
//! through its admin listener's `/admin/rollout` (docs/deploy.md).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use vitrine_runtime::rollout::{parse_duration, Analysis};

use crate::http::send;

/// Where the running `vitrine up`'s admin listener is, and its token.
#[derive(Args)]
pub struct Admin {
    /// The admin listener's address (`vitrine up --admin-listen`).
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    admin: String,
    /// Its bearer token (`vitrine up --traffic-token`).
    #[arg(long, env = "VITRINE_TRAFFIC_TOKEN", hide_env_values = true)]
    token: String,
}

/// `vitrine rollout`.
#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Start moving traffic to RELEASE step by step, judging each step against the stable
    /// release; promote when all pass, roll back at the first that fails.
    Start(StartArgs),
    /// Show the rollout: step, weights, both releases' figures side by side, verdicts.
    Status(StatusArgs),
    /// Stop the running rollout and send all traffic back to the stable release.
    Abort(Admin),
}

/// `vitrine rollout start`.
#[derive(Args)]
pub struct StartArgs {
    /// The release to roll out (label or digest, see `vitrine releases`).
    release: String,
    /// The canary's weight at each step, percent, increasing, ending at 100.
    #[arg(long, value_delimiter = ',', default_value = "1,5,25,50,100")]
    steps: Vec<u32>,
    /// How long each step lasts before it is judged (`60s`, `500ms`, `2m`).
    #[arg(long, default_value = "60s")]
    interval: String,
    /// Thresholds, TOML: `min_requests`, `min_success_rate`, `max_p99_ratio`, `p99_slack_ms`.
    #[arg(long)]
    analysis: Option<PathBuf>,
    #[command(flatten)]
    admin: Admin,
}

/// `vitrine rollout status`.
#[derive(Args)]
pub struct StatusArgs {
    /// Print the state as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: Admin,
}

/// Runs a `vitrine rollout` command.
pub fn run(command: RolloutCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        match command {
            RolloutCommand::Start(args) => {
                let analysis = match &args.analysis {
                    Some(path) => {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        let analysis: Analysis = toml::from_str(&text)
                            .with_context(|| format!("invalid analysis file {}", path.display()))?;
                        analysis
                            .check()
                            .map_err(anyhow::Error::msg)
                            .with_context(|| format!("invalid analysis file {}", path.display()))?;
                        analysis
                    }
                    None => Analysis::default(),
                };
                let interval = parse_duration(&args.interval).map_err(anyhow::Error::msg)?;
                let plan = json!({
                    "release": args.release,
                    "steps": args.steps,
                    "interval_ms": interval.as_millis() as u64,
                    "analysis": analysis,
                });
                let url = format!("{}/admin/rollout", args.admin.admin);
                let request = client.post(&url).bearer_auth(&args.admin.token).json(&plan);
                let state: Value = send(request, &format!("POST {url}")).await?.json().await?;
                print!("{}", describe(&state));
            }
            RolloutCommand::Status(args) => {
                let url = format!("{}/admin/rollout", args.admin.admin);
                let request = client.get(&url).bearer_auth(&args.admin.token);
                let state: Value = send(request, &format!("GET {url}")).await?.json().await?;
                match args.json {
                    true => println!("{}", serde_json::to_string_pretty(&state)?),
                    false => print!("{}", describe(&state)),
                }
            }
            RolloutCommand::Abort(admin) => {
                let url = format!("{}/admin/rollout", admin.admin);
                let request = client.delete(&url).bearer_auth(&admin.token);
                let state: Value = send(request, &format!("DELETE {url}"))
                    .await?
                    .json()
                    .await?;
                print!("{}", describe(&state));
            }
        }
        Ok(())
    })
}

/// A rollout's state in words: status, weights, the current windows side by side, verdicts.
fn describe(state: &Value) -> String {
    let canary = state["plan"]["release"].as_str().unwrap_or("?");
    let stable = state["stable"].as_str().unwrap_or("?");
    let steps: Vec<String> = state["plan"]["steps"]
        .as_array()
        .map(|s| s.iter().map(|w| format!("{w}%")).collect())
        .unwrap_or_default();
    let step = state["step"].as_u64().unwrap_or(0) as usize;
    let status = match state["status"]["state"].as_str().unwrap_or("?") {
        "running" => format!(
            "running, step {} of {} ({})",
            step + 1,
            steps.len(),
            steps.get(step).map_or("?", String::as_str)
        ),
        "rolled_back" => format!(
            "rolled back: {}",
            state["status"]["reason"].as_str().unwrap_or("")
        ),
        other => other.replace('_', " "),
    };
    let mut out = format!(
        "rollout of {canary} (stable: {stable}), started {}: {status}\n",
        state["started"].as_str().unwrap_or("?")
    );
    let weights: Vec<String> = state["weights"]
        .as_array()
        .map(|w| {
            w.iter()
                .map(|r| format!("{} {}%", r["release"].as_str().unwrap_or("?"), r["weight"]))
                .collect()
        })
        .unwrap_or_default();
    out += &format!("traffic: {}\n", weights.join(", "));
    out += &format!(
        "this window     {:>10} {:>8} {:>9} {:>10}\n",
        "requests", "errors", "success", "p99"
    );
    for (role, label) in [("canary", canary), ("stable", stable)] {
        let w = &state["window"][role];
        out += &format!(
            "  {role} {label:<8} {:>10} {:>8} {:>8.2}% {:>7.1} ms\n",
            w["requests"].as_u64().unwrap_or(0),
            w["errors"].as_u64().unwrap_or(0),
            w["success_rate"].as_f64().unwrap_or(1.0) * 100.0,
            w["p99_ms"].as_f64().unwrap_or(0.0)
        );
    }
    for verdict in state["history"].as_array().into_iter().flatten() {
        out += &format!(
            "  {} at {}%: {} — {} (canary {} requests, stable {})\n",
            verdict["at"].as_str().unwrap_or("?"),
            verdict["weight"],
            match verdict["passed"].as_bool() {
                Some(true) => "passed",
                _ => "FAILED",
            },
            verdict["reason"].as_str().unwrap_or(""),
            verdict["canary"]["requests"],
            verdict["stable"]["requests"],
        );
    }
    out
}
