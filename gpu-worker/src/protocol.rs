//! The Open Inference Protocol (KServe v2) inference messages: JSON bodies, the binary tensor
//! data extension, and validation of a request against a model's configuration.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

use crate::config::{ModelConfig, TensorSpec};
use crate::error::InferError;
use crate::tensor::{DataType, Tensor};

/// Header giving the length of the JSON part of a body that carries binary tensors.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

#[derive(Deserialize)]
struct InferRequestJson {
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<InputJson>,
    outputs: Option<Vec<RequestedOutputJson>>,
}

#[derive(Deserialize)]
struct InputJson {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    data: Option<Value>,
}

#[derive(Deserialize)]
struct RequestedOutputJson {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// A decoded and validated inference request.
pub struct InferRequest {
    /// The client's request id, echoed in the response.
    pub id: Option<String>,
    /// Inputs in the model's config order.
    pub inputs: Vec<Tensor>,
    /// Outputs to return (name, as binary), in response order.
    pub outputs: Vec<(String, bool)>,
    /// Priority level (0: model default).
    pub priority: u32,
    /// Queue timeout, if the request sets one.
    pub timeout: Option<Duration>,
}

/// Decodes a request body (JSON, or JSON followed by binary tensors when `header_length` is set)
/// and checks it against `config`.
pub fn decode_request(
    body: &[u8],
    header_length: Option<usize>,
    config: &ModelConfig,
) -> Result<InferRequest, InferError> {
    let (json, mut binary) = match header_length {
        Some(n) if n > body.len() => {
            return Err(InferError::Invalid(format!(
                "Inference-Header-Content-Length is {n} but the body has only {} bytes",
                body.len()
            )))
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let request: InferRequestJson = serde_json::from_slice(json)
        .map_err(|e| InferError::Invalid(format!("invalid inference request JSON: {e}")))?;
    let binary_output_default =
        bool_param(&request.parameters, "binary_data_output")?.unwrap_or(false);
    let priority = uint_param(&request.parameters, "priority")?.unwrap_or(0);
    let priority = u32::try_from(priority)
        .map_err(|_| InferError::Invalid(format!("priority {priority} is too large")))?;
    let timeout = uint_param(&request.parameters, "timeout")?
        .filter(|t| *t > 0)
        .map(Duration::from_micros);

    let mut decoded = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let datatype = DataType::parse(&input.datatype)?;
        let shape = input
            .shape
            .iter()
            .map(|d| usize::try_from(*d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                InferError::Invalid(format!(
                    "input '{}': shape {:?} has a negative dimension",
                    input.name, input.shape
                ))
            })?;
        let tensor = match (
            uint_param(&input.parameters, "binary_data_size")?,
            &input.data,
        ) {
            (Some(size), _) => {
                let size = size as usize;
                if size > binary.len() {
                    return Err(InferError::Invalid(format!(
                        "input '{}': binary_data_size {size} exceeds the {} binary bytes left in the body",
                        input.name,
                        binary.len()
                    )));
                }
                let (data, rest) = binary.split_at(size);
                binary = rest;
                Tensor::new(input.name, datatype, shape, data.to_vec())?
            }
            (None, Some(data)) => Tensor::from_json(&input.name, datatype, shape, data)?,
            (None, None) => {
                return Err(InferError::Invalid(format!(
                    "input '{}' has neither data nor binary_data_size",
                    input.name
                )))
            }
        };
        decoded.push(tensor);
    }
    if !binary.is_empty() {
        return Err(InferError::Invalid(format!(
            "{} binary bytes after the last input's binary_data_size",
            binary.len()
        )));
    }
    let inputs = order_inputs(decoded, config)?;

    let outputs = match request.outputs {
        None => config
            .outputs
            .iter()
            .map(|o| (o.name.clone(), binary_output_default))
            .collect(),
        Some(requested) => requested
            .into_iter()
            .map(|o| {
                if !config.outputs.iter().any(|spec| spec.name == o.name) {
                    return Err(InferError::Invalid(format!(
                        "unknown output '{}' (the model has: {})",
                        o.name,
                        names(&config.outputs)
                    )));
                }
                if o.parameters.contains_key("classification") {
                    return Err(InferError::Invalid(
                        "the classification extension is not supported".into(),
                    ));
                }
                let binary =
                    bool_param(&o.parameters, "binary_data")?.unwrap_or(binary_output_default);
                Ok((o.name, binary))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(InferRequest {
        id: request.id,
        inputs,
        outputs,
        priority,
        timeout,
    })
}

/// Matches inputs to the configuration by name and checks datatypes and shapes.
fn order_inputs(mut given: Vec<Tensor>, config: &ModelConfig) -> Result<Vec<Tensor>, InferError> {
    if let Some(unknown) = given
        .iter()
        .find(|t| !config.inputs.iter().any(|s| s.name == t.name))
    {
        return Err(InferError::Invalid(format!(
            "unknown input '{}' (the model takes: {})",
            unknown.name,
            names(&config.inputs)
        )));
    }
    let mut batch = None;
    let mut ordered = Vec::with_capacity(config.inputs.len());
    for spec in &config.inputs {
        let index = given
            .iter()
            .position(|t| t.name == spec.name)
            .ok_or_else(|| InferError::Invalid(format!("missing input '{}'", spec.name)))?;
        let tensor = given.swap_remove(index);
        if given.iter().any(|t| t.name == spec.name) {
            return Err(InferError::Invalid(format!(
                "input '{}' is given twice",
                spec.name
            )));
        }
        if tensor.datatype != spec.datatype {
            return Err(InferError::Invalid(format!(
                "input '{}': datatype {} does not match the model's {}",
                spec.name,
                tensor.datatype.name(),
                spec.datatype.name()
            )));
        }
        let expected = expected_shape(spec, config.max_batch_size);
        let fits = tensor.shape.len() == expected.len()
            && tensor
                .shape
                .iter()
                .zip(&expected)
                .all(|(d, e)| *e < 0 || *d as i64 == *e);
        if !fits {
            return Err(InferError::Invalid(format!(
                "input '{}': shape {:?} does not match the model's {:?}",
                spec.name, tensor.shape, expected
            )));
        }
        if config.max_batch_size > 0 {
            let rows = tensor.shape[0];
            if rows == 0 || rows > config.max_batch_size {
                return Err(InferError::Invalid(format!(
                    "input '{}': batch size {rows} is outside 1..={}",
                    spec.name, config.max_batch_size
                )));
            }
            if *batch.get_or_insert(rows) != rows {
                return Err(InferError::Invalid(
                    "inputs disagree on the batch size".into(),
                ));
            }
        }
        ordered.push(tensor);
    }
    Ok(ordered)
}

/// The shape clients see in metadata: `-1` for the batch dimension of batched models.
pub fn expected_shape(spec: &TensorSpec, max_batch_size: usize) -> Vec<i64> {
    let dims = spec.dims.iter().map(|d| *d as i64);
    if max_batch_size > 0 {
        std::iter::once(-1).chain(dims).collect()
    } else {
        dims.collect()
    }
}

#[derive(Serialize)]
struct InferResponseJson<'a> {
    model_name: &'a str,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: Vec<Value>,
}

/// An encoded response body, and the JSON length when binary tensors follow it.
pub struct EncodedResponse {
    /// The body.
    pub body: Vec<u8>,
    /// Length of the JSON part, set when binary outputs follow.
    pub header_length: Option<usize>,
}

/// Encodes the outputs the request asked for, binary ones after the JSON.
pub fn encode_response(
    model: &str,
    version: u64,
    request: &InferRequest,
    outputs: Vec<Tensor>,
) -> Result<EncodedResponse, InferError> {
    let mut binary = Vec::new();
    let mut json_outputs = Vec::new();
    for (name, as_binary) in &request.outputs {
        let tensor = outputs.iter().find(|t| &t.name == name).ok_or_else(|| {
            InferError::Compute(format!("the model did not produce output '{name}'"))
        })?;
        let mut out = serde_json::json!({
            "name": tensor.name,
            "datatype": tensor.datatype.name(),
            "shape": tensor.shape,
        });
        if *as_binary {
            out["parameters"] = serde_json::json!({ "binary_data_size": tensor.data.len() });
            binary.extend_from_slice(&tensor.data);
        } else {
            out["data"] = tensor.to_json();
        }
        json_outputs.push(out);
    }
    let response = InferResponseJson {
        model_name: model,
        model_version: version.to_string(),
        id: request.id.clone(),
        outputs: json_outputs,
    };
    let mut body = serde_json::to_vec(&response).expect("response JSON serializes");
    let header_length = (!binary.is_empty()).then_some(body.len());
    body.extend_from_slice(&binary);
    Ok(EncodedResponse {
        body,
        header_length,
    })
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn bool_param(params: &Map<String, Value>, name: &str) -> Result<Option<bool>, InferError> {
    params
        .get(name)
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| InferError::Invalid(format!("parameter '{name}' must be a boolean")))
        })
        .transpose()
}

fn uint_param(params: &Map<String, Value>, name: &str) -> Result<Option<u64>, InferError> {
    params
        .get(name)
        .map(|v| {
            v.as_u64().ok_or_else(|| {
                InferError::Invalid(format!("parameter '{name}' must be a non-negative integer"))
            })
        })
        .transpose()
}
