//! `vitrine deploy` and `vitrine releases`: immutable, content-addressed releases of the
//! application in the state directory ([`vitrine_runtime::releases`]), which `vitrine up
//! --release` serves. `vitrine compose`: the application as a Spin app directory for stock
//! Spin and SpinKube ([`vitrine_runtime::spin_app_dir`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use vitrine_runtime::releases::ReleaseStore;
use vitrine_runtime::spin_app_dir::{self, RemoteNn};
use vitrine_runtime::Manifest;

use crate::build;

/// `vitrine deploy`.
#[derive(Args)]
pub struct DeployArgs {
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// The release's label; default: the manifest's `[application] version`, else the first
    /// 12 digits of the release's digest.
    #[arg(long)]
    version: Option<String>,
    /// State directory holding the releases; default `.vitrine` beside the manifest.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Store the sources as they are, without building missing or stale ones.
    #[arg(long)]
    skip_build: bool,
}

/// `vitrine releases`.
#[derive(Args)]
pub struct ReleasesArgs {
    /// The application manifest (locates the default state directory).
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// State directory holding the releases; default `.vitrine` beside the manifest.
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// `vitrine compose`.
#[derive(Args)]
pub struct ComposeArgs {
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// The inference worker's URL as the functions will reach it (in a cluster, its Service:
    /// `http://vitrine-worker:8000`).
    #[arg(long)]
    nn_url: String,
    /// The directory to write (absent or empty).
    #[arg(long, default_value = "target/spinkube")]
    out: PathBuf,
    /// The built `nn-remote` adapter; default: built from the workspace of the manifest
    /// (`cargo build -p nn-remote`).
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Use the sources as they are, without building missing or stale ones.
    #[arg(long)]
    skip_build: bool,
}

/// Writes the application as a Spin app directory whose `wasi:nn` functions are composed
/// with the `nn-remote` adapter.
pub fn compose(args: ComposeArgs) -> Result<()> {
    let manifest = Manifest::load(&args.manifest)?;
    if !args.skip_build {
        build::build(&manifest, build::Select::Stale)?;
    }
    let adapter = match args.adapter {
        Some(path) => path,
        None => {
            let command = "cargo build --target wasm32-wasip2 --profile wasm -p nn-remote --target-dir target";
            build::run_command("the nn-remote adapter", command, manifest.dir(), &Default::default())
                .context("pass --adapter with a built nn_remote.wasm when the manifest's workspace has no nn-remote crate")?;
            manifest
                .dir()
                .join("target/wasm32-wasip2/wasm/nn_remote.wasm")
        }
    };
    let nn = RemoteNn {
        adapter,
        url: args.nn_url,
    };
    let composed = spin_app_dir::export(&manifest, &nn, &args.out)
        .with_context(|| format!("composing {}", args.manifest.display()))?;
    match composed.as_slice() {
        [] => println!("no component imports wasi:nn; copied as it is"),
        ids => println!("composed with nn-remote ({}): {}", nn.url, ids.join(", ")),
    }
    println!(
        "wrote {} (publish it with `spin registry push -f {} <registry>/<name>:<tag>`)",
        args.out.display(),
        args.out.join("spin.toml").display()
    );
    Ok(())
}

/// The state directory: `given`, or `.vitrine` beside `manifest` (which need not exist).
pub fn state_dir(given: Option<PathBuf>, manifest: &Path) -> PathBuf {
    given.unwrap_or_else(|| {
        manifest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(".vitrine")
    })
}

/// Builds what is stale (unless told not to) and stores the application as a release.
pub fn deploy(args: DeployArgs) -> Result<()> {
    let manifest = Manifest::load(&args.manifest)?;
    if !args.skip_build {
        build::build(&manifest, build::Select::Stale)?;
    }
    let store = ReleaseStore::new(&state_dir(args.state_dir, &args.manifest));
    let context = || format!("deploying {}", args.manifest.display());
    let digest = store.store(&manifest).with_context(context)?;
    let label = (args.version.clone())
        .or_else(|| manifest.version.clone())
        .unwrap_or_else(|| short(&digest).to_string());
    match store.label(&digest, &label).with_context(context)? {
        true => println!("release {label}: {digest}"),
        false => println!("release {label}: {digest} (unchanged)"),
    }
    Ok(())
}

/// Lists the releases, oldest first.
pub fn releases(args: ReleasesArgs) -> Result<()> {
    let store = ReleaseStore::new(&state_dir(args.state_dir, &args.manifest));
    let releases = store.list()?;
    if releases.is_empty() {
        println!("no releases yet (vitrine deploy stores one)");
        return Ok(());
    }
    println!(
        "{:<20} {:<14} {:<22} {:<16} {:>10} {:>10}",
        "VERSION", "DIGEST", "CREATED", "APPLICATION", "COMPONENTS", "SIZE"
    );
    for r in releases {
        println!(
            "{:<20} {:<14} {:<22} {:<16} {:>10} {:>9.1}M",
            r.label,
            short(&r.digest),
            r.created,
            r.application,
            r.components,
            r.size as f64 / 1e6
        );
    }
    Ok(())
}

/// The manifest of release `reference` (label or digest) of the store in `state_dir`,
/// unpacked (once) and checked.
pub fn load_release(state_dir: &Path, reference: &str) -> Result<Manifest> {
    let store = ReleaseStore::new(state_dir);
    let digest = store.resolve(reference)?;
    let manifest = Manifest::load(&store.unpack(&digest)?)?;
    tracing::info!(release = %digest, "loaded release {reference}");
    Ok(manifest)
}

/// The first 12 hex digits of a digest.
fn short(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}
