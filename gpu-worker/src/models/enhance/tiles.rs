//! Whole images through a fixed-size network window: overlapping tiles of one size (so they
//! batch together), each upscaled on its own, blended back with weights that fall to zero
//! towards a tile's inner edges, where it saw the least context. Where two tiles overlap, the
//! one further from its edge dominates, so there is no seam.

/// Where the tiles of one axis start, and their common length.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Tile length (the whole axis when it is shorter than a tile).
    pub length: usize,
    /// Start of each tile; the last one ends at the axis end.
    pub starts: Vec<usize>,
}

impl Axis {
    /// As few tiles of at most `tile` as cover `size` with neighbours sharing at least
    /// `2 * overlap`, all of one length and evenly spaced (so no tile computes much more
    /// than its share).
    pub fn plan(size: usize, tile: usize, overlap: usize) -> Self {
        if size <= tile {
            return Self {
                length: size,
                starts: vec![0],
            };
        }
        let step = tile.saturating_sub(2 * overlap).max(1);
        let count = size.saturating_sub(2 * overlap).div_ceil(step).max(2);
        let length = (size + (count - 1) * 2 * overlap).div_ceil(count).min(size);
        let starts = (0..count)
            .map(|i| i * (size - length) / (count - 1))
            .collect();
        Self { length, starts }
    }

    /// Blending weights along one tile of this axis at output scale `scale`: 1 in the middle,
    /// rising from near 0 over `overlap` input pixels from each edge that lies inside the image.
    pub fn weights(&self, index: usize, scale: usize, overlap: usize) -> Vec<f32> {
        let n = self.length * scale;
        let ramp = (overlap * scale).max(1) as f32;
        let inner_start = index > 0;
        let inner_end = index + 1 < self.starts.len();
        (0..n)
            .map(|u| {
                let from_start = if inner_start {
                    (u as f32 + 0.5) / ramp
                } else {
                    1.0
                };
                let from_end = if inner_end {
                    ((n - u) as f32 - 0.5) / ramp
                } else {
                    1.0
                };
                from_start.min(from_end).min(1.0)
            })
            .collect()
    }
}

/// Accumulates weighted tile outputs into one image (`height × width × 3`, interleaved).
pub struct Canvas {
    width: usize,
    sum: Vec<f32>,
    weight: Vec<f32>,
}

impl Canvas {
    /// An empty canvas of the output size.
    pub fn new(height: usize, width: usize) -> Self {
        Self {
            width,
            sum: vec![0.0; height * width * 3],
            weight: vec![0.0; height * width],
        }
    }

    /// Adds one tile, planar (`3 × th × tw`, values 0..1), whose top-left output pixel is
    /// (`top`, `left`), with row weights `wy` and column weights `wx`.
    pub fn add(&mut self, planar: &[f32], top: usize, left: usize, wy: &[f32], wx: &[f32]) {
        let (th, tw) = (wy.len(), wx.len());
        let plane = th * tw;
        for (y, wy) in wy.iter().enumerate() {
            for (x, wx) in wx.iter().enumerate() {
                let w = wy * wx;
                let at = (top + y) * self.width + left + x;
                self.weight[at] += w;
                for c in 0..3 {
                    self.sum[at * 3 + c] += w * planar[c * plane + y * tw + x];
                }
            }
        }
    }

    /// The blended image as 8-bit values.
    pub fn into_u8(self) -> Vec<u8> {
        self.sum
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let w = self.weight[i / 3];
                let v = if w > 0.0 { s / w } else { 0.0 };
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_axis_with_the_overlap_and_one_length() {
        assert_eq!(
            Axis::plan(100, 128, 16),
            Axis {
                length: 100,
                starts: vec![0]
            }
        );
        assert_eq!(
            Axis::plan(300, 128, 16),
            Axis {
                length: 122,
                starts: vec![0, 89, 178]
            }
        );
        assert_eq!(
            Axis::plan(129, 128, 16),
            Axis {
                length: 81,
                starts: vec![0, 48]
            }
        );
        for size in 129..1200 {
            for (tile, overlap) in [(128, 16), (272, 16), (20, 6), (96, 0)] {
                let axis = Axis::plan(size, tile, overlap);
                assert!(axis.length <= tile, "{size}: {axis:?}");
                assert_eq!(axis.starts[0], 0);
                assert_eq!(axis.starts.last().unwrap() + axis.length, size, "{axis:?}");
                for pair in axis.starts.windows(2) {
                    assert!(
                        pair[0] + axis.length >= pair[1] + 2 * overlap,
                        "{size} {tile}: {axis:?}"
                    );
                }
                // One tile fewer could not cover the axis with that overlap.
                let fewer = axis.starts.len() - 1;
                assert!(
                    fewer == 0 || fewer * tile < size + (fewer - 1) * 2 * overlap,
                    "{size} {tile}: {axis:?}"
                );
            }
        }
    }

    #[test]
    fn weights_fall_only_towards_inner_edges_and_always_sum_positive() {
        let axis = Axis::plan(300, 128, 16);
        let first = axis.weights(0, 2, 16);
        assert_eq!(first.len(), 244);
        assert_eq!(first[0], 1.0, "the image edge keeps full weight");
        assert!(first[243] < 0.05, "the inner edge fades out");
        let middle = axis.weights(1, 2, 16);
        assert!(middle[0] < 0.05 && middle[243] < 0.05 && middle[122] == 1.0);
        // Every output position is covered with some weight.
        let mut total = vec![0.0f32; 600];
        for (i, start) in axis.starts.iter().enumerate() {
            for (u, w) in axis.weights(i, 2, 16).iter().enumerate() {
                total[start * 2 + u] += w;
            }
        }
        assert!(total.iter().all(|t| *t >= 0.99), "{total:?}");
    }

    #[test]
    fn blending_equal_tiles_reproduces_them() {
        // Two overlapping tiles that agree give back exactly their values.
        let mut canvas = Canvas::new(1, 6);
        let tile = |values: [f32; 4]| values.repeat(3);
        canvas.add(
            &tile([0.0, 0.2, 0.4, 0.6]),
            0,
            0,
            &[1.0],
            &[1.0, 1.0, 0.5, 0.1],
        );
        canvas.add(
            &tile([0.4, 0.6, 0.8, 1.0]),
            0,
            2,
            &[1.0],
            &[0.1, 0.5, 1.0, 1.0],
        );
        let out = canvas.into_u8();
        let red: Vec<u8> = out.iter().step_by(3).copied().collect();
        assert_eq!(red, [0, 51, 102, 153, 204, 255]);
    }
}
