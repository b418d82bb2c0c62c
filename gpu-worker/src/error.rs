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
        }
    }
}

impl From<vitrine_oip::OipError> for InferError {
    /// A request that breaks the protocol is the client's error (HTTP 400).
    fn from(err: vitrine_oip::OipError) -> Self {
        InferError::Invalid(err.to_string())
    }
}
