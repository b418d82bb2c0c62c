//! Vitrine's inference worker: an Open Inference Protocol v2 (KServe v2 / Triton HTTP) server
//! over a model repository, with per-model dynamic batching, priorities and deadlines, and
//! models computed by a backend (candle on the CPU).
//!
//! Start one with [`Worker::open`] and [`serve`]; the `vitrine worker` command does both.

pub mod backend;
pub mod config;
pub mod error;
pub mod metrics;
pub mod models;
pub mod protocol;
pub mod pypi;
pub mod repository;
pub mod scheduler;
pub mod server;
pub mod tensor;
pub mod train;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use error::{InferError, LoadError};
pub use server::Worker;

impl Worker {
    /// Opens the repository at `models` on the CPU backend and watches it every `poll_interval`.
    /// Models that keep state (the fraud GNN's live graph) keep it under `state_dir`, or in
    /// memory only when it is `None`.
    pub fn open(
        models: &Path,
        state_dir: Option<&Path>,
        poll_interval: Duration,
    ) -> std::io::Result<Arc<Self>> {
        let metrics = Arc::new(metrics::Metrics::default());
        let backend = Arc::new(backend::CandleCpu::new(state_dir.map(Path::to_path_buf)));
        let repository = Arc::new(repository::Repository::open(
            models,
            backend,
            metrics.clone(),
        )?);
        repository.watch(poll_interval);
        Ok(Arc::new(Self {
            repository,
            metrics,
        }))
    }
}

/// Serves `worker` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    worker: Arc<Worker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, server::router(worker))
        .with_graceful_shutdown(shutdown)
        .await
}
