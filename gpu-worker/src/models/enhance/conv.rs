//! A 3×3 "same" convolution computed as one matrix product: the nine shifted copies of the
//! input are stacked (row copies) and multiplied by the kernel laid out to match. candle's
//! CPU `conv2d` builds the same matrix one scalar at a time, which took 60% of an
//! enhancement's time under `perf` (docs/images.md); this takes the same weights
//! (`weight` `[out, in, 3, 3]`, `bias` `[out]`) and gives the same results.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A 3×3 convolution with stride 1 and zero padding 1.
pub struct Conv3x3 {
    /// `[out, 9·in]`, columns in (row offset, column offset, input channel) order.
    kernel: Tensor,
    /// `[out, 1]`.
    bias: Tensor,
}

impl Conv3x3 {
    /// Reads `weight` and `bias` as `candle_nn::conv2d` would.
    pub fn new(input: usize, output: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((output, input, 3, 3), "weight")?;
        let kernel = weight.permute((0, 2, 3, 1))?.reshape((output, 9 * input))?;
        let bias = vb.get(output, "bias")?.reshape((output, 1))?;
        Ok(Self { kernel, bias })
    }
}

impl Module for Conv3x3 {
    /// `[n, in, h, w]` to `[n, out, h, w]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = xs.dims4()?;
        let padded = xs.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
        let mut shifted = Vec::with_capacity(9);
        for dy in 0..3 {
            for dx in 0..3 {
                shifted.push(padded.narrow(2, dy, h)?.narrow(3, dx, w)?);
            }
        }
        let columns = Tensor::cat(&shifted, 1)?.reshape((n, 9 * c, h * w))?;
        let out = self
            .kernel
            .broadcast_matmul(&columns)?
            .broadcast_add(&self.bias)?;
        out.reshape((n, (), h, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    #[test]
    fn matches_candles_conv2d() {
        let device = Device::Cpu;
        let weight = Tensor::randn(0f32, 1.0, (5, 4, 3, 3), &device).unwrap();
        let bias = Tensor::randn(0f32, 1.0, 5, &device).unwrap();
        let xs = Tensor::randn(0f32, 1.0, (2, 4, 7, 6), &device).unwrap();
        let tensors = HashMap::from([
            ("weight".to_string(), weight.clone()),
            ("bias".to_string(), bias.clone()),
        ]);
        let ours = Conv3x3::new(4, 5, VarBuilder::from_tensors(tensors, DType::F32, &device))
            .unwrap()
            .forward(&xs)
            .unwrap();
        let theirs = xs
            .conv2d(&weight, 1, 1, 1, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, 5, 1, 1)).unwrap())
            .unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        let largest: f32 = (ours - theirs)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(largest < 1e-4, "{largest}");
    }
}
