//! The worker's side of the Open Inference Protocol (KServe v2) inference messages: a request
//! decoded with [`vitrine_oip`] and validated against the model's configuration, and the
//! response encoded with the outputs the request asked for.

use std::time::Duration;

use vitrine_oip::binary::{split_body, take_binary};
use vitrine_oip::messages::{
    binary_data_size, InferenceRequest, InferenceResponse, Parameters, RequestInput, RequestOutput,
    ResponseOutput,
};

use crate::config::{ModelConfig, TensorSpec};
use crate::error::InferError;
use crate::tensor::{DataType, Tensor};

pub use vitrine_oip::HEADER_LENGTH;

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
    /// The request's parameters, as sent (models take some: [`crate::backend::Options`]).
    pub parameters: Parameters,
}

/// Decodes a request body (JSON, or JSON followed by binary tensors when `header_length` is set)
/// and checks it against `config`.
pub fn decode_request(
    body: &[u8],
    header_length: Option<usize>,
    config: &ModelConfig,
) -> Result<InferRequest, InferError> {
    let (json, binary) = split_body(body, header_length)?;
    let request: InferenceRequest = serde_json::from_slice(json)
        .map_err(|e| InferError::Invalid(format!("invalid inference request JSON: {e}")))?;
    let binary_output_default =
        bool_param(&request.parameters, "binary_data_output")?.unwrap_or(false);
    let priority = uint_param(&request.parameters, "priority")?.unwrap_or(0);
    let priority = u32::try_from(priority)
        .map_err(|_| InferError::Invalid(format!("priority {priority} is too large")))?;
    let timeout = uint_param(&request.parameters, "timeout")?
        .filter(|t| *t > 0)
        .map(Duration::from_micros);
    let inputs = order_inputs(decode_inputs(request.inputs, binary)?, config)?;
    let outputs = requested_outputs(request.outputs, binary_output_default, config)?;
    Ok(InferRequest {
        id: request.id,
        inputs,
        outputs,
        priority,
        timeout,
        parameters: request.parameters,
    })
}

/// The request's tensors, from JSON `data` or from the binary part, which they must use up.
fn decode_inputs(inputs: Vec<RequestInput>, mut binary: &[u8]) -> Result<Vec<Tensor>, InferError> {
    let mut decoded = Vec::with_capacity(inputs.len());
    for input in inputs {
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
        let size = binary_data_size(&input.parameters)
            .map_err(|e| InferError::Invalid(format!("input '{}': {e}", input.name)))?;
        let tensor = match (size, &input.data) {
            (Some(size), _) => {
                let data = take_binary(&mut binary, size, &input.name)?;
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
    Ok(decoded)
}

/// The outputs to return and whether each goes in binary: those asked for, else all.
fn requested_outputs(
    requested: Option<Vec<RequestOutput>>,
    binary_default: bool,
    config: &ModelConfig,
) -> Result<Vec<(String, bool)>, InferError> {
    let Some(requested) = requested else {
        return Ok(config
            .outputs
            .iter()
            .map(|o| (o.name.clone(), binary_default))
            .collect());
    };
    requested
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
            let binary = bool_param(&o.parameters, "binary_data")?.unwrap_or(binary_default);
            Ok((o.name, binary))
        })
        .collect()
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

/// The shape clients see in metadata: `-1` for the batch dimension of batched models and for
/// variable-size dimensions.
pub fn expected_shape(spec: &TensorSpec, max_batch_size: usize) -> Vec<i64> {
    let dims = spec.dims.iter().copied();
    if max_batch_size > 0 {
        std::iter::once(-1).chain(dims).collect()
    } else {
        dims.collect()
    }
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
    let mut json_outputs = Vec::with_capacity(request.outputs.len());
    for (name, as_binary) in &request.outputs {
        let tensor = outputs.iter().find(|t| &t.name == name).ok_or_else(|| {
            InferError::Compute(format!("the model did not produce output '{name}'"))
        })?;
        let mut out = ResponseOutput {
            name: tensor.name.clone(),
            datatype: tensor.datatype.name().into(),
            shape: tensor.shape.iter().map(|d| *d as u64).collect(),
            parameters: Parameters::new(),
            data: None,
        };
        if *as_binary {
            out.parameters
                .insert("binary_data_size".into(), tensor.data.len().into());
            binary.extend_from_slice(&tensor.data);
        } else {
            out.data = Some(tensor.to_json()?);
        }
        json_outputs.push(out);
    }
    let response = InferenceResponse {
        model_name: model.into(),
        model_version: Some(version.to_string()),
        id: request.id.clone(),
        parameters: Parameters::new(),
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

fn bool_param(params: &Parameters, name: &str) -> Result<Option<bool>, InferError> {
    params
        .get(name)
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| InferError::Invalid(format!("parameter '{name}' must be a boolean")))
        })
        .transpose()
}

fn uint_param(params: &Parameters, name: &str) -> Result<Option<u64>, InferError> {
    params
        .get(name)
        .map(|v| {
            v.as_u64().ok_or_else(|| {
                InferError::Invalid(format!("parameter '{name}' must be a non-negative integer"))
            })
        })
        .transpose()
}
