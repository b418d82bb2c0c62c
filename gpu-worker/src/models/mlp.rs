//! A dense classifier: three linear layers with ReLU.

use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};

use super::Network;

/// Multi-layer perceptron: `features → hidden → hidden → classes`.
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Mlp {
    /// Builds the layers (`fc1`, `fc2`, `fc3`) from `vb`.
    pub fn new(features: usize, hidden: usize, classes: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(features, hidden, vb.pp("fc1"))?,
            fc2: linear(hidden, hidden, vb.pp("fc2"))?,
            fc3: linear(hidden, classes, vb.pp("fc3"))?,
        })
    }
}

impl Network for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = self.fc1.forward(xs)?.relu()?;
        let xs = self.fc2.forward(&xs)?.relu()?;
        self.fc3.forward(&xs)
    }
}
