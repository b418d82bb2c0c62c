//! Fraud and anti-money-laundering for Vitrine, from data to live scores:
//!
//! - data: the records ([`schema`]), a generator of realistic banks with labelled fraud and
//!   laundering ([`generate`]), import of a user's own files ([`import`]), CSV in the
//!   documented format ([`Dataset::write_csv`]);
//! - the temporal transaction graph ([`graph`]), its time-respecting sampling into batches
//!   ([`sampling`]), and the features computed as transactions arrive ([`features`]);
//! - models: the logistic-regression and MLP baselines ([`baseline`]), the candle GNN
//!   ([`gnn`]) and its training ([`training`]), measured by [`eval`] and [`metrics`];
//! - live scoring of one transaction at a time ([`scorer`]).

pub mod account_gnn;
pub mod accounts;
pub mod baseline;
pub mod boosted;
pub mod eval;
pub mod features;
pub mod generate;
pub mod gnn;
pub mod graph;
pub mod import;
pub mod metrics;
pub mod sampling;
pub mod schema;
pub mod scorer;
pub mod training;

use std::path::Path;

pub use generate::{generate, Dataset, GenerateConfig, GenerateError, Profile};

/// Why files could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {message}")]
pub struct WriteError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

impl Dataset {
    /// Writes `customers.csv`, `accounts.csv`, `cards.csv`, `devices.csv`, `merchants.csv` and
    /// `transactions.csv` into `dir` (created if missing).
    pub fn write_csv(&self, dir: &Path) -> Result<(), WriteError> {
        std::fs::create_dir_all(dir).map_err(|e| WriteError {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        write(&dir.join("customers.csv"), &self.customers)?;
        write(&dir.join("accounts.csv"), &self.accounts)?;
        write(&dir.join("cards.csv"), &self.cards)?;
        write(&dir.join("devices.csv"), &self.devices)?;
        write(&dir.join("merchants.csv"), &self.merchants)?;
        write(&dir.join("transactions.csv"), &self.transactions)
    }
}

pub(crate) fn write<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<(), WriteError> {
    let fail = |e: csv::Error| WriteError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut writer = csv::Writer::from_path(path).map_err(fail)?;
    for row in rows {
        writer.serialize(row).map_err(fail)?;
    }
    writer.flush().map_err(|e| WriteError {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
