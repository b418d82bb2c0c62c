//! ESRGAN's RRDBNet (Real-ESRGAN `RealESRGAN_x4plus`): a first convolution, a trunk of
//! residual-in-residual dense blocks, then two nearest ×2 upsamplings each followed by a
//! convolution, with leaky ReLU (slope 0.2) throughout. Weight names are BasicSR's
//! (`conv_first`, `body.{b}.rdb{r}.conv{c}`, `conv_body`, `conv_up1`, `conv_up2`, `conv_hr`,
//! `conv_last`).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::Conv3x3;

/// RRDBNet's size.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Feature channels (64).
    pub features: usize,
    /// Channels each dense layer adds (32).
    pub grow: usize,
    /// Residual-in-residual dense blocks (23).
    pub blocks: usize,
}

/// The factor RRDBNet upscales by (two ×2 upsamplings).
pub const UPSCALE: usize = 4;

fn lrelu(xs: &Tensor) -> Result<Tensor> {
    candle_nn::ops::leaky_relu(xs, 0.2)
}

/// A residual dense block: five convolutions, each seeing the block input and every earlier
/// output; the result is scaled by 0.2 and added to the input.
struct DenseBlock {
    convs: Vec<Conv3x3>,
}

impl DenseBlock {
    fn new(shape: Shape, vb: VarBuilder) -> Result<Self> {
        let convs = (0..5)
            .map(|i| {
                let out = if i == 4 { shape.features } else { shape.grow };
                let input = shape.features + i * shape.grow;
                Conv3x3::new(input, out, vb.pp(format!("conv{}", i + 1)))
            })
            .collect::<Result<_>>()?;
        Ok(Self { convs })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut seen = vec![xs.clone()];
        for conv in &self.convs[..4] {
            let next = lrelu(&conv.forward(&Tensor::cat(&seen, 1)?)?)?;
            seen.push(next);
        }
        let last = self.convs[4].forward(&Tensor::cat(&seen, 1)?)?;
        (last * 0.2)? + xs
    }
}

/// Three dense blocks in a row, scaled by 0.2 and added to the input.
struct ResidualBlock([DenseBlock; 3]);

impl ResidualBlock {
    fn new(shape: Shape, vb: VarBuilder) -> Result<Self> {
        Ok(Self([
            DenseBlock::new(shape, vb.pp("rdb1"))?,
            DenseBlock::new(shape, vb.pp("rdb2"))?,
            DenseBlock::new(shape, vb.pp("rdb3"))?,
        ]))
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut h = xs.clone();
        for block in &self.0 {
            h = block.forward(&h)?;
        }
        (h * 0.2)? + xs
    }
}

/// RRDBNet with its weights.
pub struct RrdbNet {
    first: Conv3x3,
    body: Vec<ResidualBlock>,
    body_last: Conv3x3,
    up: [Conv3x3; 2],
    hr: Conv3x3,
    last: Conv3x3,
}

impl RrdbNet {
    /// Builds the network from weights named as BasicSR names them.
    pub fn new(shape: Shape, vb: VarBuilder) -> Result<Self> {
        let f = shape.features;
        let body = (0..shape.blocks)
            .map(|b| ResidualBlock::new(shape, vb.pp("body").pp(b)))
            .collect::<Result<_>>()?;
        Ok(Self {
            first: Conv3x3::new(3, f, vb.pp("conv_first"))?,
            body,
            body_last: Conv3x3::new(f, f, vb.pp("conv_body"))?,
            up: [
                Conv3x3::new(f, f, vb.pp("conv_up1"))?,
                Conv3x3::new(f, f, vb.pp("conv_up2"))?,
            ],
            hr: Conv3x3::new(f, f, vb.pp("conv_hr"))?,
            last: Conv3x3::new(f, 3, vb.pp("conv_last"))?,
        })
    }
}

impl Module for RrdbNet {
    /// `[n, 3, h, w]` in 0..1 to `[n, 3, 4h, 4w]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let first = self.first.forward(xs)?;
        let mut h = first.clone();
        for block in &self.body {
            h = block.forward(&h)?;
        }
        let mut h = (self.body_last.forward(&h)? + first)?;
        for up in &self.up {
            let (_, _, height, width) = h.dims4()?;
            h = lrelu(&up.forward(&h.upsample_nearest2d(height * 2, width * 2)?)?)?;
        }
        self.last.forward(&lrelu(&self.hr.forward(&h)?)?)
    }
}
