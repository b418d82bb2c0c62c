//! `vitrine images eval`: each photograph is cut to a multiple of the model's scale, reduced by
//! that scale with bicubic filtering, and brought back to its size three ways — bicubic,
//! Lanczos-3 and the model. Each is compared with the original (PSNR and SSIM on BT.601 luma,
//! a 2-pixel border left out), as super-resolution papers report.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use image::imageops::FilterType;
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};

use super::client::Enhancer;
use super::{photos, quality};

/// Pixels left out on each side when measuring.
const BORDER: u32 = 2;
/// Photographs larger than this on a side are cut to their centre.
const LARGEST_SIDE: u32 = 512;

#[derive(Args)]
pub struct EvalArgs {
    /// The enhancement model.
    #[arg(long, default_value = "image-enhance-x2")]
    model: String,
    /// A running worker to use (e.g. http://127.0.0.1:8000); default: one started here on --models.
    #[arg(long)]
    worker: Option<String>,
    /// Model repository for the worker started here.
    #[arg(long, default_value = ".vitrine/models")]
    models: PathBuf,
    /// Measure on these image files instead of the packaged photographs.
    #[arg(long, num_args = 1..)]
    photos: Vec<PathBuf>,
    /// Where the packaged photographs are kept after the first fetch.
    #[arg(long, default_value = ".vitrine")]
    state_dir: PathBuf,
    /// Write a comparison per photograph into this folder: a crop of its centre restored by
    /// bicubic, by the model, and the original, side by side (`<photograph>-<model>.png`).
    #[arg(long)]
    save: Option<PathBuf>,
}

/// Side of the square crops in a saved comparison.
const CROP: u32 = 192;

/// One way of bringing a photograph back to size, measured.
#[derive(Default, Clone, Copy)]
struct Score {
    psnr: f64,
    ssim: f64,
}

impl Score {
    fn of(original: &RgbImage, restored: &RgbImage) -> Self {
        Self {
            psnr: quality::psnr(original, restored, BORDER),
            ssim: quality::ssim(original, restored, BORDER),
        }
    }
}

/// Prints the table of PSNR and SSIM for every photograph and their means.
pub async fn run(args: EvalArgs) -> Result<()> {
    let paths = if args.photos.is_empty() {
        photos::fetch(&args.state_dir, photos::EVAL)?
    } else {
        args.photos.clone()
    };
    let enhancer = Enhancer::connect(args.worker.as_deref(), &args.models, &args.model).await?;
    let s = enhancer.scale;
    let bar = ProgressBar::new(paths.len() as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} photographs, {elapsed} ({msg})")
            .expect("valid template"),
    );
    let mut rows = Vec::new();
    for path in &paths {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        bar.set_message(name.clone());
        let original = photos::open_centre(path, LARGEST_SIDE, s)?;
        let (w, h) = original.dimensions();
        let small = photos::reduce(&original, s);
        let bicubic = image::imageops::resize(&small, w, h, FilterType::CatmullRom);
        let lanczos = image::imageops::resize(&small, w, h, FilterType::Lanczos3);
        let enhanced = enhancer.enhance(&small, None).await?;
        anyhow::ensure!(
            enhanced.dimensions() == (w, h),
            "{} made {}x{} of {}x{}",
            enhancer.model,
            enhanced.width(),
            enhanced.height(),
            w / s,
            h / s
        );
        if let Some(dir) = &args.save {
            std::fs::create_dir_all(dir)?;
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let file = dir.join(format!("{stem}-{}.png", enhancer.model));
            side_by_side(&[&bicubic, &enhanced, &original])
                .save(&file)
                .with_context(|| format!("cannot write {}", file.display()))?;
        }
        rows.push((
            name,
            (w, h),
            [&bicubic, &lanczos, &enhanced].map(|r| Score::of(&original, r)),
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    print_table(&enhancer.model, s, &rows);
    Ok(())
}

/// The centre crops of same-sized images, left to right, 4 pixels apart on white.
fn side_by_side(images: &[&RgbImage]) -> RgbImage {
    let (w, h) = images[0].dimensions();
    let side = CROP.min(w).min(h);
    let (x, y) = ((w - side) / 2, (h - side) / 2);
    let gap = 4;
    let count = images.len() as u32;
    let mut out =
        RgbImage::from_pixel(count * side + (count - 1) * gap, side, image::Rgb([255; 3]));
    for (i, image) in images.iter().enumerate() {
        let crop = image::imageops::crop_imm(*image, x, y, side, side).to_image();
        image::imageops::replace(&mut out, &crop, i64::from(i as u32 * (side + gap)), 0);
    }
    out
}

fn print_table(model: &str, scale: u32, rows: &[(String, (u32, u32), [Score; 3])]) {
    println!(
        "x{scale}: photographs reduced {scale}x (bicubic), then restored; PSNR dB / SSIM on luma, {BORDER}-pixel border left out"
    );
    println!(
        "{:<22} {:>9}  {:>15}  {:>15}  {:>15}",
        "photograph", "size", "bicubic", "lanczos3", model
    );
    let mut mean = [Score::default(); 3];
    for (name, (w, h), scores) in rows {
        print!("{name:<22} {:>9}", format!("{w}x{h}"));
        for (m, s) in mean.iter_mut().zip(scores) {
            print!("  {:>6.2} / {:.4}", s.psnr, s.ssim);
            m.psnr += s.psnr / rows.len() as f64;
            m.ssim += s.ssim / rows.len() as f64;
        }
        println!();
    }
    print!("{:<22} {:>9}", "mean", "");
    for m in &mean {
        print!("  {:>6.2} / {:.4}", m.psnr, m.ssim);
    }
    println!();
    println!(
        "{model} vs bicubic: {:+.2} dB PSNR, {:+.4} SSIM; vs lanczos3: {:+.2} dB",
        mean[2].psnr - mean[0].psnr,
        mean[2].ssim - mean[0].ssim,
        mean[2].psnr - mean[1].psnr
    );
}
