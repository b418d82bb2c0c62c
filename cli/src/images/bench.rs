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
    /// Also measure interactive latency (64×64 images at the default priority, one at a time)
    /// alone and while a backfill sends `--size` images at bulk priority to the same model.
    #[arg(long)]
    backfill: bool,
}

/// Interactive requests per latency measurement.
const INTERACTIVE_REQUESTS: usize = 20;

/// Prints one line of figures per model.
pub async fn run(args: BenchArgs) -> Result<()> {
    let path = photos::fetch(&args.state_dir, &["astronaut.png"])?.remove(0);
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
    if args.backfill {
        let model = &args.models[0];
        let enhancer = std::sync::Arc::new(
            Enhancer::connect(args.worker.as_deref(), &args.models_dir, model).await?,
        );
        let small = image::imageops::thumbnail(&photo, 64, 64);
        let alone = latencies(&enhancer, &small).await?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let backfill = {
            let (enhancer, stop, photo) = (enhancer.clone(), stop.clone(), photo.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    enhancer
                        .enhance(&photo, Some(super::regenerate::BULK_PRIORITY))
                        .await?;
                }
                anyhow::Ok(())
            })
        };
        let busy = latencies(&enhancer, &small).await?;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        backfill.await??;
        println!(
            "{model}, 64x64 at interactive priority, {INTERACTIVE_REQUESTS} one at a time: alone p50 {:.3} s p99 {:.3} s; beside a {}x{} bulk backfill p50 {:.3} s p99 {:.3} s",
            alone.0, alone.1, args.size, args.size, busy.0, busy.1
        );
    }
    Ok(())
}

/// (p50, p99) seconds of [`INTERACTIVE_REQUESTS`] requests sent one after another.
async fn latencies(enhancer: &Enhancer, image: &image::RgbImage) -> Result<(f64, f64)> {
    let mut seconds = Vec::with_capacity(INTERACTIVE_REQUESTS);
    for _ in 0..INTERACTIVE_REQUESTS {
        let started = Instant::now();
        enhancer.enhance(image, None).await?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let at = |q: f64| seconds[((seconds.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}
