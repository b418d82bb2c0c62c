//! Model code: each classifier architecture is a plain candle struct built from a `VarBuilder`,
//! so the names in a `model.safetensors` file match the code; [`fraud_gnn`] serves the fraud
//! GNN with its live graph.

mod cnn;
pub mod fraud_gnn;
mod mlp;

pub use cnn::Cnn;
pub use mlp::Mlp;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::ModelConfig;

/// A network that maps a batch of inputs to a batch of logits.
pub trait Network: Send + Sync {
    /// Logits for `xs` (batch dimension first).
    fn forward(&self, xs: &Tensor) -> Result<Tensor>;
}

/// Builds the network named by `config.architecture` with weights from `vb`.
pub fn build(
    config: &ModelConfig,
    vb: VarBuilder,
) -> std::result::Result<Box<dyn Network>, String> {
    let input = &config.inputs[0].dims;
    let classes = *config.outputs[0]
        .dims
        .last()
        .ok_or("output dims are empty")?;
    let weights = |e: candle_core::Error| {
        format!(
            "weights do not match the '{}' architecture: {e}",
            config.architecture
        )
    };
    match config.architecture.as_str() {
        "mlp" => {
            let [features] = input[..] else {
                return Err(format!(
                    "mlp takes one input of dims [features], got {input:?}"
                ));
            };
            let hidden = config.usize_param("hidden")?;
            Ok(Box::new(
                Mlp::new(features, hidden, classes, vb).map_err(weights)?,
            ))
        }
        "cnn" => {
            let [channels, height, width] = input[..] else {
                return Err(format!(
                    "cnn takes one input of dims [channels, height, width], got {input:?}"
                ));
            };
            if height % 4 != 0 || width % 4 != 0 {
                return Err(format!(
                    "cnn needs height and width divisible by 4, got {height}x{width}"
                ));
            }
            let filters = config.usize_param("filters")?;
            Ok(Box::new(
                Cnn::new(channels, height, width, filters, classes, vb).map_err(weights)?,
            ))
        }
        other => Err(format!(
            "unknown architecture '{other}' (available: mlp, cnn, fraud-gnn)"
        )),
    }
}
