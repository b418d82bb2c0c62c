//! The JSON inference messages: `POST /v2/models/<model>[/versions/<v>]/infer` and its answer.
//! Datatypes stay text here so the receiver can name a bad one in its error.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Request, input and output parameters (`binary_data_size`, `timeout`, `priority`, …).
pub type Parameters = Map<String, Value>;

/// An inference request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InferenceRequest {
    /// The client's id, echoed in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Request parameters.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Parameters,
    /// The input tensors.
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted; `None`: every output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// An input tensor of a request: JSON `data`, or `binary_data_size` bytes of the binary part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestInput {
    /// Input name.
    pub name: String,
    /// Shape as sent (a negative dimension is the receiver's error to report).
    pub shape: Vec<i64>,
    /// Datatype name.
    pub datatype: String,
    /// Input parameters.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Parameters,
    /// The elements, when not binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// An output a request asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestOutput {
    /// Output name.
    pub name: String,
    /// Output parameters (`binary_data`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Parameters,
}

/// An inference response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The request's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Response parameters.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Parameters,
    /// The output tensors.
    pub outputs: Vec<ResponseOutput>,
}

/// An output tensor of a response: JSON `data`, or `binary_data_size` bytes of the binary part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseOutput {
    /// Output name.
    pub name: String,
    /// Datatype name.
    pub datatype: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Output parameters.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Parameters,
    /// The elements, when not binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// The `binary_data_size` parameter, if any (an error names a non-integer one).
pub fn binary_data_size(parameters: &Parameters) -> Result<Option<u64>, String> {
    parameters
        .get("binary_data_size")
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| "parameter 'binary_data_size' must be a non-negative integer".into())
        })
        .transpose()
}

/// One tensor of a model's metadata (`GET /v2/models/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataTensor {
    /// Tensor name.
    pub name: String,
    /// Datatype name.
    pub datatype: String,
    /// Shape; `-1` for a variable dimension.
    pub shape: Vec<i64>,
}

/// A model's metadata, the part a client needs: its inputs and outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Model name.
    pub name: String,
    /// Inputs.
    #[serde(default)]
    pub inputs: Vec<MetadataTensor>,
    /// Outputs.
    #[serde(default)]
    pub outputs: Vec<MetadataTensor>,
}

impl ModelMetadata {
    /// The names of the `BYTES` inputs. `wasi:nn` has no string tensor type: a guest passes a
    /// `U8` tensor for such an input, holding the elements in the binary form
    /// ([`crate::binary::encode_bytes`]) with the elements' dimensions, and both `wasi:nn`
    /// hosts (the runtime's and `nn-remote`) send it to the worker as `BYTES`.
    pub fn bytes_inputs(&self) -> std::collections::BTreeSet<String> {
        self.inputs
            .iter()
            .filter(|i| i.datatype == "BYTES")
            .map(|i| i.name.clone())
            .collect()
    }
}
