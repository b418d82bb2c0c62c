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
    }
}
