//! A model's `config.toml`: backend, architecture, inputs and outputs, batching and instances.
//!
//! The fields follow Triton's model configuration (`max_batch_size`, `dynamic_batching`,
//! `instance_group`), written as TOML. See docs/worker.md for the full reference.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::tensor::DataType;

/// One model's configuration, as read from `<repository>/<model>/config.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Backend that runs the model: `candle` (CPU) is the only one so far.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Which model code builds the network (`mlp`, `cnn`).
    pub architecture: String,
    /// Largest batch the model accepts; 0 means the model takes no batch dimension.
    #[serde(default)]
    pub max_batch_size: usize,
    /// Model inputs, without the batch dimension.
    #[serde(rename = "input")]
    pub inputs: Vec<TensorSpec>,
    /// Model outputs, without the batch dimension.
    #[serde(rename = "output")]
    pub outputs: Vec<TensorSpec>,
    /// Dynamic batching; absent means every request runs on its own.
    pub dynamic_batching: Option<DynamicBatching>,
    /// How many copies of the model compute in parallel.
    #[serde(default)]
    pub instance_group: InstanceGroup,
    /// Architecture hyper-parameters (layer widths, classes, …).
    #[serde(default)]
    pub parameters: BTreeMap<String, toml::Value>,
}

/// An input or output: name, element type and dimensions (without the batch dimension).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// Tensor name used in requests and responses.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions, batch dimension excluded; `-1` is a dimension of any size (Triton's
    /// variable-size dimension).
    pub dims: Vec<i64>,
}

impl TensorSpec {
    /// The dimensions when none is variable.
    pub fn fixed_dims(&self) -> Option<Vec<usize>> {
        self.dims.iter().map(|d| usize::try_from(*d).ok()).collect()
    }
}

/// Dynamic batching settings (Triton's `dynamic_batching`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicBatching {
    /// Batch sizes worth computing at once without waiting further.
    #[serde(default)]
    pub preferred_batch_size: Vec<usize>,
    /// How long the first request of a batch may wait for company.
    #[serde(default = "default_queue_delay")]
    pub max_queue_delay_microseconds: u64,
    /// Number of priority levels; 1 is the highest.
    #[serde(default = "one")]
    pub priority_levels: u32,
    /// Level for requests that name none.
    #[serde(default = "one")]
    pub default_priority_level: u32,
    /// Queued requests beyond which new ones are rejected (HTTP 429).
    #[serde(default = "default_queue_size")]
    pub max_queue_size: usize,
    /// Deadline for requests that set none; 0 means none.
    #[serde(default)]
    pub default_timeout_microseconds: u64,
}

/// Parallel copies of the model (Triton's `instance_group`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceGroup {
    /// Number of instances, each computing one batch at a time.
    #[serde(default = "one_usize")]
    pub count: usize,
    /// `cpu` (the only kind until the CUDA backend lands).
    #[serde(default = "default_kind")]
    pub kind: String,
}

impl Default for InstanceGroup {
    fn default() -> Self {
        Self {
            count: 1,
            kind: default_kind(),
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, has unknown keys or invalid values.
    #[error("invalid {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A configuration text (not from a file) is invalid.
    #[error("invalid model configuration: {0}")]
    Invalid(String),
}

impl ModelConfig {
    /// Reads and validates `config.toml`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::check(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and validates a configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::check(text).map_err(ConfigError::Invalid)
    }

    fn check(text: &str) -> Result<Self, String> {
        let config: ModelConfig = toml::from_str(text).map_err(|e| describe(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.backend != "candle" {
            return Err(format!(
                "unknown backend '{}' (available: candle)",
                self.backend
            ));
        }
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return Err("a model needs at least one [[input]] and one [[output]]".into());
        }
        if let Some(spec) = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .find(|s| s.dims.iter().any(|d| *d == 0 || *d < -1))
        {
            return Err(format!(
                "'{}': dims {:?} may hold only sizes of at least 1 and -1 (any size)",
                spec.name, spec.dims
            ));
        }
        if self.instance_group.count == 0 {
            return Err("instance_group.count must be at least 1".into());
        }
        if self.instance_group.kind != "cpu" {
            return Err(format!(
                "instance_group.kind '{}' is not available (cpu)",
                self.instance_group.kind
            ));
        }
        if let Some(b) = &self.dynamic_batching {
            if self.max_batch_size == 0 {
                return Err("dynamic_batching needs max_batch_size > 0".into());
            }
            if let Some(p) = b
                .preferred_batch_size
                .iter()
                .find(|p| **p == 0 || **p > self.max_batch_size)
            {
                return Err(format!(
                    "preferred_batch_size {p} is outside 1..={}",
                    self.max_batch_size
                ));
            }
            if b.priority_levels == 0
                || b.default_priority_level == 0
                || b.default_priority_level > b.priority_levels
            {
                return Err(
                    "priority levels count from 1, and default_priority_level must be one of them"
                        .into(),
                );
            }
            if b.max_queue_size == 0 {
                return Err("max_queue_size must be at least 1".into());
            }
        }
        Ok(())
    }

    /// The batching policy, with defaults for models without `dynamic_batching`.
    pub fn batching(&self) -> DynamicBatching {
        self.dynamic_batching.clone().unwrap_or(DynamicBatching {
            preferred_batch_size: Vec::new(),
            max_queue_delay_microseconds: 0,
            priority_levels: 1,
            default_priority_level: 1,
            max_queue_size: default_queue_size(),
            default_timeout_microseconds: 0,
        })
    }

    /// An integer hyper-parameter, or an error naming it.
    pub fn usize_param(&self, name: &str) -> Result<usize, ConfigError> {
        self.parameters
            .get(name)
            .and_then(|v| v.as_integer())
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "parameter '{name}' (a non-negative integer) is missing"
                ))
            })
    }
}

impl DynamicBatching {
    /// The max queue delay as a duration.
    pub fn max_queue_delay(&self) -> Duration {
        Duration::from_micros(self.max_queue_delay_microseconds)
    }
}

/// The parser's message plus the line it points at, e.g. ``invalid type … at line 3: `max_batch_size = "x"` ``.
fn describe(text: &str, error: &toml::de::Error) -> String {
    let Some(span) = error.span() else {
        return error.message().to_string();
    };
    let line = text[..span.start].matches('\n').count() + 1;
    let content = text.lines().nth(line - 1).unwrap_or_default().trim();
    format!("{} at line {line}: `{content}`", error.message())
}

fn default_backend() -> String {
    "candle".into()
}
fn default_kind() -> String {
    "cpu".into()
}
fn default_queue_delay() -> u64 {
    1000
}
fn default_queue_size() -> usize {
    1024
}
fn one() -> u32 {
    1
}
fn one_usize() -> usize {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    const MLP: &str = r#"
        architecture = "mlp"
        max_batch_size = 32
        [[input]]
        name = "x"
        datatype = "FP32"
        dims = [4]
        [[output]]
        name = "y"
        datatype = "FP32"
        dims = [2]
        [dynamic_batching]
        preferred_batch_size = [8]
    "#;

    #[test]
    fn parses_triton_style_fields_with_defaults() {
        let c = ModelConfig::parse(MLP).unwrap();
        assert_eq!(c.max_batch_size, 32);
        assert_eq!(c.inputs[0].datatype, DataType::F32);
        let b = c.batching();
        assert_eq!(
            (
                b.priority_levels,
                b.max_queue_size,
                b.max_queue_delay_microseconds
            ),
            (1, 1024, 1000)
        );
        assert_eq!(c.instance_group.count, 1);
    }

    #[test]
    fn rejects_inconsistent_configs_with_a_reason() {
        let err = ModelConfig::parse(&MLP.replace("[8]", "[64]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("preferred_batch_size 64"), "{err}");
        let err = ModelConfig::parse(&MLP.replace("max_batch_size = 32", "max_batch_size = 0"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs max_batch_size"), "{err}");
        let err = ModelConfig::parse(&format!("{MLP}\nbogus = 1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        for bad in ["[0]", "[-2]", "[4, 0]"] {
            let err = ModelConfig::parse(&MLP.replace("[4]", bad))
                .unwrap_err()
                .to_string();
            assert!(err.contains("-1 (any size)"), "{bad}: {err}");
        }
        let variable = ModelConfig::parse(&MLP.replace("[4]", "[-1, 3]")).unwrap();
        assert_eq!(variable.inputs[0].dims, [-1, 3]);
        assert_eq!(variable.inputs[0].fixed_dims(), None);
        assert_eq!(variable.outputs[0].fixed_dims(), Some(vec![2]));
    }
}
