//! `vitrine fraud …`: fraud and anti-money-laundering data.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vitrine_fraud::GenerateConfig;

#[derive(Subcommand)]
pub enum FraudCommand {
    /// Generate a synthetic bank with labelled fraud and laundering, as CSV files.
    Generate(GenerateArgs),
    /// Check and convert your own accounts and transactions into the documented format.
    Import(ImportArgs),
    /// Train on the earliest transactions, score the rest, print held-out metrics.
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    /// Folder with `accounts.csv` and `transactions.csv` in the documented format.
    #[arg(long)]
    data: PathBuf,
    /// Share of the transactions (earliest first) used for training.
    #[arg(long, default_value_t = 0.7)]
    train_share: f64,
}

fn eval(args: EvalArgs) -> Result<()> {
    anyhow::ensure!(
        args.train_share > 0.0 && args.train_share < 1.0,
        "--train-share must be between 0 and 1, got {}",
        args.train_share
    );
    let options = vitrine_fraud::import::ImportOptions::default();
    let data = vitrine_fraud::import::import(
        Some(&args.data.join("accounts.csv")),
        &args.data.join("transactions.csv"),
        &options,
    )?;
    eprintln!(
        "computing features and training on {} transactions …",
        data.transactions.len()
    );
    let report =
        vitrine_fraud::eval::evaluate(&data.accounts, &data.transactions, args.train_share)?;
    println!(
        "time split: {} training transactions, {} held out ({} fraud or laundering)",
        report.train_rows, report.test_rows, report.test_positives
    );
    println!(
        "{:<34} {:>8} {:>8} {:>6} {:>9} {:>7} {:>12}",
        "model", "PR-AUC", "ROC-AUC", "F1", "precision", "recall", "account PR-AUC"
    );
    for m in &report.models {
        println!(
            "{:<34} {:>8.3} {:>8.3} {:>6.3} {:>9.3} {:>7.3} {:>12.3}",
            m.model, m.pr_auc, m.roc_auc, m.f1, m.precision, m.recall, m.account_pr_auc
        );
    }
    println!("{:<34} {:>8} (not built yet: see issue 4)", "GNN", "-");
    println!("\nrecall per typology at each model's threshold (caught / held-out):");
    for m in &report.models {
        let cells: Vec<String> = m
            .recall_by_typology
            .iter()
            .map(|(t, (hit, all))| format!("{t} {hit}/{all}"))
            .collect();
        println!("  {}: {}", m.model, cells.join(", "));
    }
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
