//! Image quality as super-resolution papers measure it (BasicSR's `calculate_psnr` and
//! `calculate_ssim` with `test_y_channel`): on the luma of ITU-R BT.601 (16–235), with a border
//! of pixels left out on every side.

use image::RgbImage;

/// BT.601 luma (16–235) of every pixel, as BasicSR's `rgb2ycbcr(y_only=True)`.
fn luma(image: &RgbImage) -> Vec<f64> {
    image
        .pixels()
        .map(|p| {
            let [r, g, b] = p.0.map(f64::from);
            16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
        })
        .collect()
}

/// The luma of both images without `border` pixels on each side: (width, height, a, b).
fn cropped(a: &RgbImage, b: &RgbImage, border: u32) -> (usize, usize, Vec<f64>, Vec<f64>) {
    assert_eq!(a.dimensions(), b.dimensions(), "images of different sizes");
    let (w, h) = a.dimensions();
    let (cw, ch) = (w.saturating_sub(2 * border), h.saturating_sub(2 * border));
    let crop = |y: Vec<f64>| {
        (border..border + ch)
            .flat_map(|row| {
                let start = (row * w + border) as usize;
                y[start..start + cw as usize].to_vec()
            })
            .collect()
    };
    (cw as usize, ch as usize, crop(luma(a)), crop(luma(b)))
}

/// Peak signal-to-noise ratio in dB of `b` against `a`, on luma.
pub fn psnr(a: &RgbImage, b: &RgbImage, border: u32) -> f64 {
    let (_, _, a, b) = cropped(a, b, border);
    let mse = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64.powi(2) / mse).log10()
}

/// Structural similarity of `b` against `a` on luma (Wang et al. 2004: 11×11 Gaussian window
/// of σ 1.5, statistics over the window positions inside the image).
pub fn ssim(a: &RgbImage, b: &RgbImage, border: u32) -> f64 {
    let (w, h, a, b) = cropped(a, b, border);
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let product = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).collect::<Vec<_>>();
    let mu_a = blur(&a, w, h);
    let mu_b = blur(&b, w, h);
    let aa = blur(&product(&a, &a), w, h);
    let bb = blur(&product(&b, &b), w, h);
    let ab = blur(&product(&a, &b), w, h);
    let n = mu_a.len();
    let total: f64 = (0..n)
        .map(|i| {
            let (ma, mb) = (mu_a[i], mu_b[i]);
            let (va, vb, cov) = (aa[i] - ma * ma, bb[i] - mb * mb, ab[i] - ma * mb);
            ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
        })
        .sum();
    total / n as f64
}

/// The 11-tap Gaussian of σ 1.5, normalised.
fn gaussian() -> [f64; 11] {
    let mut taps = [0.0; 11];
    for (i, t) in taps.iter_mut().enumerate() {
        let x = i as f64 - 5.0;
        *t = (-x * x / (2.0 * 1.5 * 1.5)).exp();
    }
    let sum: f64 = taps.iter().sum();
    taps.map(|t| t / sum)
}

/// Separable Gaussian filter over the positions where the whole window fits ("valid").
fn blur(values: &[f64], w: usize, h: usize) -> Vec<f64> {
    let taps = gaussian();
    let (ow, oh) = (w.saturating_sub(10), h.saturating_sub(10));
    let across: Vec<f64> = (0..h)
        .flat_map(|y| {
            let row = &values[y * w..(y + 1) * w];
            (0..ow).map(move |x| taps.iter().zip(&row[x..x + 11]).map(|(t, v)| t * v).sum())
        })
        .collect();
    (0..oh)
        .flat_map(|y| {
            let across = &across;
            (0..ow).map(move |x| (0..11).map(|k| taps[k] * across[(y + k) * ow + x]).sum())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(seed: u32, amount: i32) -> RgbImage {
        RgbImage::from_fn(40, 30, |x, y| {
            let base = ((x * 6 + y * 3) % 200) as i32;
            let noise = ((x * 7919 + y * 104_729 + seed) % 17) as i32 - 8;
            let v = (base + noise * amount / 8).clamp(0, 255) as u8;
            image::Rgb([v, v / 2, 255 - v])
        })
    }

    #[test]
    fn identical_images_are_perfect_and_noise_lowers_both_measures() {
        let clean = noisy(0, 0);
        assert_eq!(psnr(&clean, &clean, 2), f64::INFINITY);
        assert!((ssim(&clean, &clean, 2) - 1.0).abs() < 1e-12);
        let light = noisy(1, 2);
        let heavy = noisy(1, 8);
        assert!(psnr(&clean, &light, 2) > psnr(&clean, &heavy, 2) + 6.0);
        assert!(ssim(&clean, &light, 2) > ssim(&clean, &heavy, 2));
        assert!(ssim(&clean, &heavy, 2) < 0.99);
    }

    #[test]
    fn psnr_matches_the_formula_on_a_uniform_error() {
        // Grey pixels one level apart in every channel differ by 219/255 in BT.601 luma.
        let a = RgbImage::from_pixel(10, 10, image::Rgb([100, 100, 100]));
        let b = RgbImage::from_pixel(10, 10, image::Rgb([101, 101, 101]));
        let dy: f64 = (65.481 + 128.553 + 24.966) / 255.0;
        let expected = 10.0 * (255.0f64.powi(2) / (dy * dy)).log10();
        assert!((psnr(&a, &b, 2) - expected).abs() < 1e-9);
    }
}
