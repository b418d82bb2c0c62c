//! Backends turn a model folder into something that computes batches. The device (CPU now, CUDA
//! in a later backend) is a backend detail; the scheduler only sees [`ModelInstance`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::config::ModelConfig;
use crate::error::InferError;
use crate::models::{self, Network};
use crate::tensor::{DataType, Tensor};

/// Loads models of one kind onto one device.
pub trait Backend: Send + Sync {
    /// Loads the model in `version_dir` according to `config`, or says why it cannot.
    fn load(
        &self,
        config: &ModelConfig,
        version_dir: &Path,
    ) -> Result<Arc<dyn ModelInstance>, String>;
}

/// A loaded model that computes whole batches.
pub trait ModelInstance: Send + Sync {
    /// Computes outputs (in config order) from inputs (in config order), batch dimension first.
    fn compute(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferError>;

    /// Checks one request's inputs (already matching the config's names, types and shapes)
    /// before it joins a batch; the default accepts them.
    fn check(&self, _inputs: &[Tensor]) -> Result<(), InferError> {
        Ok(())
    }
}

/// The file holding a model version's weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Fixes candle's CPU thread count for this process to the value candle would pick (physical
/// cores, or `RAYON_NUM_THREADS`). Without it, candle works the count out again on every matrix
/// multiplication, parsing `/proc/cpuinfo` each time (tens of microseconds per layer).
/// Call it once, before the process starts other threads.
pub fn init_cpu_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// candle on the CPU: networks from [`crate::models`], weights from `model.safetensors`.
pub struct CandleCpu {
    device: Device,
    state_dir: Option<PathBuf>,
}

impl CandleCpu {
    /// A backend on the host CPU. Models that keep state (the fraud GNN's live graph) keep it
    /// under `state_dir`, or in memory only when it is `None`.
    pub fn new(state_dir: Option<PathBuf>) -> Self {
        Self {
            device: Device::Cpu,
            state_dir,
        }
    }
}

impl Backend for CandleCpu {
    fn load(
        &self,
        config: &ModelConfig,
        version_dir: &Path,
    ) -> Result<Arc<dyn ModelInstance>, String> {
        if config.architecture == "fraud-gnn" {
            let model = version_dir
                .parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let live = self
                .state_dir
                .as_ref()
                .map(|s| s.join("graphs").join(format!("{model}.sqlite")));
            return models::fraud_gnn::load(config, version_dir, live);
        }
        if config.inputs.len() != 1 || config.outputs.len() != 1 {
            return Err(format!(
                "the '{}' architecture takes one input and one output",
                config.architecture
            ));
        }
        if config.inputs[0].datatype != DataType::F32 || config.outputs[0].datatype != DataType::F32
        {
            return Err("candle models take and return FP32".into());
        }
        let path = version_dir.join(WEIGHTS_FILE);
        let weights = candle_core::safetensors::load(&path, &self.device)
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        let vb = VarBuilder::from_tensors(weights, DType::F32, &self.device);
        let network = models::build(config, vb)?;
        Ok(Arc::new(CandleModel {
            network,
            device: self.device.clone(),
            output: config.outputs[0].name.clone(),
            batched: config.max_batch_size > 0,
        }))
    }
}

/// A classifier network whose logits are turned into probabilities.
struct CandleModel {
    network: Box<dyn Network>,
    device: Device,
    output: String,
    batched: bool,
}

impl ModelInstance for CandleModel {
    fn compute(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferError> {
        let failed =
            |e: candle_core::Error| InferError::Compute(format!("model computation failed: {e}"));
        let input = &inputs[0];
        let mut xs =
            candle_core::Tensor::from_vec(input.to_f32(), input.shape.as_slice(), &self.device)
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
        Ok(vec![Tensor::from_f32(self.output.clone(), shape, &values)?])
    }
}
