//! What the worker's integration tests share.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vitrine_worker::Worker;

/// Serves the repository at `models` (state in `state`, or in memory; changes polled every
/// `poll`) on a loopback port; returns its `http://` URL and the worker.
pub async fn serve(models: &Path, state: Option<&Path>, poll: Duration) -> (String, Arc<Worker>) {
    let worker = Worker::open(models, state, poll).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(vitrine_worker::serve(
        listener,
        worker.clone(),
        std::future::pending(),
    ));
    (url, worker)
}
