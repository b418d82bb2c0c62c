//! Backends turn a model folder into something that computes batches. The device (CPU now, CUDA
//! in a later backend) is a backend detail; the scheduler only sees [`ModelInstance`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;

use crate::config::ModelConfig;
use crate::error::{InferError, LoadError};
use crate::models;
use crate::tensor::Tensor;

/// Loads models of one kind onto one device.
pub trait Backend: Send + Sync {
    /// Loads the model in `version_dir` according to `config`, or says why it cannot.
    fn load(
        &self,
        config: &ModelConfig,
        version_dir: &Path,
    ) -> Result<Arc<dyn ModelInstance>, LoadError>;
}

/// A loaded model that computes whole batches.
pub trait ModelInstance: Send + Sync {
    /// Computes outputs (in config order) from inputs (in config order), batch dimension first.
    fn compute(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferError>;

    /// As [`ModelInstance::compute`], for a computation long enough to stop part-way: `stop()`
    /// turns true once no result of the batch is wanted (each request's caller has gone or its
    /// deadline has passed), and the model may then return [`InferError::Abandoned`] at its
    /// next step. The default computes to the end.
    fn compute_until(
        &self,
        inputs: &[Tensor],
        _stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Tensor>, InferError> {
        self.compute(inputs)
    }

    /// Checks one request's inputs (already matching the config's names, types and shapes)
    /// before it joins a batch; the default accepts them.
    fn check(&self, _inputs: &[Tensor]) -> Result<(), InferError> {
        Ok(())
    }

    /// The request parameters (string-valued) this model takes besides the protocol's own,
    /// e.g. the enhancement models' `beautify`; a batch only holds requests that agree on them.
    /// The default takes none.
    fn options(&self) -> &'static [&'static str] {
        &[]
    }

    /// Checks one request's options (those of [`ModelInstance::options`] it sets).
    fn check_options(&self, _options: &Options) -> Result<(), InferError> {
        Ok(())
    }

    /// As [`ModelInstance::compute_until`], for a batch whose requests set `options`. The
    /// default ignores them.
    fn compute_with(
        &self,
        inputs: &[Tensor],
        _options: &Options,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Tensor>, InferError> {
        self.compute_until(inputs, stop)
    }
}

/// A request's model-specific parameters, by name (see [`ModelInstance::options`]).
pub type Options = std::collections::BTreeMap<String, String>;

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

/// candle on the CPU: every architecture of [`models::ARCHITECTURES`].
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
    ) -> Result<Arc<dyn ModelInstance>, LoadError> {
        let load = models::architecture(&config.architecture)?.load;
        let model = version_dir
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let context = models::LoadContext {
            device: &self.device,
            model: &model,
            state_dir: self.state_dir.as_deref(),
        };
        load(&context, config, version_dir)
    }
}
