//! The inference workers `vitrine up` gives to `wasi:nn`: local `vitrine worker` processes by
//! default (supervised: one that dies is started again), or remote workers named in a runtime
//! config file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vitrine_runtime::nn_pool::{PoolOptions, WorkerPool};

use crate::runtime_config::RuntimeConfigFile;

/// How long the supervisor waits before starting a dead worker again, at first and at most.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A worker that has run this long since its start is healthy again: its backoff resets.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Local worker processes under supervision: one that dies (a crash, `kill -9`) is started
/// again on the same address, after a backoff (0.1 s, doubling to 5 s), and counted in
/// `vitrine_nn_worker_restarts_total`. All are killed when this is dropped; each also exits
/// when its standard input (a pipe from this process) closes, so none outlives a `vitrine up`
/// that is killed.
pub struct LocalWorkers {
    supervision: Arc<Supervision>,
    supervisors: Vec<std::thread::JoinHandle<()>>,
}

/// What the supervisor threads share with [`LocalWorkers`].
struct Supervision {
    stop: AtomicBool,
    workers: Vec<Mutex<Child>>,
}

impl LocalWorkers {
    fn none() -> Self {
        Self {
            supervision: Arc::new(Supervision {
                stop: AtomicBool::new(false),
                workers: Vec::new(),
            }),
            supervisors: Vec::new(),
        }
    }
}

impl Drop for LocalWorkers {
    fn drop(&mut self) {
        self.supervision.stop.store(true, Ordering::SeqCst);
        for supervisor in self.supervisors.drain(..) {
            let _ = supervisor.join();
        }
        for worker in &self.supervision.workers {
            let mut child = worker.lock().unwrap_or_else(|e| e.into_inner());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How to start one local worker.
#[derive(Clone)]
struct WorkerCommand {
    exe: PathBuf,
    models: PathBuf,
    state_dir: PathBuf,
}

impl WorkerCommand {
    /// Starts a worker on `listen` and waits until it says where it listens.
    fn spawn(&self, listen: &str) -> Result<(Child, String)> {
        let mut command = Command::new(&self.exe);
        // In a process group of its own, a worker does not get the terminal's Ctrl-C: it keeps
        // serving while `up` drains in-flight requests, and `up` stops it afterwards.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .args([
                "worker",
                "--exit-with-stdin",
                "--listen",
                listen,
                "--models",
            ])
            .arg(&self.models)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start a local worker")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .map(str::to_string);
        match (read, addr) {
            (Ok(_), Some(addr)) => Ok((child, addr)),
            (read, _) => {
                let _ = child.kill();
                let _ = child.wait();
                read.context("reading the worker's address")?;
                bail!("a local worker did not start (it said {line:?})")
            }
        }
    }
}

/// Watches worker `index` (at `addr`) and starts it again whenever it dies, until told to stop.
fn supervise(
    supervision: &Supervision,
    index: usize,
    addr: &str,
    command: &WorkerCommand,
    pool: &WorkerPool,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut started = Instant::now();
    while !supervision.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let exited = {
            let mut child = supervision.workers[index]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(status.to_string()),
                Err(e) => Some(e.to_string()),
            }
        };
        let Some(status) = exited else {
            if started.elapsed() > STABLE_AFTER {
                backoff = FIRST_BACKOFF;
            }
            continue;
        };
        let died = Instant::now();
        tracing::warn!(worker = index + 1, %status, ?backoff, "local inference worker died; starting it again");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if supervision.stop.load(Ordering::SeqCst) {
            return;
        }
        match command.spawn(addr) {
            Ok((child, _)) => {
                *supervision.workers[index]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = child;
                started = Instant::now();
                pool.record_restart(index);
                tracing::info!(worker = index + 1, down = ?died.elapsed(), "local inference worker restarted");
            }
            Err(e) => {
                tracing::error!(worker = index + 1, error = %format!("{e:#}"), "restarting a local inference worker failed; trying again")
            }
        }
    }
}

/// The models of the repository at `models` whose architecture keeps state across requests.
fn stateful_models(models: &Path) -> std::collections::BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(models) else {
        return Default::default();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            vitrine_worker::config::ModelConfig::load(&entry.path().join("config.toml"))
                .ok()
                .and_then(|config| vitrine_worker::models::architecture(&config.architecture).ok())
                .is_some_and(|architecture| architecture.stateful)
        })
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect()
}

/// The pool for `wasi:nn`, and the local workers it owns (if any), already supervised.
pub fn start(
    config: &RuntimeConfigFile,
    local_count: usize,
    models: Option<PathBuf>,
    state_dir: &Path,
    needed: &std::collections::BTreeSet<String>,
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
        let pool = WorkerPool::new(&remote, options)?;
        return Ok((Arc::new(pool), LocalWorkers::none()));
    }
    if local_count == 0 {
        bail!("--nn-workers 0 needs remote workers in a runtime config file ([wasi_nn] workers = [...])");
    }
    let command = WorkerCommand {
        exe: std::env::current_exe()
            .context("cannot find the vitrine executable to start workers")?,
        models: match models {
            Some(dir) => dir,
            None => crate::worker::builtin_repository(state_dir, needed)?,
        },
        state_dir: state_dir.to_path_buf(),
    };
    let stateful = stateful_models(&command.models);
    if local_count > 1 && !stateful.is_empty() {
        tracing::warn!(
            models = ?stateful,
            "these models keep state of their own (a live graph): every call of theirs goes to local worker 1 of {local_count}, so the state is not split"
        );
        options.pinned = stateful;
    }
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..local_count {
        match command.spawn("127.0.0.1:0") {
            Ok((child, addr)) => {
                children.push(Mutex::new(child));
                addrs.push(addr);
            }
            Err(e) => {
                for child in &children {
                    let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(e);
            }
        }
    }
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    tracing::info!(workers = ?urls, repository = %command.models.display(), "local inference workers started");
    let pool = Arc::new(WorkerPool::new(&urls, options)?);
    let supervision = Arc::new(Supervision {
        stop: AtomicBool::new(false),
        workers: children,
    });
    let supervisors = addrs
        .into_iter()
        .enumerate()
        .map(|(index, addr)| {
            let (supervision, command, pool) = (supervision.clone(), command.clone(), pool.clone());
            std::thread::Builder::new()
                .name(format!("vitrine-worker-supervisor-{}", index + 1))
                .spawn(move || supervise(&supervision, index, &addr, &command, &pool))
                .context("cannot start a worker supervisor")
        })
        .collect::<Result<_>>()?;
    Ok((
        pool,
        LocalWorkers {
            supervision,
            supervisors,
        },
    ))
}
