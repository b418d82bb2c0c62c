//! A small convolutional image classifier: two conv/ReLU/max-pool stages and a linear head.

use candle_core::{Module, Result, Tensor};
use candle_nn::{conv2d, linear, Conv2d, Conv2dConfig, Linear, VarBuilder};

use super::Network;

/// `conv(3x3) → relu → pool(2) → conv(3x3) → relu → pool(2) → linear`.
pub struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    head: Linear,
}

impl Cnn {
    /// Builds the layers (`conv1`, `conv2`, `head`) from `vb`; `filters` channels in the first stage,
    /// twice that in the second.
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        filters: usize,
        classes: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let same = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            conv1: conv2d(channels, filters, 3, same, vb.pp("conv1"))?,
            conv2: conv2d(filters, 2 * filters, 3, same, vb.pp("conv2"))?,
            head: linear(
                2 * filters * (height / 4) * (width / 4),
                classes,
                vb.pp("head"),
            )?,
        })
    }
}

impl Network for Cnn {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = self.conv1.forward(xs)?.relu()?.max_pool2d(2)?;
        let xs = self.conv2.forward(&xs)?.relu()?.max_pool2d(2)?;
        self.head.forward(&xs.flatten_from(1)?)
    }
}
