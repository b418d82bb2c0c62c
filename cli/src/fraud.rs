//! `vitrine fraud …`: fraud and anti-money-laundering data.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vitrine_fraud::graph::Event;
use vitrine_fraud::training::{Prepared, TrainOptions};
use vitrine_fraud::GenerateConfig;

#[derive(Subcommand)]
pub enum FraudCommand {
    /// Generate a synthetic bank with labelled fraud and laundering, as CSV files.
    Generate(GenerateArgs),
    /// Check and convert your own accounts and transactions into the documented format.
    Import(ImportArgs),
    /// Train logistic regression, boosted trees, an MLP and a GNN at transaction level and at
    /// account level; print held-out metrics side by side.
    Eval(EvalArgs),
    /// Train the fraud GNN on labelled files and install it in a worker's model repository.
    Train(TrainArgs),
    /// Score unlabelled files with a trained model: per-transaction and per-account CSV.
    Score(ScoreArgs),
    /// Post transactions from a file to the webhook, signed, and report decisions and latency.
    Replay(crate::replay::ReplayArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    /// Folder with `accounts.csv` and `transactions.csv` in the documented format: the models
    /// train on its earliest transactions and are measured on the rest.
    #[arg(long, required_unless_present = "train", conflicts_with = "train")]
    data: Option<PathBuf>,
    /// Train on this bank (a folder as for --data; its latest 20% of transactions and a fifth
    /// of its accounts choose the thresholds); repeat to train on several banks at once,
    /// kept apart (their ids are suffixed `~1`, `~2`, …) …
    #[arg(long, requires = "test")]
    train: Vec<PathBuf>,
    /// … and measure on all of this one, which the models never saw.
    #[arg(long, requires = "train")]
    test: Option<PathBuf>,
    /// Share of the transactions (earliest first) used for training, with --data.
    #[arg(long, default_value_t = 0.7, conflicts_with = "train")]
    train_share: f64,
    /// Seed of the networks' weights and sampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Training epochs of the transaction networks.
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// Which models to evaluate: `transactions` (fraud and laundering transfers), `accounts`
    /// (laundering accounts) or `both`.
    #[arg(long, default_value = "both", value_parser = ["transactions", "accounts", "both"])]
    level: String,
    /// Full-batch training steps of the account networks (the weights of the step with the
    /// best validation PR-AUC are kept).
    #[arg(long, default_value_t = 300)]
    account_steps: usize,
    /// For data that labels only accounts: label each transfer between two accounts labelled
    /// as laundering as laundering, and train the transaction models on that.
    #[arg(long)]
    derive_transaction_labels: bool,
}

/// Reads labelled data for training, deriving transaction labels from account labels if
/// `derive` (see [`vitrine_fraud::import::derive_transaction_labels`]).
fn read_labelled(dir: &std::path::Path, derive: bool) -> Result<vitrine_fraud::import::Imported> {
    let mut data = read_data(dir)?;
    if derive {
        let labelled = vitrine_fraud::import::derive_transaction_labels(
            &mut data.transactions,
            &data.accounts,
        );
        eprintln!("labelled {labelled} transfers between laundering accounts as laundering");
    }
    Ok(data)
}

/// Several banks as one whose parts never meet: each bank's ids gain the suffix `~N` (its
/// position, from 1), which keeps their kind prefixes; transactions in time order. One bank is
/// returned as it is.
fn disjoint_union(
    mut banks: Vec<vitrine_fraud::import::Imported>,
) -> vitrine_fraud::import::Imported {
    if banks.len() == 1 {
        return banks.remove(0);
    }
    let mut union = vitrine_fraud::import::Imported::default();
    for (n, bank) in banks.into_iter().enumerate() {
        let tag = |id: &mut String| {
            if !id.is_empty() {
                id.push_str(&format!("~{}", n + 1));
            }
        };
        for mut a in bank.accounts {
            tag(&mut a.account_id);
            tag(&mut a.customer_id);
            union.accounts.push(a);
        }
        for mut t in bank.transactions {
            for id in [
                &mut t.transaction_id,
                &mut t.source,
                &mut t.target,
                &mut t.card_id,
                &mut t.device_id,
                &mut t.pattern_id,
            ] {
                tag(id);
            }
            union.transactions.push(t);
        }
    }
    union
        .transactions
        .sort_by_cached_key(|t| Event::from_transaction(t).time);
    union
}

/// Reads `accounts.csv` and `transactions.csv` from a folder in the documented format.
fn read_data(dir: &std::path::Path) -> Result<vitrine_fraud::import::Imported> {
    let accounts = dir.join("accounts.csv");
    Ok(vitrine_fraud::import::import(
        accounts.exists().then_some(accounts.as_path()),
        &dir.join("transactions.csv"),
        &vitrine_fraud::import::ImportOptions::default(),
    )?)
}

fn eval(args: EvalArgs) -> Result<()> {
    anyhow::ensure!(
        args.train_share > 0.0 && args.train_share < 1.0,
        "--train-share must be between 0 and 1, got {}",
        args.train_share
    );
    anyhow::ensure!(args.account_steps > 0, "--account-steps must be at least 1");
    let options = vitrine_fraud::eval::EvalOptions {
        transactions: (args.level != "accounts").then(|| TrainOptions {
            epochs: args.epochs,
            ..TrainOptions::new(args.seed)
        }),
        accounts: (args.level != "transactions").then(|| {
            vitrine_fraud::account_gnn::AccountOptions {
                epochs: args.account_steps,
                ..vitrine_fraud::account_gnn::AccountOptions::new(args.seed)
            }
        }),
    };
    let derive = args.derive_transaction_labels;
    let progress = |line: &str| eprintln!("{line}");
    let (report, split) = match (&args.data, &args.train, &args.test) {
        (Some(dir), _, _) => {
            let data = read_labelled(dir, derive)?;
            eprintln!(
                "computing features and the graph of {} transactions …",
                data.transactions.len()
            );
            let report = vitrine_fraud::eval::evaluate(
                &data.accounts,
                &data.transactions,
                args.train_share,
                &options,
                progress,
            )?;
            (report, "within one bank")
        }
        (None, train, Some(test)) if !train.is_empty() => {
            let banks = (train.iter())
                .map(|dir| read_labelled(dir, derive))
                .collect::<Result<Vec<_>>>()?;
            let (a, b) = (disjoint_union(banks), read_labelled(test, derive)?);
            eprintln!(
                "computing features and the graphs of {} and {} transactions …",
                a.transactions.len(),
                b.transactions.len()
            );
            let report = vitrine_fraud::eval::evaluate_across(
                (&a.accounts, &a.transactions),
                (&b.accounts, &b.transactions),
                &options,
                progress,
            )?;
            (report, "across banks")
        }
        _ => anyhow::bail!("give --data DIR, or --train DIR and --test DIR"),
    };
    for why in &report.skipped {
        println!("{why}\n");
    }
    if let Some(t) = &report.transactions {
        println!(
            "transactions, {split}: {} to fit, {} to choose thresholds, {} held out ({} fraud or laundering)",
            t.fit_rows, t.validation_rows, t.test_rows, t.test_positives
        );
        println!(
            "{:<40} {:>7} {:>7} {:>6} {:>9} {:>7} {:>9} {:>14} {:>8}",
            "model",
            "PR-AUC",
            "ROC-AUC",
            "F1",
            "precision",
            "recall",
            "threshold",
            "account PR-AUC",
            "seconds"
        );
        for m in &t.models {
            println!(
                "{:<40} {} {:>14.3} {:>8.1}",
                m.model,
                quality_cells(&m.quality),
                m.account_pr_auc,
                m.seconds
            );
        }
        println!("\nrecall per typology at each model's threshold (caught / held-out):");
        for m in &t.models {
            println!(
                "  {}: {}",
                m.model,
                typology_cells(&m.quality.recall_by_typology)
            );
        }
    }
    if let Some(a) = &report.accounts {
        if report.transactions.is_some() {
            println!();
        }
        println!(
            "accounts, {split}: {} to fit, {} to choose thresholds, {} held out ({} laundering)",
            a.fit_accounts, a.validation_accounts, a.test_accounts, a.test_positives
        );
        println!(
            "{:<40} {:>7} {:>7} {:>6} {:>9} {:>7} {:>9} {:>8}",
            "model", "PR-AUC", "ROC-AUC", "F1", "precision", "recall", "threshold", "seconds"
        );
        for m in &a.models {
            println!(
                "{:<40} {} {:>8.1}",
                m.model,
                quality_cells(&m.quality),
                m.seconds
            );
        }
        println!("\nlaundering accounts caught per typology at each model's threshold:");
        for m in &a.models {
            println!(
                "  {}: {}",
                m.model,
                typology_cells(&m.quality.recall_by_typology)
            );
        }
    }
    Ok(())
}

/// PR-AUC, ROC-AUC, F1, precision, recall and threshold, in the tables' columns.
fn quality_cells(q: &vitrine_fraud::eval::Quality) -> String {
    format!(
        "{:>7.3} {:>7.3} {:>6.3} {:>9.3} {:>7.3} {:>9.3}",
        q.pr_auc, q.roc_auc, q.f1, q.precision, q.recall, q.threshold
    )
}

/// `typology caught/total, …`.
fn typology_cells(recall: &BTreeMap<String, (usize, usize)>) -> String {
    let cells: Vec<String> = recall
        .iter()
        .map(|(t, (hit, all))| format!("{t} {hit}/{all}"))
        .collect();
    cells.join(", ")
}

#[derive(Args)]
pub struct TrainArgs {
    /// Folder with labelled `accounts.csv` and `transactions.csv` in the documented format.
    #[arg(long)]
    data: PathBuf,
    /// Model repository to install the models into (their next version).
    #[arg(long, default_value = ".vitrine/models")]
    out: PathBuf,
    /// Model name in the repository.
    #[arg(long, default_value = "fraud-gnn")]
    name: String,
    /// Seed of the weights and sampling: the same data and seed give the same models.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Training epochs of the transaction model.
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// Which models to train: `transactions` (the fraud GNN the webhook scores with, from
    /// transaction labels), `accounts` (the account-level AML model, from account labels) or
    /// `both` (each one whose labels the data holds).
    #[arg(long, default_value = "both", value_parser = ["transactions", "accounts", "both"])]
    level: String,
    /// Full-batch training steps of the account model (the weights of the step with the best
    /// validation PR-AUC are kept).
    #[arg(long, default_value_t = 300)]
    account_steps: usize,
    /// For data that labels only accounts: label each transfer between two accounts labelled
    /// as laundering as laundering, and train the transaction model on that.
    #[arg(long)]
    derive_transaction_labels: bool,
}

/// Which models `train` fits on `data` for `level`: (transactions, accounts), with a line for
/// each one skipped for want of labels; an error when none is left or an asked-for one
/// cannot be trained.
fn levels_to_train(
    data: &vitrine_fraud::import::Imported,
    level: &str,
) -> Result<(bool, bool, Vec<String>)> {
    let fraud = data.transactions.iter().any(|t| t.is_fraud == 1);
    let laundering = data.accounts.iter().any(|a| a.is_laundering == 1);
    let no_fraud = "no transaction is labelled as fraud or laundering (is_fraud = 1); \
                    --derive-transaction-labels derives them from account labels";
    let no_laundering = "no account is labelled as laundering (is_laundering = 1)";
    match level {
        "transactions" => anyhow::ensure!(fraud, "--level transactions: {no_fraud}"),
        "accounts" => anyhow::ensure!(laundering, "--level accounts: {no_laundering}"),
        _ => anyhow::ensure!(
            fraud || laundering,
            "nothing to learn from: {no_fraud}, and {no_laundering}"
        ),
    }
    let transactions = level != "accounts" && fraud;
    let accounts = level != "transactions" && laundering;
    let mut skipped = Vec::new();
    if level == "both" && !fraud {
        skipped.push(format!("transaction model skipped: {no_fraud}"));
    }
    if level == "both" && !laundering {
        skipped.push(format!("account model skipped: {no_laundering}"));
    }
    Ok((transactions, accounts, skipped))
}

fn train(args: TrainArgs) -> Result<()> {
    let started = Instant::now();
    anyhow::ensure!(args.account_steps > 0, "--account-steps must be at least 1");
    let data = read_labelled(&args.data, args.derive_transaction_labels)?;
    let (transactions, accounts, skipped) = levels_to_train(&data, &args.level)?;
    let model_dir = args.out.join(&args.name);
    anyhow::ensure!(
        transactions || !vitrine_worker::models::fraud_gnn::serves_transactions(&model_dir),
        "{} serves a transaction model to the worker, and a version with the account model \
         alone would stop its live scoring: give the account model a name of its own \
         (e.g. --name fraud-accounts)",
        model_dir.display()
    );
    for line in &skipped {
        eprintln!("{line}");
    }
    let transaction_model = match transactions {
        true => {
            eprintln!(
                "computing features and the graph of {} transactions …",
                data.transactions.len()
            );
            let prepared = Prepared::new(&data.transactions, &data.accounts);
            let options = TrainOptions {
                epochs: args.epochs,
                ..TrainOptions::new(args.seed)
            };
            let rows = 0..prepared.events.len();
            let progress = |line: &str| eprintln!("{line}");
            Some(vitrine_fraud::training::train(
                &prepared, rows, &options, progress,
            )?)
        }
        false => None,
    };
    let history: Vec<Event> = data
        .transactions
        .iter()
        .map(Event::from_transaction)
        .collect();
    let account_model = match accounts {
        true => {
            eprintln!("training the account model on the account labels …");
            let options = vitrine_fraud::account_gnn::AccountOptions {
                epochs: args.account_steps,
                ..vitrine_fraud::account_gnn::AccountOptions::new(args.seed)
            };
            // From what the worker's live graph keeps, so that it scores the same inputs.
            let graph =
                vitrine_fraud::accounts::AccountGraph::from_events(&history, &data.accounts);
            Some(vitrine_fraud::account_gnn::AccountGnn::train_bank(
                &graph,
                &options,
                |line| eprintln!("{line}"),
            )?)
        }
        false => None,
    };
    let version = vitrine_worker::models::fraud_gnn::install(
        &args.out,
        &args.name,
        transaction_model.as_ref().map(|(m, v)| (m, v)),
        account_model.as_ref(),
        &history,
    )?;
    let trained: Vec<&str> = [(transactions, "transaction"), (accounts, "account")]
        .into_iter()
        .filter_map(|(t, what)| t.then_some(what))
        .collect();
    println!(
        "trained the {} model{} of {} on {} transactions in {:.1} s; installed as {}",
        trained.join(" and "),
        if trained.len() > 1 { "s" } else { "" },
        args.name,
        history.len(),
        started.elapsed().as_secs_f32(),
        version.display()
    );
    Ok(())
}

/// What state `score` starts from, in words; an error when the model's history does not
/// belong with `transactions` (the same ids, earlier times: another bank).
fn history_state(
    history: Option<&[Event]>,
    transactions: &[vitrine_fraud::schema::Transaction],
) -> Result<String> {
    let Some(history) = history else {
        return Ok(
            "state: none; the graph holds the scored transactions alone \
                   (--history starts from the model's training bank)"
                .into(),
        );
    };
    let seen: std::collections::HashSet<&str> = (history.iter())
        .flat_map(|e| [e.source.as_str(), e.target.as_str()])
        .collect();
    let accounts: std::collections::BTreeSet<&str> = transactions
        .iter()
        .flat_map(|t| [t.source.as_str(), t.target.as_str()])
        .collect();
    let known = accounts.iter().filter(|a| seen.contains(*a)).count();
    let first = transactions
        .iter()
        .map(|t| Event::from_transaction(t).time)
        .min();
    let latest = history.iter().map(|e| e.time).max();
    let time = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.to_rfc3339())
    };
    if let (Some(first), Some(last), true) = (first, latest, known > 0) {
        anyhow::ensure!(
            first >= last,
            "--history: {known} of the {} accounts in the data have ids the model's history \
             holds, but the data starts at {}, before the history's last transaction ({}). \
             That is another bank whose ids collide with the training bank's, not the same bank \
             later: score without --history",
            accounts.len(),
            time(first),
            time(last)
        );
    }
    Ok(format!(
        "state: the model's history, {} transactions of {} accounts up to {}; {known} of the \
         {} accounts in the data appear in it",
        history.len(),
        seen.len(),
        latest.map_or_else(|| "-".into(), time),
        accounts.len()
    ))
}

/// One row of `account_scores.csv`: cells stay empty for a model the version lacks.
#[derive(Default)]
struct AccountRow {
    transactions: usize,
    /// The transaction model's highest risk for the account, and that transaction's typology.
    risk: Option<(f32, &'static str)>,
    /// The account model's laundering probability.
    laundering: Option<f32>,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// The model's folder in a repository (its newest version is used), e.g. `.vitrine/models/fraud-gnn`.
    #[arg(long)]
    model: PathBuf,
    /// Folder with `transactions.csv` (and optionally `accounts.csv`); labels are not needed.
    #[arg(long)]
    data: PathBuf,
    /// Output folder for `transaction_scores.csv` and `account_scores.csv`.
    #[arg(long)]
    out: PathBuf,
    /// Start from the model's stored history (the transactions of the bank it was trained
    /// on), for data that continues that bank: refused when the data's accounts have the
    /// history's ids but its transactions start before the history ends. Without it the
    /// graph holds the scored transactions alone.
    #[arg(long)]
    history: bool,
}

fn score(args: ScoreArgs) -> Result<()> {
    anyhow::ensure!(
        args.model.is_dir(),
        "the model folder {} does not exist",
        args.model.display()
    );
    let opened = vitrine_worker::models::fraud_gnn::open_latest(&args.model, args.history)
        .map_err(anyhow::Error::msg)?;
    let data = read_data(&args.data)?;
    let held: Vec<&str> = [
        (opened.transactions.is_some(), "the transaction model"),
        (opened.accounts.is_some(), "the account model"),
    ]
    .into_iter()
    .filter_map(|(has, what)| has.then_some(what))
    .collect();
    eprintln!(
        "model {} version {}: {}",
        args.model.display(),
        opened.version,
        held.join(" and ")
    );
    anyhow::ensure!(
        !args.history || opened.history.is_some(),
        "--history: version {} stores no history",
        opened.version
    );
    eprintln!(
        "{}",
        history_state(opened.history.as_deref(), &data.transactions)?
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut accounts: BTreeMap<String, AccountRow> = BTreeMap::new();
    for t in &data.transactions {
        for id in [&t.source, &t.target] {
            if !id.starts_with('M') {
                accounts.entry(id.clone()).or_default().transactions += 1;
            }
        }
    }
    let started = Instant::now();
    if let Some(scorer) = opened.transactions {
        score_transactions(scorer, &data.transactions, &args.out, &mut accounts)?;
    }
    if let Some(model) = &opened.accounts {
        eprintln!("scoring the accounts with the account model …");
        let mut all = opened.history.clone().unwrap_or_default();
        all.extend(data.transactions.iter().map(Event::from_transaction));
        let graph = vitrine_fraud::accounts::AccountGraph::from_events(&all, &data.accounts);
        for (id, p) in graph.accounts.iter().zip(model.score(&graph)?) {
            if let Some(row) = accounts.get_mut(id) {
                row.laundering = Some(p);
            }
        }
    }
    let path = args.out.join("account_scores.csv");
    let mut out = csv::Writer::from_path(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    out.write_record([
        "account_id",
        "risk",
        "transactions",
        "pattern",
        "laundering_risk",
        "laundering",
    ])?;
    let threshold = opened.accounts.as_ref().map(|m| m.threshold());
    let mut flagged_accounts = 0;
    for (id, row) in &accounts {
        let (risk, pattern) = match row.risk {
            Some((risk, pattern)) => (format!("{risk:.6}"), pattern.to_string()),
            None => Default::default(),
        };
        let (laundering_risk, flagged) = match (row.laundering, threshold) {
            (Some(p), Some(t)) => {
                flagged_accounts += usize::from(p >= t);
                (format!("{p:.6}"), u8::from(p >= t).to_string())
            }
            _ => Default::default(),
        };
        out.write_record([
            id,
            &risk,
            &row.transactions.to_string(),
            &pattern,
            &laundering_risk,
            &flagged,
        ])?;
    }
    out.flush()?;
    println!(
        "scored {} transactions and {} accounts into {} in {:.1} s",
        data.transactions.len(),
        accounts.len(),
        args.out.display(),
        started.elapsed().as_secs_f32()
    );
    if let Some(threshold) = threshold {
        println!(
            "the account model flags {flagged_accounts} of them as laundering (probability from {threshold:.3})"
        );
    }
    Ok(())
}

/// Scores `transactions` in order into `out/transaction_scores.csv`, keeping each account's
/// highest risk in `accounts`.
fn score_transactions(
    mut scorer: vitrine_fraud::scorer::Scorer,
    transactions: &[vitrine_fraud::schema::Transaction],
    out: &std::path::Path,
    accounts: &mut BTreeMap<String, AccountRow>,
) -> Result<()> {
    let path = out.join("transaction_scores.csv");
    let mut out = csv::Writer::from_path(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    out.write_record([
        "transaction_id",
        "fraud_score",
        "source_risk",
        "target_risk",
        "typology",
        "reasons",
    ])?;
    let started = Instant::now();
    for (i, chunk) in transactions.chunks(256).enumerate() {
        let events: Vec<(Option<String>, Event)> = chunk
            .iter()
            .map(|t| (None, Event::from_transaction(t)))
            .collect();
        for (t, s) in chunk.iter().zip(scorer.score(&events, 3)?) {
            let reasons: Vec<String> = s
                .reasons
                .iter()
                .map(|(r, w)| format!("{r} {w:+.2}"))
                .collect();
            out.write_record([
                t.transaction_id.clone(),
                format!("{:.6}", s.fraud),
                format!("{:.6}", s.source_risk),
                format!("{:.6}", s.target_risk),
                s.typology.to_string(),
                reasons.join("; "),
            ])?;
            for (id, risk) in [(&t.source, s.source_risk), (&t.target, s.target_risk)] {
                if let Some(row) = accounts.get_mut(id) {
                    if row.risk.is_none_or(|(r, _)| risk > r) {
                        row.risk = Some((risk, s.typology));
                    }
                }
            }
        }
        if i % 100 == 99 {
            eprintln!(
                "scored {} of {} transactions ({:.0}/s)",
                (i + 1) * 256,
                transactions.len(),
                ((i + 1) * 256) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    out.flush()?;
    Ok(())
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Number of accounts (at least 100).
    #[arg(long, default_value_t = 10_000)]
    accounts: usize,
    /// Seed: the same seed and settings give the same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Days of activity, from 2026-01-01.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// How launderers and customers behave: `structuring` (amounts just under 10,000, small
    /// quick patterns), `blended` (everyday amounts, larger slower patterns, legitimate
    /// cycles and fan-in, 10% of laundering accounts unlabelled) or `varied` (blended
    /// customers, each laundering pattern in either style). Train on one, test on another.
    #[arg(long, default_value = "structuring", value_parser = ["structuring", "blended", "varied"])]
    profile: String,
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
}

/// Runs a `vitrine fraud` command.
pub fn run(command: FraudCommand) -> Result<()> {
    match command {
        FraudCommand::Generate(args) => {
            let started = Instant::now();
            let config = GenerateConfig {
                days: args.days,
                profile: vitrine_fraud::Profile::parse(&args.profile)?,
                ..GenerateConfig::new(args.accounts, args.seed)
            };
            let dataset = vitrine_fraud::generate(&config, |line| eprintln!("{line}"))?;
            dataset
                .write_csv(&args.out)
                .with_context(|| format!("writing the dataset to {}", args.out.display()))?;
            let fraud = dataset
                .transactions
                .iter()
                .filter(|t| t.is_fraud == 1)
                .count();
            let laundering = dataset
                .accounts
                .iter()
                .filter(|a| a.is_laundering == 1)
                .count();
            println!(
                "wrote {} transactions ({fraud} fraud or laundering) and {} accounts ({laundering} laundering) to {} in {:.1} s",
                dataset.transactions.len(),
                dataset.accounts.len(),
                args.out.display(),
                started.elapsed().as_secs_f32()
            );
            Ok(())
        }
        FraudCommand::Import(args) => import(args),
        FraudCommand::Eval(args) => eval(args),
        FraudCommand::Train(args) => train(args),
        FraudCommand::Score(args) => score(args),
        FraudCommand::Replay(args) => crate::replay::run(args),
    }
}

#[derive(Args)]
pub struct ImportArgs {
    /// The user's accounts file (CSV): an id column, optional label and numeric attributes.
    #[arg(long)]
    accounts: Option<PathBuf>,
    /// The user's transactions file (CSV): source, target, amount, timestamp, optional label.
    #[arg(long)]
    transactions: PathBuf,
    /// Map a column: OURS=THEIRS, e.g. `source=payer_id` or `accounts.is_laundering=label` (repeatable).
    #[arg(long = "column", value_name = "OURS=THEIRS", value_parser = parse_column)]
    columns: Vec<(String, String)>,
    /// Leave malformed rows out and report them, instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
    /// Seconds per integer time step (integer timestamps count steps from 2026-01-01).
    #[arg(long, default_value_t = 86_400)]
    time_step: i64,
    /// Output folder for the documented format (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn parse_column(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| format!("`{text}` is not OURS=THEIRS"))
}

fn import(args: ImportArgs) -> Result<()> {
    let options = vitrine_fraud::import::ImportOptions {
        columns: args.columns.into_iter().collect(),
        skip_bad_rows: args.skip_bad_rows,
        time_step_seconds: args.time_step,
    };
    let imported =
        vitrine_fraud::import::import(args.accounts.as_deref(), &args.transactions, &options)?;
    imported
        .write_csv(&args.out)
        .with_context(|| format!("writing to {}", args.out.display()))?;
    for column in &imported.leaking_attributes {
        eprintln!(
            "left out the accounts' column `{column}`: alone it separates the accounts labelled \
             as laundering from the others (the label under another name, or derived from it)"
        );
    }
    for error in imported.skipped.iter().take(20) {
        eprintln!("skipped {error}");
    }
    if imported.skipped.len() > 20 {
        eprintln!("… and {} more skipped rows", imported.skipped.len() - 20);
    }
    println!(
        "imported {} accounts ({} added from transactions, {} numeric attributes) and {} transactions into {}; skipped {} malformed rows",
        imported.accounts.len(),
        imported.added_accounts,
        imported.attribute_names.len(),
        imported.transactions.len(),
        args.out.display(),
        imported.skipped.len()
    );
    Ok(())
}
