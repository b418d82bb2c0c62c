//! `wasi:nn@0.2.0-rc-2024-10-28` over HTTP, as a Wasm component.
//!
//! It exports the four `wasi:nn` interfaces and imports only `wasi:http/outgoing-handler`
//! (plus the environment, for its settings). Composed with a function that imports `wasi:nn`
//! (`[component.<id>.dependencies]` in `spin.toml`, or `wac plug`), the function runs on hosts
//! without native `wasi:nn`, such as stock Spin and SpinKube: every `compute` becomes an Open
//! Inference Protocol request (binary tensor extension) to the worker at `VITRINE_NN_URL`.
//!
//! `graph.load` with raw bytes is `unsupported-operation`; a model the worker does not know is
//! `not-found`. The host's `allowed_outbound_hosts` must allow the worker.

mod http;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/wasi-nn.wit",
        inline: "
            package vitrine:nn-remote;
            world adapter {
                export wasi:nn/tensor@0.2.0-rc-2024-10-28;
                export wasi:nn/errors@0.2.0-rc-2024-10-28;
                export wasi:nn/inference@0.2.0-rc-2024-10-28;
                export wasi:nn/graph@0.2.0-rc-2024-10-28;
            }
        ",
        world: "vitrine:nn-remote/adapter",
    });
    use super::Adapter;
    export!(Adapter);
}

use bindings::exports::wasi::nn::{errors, graph, inference, tensor};
use errors::ErrorCode;
use serde_json::{json, Value};
use tensor::TensorType;

/// The exported `wasi:nn` implementation.
struct Adapter;

/// A tensor held by the adapter.
struct RemoteTensor {
    dimensions: Vec<u32>,
    ty: TensorType,
    data: Vec<u8>,
}

/// An error: code and message.
struct RemoteError {
    code: ErrorCode,
    data: String,
}

/// A model of the worker, by name.
struct RemoteGraph {
    model: String,
}

/// An execution context of one model.
struct RemoteContext {
    model: String,
}

fn error(code: ErrorCode, data: impl Into<String>) -> errors::Error {
    errors::Error::new(RemoteError {
        code,
        data: data.into(),
    })
}

impl tensor::Guest for Adapter {
    type Tensor = RemoteTensor;
}

impl tensor::GuestTensor for RemoteTensor {
    fn new(dimensions: Vec<u32>, ty: TensorType, data: Vec<u8>) -> Self {
        Self {
            dimensions,
            ty,
            data,
        }
    }

    fn dimensions(&self) -> Vec<u32> {
        self.dimensions.clone()
    }

    fn ty(&self) -> TensorType {
        self.ty
    }

    fn data(&self) -> Vec<u8> {
        self.data.clone()
    }
}

impl errors::Guest for Adapter {
    type Error = RemoteError;
}

impl errors::GuestError for RemoteError {
    fn code(&self) -> ErrorCode {
        self.code
    }

    fn data(&self) -> String {
        self.data.clone()
    }
}

impl graph::Guest for Adapter {
    type Graph = RemoteGraph;

    fn load(
        _builder: Vec<graph::GraphBuilder>,
        _encoding: graph::GraphEncoding,
        _target: graph::ExecutionTarget,
    ) -> Result<graph::Graph, errors::Error> {
        Err(error(
            ErrorCode::UnsupportedOperation,
            "loading graph bytes is not supported; use load-by-name",
        ))
    }

    fn load_by_name(name: String) -> Result<graph::Graph, errors::Error> {
        http::get(&format!("/v2/models/{name}")).map_err(into_error)?;
        Ok(graph::Graph::new(RemoteGraph { model: name }))
    }
}

impl graph::GuestGraph for RemoteGraph {
    fn init_execution_context(&self) -> Result<inference::GraphExecutionContext, errors::Error> {
        Ok(inference::GraphExecutionContext::new(RemoteContext {
            model: self.model.clone(),
        }))
    }
}

impl inference::Guest for Adapter {
    type GraphExecutionContext = RemoteContext;
}

impl inference::GuestGraphExecutionContext for RemoteContext {
    fn compute(
        &self,
        inputs: Vec<inference::NamedTensor>,
    ) -> Result<Vec<inference::NamedTensor>, errors::Error> {
        let tensors: Vec<(String, &RemoteTensor)> = inputs
            .iter()
            .map(|(name, t)| (name.clone(), t.get::<RemoteTensor>()))
            .collect();
        for (name, t) in &tensors {
            let expected =
                t.dimensions.iter().map(|d| *d as usize).product::<usize>() * element_size(t.ty);
            if t.data.len() != expected {
                return Err(error(
                    ErrorCode::InvalidArgument,
                    format!(
                        "tensor '{name}': dimensions {:?} need {expected} bytes, got {}",
                        t.dimensions,
                        t.data.len()
                    ),
                ));
            }
        }
        let header = json!({
            "inputs": tensors.iter().map(|(name, t)| json!({
                "name": name,
                "datatype": datatype(t.ty),
                "shape": t.dimensions,
                "parameters": { "binary_data_size": t.data.len() },
            })).collect::<Vec<_>>(),
            "parameters": { "binary_data_output": true },
        });
        let mut body = serde_json::to_vec(&header).expect("request JSON serializes");
        let header_length = body.len();
        for (_, t) in &tensors {
            body.extend_from_slice(&t.data);
        }
        let response = http::post(
            &format!("/v2/models/{}/infer", self.model),
            body,
            header_length,
        )
        .map_err(into_error)?;
        decode_outputs(&response.body, response.header_length)
    }
}

fn into_error(failure: http::Failure) -> errors::Error {
    let code = match failure.status {
        Some(400) => ErrorCode::InvalidArgument,
        Some(404) => ErrorCode::NotFound,
        Some(504) => ErrorCode::Timeout,
        _ => ErrorCode::RuntimeError,
    };
    error(code, failure.message)
}

fn decode_outputs(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<Vec<inference::NamedTensor>, errors::Error> {
    let bad = |what: &str| {
        error(
            ErrorCode::RuntimeError,
            format!("invalid inference response: {what}"),
        )
    };
    let split = header_length.unwrap_or(body.len()).min(body.len());
    let (json, mut binary) = body.split_at(split);
    let response: Value = serde_json::from_slice(json).map_err(|e| bad(&e.to_string()))?;
    let mut outputs = Vec::new();
    for out in response["outputs"]
        .as_array()
        .ok_or_else(|| bad("no outputs"))?
    {
        let name = out["name"]
            .as_str()
            .ok_or_else(|| bad("output without a name"))?;
        let ty = out["datatype"]
            .as_str()
            .and_then(tensor_type)
            .ok_or_else(|| bad("unsupported output datatype"))?;
        let dimensions: Vec<u32> =
            serde_json::from_value(out["shape"].clone()).map_err(|e| bad(&e.to_string()))?;
        let size = out["parameters"]["binary_data_size"]
            .as_u64()
            .ok_or_else(|| bad("output is not binary"))? as usize;
        if size > binary.len() {
            return Err(bad("output runs past the body"));
        }
        let (data, rest) = binary.split_at(size);
        binary = rest;
        let tensor = tensor::Tensor::new(RemoteTensor {
            dimensions,
            ty,
            data: data.to_vec(),
        });
        outputs.push((name.to_string(), tensor));
    }
    Ok(outputs)
}

fn datatype(ty: TensorType) -> &'static str {
    match ty {
        TensorType::Fp16 => "FP16",
        TensorType::Fp32 => "FP32",
        TensorType::Fp64 => "FP64",
        TensorType::Bf16 => "BF16",
        TensorType::U8 => "UINT8",
        TensorType::I32 => "INT32",
        TensorType::I64 => "INT64",
    }
}

fn tensor_type(datatype: &str) -> Option<TensorType> {
    Some(match datatype {
        "FP16" => TensorType::Fp16,
        "FP32" => TensorType::Fp32,
        "FP64" => TensorType::Fp64,
        "BF16" => TensorType::Bf16,
        "UINT8" | "BOOL" => TensorType::U8,
        "INT32" => TensorType::I32,
        "INT64" => TensorType::I64,
        _ => return None,
    })
}

fn element_size(ty: TensorType) -> usize {
    match ty {
        TensorType::U8 => 1,
        TensorType::Fp16 | TensorType::Bf16 => 2,
        TensorType::Fp32 | TensorType::I32 => 4,
        TensorType::Fp64 | TensorType::I64 => 8,
    }
}
