//! A ×2 head for photographs, fitted by least squares. Real-ESRGAN's compact trunk (the
//! animevideov3 weights, unchanged) feeds a new last convolution — 3×3, features → 12, pixel
//! shuffle ×2, the nearest-neighbour input added back: `SRVGGNetCompact` at ×2 — whose weights
//! minimise the squared error to photographs over pairs (photograph reduced ×2, photograph).
//! The output is linear in those weights, so the optimum is one linear solve (normal equations
//! with a small ridge), not gradient descent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::srvgg::{self, Srvgg};
use crate::backend::WEIGHTS_FILE;

/// The shape of realesr-animevideov3, whose trunk the head is fitted on.
pub const ANIMEVIDEOV3: srvgg::Shape = srvgg::Shape {
    features: 64,
    convs: 16,
    upscale: 4,
};

/// The name of the fitted model in a repository.
pub const MODEL: &str = "image-enhance-x2";

/// Why a head could not be fitted or installed.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The trunk's weights could not be read, or the computation failed.
    #[error("{0}")]
    Compute(#[from] candle_core::Error),
    /// The fitted model could not be installed.
    #[error(transparent)]
    Install(#[from] crate::repository::InstallError),
}

/// Fits the ×2 head on `pairs` for the animevideov3 trunk in `trunk_dir` (a version folder of
/// `image-enhance-x4`) and installs the result as the next version of [`MODEL`] in
/// `repository`. Returns its version folder and the fit's report.
pub fn install_x2<'a>(
    repository: &Path,
    trunk_dir: &Path,
    pairs: impl IntoIterator<Item = Pair<'a>>,
    progress: impl FnMut(usize),
) -> Result<(PathBuf, FitReport), FitError> {
    let trunk = candle_core::safetensors::load(trunk_dir.join(WEIGHTS_FILE), &Device::Cpu)?;
    let (weights, report) = fit_x2_head(&trunk, ANIMEVIDEOV3, pairs, progress)?;
    let dir = crate::repository::install_version(repository, MODEL, super::X2_CONFIG, |staging| {
        Ok(candle_core::safetensors::save(
            &weights,
            staging.join(WEIGHTS_FILE),
        )?)
    })?;
    Ok((dir, report))
}

/// One training pair: an RGB image (`width × height`, interleaved 8-bit) and the same image
/// twice as large.
pub struct Pair<'a> {
    /// The reduced image.
    pub small: &'a [u8],
    /// Its width.
    pub width: usize,
    /// Its height.
    pub height: usize,
    /// The original, `2·width × 2·height`.
    pub large: &'a [u8],
}

/// What a fit achieved on its training pairs (mean squared error per value, 0..1 scale).
#[derive(Debug, Clone, Copy)]
pub struct FitReport {
    /// Pixels (of the reduced images) fitted on.
    pub pixels: usize,
    /// The error of the fitted head, from the normal equations.
    pub fitted_mse: f64,
    /// The error of the nearest-neighbour enlargement alone (a head of zeros).
    pub nearest_mse: f64,
}

/// Relative ridge added to the normal equations' diagonal (times their mean diagonal).
const RIDGE: f64 = 1e-4;

/// Fits a ×2 head on `pairs` for the trunk of `weights` (a compact network of `shape`).
/// Returns the weights of the ×2 network (the trunk's, and the new last convolution) and how
/// well it fits; `progress(pairs done)` follows the work.
pub fn fit_x2_head<'a>(
    weights: &HashMap<String, Tensor>,
    shape: srvgg::Shape,
    pairs: impl IntoIterator<Item = Pair<'a>>,
    mut progress: impl FnMut(usize),
) -> candle_core::Result<(HashMap<String, Tensor>, FitReport)> {
    let device = Device::Cpu;
    let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, &device);
    let trunk = Srvgg::new(shape, vb)?;
    let f = shape.features;
    let inputs = f * 9 + 1;
    let mut gram = vec![0f64; inputs * inputs];
    let mut cross = vec![0f64; inputs * 12];
    let mut target_energy = 0f64;
    let mut pixels = 0;
    for (done, pair) in pairs.into_iter().enumerate() {
        let (w, h) = (pair.width, pair.height);
        let planar: Vec<f32> = (0..3)
            .flat_map(|c| {
                pair.small
                    .iter()
                    .skip(c)
                    .step_by(3)
                    .map(|v| *v as f32 / 255.0)
            })
            .collect();
        let xs = Tensor::from_vec(planar, (1, 3, h, w), &device)?;
        let features = trunk.features(&xs)?.squeeze(0)?;
        let padded = features.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
        // Rows: the 3×3 neighbourhood of every feature (in (dy, dx, feature) order), then 1.
        let mut rows = Vec::with_capacity(10);
        for dy in 0..3 {
            for dx in 0..3 {
                rows.push(
                    padded
                        .narrow(1, dy, h)?
                        .narrow(2, dx, w)?
                        .reshape((f, h * w))?,
                );
            }
        }
        rows.push(Tensor::ones((1, h * w), DType::F32, &device)?);
        let x = Tensor::cat(&rows, 0)?; // [inputs, pixels]
        let targets = residuals(&pair);
        let t = Tensor::from_vec(targets.clone(), (h * w, 12), &device)?;
        let g: Vec<f32> = x.matmul(&x.t()?)?.flatten_all()?.to_vec1()?;
        let b: Vec<f32> = x.matmul(&t)?.flatten_all()?.to_vec1()?;
        gram.iter_mut().zip(g).for_each(|(a, v)| *a += v as f64);
        cross.iter_mut().zip(b).for_each(|(a, v)| *a += v as f64);
        target_energy += targets.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
        pixels += h * w;
        progress(done + 1);
    }
    let mean_diagonal = (0..inputs).map(|i| gram[i * inputs + i]).sum::<f64>() / inputs as f64;
    let mut regularised = gram.clone();
    for i in 0..inputs {
        regularised[i * inputs + i] += RIDGE * mean_diagonal;
    }
    let solution = solve(&regularised, inputs, &cross, 12).ok_or_else(|| {
        candle_core::Error::Msg("the normal equations are singular: too few pixels".into())
    })?;
    // Squared error of the solution: t·t − 2 w·b + w·G·w, per output value.
    let mut error = target_energy;
    for o in 0..12 {
        let column: Vec<f64> = (0..inputs).map(|i| solution[i * 12 + o]).collect();
        for i in 0..inputs {
            error -= 2.0 * column[i] * cross[i * 12 + o];
            let row = &gram[i * inputs..(i + 1) * inputs];
            error += column[i] * row.iter().zip(&column).map(|(g, c)| g * c).sum::<f64>();
        }
    }
    let values = (pixels * 12) as f64;
    let report = FitReport {
        pixels,
        fitted_mse: error.max(0.0) / values,
        nearest_mse: target_energy / values,
    };
    // The last convolution: weight[o][c][dy][dx] = solution[(dy·3 + dx)·f + c][o].
    let mut kernel = vec![0f32; 12 * f * 9];
    for o in 0..12 {
        for c in 0..f {
            for k in 0..9 {
                kernel[(o * f + c) * 9 + k] = solution[(k * f + c) * 12 + o] as f32;
            }
        }
    }
    let bias: Vec<f32> = (0..12).map(|o| solution[f * 9 * 12 + o] as f32).collect();
    let last = srvgg::last_layer(shape);
    let mut x2: HashMap<String, Tensor> = weights
        .iter()
        .filter(|(name, _)| !name.starts_with(&format!("body.{last}.")))
        .map(|(name, t)| (name.clone(), t.clone()))
        .collect();
    x2.insert(
        format!("body.{last}.weight"),
        Tensor::from_vec(kernel, (12, f, 3, 3), &device)?,
    );
    x2.insert(format!("body.{last}.bias"), Tensor::new(bias, &device)?);
    Ok((x2, report))
}

/// What the head must add to the nearest-neighbour enlargement, per reduced pixel: 12 values
/// in pixel-shuffle order (channel, row offset, column offset), on a 0..1 scale.
fn residuals(pair: &Pair<'_>) -> Vec<f32> {
    let (w, h) = (pair.width, pair.height);
    let mut out = Vec::with_capacity(w * h * 12);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let base = pair.small[(y * w + x) * 3 + c] as f32;
                for dy in 0..2 {
                    for dx in 0..2 {
                        let large = pair.large[((2 * y + dy) * 2 * w + 2 * x + dx) * 3 + c] as f32;
                        out.push((large - base) / 255.0);
                    }
                }
            }
        }
    }
    out
}

/// Solves `a · x = b` for a symmetric positive definite `a` (`n × n`) and `b` (`n × m`) by
/// Cholesky decomposition; `None` when `a` is not positive definite.
fn solve(a: &[f64], n: usize, b: &[f64], m: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let dot: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - dot;
                if d <= 0.0 {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - dot) / l[j * n + j];
            }
        }
    }
    let mut x = b.to_vec();
    for col in 0..m {
        // L y = b, then Lᵀ x = y.
        for i in 0..n {
            let dot: f64 = (0..i).map(|k| l[i * n + k] * x[k * m + col]).sum();
            x[i * m + col] = (x[i * m + col] - dot) / l[i * n + i];
        }
        for i in (0..n).rev() {
            let dot: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k * m + col]).sum();
            x[i * m + col] = (x[i * m + col] - dot) / l[i * n + i];
        }
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_known_system() {
        // a = [[4, 2], [2, 3]], x = [[1, -1], [2, 0.5]] → b = a·x.
        let a = [4.0, 2.0, 2.0, 3.0];
        let b = [8.0, -3.0, 8.0, -0.5];
        let x = solve(&a, 2, &b, 2).unwrap();
        for (got, want) in x.iter().zip([1.0, -1.0, 2.0, 0.5]) {
            assert!((got - want).abs() < 1e-12, "{x:?}");
        }
        assert!(solve(&[1.0, 2.0, 2.0, 1.0], 2, &[1.0, 1.0], 1).is_none());
    }

    #[test]
    fn residuals_follow_pixel_shuffle_order() {
        // A 1×1 image of (10, 20, 30), enlarged to 2×2 with distinct values.
        let small = [10, 20, 30];
        let large: Vec<u8> = (0..12).map(|i| 40 + i as u8).collect();
        let pair = Pair {
            small: &small,
            width: 1,
            height: 1,
            large: &large,
        };
        let r: Vec<f32> = residuals(&pair).iter().map(|v| v * 255.0).collect();
        // Channel 0 at (0,0), (0,1), (1,0), (1,1): large values 40, 43, 46, 49 minus 10.
        let want = [
            30.0, 33.0, 36.0, 39.0, 21.0, 24.0, 27.0, 30.0, 12.0, 15.0, 18.0, 21.0,
        ];
        for (got, want) in r.iter().zip(want) {
            assert!((got - want).abs() < 1e-3, "{r:?}");
        }
    }
}
