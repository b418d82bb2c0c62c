//! The worker's error type: every failure maps to one protocol status code and message.

/// Why an inference or repository request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InferError {
    /// The request is malformed: wrong input name, shape, datatype or body (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The model or version does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The model exists but is not loaded, or failed to load (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The model's queue is full (HTTP 429).
    #[error("{0}")]
    QueueFull(String),
    /// The request's deadline passed before it was computed (HTTP 504).
    #[error("{0}")]
    Timeout(String),
    /// The backend failed while computing (HTTP 500).
    #[error("{0}")]
    Compute(String),
    /// A computation stopped part-way because none of its results was wanted any more; the
    /// scheduler answers its callers with [`InferError::Timeout`] (HTTP 499 if ever sent:
    /// nginx's "client closed request").
    #[error("{0}")]
    Abandoned(String),
}

impl InferError {
    /// The HTTP status code the inference protocol answers with.
    pub fn status(&self) -> u16 {
        match self {
            InferError::Invalid(_) => 400,
            InferError::NotFound(_) => 404,
            InferError::Unavailable(_) => 503,
            InferError::QueueFull(_) => 429,
            InferError::Timeout(_) => 504,
            InferError::Compute(_) => 500,
            InferError::Abandoned(_) => 499,
        }
    }

    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            InferError::Invalid(_) => "invalid",
            InferError::NotFound(_) => "not_found",
            InferError::Unavailable(_) => "unavailable",
            InferError::QueueFull(_) => "queue_full",
            InferError::Timeout(_) => "timeout",
            InferError::Compute(_) => "compute",
            InferError::Abandoned(_) => "cancelled",
        }
    }
}

/// Why a model version could not be loaded (the model is then unavailable with this reason).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `config.toml` could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The model folder has no version to load.
    #[error("no numbered version folder (e.g. 1/) with the weights")]
    NoVersion,
    /// The config names an architecture the worker does not have.
    #[error("unknown architecture '{name}' (available: {available})")]
    UnknownArchitecture {
        /// The configured name.
        name: String,
        /// The known ones, comma-separated.
        available: String,
    },
    /// The config does not fit the architecture (tensors, shapes, parameters).
    #[error("{0}")]
    Mismatch(String),
    /// The weights could not be read or do not fit the architecture.
    #[error("cannot load {path}: {source}")]
    Weights {
        /// The weights file.
        path: std::path::PathBuf,
        /// candle's error.
        source: candle_core::Error,
    },
    /// A model file (a tokenizer, a configuration of the network) could not be read.
    #[error("cannot load {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The weights do not fit the network the config describes.
    #[error("weights do not match the '{architecture}' architecture: {source}")]
    Network {
        /// The configured architecture.
        architecture: String,
        /// candle's error.
        source: candle_core::Error,
    },
    /// The fraud model's scorer (weights, history, live graph) could not be opened.
    #[error(transparent)]
    Scorer(#[from] vitrine_fraud::scorer::ScorerError),
}

impl From<vitrine_oip::OipError> for InferError {
    /// A request that breaks the protocol is the client's error (HTTP 400).
    fn from(err: vitrine_oip::OipError) -> Self {
        InferError::Invalid(err.to_string())
    }
}
