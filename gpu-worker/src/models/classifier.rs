//! The classifier architectures (`mlp`, `cnn`): a network maps one `FP32` input to logits,
//! served as probabilities (softmax over the last dimension).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::{Cnn, LoadContext, Mlp};
use crate::backend::{ModelInstance, WEIGHTS_FILE};
use crate::config::ModelConfig;
use crate::error::{InferError, LoadError};
use crate::tensor::{self, DataType};

/// A network that maps a batch of inputs to a batch of logits.
pub trait Network: Send + Sync {
    /// Logits for `xs` (batch dimension first).
    fn forward(&self, xs: &Tensor) -> Result<Tensor>;
}

/// Builds the network named by `config.architecture` with weights from `vb`.
pub fn build(
    config: &ModelConfig,
    vb: VarBuilder,
) -> std::result::Result<Box<dyn Network>, LoadError> {
    let fixed = |spec: &crate::config::TensorSpec| {
        spec.fixed_dims().ok_or_else(|| {
            LoadError::Mismatch(format!("'{}': classifiers need fixed dims", spec.name))
        })
    };
    let input = fixed(&config.inputs[0])?;
    let classes = *fixed(&config.outputs[0])?
        .last()
        .ok_or_else(|| LoadError::Mismatch("output dims are empty".into()))?;
    let weights = |source| LoadError::Network {
        architecture: config.architecture.clone(),
        source,
    };
    match config.architecture.as_str() {
        "mlp" => {
            let [features] = input[..] else {
                return Err(LoadError::Mismatch(format!(
                    "mlp takes one input of dims [features], got {input:?}"
                )));
            };
            let hidden = config.usize_param("hidden")?;
            Ok(Box::new(
                Mlp::new(features, hidden, classes, vb).map_err(weights)?,
            ))
        }
        "cnn" => {
            let [channels, height, width] = input[..] else {
                return Err(LoadError::Mismatch(format!(
                    "cnn takes one input of dims [channels, height, width], got {input:?}"
                )));
            };
            if height % 4 != 0 || width % 4 != 0 {
                return Err(LoadError::Mismatch(format!(
                    "cnn needs height and width divisible by 4, got {height}x{width}"
                )));
            }
            let filters = config.usize_param("filters")?;
            Ok(Box::new(
                Cnn::new(channels, height, width, filters, classes, vb).map_err(weights)?,
            ))
        }
        other => Err(LoadError::Mismatch(format!(
            "'{other}' is not a classifier architecture"
        ))),
    }
}

/// Loads a classifier version: its config's network with the weights of `model.safetensors`.
pub fn load(
    context: &LoadContext<'_>,
    config: &ModelConfig,
    version_dir: &Path,
) -> std::result::Result<Arc<dyn ModelInstance>, LoadError> {
    if config.inputs.len() != 1 || config.outputs.len() != 1 {
        return Err(LoadError::Mismatch(format!(
            "the '{}' architecture takes one input and one output",
            config.architecture
        )));
    }
    if config.inputs[0].datatype != DataType::F32 || config.outputs[0].datatype != DataType::F32 {
        return Err(LoadError::Mismatch(
            "candle models take and return FP32".into(),
        ));
    }
    let path = version_dir.join(WEIGHTS_FILE);
    let weights = candle_core::safetensors::load(&path, context.device).map_err(|source| {
        LoadError::Weights {
            path: path.clone(),
            source,
        }
    })?;
    let vb = VarBuilder::from_tensors(weights, DType::F32, context.device);
    Ok(Arc::new(Classifier {
        network: build(config, vb)?,
        device: context.device.clone(),
        output: config.outputs[0].name.clone(),
        batched: config.max_batch_size > 0,
    }))
}

/// A classifier network whose logits are turned into probabilities.
struct Classifier {
    network: Box<dyn Network>,
    device: Device,
    output: String,
    batched: bool,
}

impl ModelInstance for Classifier {
    fn compute(
        &self,
        inputs: &[tensor::Tensor],
    ) -> std::result::Result<Vec<tensor::Tensor>, InferError> {
        let failed =
            |e: candle_core::Error| InferError::Compute(format!("model computation failed: {e}"));
        let input = &inputs[0];
        let mut xs = Tensor::from_vec(input.to_f32(), input.shape.as_slice(), &self.device)
            .map_err(failed)?;
        if !self.batched {
            xs = xs.unsqueeze(0).map_err(failed)?;
        }
        let logits = self.network.forward(&xs).map_err(failed)?;
        let mut probs = candle_nn::ops::softmax_last_dim(&logits).map_err(failed)?;
        if !self.batched {
            probs = probs.squeeze(0).map_err(failed)?;
        }
        let shape = probs.dims().to_vec();
        let values = probs
            .flatten_all()
            .and_then(|p| p.to_vec1::<f32>())
            .map_err(failed)?;
        Ok(vec![tensor::Tensor::from_f32(
            self.output.clone(),
            shape,
            &values,
        )?])
    }
}
