//! `vitrine campaigns`: `ope`, off-policy evaluation of a campaign policy on logged decisions
//! — a CSV file with your own column names, or the decisions and feedback the campaigns
//! function logged in its SQLite database ([`vitrine_campaigns::ope`]); `simulate`, the
//! policies' regret on a problem with a known optimum ([`vitrine_campaigns::simulate`]).
//! docs/campaigns.md.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use vitrine_campaigns::ope::{self, Estimate, Logged, Policy};
use vitrine_campaigns::simulate::{self, Scenario};

use crate::plot::{line_chart, Series};

/// `vitrine campaigns`.
#[derive(Subcommand)]
pub enum CampaignsCommand {
    /// Estimate what a policy would have earned on logged decisions (IPS, self-normalized
    /// IPS, doubly robust; 95% bootstrap intervals).
    Ope(OpeArgs),
    /// Run random, Thompson-sampling and contextual (LinUCB) policies on simulated shoppers
    /// whose best offer depends on their segment; print and plot their cumulative regret.
    Simulate(SimulateArgs),
    /// Define campaigns and experiments from a file (TOML or JSON) through a running app's
    /// admin API; unchanged ones stay as they are, with what they learned.
    Apply(ApplyArgs),
}

/// `vitrine campaigns apply`.
#[derive(Args)]
pub struct ApplyArgs {
    /// The definitions: `[campaigns.<id>]` and `[experiments.<id>]` tables (TOML), or the
    /// same as JSON objects; each holds what `PUT /api/admin/campaigns/{id}` (or
    /// `/experiments/{id}`) takes.
    file: PathBuf,
    #[command(flatten)]
    app: crate::http::App,
}

/// `vitrine campaigns simulate`.
#[derive(Args)]
pub struct SimulateArgs {
    /// Decisions per policy.
    #[arg(long, default_value_t = 50_000)]
    decisions: usize,
    /// Seed of the scenario's rates and of the shoppers and conversions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Half-way through, each segment's best arm moves (non-stationary shoppers).
    #[arg(long)]
    drift: bool,
    /// Write the regret curves to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Run the decisions through this running app's campaigns function over HTTP (decide and
    /// feedback, its own policies and folds) instead of in process; `--token` is its admin
    /// token.
    #[arg(long)]
    url: Option<String>,
    /// Bearer token of the app's admin API (with `--url`).
    #[arg(
        long,
        env = "VITRINE_ADMIN_TOKEN",
        default_value = "dev-admin-token",
        hide_env_values = true
    )]
    token: String,
}

/// `vitrine campaigns ope`.
#[derive(Args)]
pub struct OpeArgs {
    /// The logged decisions, one per row: CSV with a header row, or Parquet (a `.parquet`
    /// name).
    #[arg(long, required_unless_present = "db", conflicts_with = "db")]
    logs: Option<PathBuf>,
    /// Or the campaigns function's own log: its SQLite database (`<state-dir>/sqlite/default.db`
    /// of `vitrine up`), with `--campaign`.
    #[arg(long, requires = "campaign")]
    db: Option<PathBuf>,
    /// The campaign whose decisions to evaluate (with `--db`); its current version's only, as
    /// arms may differ between versions.
    #[arg(long)]
    campaign: Option<String>,
    /// The reward of a decision read from `--db`: `conversion` (1 if it converted), `click`
    /// (1 if clicked) or `value` (the sum of its conversions' values).
    #[arg(long, default_value = "conversion", value_parser = ["conversion", "click", "value"])]
    reward: String,
    /// The policy to evaluate: `uniform`, `always:<action>`, `logging` (the policy that logged
    /// the data: a sanity check) or `greedy` (the best action by a reward model fitted on the
    /// logs).
    #[arg(long)]
    policy: String,
    /// Column names, where they differ: `action=<col>,reward=<col>,propensity=<col>`
    /// (defaults: `action`, `reward`, `propensity`).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Numeric context columns for the reward model (doubly robust, greedy); none by default.
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
    /// Bootstrap resamples for the intervals.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs a `vitrine campaigns` command.
pub fn run(command: CampaignsCommand) -> Result<()> {
    match command {
        CampaignsCommand::Ope(args) => ope_command(args),
        CampaignsCommand::Simulate(args) => simulate_command(args),
        CampaignsCommand::Apply(args) => tokio::runtime::Runtime::new()?.block_on(apply(args)),
    }
}

/// TOML date-times (`start = 2026-12-01T00:00:00Z`, unquoted) as the RFC 3339 text the API
/// takes.
fn toml_datetimes_as_text(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => match map.get("$__toml_private_datetime") {
            Some(Value::String(text)) if map.len() == 1 => Value::String(text.clone()),
            _ => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, toml_datetimes_as_text(v)))
                    .collect(),
            ),
        },
        Value::Array(items) => {
            Value::Array(items.into_iter().map(toml_datetimes_as_text).collect())
        }
        other => other,
    }
}

/// Reads the definitions file and puts each definition; a refused one is reported with the
/// file and its table (`campaigns.winter: arms[1].id: …`), and the others still go.
async fn apply(args: ApplyArgs) -> Result<()> {
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {file}"))?;
    let document: serde_json::Value = match args.file.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str(&text).with_context(|| format!("{file}: not TOML"))?,
        Some("json") => serde_json::from_str(&text).with_context(|| format!("{file}: not JSON"))?,
        _ => bail!("{file}: name a .toml or .json file"),
    };
    let document = toml_datetimes_as_text(document);
    let Some(tables) = document.as_object() else {
        bail!("{file}: expected tables `campaigns` and `experiments`");
    };
    if let Some(unknown) = tables
        .keys()
        .find(|k| !["campaigns", "experiments"].contains(&k.as_str()))
    {
        bail!("{file}: unknown table `{unknown}` (expected `campaigns` and `experiments`)");
    }
    let client = reqwest::Client::new();
    let (mut applied, mut refused) = (0, 0);
    for kind in ["experiments", "campaigns"] {
        let Some(entries) = tables.get(kind) else {
            continue;
        };
        let Some(entries) = entries.as_object() else {
            bail!("{file}: `{kind}` must be a table of definitions by id");
        };
        for (id, definition) in entries {
            let url = format!(
                "{}/api/admin/{kind}/{id}",
                args.app.url.trim_end_matches('/')
            );
            let response = client
                .put(&url)
                .bearer_auth(&args.app.token)
                .json(definition)
                .send()
                .await
                .with_context(|| format!("PUT {url}"))?;
            let status = response.status();
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            if status.is_success() {
                applied += 1;
                match (kind, answer["changed"].as_bool()) {
                    ("campaigns", Some(false)) => {
                        println!("{kind}.{id}: unchanged (version {})", answer["version"])
                    }
                    ("campaigns", _) => println!("{kind}.{id}: version {}", answer["version"]),
                    _ => println!("{kind}.{id}: stored"),
                }
            } else {
                refused += 1;
                let message = answer["error"]
                    .as_str()
                    .map_or_else(|| status.to_string(), str::to_string);
                eprintln!("{file}: {kind}.{id}: {message}");
            }
        }
    }
    if refused > 0 {
        bail!("{refused} of {} definitions refused", applied + refused);
    }
    Ok(())
}

/// The logs read: rows, action names (index = action), rows left out for want of a
/// propensity.
struct Read {
    rows: Vec<Logged>,
    actions: Vec<String>,
    missing_propensity: usize,
}

/// The logs `args` name: the CSV file, or the campaigns function's database.
fn read(args: &OpeArgs) -> Result<(Read, String)> {
    match (&args.logs, &args.db, &args.campaign) {
        (Some(logs), _, _) => Ok((read_file(args, logs)?, logs.display().to_string())),
        (None, Some(db), Some(campaign)) => {
            if !args.features.is_empty() || !args.columns.is_empty() {
                bail!("--features and --columns are for --logs: --db uses the logged features");
            }
            let read = read_db(db, campaign, &args.reward)
                .with_context(|| format!("reading campaign `{campaign}` from {}", db.display()))?;
            Ok((read, format!("campaign {campaign} in {}", db.display())))
        }
        _ => bail!("give --logs FILE, or --db FILE with --campaign ID"),
    }
}

/// The decisions of `campaign`'s current version that the campaigns function logged in `db`,
/// with the reward its feedback gives each; actions are the arms' ids, features the context
/// features the policy saw.
fn read_db(db: &std::path::Path, campaign: &str, reward: &str) -> Result<Read> {
    let db = crate::app_db::open(db)?;
    let (definition, version): (String, i64) = crate::app_db::find(
        &db,
        "campaigns",
        "campaign",
        campaign,
        "definition, version",
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let definition: serde_json::Value = serde_json::from_str(&definition)?;
    let arms: Vec<String> = definition["arms"]
        .as_array()
        .map(|arms| {
            (arms.iter())
                .filter_map(|a| a["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let outcome = match reward {
        "click" => "EXISTS (SELECT 1 FROM campaign_feedback f WHERE f.decision_id = d.id AND f.event = 'click')",
        "value" => "(SELECT coalesce(sum(coalesce(f.value, 0)), 0) FROM campaign_feedback f WHERE f.decision_id = d.id AND f.event = 'conversion')",
        _ => "EXISTS (SELECT 1 FROM campaign_feedback f WHERE f.decision_id = d.id AND f.event = 'conversion')",
    };
    let mut query = db.prepare(&format!(
        "SELECT d.arm, d.propensity, d.features, {outcome} FROM campaign_decisions d
          WHERE d.campaign = ? AND d.version = ? ORDER BY d.rowid"
    ))?;
    let mut rows = Vec::new();
    let mut missing_propensity = 0;
    let logged = query.query_map(rusqlite::params![campaign, version], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, f64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, f64>(3)?,
        ))
    })?;
    for row in logged {
        let (arm, propensity, features, reward) = row?;
        let action = usize::try_from(arm)
            .ok()
            .filter(|a| *a < arms.len())
            .with_context(|| {
                format!(
                    "a decision names arm {arm}; version {version} has {}",
                    arms.len()
                )
            })?;
        if !(propensity > 0.0 && propensity <= 1.0) {
            missing_propensity += 1;
            continue;
        }
        let features: Vec<f64> = serde_json::from_str(&features)
            .with_context(|| format!("a decision's features `{features}` are not numbers"))?;
        rows.push(Logged {
            action,
            features,
            reward,
            propensity,
        });
    }
    Ok(Read {
        rows,
        actions: arms,
        missing_propensity,
    })
}

/// A logs file as text cells: its column names, and each row with where it is (`line 7`,
/// `row 7`) for error messages.
struct Table {
    headers: Vec<String>,
    rows: Box<dyn Iterator<Item = Result<(String, Vec<String>)>>>,
}

/// A CSV file with a header row.
fn csv_table(path: &std::path::Path, file: &str) -> Result<Table> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("opening {file}"))?;
    let headers = (reader.headers())
        .with_context(|| format!("{file}: header row"))?
        .iter()
        .map(str::to_string)
        .collect();
    let file = file.to_string();
    let rows = reader.into_records().map(move |record| {
        let record = record.with_context(|| format!("reading {file}"))?;
        let line = record.position().map_or(0, |p| p.line());
        Ok((
            format!("line {line}"),
            record.iter().map(str::to_string).collect(),
        ))
    });
    Ok(Table {
        headers,
        rows: Box::new(rows),
    })
}

/// A Parquet file: its top-level columns, each value as text (null: empty).
fn parquet_table(path: &std::path::Path, file: &str) -> Result<Table> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let opened = std::fs::File::open(path).with_context(|| format!("opening {file}"))?;
    let reader =
        SerializedFileReader::new(opened).with_context(|| format!("{file}: not a Parquet file"))?;
    let headers: Vec<String> = (reader
        .metadata()
        .file_metadata()
        .schema()
        .get_fields()
        .iter())
    .map(|f| f.name().to_string())
    .collect();
    let text = |field: &Field| match field {
        Field::Null => String::new(),
        Field::Str(s) => s.clone(),
        other => other.to_string(),
    };
    let file = file.to_string();
    let rows = reader.into_iter().enumerate().map(move |(i, row)| {
        let row = row.with_context(|| format!("reading {file}"))?;
        let cells = row
            .get_column_iter()
            .map(|(_, field)| text(field))
            .collect();
        Ok((format!("row {}", i + 1), cells))
    });
    Ok(Table {
        headers,
        rows: Box::new(rows),
    })
}

/// The logged decisions of a CSV or Parquet file (by its extension), columns mapped by
/// `--columns` and `--features`.
fn read_file(args: &OpeArgs, logs: &std::path::Path) -> Result<Read> {
    let mut names: BTreeMap<&str, String> = [
        ("action", "action"),
        ("reward", "reward"),
        ("propensity", "propensity"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    for mapping in &args.columns {
        let Some((field, column)) = mapping.split_once('=') else {
            bail!("--columns `{mapping}` is not field=column");
        };
        match names.get_mut(field) {
            Some(name) => *name = column.to_string(),
            None => {
                bail!("--columns: unknown field `{field}` (fields: action, reward, propensity)")
            }
        }
    }
    let file = logs.display().to_string();
    let table = match logs.extension().and_then(|e| e.to_str()) {
        Some("parquet") => parquet_table(logs, &file)?,
        _ => csv_table(logs, &file)?,
    };
    let headers = &table.headers;
    let column = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            format!(
                "{file}: no column `{name}` (columns: {})",
                headers.join(", ")
            )
        })
    };
    let (action, reward, propensity) = (
        column(&names["action"])?,
        column(&names["reward"])?,
        column(&names["propensity"])?,
    );
    let features: Vec<(usize, &str)> = args
        .features
        .iter()
        .map(|f| Ok((column(f)?, f.as_str())))
        .collect::<Result<_>>()?;
    let mut actions: Vec<String> = Vec::new();
    let mut raw = Vec::new();
    let mut missing_propensity = 0;
    for row in table.rows {
        let (at, cells) = row?;
        let cell = |i: usize| cells.get(i).map_or("", |c| c.trim());
        let number = |i: usize, name: &str| -> Result<f64> {
            let text = cell(i);
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .with_context(|| format!("{file}: {at}: {name} `{text}` is not a number"))
        };
        if cell(propensity).is_empty() {
            missing_propensity += 1;
            continue;
        }
        let p = number(propensity, &names["propensity"])?;
        if !(p > 0.0 && p <= 1.0) {
            bail!("{file}: {at}: {} {p} is not in (0, 1]", names["propensity"]);
        }
        let name = cell(action).to_string();
        if name.is_empty() {
            bail!("{file}: {at}: {} is empty", names["action"]);
        }
        let x = features
            .iter()
            .map(|(i, f)| number(*i, f))
            .collect::<Result<Vec<f64>>>()?;
        if !actions.contains(&name) {
            actions.push(name.clone());
        }
        raw.push((name, x, number(reward, &names["reward"])?, p));
    }
    actions.sort();
    let rows = raw
        .into_iter()
        .map(|(name, features, reward, propensity)| Logged {
            action: actions.binary_search(&name).unwrap_or(0),
            features,
            reward,
            propensity,
        })
        .collect();
    Ok(Read {
        rows,
        actions,
        missing_propensity,
    })
}

fn ope_command(args: OpeArgs) -> Result<()> {
    let (read, source) = read(&args)?;
    let policy = match args.policy.as_str() {
        "uniform" => Policy::Uniform,
        "logging" => Policy::Logging,
        "greedy" => Policy::Greedy,
        other => match other.strip_prefix("always:") {
            Some(action) => match read.actions.iter().position(|a| a == action) {
                Some(i) => Policy::Always(i),
                None => bail!(
                    "--policy always:{action}: no such action in the logs (actions: {})",
                    read.actions.join(", ")
                ),
            },
            None => bail!("--policy `{other}`: use uniform, always:<action>, logging or greedy"),
        },
    };
    let e = ope::evaluate(
        &read.rows,
        read.actions.len(),
        &policy,
        args.resamples,
        args.seed,
    )
    .with_context(|| format!("evaluating {source}"))?;
    let mut warnings = Vec::new();
    if read.missing_propensity > 0 {
        warnings.push(format!(
            "{} rows without a propensity were left out",
            read.missing_propensity
        ));
    }
    if e.tiny_propensities > 0 {
        warnings.push(format!(
            "{} rows have a propensity below {}: their weights make the estimates fragile",
            e.tiny_propensities,
            ope::TINY_PROPENSITY
        ));
    }
    if e.effective_sample_size < 0.1 * e.rows as f64 {
        warnings.push(format!(
            "effective sample size {:.0} is under 10% of the rows: the policy is far from the logging policy, trust the intervals, not the points",
            e.effective_sample_size
        ));
    }
    let estimate = |x: &Estimate| json!({ "value": x.value, "ci95": [x.low, x.high] });
    if args.json {
        let out = json!({
            "policy": args.policy,
            "rows": e.rows,
            "actions": read.actions,
            "logged_mean_reward": e.logged_mean,
            "ips": estimate(&e.ips),
            "snips": estimate(&e.snips),
            "dr": estimate(&e.dr),
            "effective_sample_size": e.effective_sample_size,
            "warnings": warnings,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{} decisions, actions {}; logged mean reward {:.4}",
        e.rows,
        read.actions.join(", "),
        e.logged_mean
    );
    println!("policy {}:", args.policy);
    for (name, x) in [("IPS", &e.ips), ("SNIPS", &e.snips), ("DR", &e.dr)] {
        println!(
            "  {name:<6} {:.4}   95% CI [{:.4}, {:.4}]",
            x.value, x.low, x.high
        );
    }
    println!(
        "  effective sample size {:.0} ({:.0}% of the rows)",
        e.effective_sample_size,
        100.0 * e.effective_sample_size / e.rows as f64
    );
    for warning in warnings {
        println!("warning: {warning}");
    }
    Ok(())
}

/// The scenario run through a live app: three campaigns (uniform, Thompson sampling,
/// LinUCB; ids unique to this run) with the scenario's arms, every simulated shopper decided
/// on all three in one `decide` request, conversions drawn from the scenario's rates and sent
/// as feedback. A segment is told to the function through the context it sees: device and
/// cart (desktop, mobile, tablet; desktop with a full cart), at noon today.
async fn simulate_over_http(
    scenario: &Scenario,
    args: &SimulateArgs,
    url: &str,
    every: usize,
) -> Result<Vec<(&'static str, Vec<(usize, f64)>)>> {
    use rand::{Rng, SeedableRng};
    const POLICIES: [(&str, &str); 3] = [
        ("random", "uniform"),
        ("thompson", "thompson"),
        ("linucb", "linucb"),
    ];
    let base = url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let run = format!("sim-{}-{}", args.seed, chrono::Utc::now().timestamp());
    let arms: Vec<serde_json::Value> = (0..scenario.rates[0].len())
        .map(|a| json!({ "id": format!("a{a}"), "offer": format!("offer {a}"), "message": "{offer}" }))
        .collect();
    for (name, kind) in POLICIES {
        let definition = json!({
            "name": format!("simulation {run} ({name})"), "channel": "banner", "policy": kind,
            "epsilon": 0.0, "arms": arms,
        });
        let endpoint = format!("{base}/api/admin/campaigns/{run}-{name}");
        crate::http::send(
            client
                .put(&endpoint)
                .bearer_auth(&args.token)
                .json(&definition),
            &format!("PUT {endpoint}"),
        )
        .await?;
    }
    println!("over HTTP at {base}: campaigns {run}-random, {run}-thompson, {run}-linucb");
    let contexts = [
        json!({ "device": "desktop", "cart": 0 }),
        json!({ "device": "mobile", "cart": 0 }),
        json!({ "device": "tablet", "cart": 0 }),
        json!({ "device": "desktop", "cart": 200 }),
    ];
    // One hour of the day for every decision (the function's hour features stay constant),
    // today, so that feedback is within the attribution window.
    let noon = format!("{}T12:00:00Z", chrono::Utc::now().date_naive());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed + 1);
    let (mut regrets, mut curves) = ([0.0; 3], vec![Vec::new(); 3]);
    let (mut feedback, mut unshown) = (Vec::new(), 0usize);
    let (decide, feedback_url) = (
        format!("{base}/api/campaigns/decide"),
        format!("{base}/api/campaigns/feedback"),
    );
    let progress = indicatif::ProgressBar::new(args.decisions as u64);
    for t in 0..args.decisions {
        let segment = rng.random_range(0..scenario.segments());
        let mut context = contexts[segment % contexts.len()].clone();
        context["time"] = noon.clone().into();
        let body = json!({ "shopper": format!("{run}-s{t}"), "context": context });
        let answer: serde_json::Value =
            crate::http::send(client.post(&decide).json(&body), &format!("POST {decide}"))
                .await?
                .json()
                .await?;
        let rates = scenario.rates_at(t, args.decisions, segment);
        let best = rates.iter().copied().fold(0.0, f64::max);
        for (p, (name, _)) in POLICIES.iter().enumerate() {
            let campaign = format!("{run}-{name}");
            let decision = (answer["decisions"].as_array().into_iter().flatten())
                .find(|d| d["campaign"] == campaign.as_str());
            let arm = decision
                .and_then(|d| d["arm"].as_str())
                .and_then(|a| a.strip_prefix('a'))
                .and_then(|a| a.parse::<usize>().ok())
                .filter(|a| *a < rates.len());
            let (Some(decision), Some(arm)) = (decision, arm) else {
                unshown += 1;
                continue;
            };
            regrets[p] += best - rates[arm];
            if rng.random_bool(rates[arm]) {
                feedback.push(json!({
                    "event_id": format!("{run}-c{t}-{p}"),
                    "decision_id": decision["decision_id"],
                    "event": "conversion",
                }));
            }
        }
        if feedback.len() >= 100 || t + 1 == args.decisions {
            let batch = json!({ "events": std::mem::take(&mut feedback) });
            crate::http::send(
                client.post(&feedback_url).json(&batch),
                &format!("POST {feedback_url}"),
            )
            .await?;
        }
        if (t + 1) % every.max(1) == 0 || t + 1 == args.decisions {
            for (curve, regret) in curves.iter_mut().zip(regrets) {
                curve.push((t + 1, regret));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    if unshown > 0 {
        println!("warning: {unshown} of the simulation's decisions showed nothing (caps or consent of this app?): their regret is not counted");
    }
    Ok(POLICIES.iter().map(|(name, _)| *name).zip(curves).collect())
}

fn simulate_command(args: SimulateArgs) -> Result<()> {
    if args.decisions == 0 {
        bail!("--decisions must be at least 1");
    }
    let scenario = Scenario {
        drift: args.drift,
        ..Scenario::context_dependent(args.seed)
    };
    println!(
        "{} decisions per policy; 4 segments, 5 arms, each segment its own best arm{}",
        args.decisions,
        if args.drift {
            ", best arms moving half-way"
        } else {
            ""
        }
    );
    let every = (args.decisions / 200).max(1);
    let runs: Vec<(&str, Vec<(usize, f64)>)> = match &args.url {
        None => simulate::contenders(&scenario)
            .into_iter()
            .map(|(name, policy)| {
                let curve = simulate::run(&scenario, policy, args.decisions, every, args.seed + 1);
                (name, curve)
            })
            .collect(),
        Some(url) => tokio::runtime::Runtime::new()?
            .block_on(simulate_over_http(&scenario, &args, url, every))?,
    };
    let mut curves = Vec::new();
    for (name, curve) in runs {
        let regret = curve.last().map_or(0.0, |p| p.1);
        println!(
            "  {name:<9} cumulative regret {regret:>9.1}  ({:.4} per decision)",
            regret / args.decisions as f64
        );
        curves.push((name, curve, regret));
    }
    let (random, thompson, contextual) = (curves[0].2, curves[1].2, curves[2].2);
    println!(
        "thompson / random {:.2} (target ≤ 0.5); linucb / thompson {:.2} (target ≤ 0.7)",
        thompson / random,
        contextual / thompson
    );
    if let Some(path) = &args.plot {
        let series: Vec<Series<'_>> = curves
            .iter()
            .map(|(name, curve, _)| Series {
                name,
                points: curve.iter().map(|(t, r)| (*t as f64, *r)).collect(),
            })
            .collect();
        let svg = line_chart(
            "Cumulative regret by policy",
            "decisions",
            "expected regret (conversions lost)",
            &series,
        );
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("plot: {}", path.display());
    }
    Ok(())
}
