//! The inference workers `vitrine up` gives to `wasi:nn`: local `vitrine worker` processes by
//! default, or remote workers named in a runtime config file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use vitrine_runtime::nn_pool::{PoolOptions, WorkerPool};

/// The runtime config file (`--runtime-config-file`): settings that are not the app's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfigFile {
    /// Where `wasi:nn` inference goes.
    #[serde(default)]
    wasi_nn: Option<NnConfig>,
}

/// The `[wasi_nn]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NnConfig {
    /// Remote worker URLs (`http://host:port`); when set, no local worker is started.
    #[serde(default)]
    workers: Vec<String>,
    /// Deadline of one inference call, in milliseconds.
    timeout_ms: Option<u64>,
}

impl RuntimeConfigFile {
    /// Reads the file; unknown tables are an error, so a Spin runtime config for other
    /// services is not silently ignored.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!("invalid runtime config {} (supported: a [wasi_nn] table with `workers` and `timeout_ms`)", path.display())
        })
    }
}

/// Local worker processes, killed when dropped. Each also exits when its standard input (a pipe
/// from this process) closes, so none outlives a `vitrine up` that is killed.
pub struct LocalWorkers(Vec<Child>);

impl Drop for LocalWorkers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The pool for `wasi:nn`, and the local workers it owns (if any).
pub fn start(
    config: &RuntimeConfigFile,
    local_count: usize,
    models: Option<PathBuf>,
    state_dir: &Path,
) -> Result<(Arc<WorkerPool>, LocalWorkers)> {
    let mut options = PoolOptions::default();
    if let Some(ms) = config.wasi_nn.as_ref().and_then(|c| c.timeout_ms) {
        options.timeout = Duration::from_millis(ms);
    }
    let remote = config
        .wasi_nn
        .as_ref()
        .map(|c| c.workers.clone())
        .unwrap_or_default();
    if !remote.is_empty() {
        tracing::info!(workers = ?remote, "wasi:nn uses the remote workers of the runtime config");
        let pool = WorkerPool::new(&remote, options).map_err(anyhow::Error::msg)?;
        return Ok((Arc::new(pool), LocalWorkers(Vec::new())));
    }
    if local_count == 0 {
        bail!("--nn-workers 0 needs remote workers in a runtime config file ([wasi_nn] workers = [...])");
    }
    let models = match models {
        Some(dir) => dir,
        None => crate::worker::builtin_repository(state_dir)?,
    };
    let exe =
        std::env::current_exe().context("cannot find the vitrine executable to start workers")?;
    let mut children = LocalWorkers(Vec::new());
    let mut urls = Vec::new();
    for _ in 0..local_count {
        let mut child = Command::new(&exe)
            .args([
                "worker",
                "--exit-with-stdin",
                "--listen",
                "127.0.0.1:0",
                "--models",
            ])
            .arg(&models)
            .arg("--state-dir")
            .arg(state_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start a local worker")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        children.0.push(child);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the worker's address")?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("a local worker did not start (it said {line:?})"))?;
        urls.push(format!("http://{addr}"));
    }
    tracing::info!(workers = ?urls, repository = %models.display(), "local inference workers started");
    let pool = WorkerPool::new(&urls, options).map_err(anyhow::Error::msg)?;
    Ok((Arc::new(pool), children))
}
