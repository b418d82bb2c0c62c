//! `look-render`: a look's hero picture, its pieces laid flat on a background in its palette.
//! Not a learned model but a compositor served like one, so that edge functions hand the pixel
//! work to the worker pool through `wasi:nn` like any other image work. Tensors (no batch
//! dimension: one look per request):
//!
//! - input `pieces`, UINT8 `[-1, P, P, 4]`: the look's product pictures, RGBA, `P` = the
//!   `piece` parameter. Transparent pixels are background; a piece without any (a photograph
//!   on its studio backdrop) is cut out from the colour of its border ([`cut_out`]);
//! - input `palette`, UINT8 `[-1, 3]`: the look's colours, main first;
//! - input `seed`, INT64 `[1]`: varies the arrangement (the look's id, so a look always gets
//!   the same picture);
//! - output `image`, UINT8 `[S, S, 3]`: the hero picture, `S` = the `size` parameter.
//!
//! The composition ([`compose`]): a background of the palette's lightest shades (a diagonal
//! gradient, a soft paper grain and a vignette); the pieces in a grid for their count, each
//! fitted to its cell by its visible extent but none enlarged beyond the median fit (pieces
//! drawn to one scale keep their relative sizes), turned a few degrees, with a blurred
//! contact shadow under it.

use std::path::Path;
use std::sync::Arc;

use super::LoadContext;
use crate::backend::ModelInstance;
use crate::config::ModelConfig;
use crate::error::{InferError, LoadError};
use crate::tensor::{DataType, Tensor};

/// The `config.toml` of the built-in `lookbook-render`.
pub const CONFIG: &str = r#"# A look's hero picture: its product pictures laid flat on a background in its palette (docs/images.md).
backend = "candle"
architecture = "look-render"
max_batch_size = 0

[[input]]
name = "pieces"
datatype = "UINT8"
dims = [-1, 512, 512, 4]

[[input]]
name = "palette"
datatype = "UINT8"
dims = [-1, 3]

[[input]]
name = "seed"
datatype = "INT64"
dims = [1]

[[output]]
name = "image"
datatype = "UINT8"
dims = [1024, 1024, 3]

[instance_group]
count = 2

[parameters]
piece = 512
size = 1024
max_pieces = 8
"#;

/// The model's name in the built-in repository.
pub const MODEL: &str = "lookbook-render";

/// Installs `lookbook-render` (a version folder with nothing in it: there are no weights)
/// into `repository` unless it is there.
pub fn install(repository: &Path) -> Result<(), crate::repository::InstallError> {
    if crate::repository::latest_version(&repository.join(MODEL)).is_none() {
        crate::repository::install_version(repository, MODEL, CONFIG, |_| Ok(()))?;
    }
    Ok(())
}

/// Loads a `look-render` version folder (it needs no files).
pub fn load(
    _context: &LoadContext<'_>,
    config: &ModelConfig,
    _version_dir: &Path,
) -> Result<Arc<dyn ModelInstance>, LoadError> {
    let piece = config.usize_param("piece")?;
    let size = config.usize_param("size")?;
    let max_pieces = config.usize_param("max_pieces")?;
    let spec = |s: &crate::config::TensorSpec, name: &str, datatype: DataType, dims: &[i64]| {
        s.name == name && s.datatype == datatype && s.dims == dims
    };
    let (p, s) = (piece as i64, size as i64);
    let fits = config.max_batch_size == 0
        && matches!(&config.inputs[..], [a, b, c]
            if spec(a, "pieces", DataType::U8, &[-1, p, p, 4])
            && spec(b, "palette", DataType::U8, &[-1, 3])
            && spec(c, "seed", DataType::I64, &[1]))
        && matches!(&config.outputs[..], [o] if spec(o, "image", DataType::U8, &[s, s, 3]));
    if !fits || !(16..=4096).contains(&size) || !(16..=2048).contains(&piece) || max_pieces == 0 {
        return Err(LoadError::Mismatch(format!(
            "look-render needs max_batch_size = 0, inputs 'pieces' UINT8 [-1, {piece}, {piece}, 4], \
             'palette' UINT8 [-1, 3] and 'seed' INT64 [1], one output 'image' UINT8 [{size}, {size}, 3] \
             (piece and size from its parameters, 16-2048 and 16-4096), and max_pieces > 0"
        )));
    }
    Ok(Arc::new(LookRender {
        piece,
        size,
        max_pieces,
        output: config.outputs[0].name.clone(),
    }))
}

struct LookRender {
    piece: usize,
    size: usize,
    max_pieces: usize,
    output: String,
}

impl ModelInstance for LookRender {
    fn check(&self, inputs: &[Tensor]) -> Result<(), InferError> {
        let (pieces, colours) = (inputs[0].shape[0], inputs[1].shape[0]);
        if pieces == 0 || pieces > self.max_pieces {
            return Err(InferError::Invalid(format!(
                "a look has 1 to {} pieces, not {pieces}",
                self.max_pieces
            )));
        }
        if colours == 0 {
            return Err(InferError::Invalid("the palette has no colour".into()));
        }
        Ok(())
    }

    fn compute(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferError> {
        let area = self.piece * self.piece * 4;
        let pieces: Vec<Piece> = inputs[0]
            .data
            .chunks_exact(area)
            .map(|rgba| Piece::new(rgba, self.piece))
            .collect();
        let palette: Vec<[u8; 3]> = inputs[1]
            .data
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        let seed = i64::from_le_bytes(inputs[2].data[..8].try_into().expect("INT64 [1]"));
        let image = compose(&pieces, &palette, seed as u64, self.size);
        Ok(vec![Tensor::new(
            self.output.clone(),
            DataType::U8,
            vec![self.size, self.size, 3],
            image,
        )?])
    }
}

/// A square RGBA picture, premultiplied, as floats (0..=1).
struct Piece {
    side: usize,
    rgba: Vec<[f32; 4]>,
}

impl Piece {
    fn new(rgba: &[u8], side: usize) -> Self {
        let mut pixels: Vec<[f32; 4]> = rgba
            .chunks_exact(4)
            .map(|p| {
                let a = f32::from(p[3]) / 255.0;
                [
                    f32::from(p[0]) / 255.0 * a,
                    f32::from(p[1]) / 255.0 * a,
                    f32::from(p[2]) / 255.0 * a,
                    a,
                ]
            })
            .collect();
        if pixels.iter().all(|p| p[3] >= 1.0) {
            cut_out(&mut pixels, side);
        }
        Piece { side, rgba: pixels }
    }

    /// The smallest box holding the piece's visible pixels: x0, y0, x1, y1 (exclusive); the
    /// whole piece if none is visible.
    fn extent(&self) -> (usize, usize, usize, usize) {
        let (mut x0, mut y0, mut x1, mut y1) = (self.side, self.side, 0, 0);
        for (i, p) in self.rgba.iter().enumerate() {
            if p[3] > 0.05 {
                let (x, y) = (i % self.side, i / self.side);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
        if x1 == 0 {
            (0, 0, self.side, self.side)
        } else {
            (x0, y0, x1, y1)
        }
    }

    /// Bilinear sample at (x, y) in pixels; transparent outside.
    fn sample(&self, x: f32, y: f32) -> [f32; 4] {
        let (fx, fy) = (x - 0.5, y - 0.5);
        let (x0, y0) = (fx.floor(), fy.floor());
        let (tx, ty) = (fx - x0, fy - y0);
        let mut out = [0.0; 4];
        for (dy, wy) in [(0, 1.0 - ty), (1, ty)] {
            for (dx, wx) in [(0, 1.0 - tx), (1, tx)] {
                let (sx, sy) = (x0 as i64 + dx, y0 as i64 + dy);
                if sx < 0 || sy < 0 || sx >= self.side as i64 || sy >= self.side as i64 {
                    continue;
                }
                let p = self.rgba[sy as usize * self.side + sx as usize];
                let w = wx * wy;
                for c in 0..4 {
                    out[c] += p[c] * w;
                }
            }
        }
        out
    }
}

/// Makes transparent what looks like the backdrop: pixels close to the median colour of the
/// border (a soft edge from 6% to 16% colour distance).
fn cut_out(pixels: &mut [[f32; 4]], side: usize) {
    let mut border: Vec<[f32; 4]> = (0..side)
        .flat_map(|i| [i, (side - 1) * side + i, i * side, i * side + side - 1])
        .map(|i| pixels[i])
        .collect();
    let mut backdrop = [0.0; 3];
    for (c, value) in backdrop.iter_mut().enumerate() {
        border.sort_by(|a, b| a[c].total_cmp(&b[c]));
        *value = border[border.len() / 2][c];
    }
    for p in pixels.iter_mut() {
        let distance = ((0..3).map(|c| (p[c] - backdrop[c]).powi(2)).sum::<f32>() / 3.0).sqrt();
        let a = ((distance - 0.06) / 0.10).clamp(0.0, 1.0);
        *p = [p[0] * a, p[1] * a, p[2] * a, a];
    }
}

/// A small deterministic generator (SplitMix64) for the arrangement's variations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Cells (x, y, width, height, as shares of the canvas) for `n` pieces: one or two side by
/// side, three as one tall and two stacked, more in rows of up to four.
fn cells(n: usize) -> Vec<[f32; 4]> {
    let margin = 0.06;
    let inner = 1.0 - 2.0 * margin;
    if n == 3 {
        let half = inner / 2.0;
        return vec![
            [margin, margin, half, inner],
            [margin + half, margin, half, half],
            [margin + half, margin + half, half, half],
        ];
    }
    let columns = match n {
        1 => 1,
        2 | 4 => 2,
        5 | 6 | 9 => 3,
        _ => 4,
    };
    let rows = n.div_ceil(columns);
    let (w, h) = (inner / columns as f32, inner / rows as f32);
    (0..n)
        .map(|i| {
            let (row, column) = (i / columns, i % columns);
            // A short last row is centred.
            let in_row = if row + 1 == rows {
                n - row * columns
            } else {
                columns
            };
            let left = margin + (inner - in_row as f32 * w) / 2.0;
            [left + column as f32 * w, margin + row as f32 * h, w, h]
        })
        .collect()
}

/// Where a piece goes: its centre and scale on the canvas, its turn (radians), and the centre
/// of its visible extent in the piece.
struct Placement {
    centre: (f32, f32),
    scale: f32,
    turn: f32,
    origin: (f32, f32),
}

impl Placement {
    /// The piece pixel under canvas point (x, y).
    fn to_piece(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = (x - self.centre.0, y - self.centre.1);
        let (sin, cos) = self.turn.sin_cos();
        (
            self.origin.0 + (cos * dx + sin * dy) / self.scale,
            self.origin.1 + (-sin * dx + cos * dy) / self.scale,
        )
    }
}

/// The hero picture: `size`² RGB bytes.
fn compose(pieces: &[Piece], palette: &[[u8; 3]], seed: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut canvas = background(palette, &mut rng, size);
    // Each piece fits its cell; pieces drawn to one scale (a beanie smaller than a coat) keep
    // their sizes relative to each other: none is enlarged beyond the median fit.
    let cells = cells(pieces.len());
    let extents: Vec<(usize, usize, usize, usize)> = pieces.iter().map(Piece::extent).collect();
    let fits: Vec<f32> = cells
        .iter()
        .zip(&extents)
        .map(|(cell, e)| {
            let (w, h) = ((e.2 - e.0) as f32, (e.3 - e.1) as f32);
            (cell[2] * size as f32 / w).min(cell[3] * size as f32 / h)
        })
        .collect();
    let mut sorted = fits.clone();
    sorted.sort_by(f32::total_cmp);
    let common = sorted[sorted.len() / 2];
    let placements: Vec<(Placement, (usize, usize, usize, usize))> = cells
        .iter()
        .zip(extents)
        .zip(fits)
        .map(|((cell, extent), fit)| {
            let scale = fit.min(common) * (0.84 + 0.06 * rng.signed());
            let jitter = 0.04 * size as f32;
            let placement = Placement {
                centre: (
                    (cell[0] + cell[2] / 2.0) * size as f32 + jitter * rng.signed() * cell[2],
                    (cell[1] + cell[3] / 2.0) * size as f32 + jitter * rng.signed() * cell[3],
                ),
                scale,
                turn: 0.09 * rng.signed(),
                origin: (
                    (extent.0 + extent.2) as f32 / 2.0,
                    (extent.1 + extent.3) as f32 / 2.0,
                ),
            };
            (placement, extent)
        })
        .collect();
    // Shadows first, all on the background: each piece's coverage at a quarter of the
    // resolution, moved down and right, blurred.
    let quarter = size.div_ceil(4);
    let mut shadow = vec![0.0f32; quarter * quarter];
    for ((placement, _), piece) in placements.iter().zip(pieces) {
        let offset = (0.012 * size as f32, 0.02 * size as f32);
        for qy in 0..quarter {
            for qx in 0..quarter {
                let (x, y) = (
                    (qx as f32 + 0.5) * 4.0 - offset.0,
                    (qy as f32 + 0.5) * 4.0 - offset.1,
                );
                let (px, py) = placement.to_piece(x, y);
                let a = piece.sample(px, py)[3];
                let s = &mut shadow[qy * quarter + qx];
                *s = s.max(a);
            }
        }
    }
    blur(&mut shadow, quarter, (0.01 * size as f32).max(1.0) as usize);
    for y in 0..size {
        for x in 0..size {
            let s = shadow[(y / 4).min(quarter - 1) * quarter + (x / 4).min(quarter - 1)];
            let dim = 1.0 - 0.38 * s;
            for c in &mut canvas[(y * size + x) * 3..][..3] {
                *c *= dim;
            }
        }
    }
    for ((placement, extent), piece) in placements.iter().zip(pieces) {
        // The canvas box the turned piece can reach.
        let half = ((extent.2 - extent.0).max(extent.3 - extent.1) as f32 * placement.scale)
            * std::f32::consts::FRAC_1_SQRT_2
            + 2.0;
        let lo = |c: f32| (c - half).max(0.0) as usize;
        let hi = |c: f32| ((c + half).ceil() as usize).min(size);
        for y in lo(placement.centre.1)..hi(placement.centre.1) {
            for x in lo(placement.centre.0)..hi(placement.centre.0) {
                let (px, py) = placement.to_piece(x as f32 + 0.5, y as f32 + 0.5);
                let p = piece.sample(px, py);
                if p[3] <= 0.0 {
                    continue;
                }
                let out = &mut canvas[(y * size + x) * 3..][..3];
                for c in 0..3 {
                    out[c] = p[c] + out[c] * (1.0 - p[3]);
                }
            }
        }
    }
    canvas
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

/// The backdrop: a diagonal gradient between pale shades of the palette's first two colours,
/// paper grain and a vignette; RGB floats.
fn background(palette: &[[u8; 3]], rng: &mut Rng, size: usize) -> Vec<f32> {
    let pale = |c: [u8; 3], t: f32| c.map(|v| f32::from(v) / 255.0 * (1.0 - t) + t);
    let from = pale(palette[0], 0.72);
    let to = pale(*palette.get(1).unwrap_or(&palette[0]), 0.84);
    let grain_seed = rng.next();
    let mut canvas = vec![0.0f32; size * size * 3];
    let n = size as f32;
    for y in 0..size {
        for x in 0..size {
            let t = ((x + y) as f32 / (2.0 * n)).clamp(0.0, 1.0);
            let (dx, dy) = (x as f32 / n - 0.5, y as f32 / n - 0.45);
            let vignette = 1.0 - 0.22 * (dx * dx + dy * dy);
            let grain = (hash(grain_seed, x as u64, y as u64) - 0.5) * 0.025
                + (value_noise(grain_seed, x as f32 / 24.0, y as f32 / 24.0) - 0.5) * 0.012;
            let out = &mut canvas[(y * size + x) * 3..][..3];
            for c in 0..3 {
                out[c] = (from[c] * (1.0 - t) + to[c] * t) * vignette + grain;
            }
        }
    }
    canvas
}

/// A hash of (seed, x, y) in [0, 1).
fn hash(seed: u64, x: u64, y: u64) -> f32 {
    let mut z =
        seed ^ x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ y.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 29)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 32)) >> 40) as f32 / (1u64 << 24) as f32
}

/// Smoothly interpolated lattice noise in [0, 1).
fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
    let (tx, ty) = (smooth(x - x0), smooth(y - y0));
    let corner = |dx: u64, dy: u64| hash(seed, x0 as u64 + dx, y0 as u64 + dy);
    let top = corner(0, 0) * (1.0 - tx) + corner(1, 0) * tx;
    let bottom = corner(0, 1) * (1.0 - tx) + corner(1, 1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// Three box blurs of `radius` (close to a Gaussian) over a `side`² grid.
fn blur(values: &mut [f32], side: usize, radius: usize) {
    let mut line = vec![0.0f32; side];
    for _ in 0..3 {
        for horizontal in [true, false] {
            for i in 0..side {
                let at = |j: usize| {
                    if horizontal {
                        i * side + j
                    } else {
                        j * side + i
                    }
                };
                for (j, v) in line.iter_mut().enumerate() {
                    *v = values[at(j)];
                }
                let mut sum: f32 = (0..=radius).map(|j| line[j.min(side - 1)]).sum::<f32>()
                    + line[0] * radius as f32;
                for j in 0..side {
                    values[at(j)] = sum / (2 * radius + 1) as f32;
                    sum += line[(j + radius + 1).min(side - 1)] - line[j.saturating_sub(radius)];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `side`² piece: a `colour` disc on transparency, or on an opaque `backdrop`.
    fn disc(side: usize, colour: [u8; 3], backdrop: Option<[u8; 3]>) -> Vec<u8> {
        let r = side as f32 * 0.3;
        (0..side * side)
            .flat_map(|i| {
                let (x, y) = ((i % side) as f32 + 0.5, (i / side) as f32 + 0.5);
                let inside = (x - side as f32 / 2.0).hypot(y - side as f32 / 2.0) < r;
                match (inside, backdrop) {
                    (true, _) => [colour[0], colour[1], colour[2], 255],
                    (false, Some(b)) => [b[0], b[1], b[2], 255],
                    (false, None) => [0, 0, 0, 0],
                }
            })
            .collect()
    }

    fn pixel(image: &[u8], size: usize, x: usize, y: usize) -> [u8; 3] {
        let i = (y * size + x) * 3;
        [image[i], image[i + 1], image[i + 2]]
    }

    #[test]
    fn pieces_are_laid_on_a_background_of_the_palette_with_shadows() {
        let size = 256;
        let red = Piece::new(&disc(64, [200, 20, 20], None), 64);
        // A photograph on a white backdrop: cut out from its border.
        let blue = Piece::new(&disc(64, [20, 20, 200], Some([250, 250, 250])), 64);
        let palette = [[40, 90, 60], [230, 200, 120]];
        let image = compose(&[red, blue], &palette, 7, size);
        assert_eq!(image.len(), size * size * 3);
        // Two side by side: red in the left cell, blue in the right, centred near their cells.
        let (left, right) = (pixel(&image, size, 72, 128), pixel(&image, size, 184, 128));
        assert!(left[0] > 150 && left[2] < 80, "{left:?}");
        assert!(right[2] > 150 && right[0] < 80, "{right:?}");
        // The background is a pale green in the top left corner, with no backdrop white left
        // around the blue piece.
        let corner = pixel(&image, size, 4, 4);
        assert!(
            corner[1] > corner[0] && corner[1] > corner[2] && corner[1] > 170,
            "{corner:?}"
        );
        let beside_blue = pixel(&image, size, 184, 128 - 40);
        assert!(
            beside_blue.iter().any(|&c| c < 235),
            "{beside_blue:?}: backdrop cut out"
        );
        // The shadow falls below and right of a piece: darker than above and left of it.
        let lum = |p: [u8; 3]| p.iter().map(|&c| u32::from(c)).sum::<u32>();
        let red: Vec<usize> = (0..size)
            .filter(|&y| pixel(&image, size, 72, y)[1] < 100)
            .collect();
        let (top, bottom) = (red[0], red[red.len() - 1]);
        let (below, above) = (
            pixel(&image, size, 72, bottom + 3),
            pixel(&image, size, 72, top - 3),
        );
        assert!(lum(below) + 20 < lum(above), "{below:?} vs {above:?}");
        // The same seed gives the same picture; another seed another arrangement.
        let again = compose(
            &[
                Piece::new(&disc(64, [200, 20, 20], None), 64),
                Piece::new(&disc(64, [20, 20, 200], Some([250, 250, 250])), 64),
            ],
            &palette,
            7,
            size,
        );
        assert_eq!(image, again);
        let other = compose(
            &[Piece::new(&disc(64, [200, 20, 20], None), 64)],
            &palette,
            8,
            size,
        );
        assert_ne!(image, other);
    }

    #[test]
    fn every_count_of_pieces_gets_cells_inside_the_canvas_without_overlap() {
        for n in 1..=8 {
            let cells = cells(n);
            assert_eq!(cells.len(), n);
            for (i, a) in cells.iter().enumerate() {
                assert!(a[0] >= 0.0 && a[1] >= 0.0 && a[0] + a[2] <= 1.0 && a[1] + a[3] <= 1.0);
                for b in &cells[i + 1..] {
                    let apart = a[0] + a[2] <= b[0] + 1e-6
                        || b[0] + b[2] <= a[0] + 1e-6
                        || a[1] + a[3] <= b[1] + 1e-6
                        || b[1] + b[3] <= a[1] + 1e-6;
                    assert!(apart, "{n} pieces: {a:?} and {b:?} overlap");
                }
            }
        }
    }

    #[test]
    fn the_model_checks_its_inputs_and_serves_its_output() {
        let config = ModelConfig::parse(
            &CONFIG
                .replace("512", "32")
                .replace("1024", "64")
                .replace("max_pieces = 8", "max_pieces = 2"),
        )
        .unwrap();
        let device = candle_core::Device::Cpu;
        let context = LoadContext {
            device: &device,
            model: MODEL,
            state_dir: None,
        };
        let model = load(&context, &config, Path::new(".")).unwrap();
        let inputs = |n: usize, colours: usize| {
            vec![
                Tensor::new(
                    "pieces",
                    DataType::U8,
                    vec![n, 32, 32, 4],
                    (0..n).flat_map(|_| disc(32, [9, 9, 9], None)).collect(),
                )
                .unwrap(),
                Tensor::new(
                    "palette",
                    DataType::U8,
                    vec![colours, 3],
                    vec![120; colours * 3],
                )
                .unwrap(),
                Tensor::new("seed", DataType::I64, vec![1], 5i64.to_le_bytes().to_vec()).unwrap(),
            ]
        };
        let out = model.compute(&inputs(2, 1)).unwrap();
        assert_eq!(
            (out[0].name.as_str(), &out[0].shape[..]),
            ("image", &[64, 64, 3][..])
        );
        for (n, colours, says) in [
            (0, 1, "1 to 2 pieces"),
            (3, 1, "not 3"),
            (1, 0, "no colour"),
        ] {
            let refused = model.check(&inputs(n, colours)).unwrap_err().to_string();
            assert!(refused.contains(says), "{refused}");
        }
        let wrong = ModelConfig::parse(&CONFIG.replace("max_batch_size = 0", "max_batch_size = 4"));
        if let Ok(wrong) = wrong {
            assert!(load(&context, &wrong, Path::new(".")).is_err());
        }
    }
}
