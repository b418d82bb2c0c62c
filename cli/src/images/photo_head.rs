//! Fits `image-enhance-x2`, the default ×2 model: the trunk of `image-enhance-x4`
//! (realesr-animevideov3) with a head fitted by least squares to photographs
//! ([`vitrine_worker::models::enhance::fit`]), on [`photos::TRAINING`], each reduced ×2 with
//! bicubic filtering as `images eval` reduces its photographs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use vitrine_worker::models::enhance::fit::{self, Pair};

use super::photos;

/// Training photographs larger than this on a side are cut to their centre.
const LARGEST_SIDE: u32 = 512;

/// Fits and installs the ×2 head into `repository`, whose `image-enhance-x4` provides the
/// trunk. Returns the version folder.
pub fn install(repository: &Path, cache: &Path) -> Result<PathBuf> {
    let x4 = repository.join("image-enhance-x4");
    let version = vitrine_worker::repository::latest_version(&x4)
        .with_context(|| format!("{} has no version to take the trunk from", x4.display()))?;
    let paths = photos::fetch(cache, photos::TRAINING)?;
    let mut originals = Vec::with_capacity(paths.len());
    for path in &paths {
        let photo = photos::open_centre(path, LARGEST_SIDE, 2)?;
        let small = photos::reduce(&photo, 2);
        originals.push((photo, small));
    }
    let pairs = originals.iter().map(|(photo, small)| Pair {
        small: small.as_raw(),
        width: small.width() as usize,
        height: small.height() as usize,
        large: photo.as_raw(),
    });
    let bar = ProgressBar::new(paths.len() as u64).with_style(
        ProgressStyle::with_template(
            "fitting image-enhance-x2 {bar:30} {pos}/{len} photographs ({elapsed}, {eta} left)",
        )
        .expect("valid template"),
    );
    let (dir, report) = fit::install_x2(repository, &x4.join(version.to_string()), pairs, |done| {
        bar.set_position(done as u64)
    })
    .context("cannot fit image-enhance-x2")?;
    bar.finish_and_clear();
    let db = |mse: f64| 10.0 * (1.0 / mse).log10();
    println!(
        "{}: fitted on {} photographs ({:.1} Mpx reduced): {:.2} dB PSNR on them (nearest-neighbour enlargement {:.2} dB)",
        fit::MODEL,
        paths.len(),
        report.pixels as f64 / 1e6,
        db(report.fitted_mse),
        db(report.nearest_mse)
    );
    Ok(dir)
}
