//! "Beautify" steps an enhancement request may ask for before the network runs (request
//! parameter `beautify`: a comma-separated list of [`Step`]s, applied in the order denoise,
//! white balance, exposure whatever the order given):
//!
//! - `denoise`: a sigma filter — each pixel becomes the mean of its 3×3 neighbours whose value
//!   is within [`DENOISE_SIGMA`] of its own, so grain is smoothed and edges are kept;
//! - `white_balance`: grey world — each channel is scaled so its mean meets the mean of the
//!   three, by at most ×[`MAX_WB_GAIN`] either way;
//! - `exposure`: levels — the 1st and 99th percentiles of luma are stretched to 0 and 255, by
//!   at most ×[`MAX_EXPOSURE_GAIN`].

use crate::error::InferError;

/// Largest difference (of 255) to a neighbour that `denoise` still averages with.
pub const DENOISE_SIGMA: i32 = 14;
/// Largest channel gain of `white_balance`.
pub const MAX_WB_GAIN: f32 = 1.5;
/// Largest contrast gain of `exposure`.
pub const MAX_EXPOSURE_GAIN: f32 = 2.5;

/// A beautify step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Edge-preserving smoothing.
    Denoise,
    /// Grey-world white balance.
    WhiteBalance,
    /// Levels stretch of luma.
    Exposure,
}

const NAMES: [(&str, Step); 3] = [
    ("denoise", Step::Denoise),
    ("white_balance", Step::WhiteBalance),
    ("exposure", Step::Exposure),
];

/// The steps a `beautify` parameter names, in the order they apply.
pub fn parse(text: &str) -> Result<Vec<Step>, InferError> {
    let mut steps = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some((_, step)) = NAMES.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
            return Err(InferError::Invalid(format!(
                "unknown beautify step '{name}'; use any of {}",
                known.join(", ")
            )));
        };
        steps.push(*step);
    }
    steps.sort();
    steps.dedup();
    Ok(steps)
}

/// Applies `steps` to an RGB image of `w`×`h` pixels in place.
pub fn apply(steps: &[Step], rgb: &mut [u8], w: usize, h: usize) {
    for step in steps {
        match step {
            Step::Denoise => denoise(rgb, w, h),
            Step::WhiteBalance => white_balance(rgb),
            Step::Exposure => exposure(rgb),
        }
    }
}

fn denoise(rgb: &mut [u8], w: usize, h: usize) {
    let source = rgb.to_vec();
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let centre = i32::from(source[(y * w + x) * 3 + c]);
                let (mut sum, mut count) = (0i32, 0i32);
                for ny in y.saturating_sub(1)..(y + 2).min(h) {
                    for nx in x.saturating_sub(1)..(x + 2).min(w) {
                        let v = i32::from(source[(ny * w + nx) * 3 + c]);
                        if (v - centre).abs() <= DENOISE_SIGMA {
                            sum += v;
                            count += 1;
                        }
                    }
                }
                rgb[(y * w + x) * 3 + c] = ((sum + count / 2) / count) as u8;
            }
        }
    }
}

fn white_balance(rgb: &mut [u8]) {
    let pixels = (rgb.len() / 3).max(1) as f64;
    let mut means = [0f64; 3];
    for p in rgb.chunks_exact(3) {
        for c in 0..3 {
            means[c] += f64::from(p[c]);
        }
    }
    means.iter_mut().for_each(|m| *m /= pixels);
    let grey = means.iter().sum::<f64>() / 3.0;
    let gains = means.map(|m| {
        let gain = if m > 0.5 { (grey / m) as f32 } else { 1.0 };
        gain.clamp(1.0 / MAX_WB_GAIN, MAX_WB_GAIN)
    });
    for p in rgb.chunks_exact_mut(3) {
        for c in 0..3 {
            p[c] = (f32::from(p[c]) * gains[c]).round().clamp(0.0, 255.0) as u8;
        }
    }
}

fn exposure(rgb: &mut [u8]) {
    let mut histogram = [0usize; 256];
    for p in rgb.chunks_exact(3) {
        histogram[luma(p) as usize] += 1;
    }
    let total: usize = histogram.iter().sum();
    let percentile = |share: f64| {
        let wanted = (total as f64 * share) as usize;
        let mut seen = 0;
        for (value, count) in histogram.iter().enumerate() {
            seen += count;
            if seen > wanted {
                return value as f32;
            }
        }
        255.0
    };
    let (low, high) = (percentile(0.01), percentile(0.99));
    if high <= low {
        return;
    }
    let gain = (255.0 / (high - low)).min(MAX_EXPOSURE_GAIN);
    // Centred on the middle of the range when the gain is limited.
    let offset = (low + high) / 2.0 - 127.5 / gain;
    for v in rgb.iter_mut() {
        *v = ((f32::from(*v) - offset) * gain).round().clamp(0.0, 255.0) as u8;
    }
}

fn luma(p: &[u8]) -> u8 {
    ((299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]) + 500) / 1000) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(rgb: &[u8], c: usize) -> f64 {
        rgb.chunks_exact(3).map(|p| f64::from(p[c])).sum::<f64>() / (rgb.len() / 3) as f64
    }

    #[test]
    fn steps_parse_in_their_order_and_unknown_ones_are_named() {
        assert_eq!(
            parse("exposure, denoise,exposure").unwrap(),
            [Step::Denoise, Step::Exposure]
        );
        assert!(parse("").unwrap().is_empty());
        let refused = parse("sharpen").unwrap_err().to_string();
        assert!(
            refused.contains("'sharpen'") && refused.contains("white_balance"),
            "{refused}"
        );
    }

    #[test]
    fn white_balance_neutralizes_a_colour_cast() {
        // A grey scene under blue light.
        let mut rgb: Vec<u8> = (0..400)
            .flat_map(|i| {
                let v = 60 + (i % 100) as u8;
                [v, v, v.saturating_add(40)]
            })
            .collect();
        let cast = mean(&rgb, 2) - mean(&rgb, 0);
        apply(&[Step::WhiteBalance], &mut rgb, 20, 20);
        let left = mean(&rgb, 2) - mean(&rgb, 0);
        assert!(cast > 35.0 && left.abs() < 3.0, "{cast} -> {left}");
    }

    #[test]
    fn exposure_stretches_a_dull_picture_within_its_gain() {
        let range = |rgb: &[u8]| (*rgb.iter().min().unwrap(), *rgb.iter().max().unwrap());
        // 60..=179: stretched to the full range.
        let mut rgb: Vec<u8> = (0..1200).flat_map(|i| [60 + (i % 120) as u8; 3]).collect();
        apply(&[Step::Exposure], &mut rgb, 1200, 1);
        let (low, high) = range(&rgb);
        assert!(low <= 3 && high >= 252, "{low}..{high}");
        // 90..=139: stretched by the largest gain, about its middle.
        let mut rgb: Vec<u8> = (0..1000).flat_map(|i| [90 + (i % 50) as u8; 3]).collect();
        apply(&[Step::Exposure], &mut rgb, 1000, 1);
        let (low, high) = range(&rgb);
        let stretched = f32::from(high - low) / 49.0;
        assert!((stretched - MAX_EXPOSURE_GAIN).abs() < 0.1, "{low}..{high}");
        assert!(
            (i32::from(low) + i32::from(high) - 255).abs() <= 3,
            "{low}..{high}"
        );
    }

    #[test]
    fn denoise_smooths_grain_and_keeps_edges() {
        let (w, h) = (40usize, 20usize);
        let mut state = 9u32;
        let mut rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let grain = (state >> 16) % 13;
                let base = if i % w < w / 2 { 40 } else { 200 };
                [(base + grain) as u8; 3]
            })
            .collect();
        let spread = |rgb: &[u8]| {
            let left: Vec<f64> = (0..h)
                .flat_map(|y| (1..w / 2 - 1).map(move |x| (y, x)))
                .map(|(y, x)| f64::from(rgb[(y * w + x) * 3]))
                .collect();
            let m = left.iter().sum::<f64>() / left.len() as f64;
            (left.iter().map(|v| (v - m).powi(2)).sum::<f64>() / left.len() as f64).sqrt()
        };
        let before = spread(&rgb);
        apply(&[Step::Denoise], &mut rgb, w, h);
        assert!(spread(&rgb) < before * 0.6, "{before} -> {}", spread(&rgb));
        // The edge between the halves stays sharp.
        let (a, b) = (rgb[(10 * w + w / 2 - 1) * 3], rgb[(10 * w + w / 2) * 3]);
        assert!(a < 60 && b > 190, "{a} | {b}");
    }
}
