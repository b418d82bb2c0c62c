//! Real-ESRGAN's compact network (`SRVGGNetCompact`, used by `realesr-animevideov3`): 3×3
//! convolutions with PReLU at low resolution, a pixel shuffle to the output size, and the
//! nearest-neighbour upscaled input added back. Weight names are Real-ESRGAN's: `body.{i}` in
//! the order of its `nn.ModuleList` (convolution, PReLU, …, last convolution).

use candle_core::{Module, Result, Tensor};
use candle_nn::{prelu, PReLU, VarBuilder};

use super::conv::Conv3x3;

/// The compact network's size.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Feature channels (64 in animevideov3).
    pub features: usize,
    /// 3×3 convolutions between the first and the last (16 in animevideov3).
    pub convs: usize,
    /// The network's own upscaling factor.
    pub upscale: usize,
}

/// `SRVGGNetCompact` with its weights.
pub struct Srvgg {
    trunk: Vec<(Conv3x3, PReLU)>,
    last: Conv3x3,
    upscale: usize,
}

impl Srvgg {
    /// Builds the network from weights named as Real-ESRGAN names them.
    pub fn new(shape: Shape, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("body");
        let mut trunk = Vec::with_capacity(shape.convs + 1);
        let mut input = 3;
        for i in 0..=shape.convs {
            let conv = Conv3x3::new(input, shape.features, vb.pp(2 * i))?;
            trunk.push((conv, prelu(Some(shape.features), vb.pp(2 * i + 1))?));
            input = shape.features;
        }
        let out = 3 * shape.upscale * shape.upscale;
        let last = Conv3x3::new(input, out, vb.pp(last_layer(shape)))?;
        Ok(Self {
            trunk,
            last,
            upscale: shape.upscale,
        })
    }

    /// The features the last convolution reads: `[n, features, h, w]`.
    pub fn features(&self, xs: &Tensor) -> Result<Tensor> {
        let mut h = xs.clone();
        for (conv, act) in &self.trunk {
            h = act.forward(&conv.forward(&h)?)?;
        }
        Ok(h)
    }
}

/// The index of the last convolution in `body`.
pub fn last_layer(shape: Shape) -> usize {
    2 * (shape.convs + 1)
}

impl Module for Srvgg {
    /// `[n, 3, h, w]` in 0..1 to `[n, 3, h·s, w·s]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.last.forward(&self.features(xs)?)?;
        let h = candle_nn::ops::pixel_shuffle(&h, self.upscale)?;
        let (_, _, height, width) = xs.dims4()?;
        let base = xs.upsample_nearest2d(height * self.upscale, width * self.upscale)?;
        h + base
    }
}
