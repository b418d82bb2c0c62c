//! `vitrine images bench`: how fast each enhancement model works on photographs of one size —
//! images/s and megapixels/s (of output), overall and per CPU core — through the inference
//! protocol, one request at a time as a backfill worker sends them.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use super::client::Enhancer;
use super::photos;

#[derive(Args)]
pub struct BenchArgs {
    /// Models to measure.
    #[arg(long, num_args = 1.., default_values = ["image-enhance-x2", "image-enhance-x4"])]
    models: Vec<String>,
    /// Side of the square input images.
    #[arg(long, default_value_t = 512)]
    size: u32,
    /// Images per model (after one warm-up).
    #[arg(long, default_value_t = 3)]
    count: u32,
    /// A running worker to use; default: one started here on --models.
    #[arg(long)]
    worker: Option<String>,
    /// Model repository for the worker started here.
    #[arg(long, default_value = ".vitrine/models")]
    models_dir: PathBuf,
    /// Where the packaged photographs are kept after the first fetch.
    #[arg(long, default_value = ".vitrine")]
    state_dir: PathBuf,
}

/// Prints one line of figures per model.
pub async fn run(args: BenchArgs) -> Result<()> {
    let path = photos::fetch(&args.state_dir, &["astronaut.png"], |_, _, _| {})?.remove(0);
    let photo = image::imageops::resize(
        &photos::open_centre(&path, u32::MAX, 1)?,
        args.size,
        args.size,
        image::imageops::FilterType::CatmullRom,
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{}x{} inputs, {} per model after a warm-up, {cores} cores",
        args.size, args.size, args.count
    );
    println!(
        "{:<24} {:>6} {:>10} {:>9} {:>12} {:>14}",
        "model", "scale", "s/image", "images/s", "output Mpx/s", "Mpx/s per core"
    );
    for model in &args.models {
        let enhancer = Enhancer::connect(args.worker.as_deref(), &args.models_dir, model).await?;
        enhancer.enhance(&photo, None).await?;
        let started = Instant::now();
        for _ in 0..args.count {
            enhancer.enhance(&photo, None).await?;
        }
        let seconds = started.elapsed().as_secs_f64() / f64::from(args.count);
        let output_mpx = f64::from(args.size * enhancer.scale).powi(2) / 1e6;
        println!(
            "{model:<24} {:>6} {seconds:>10.2} {:>9.3} {:>12.3} {:>14.3}",
            format!("x{}", enhancer.scale),
            1.0 / seconds,
            output_mpx / seconds,
            output_mpx / seconds / cores as f64
        );
    }
    Ok(())
}
