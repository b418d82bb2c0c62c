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

use std::collections::BTreeSet;

use bindings::exports::wasi::nn::{errors, graph, inference, tensor};
use errors::ErrorCode;
use tensor::TensorType;
use vitrine_oip::binary::{decode_response, encode_request};
use vitrine_oip::messages::ModelMetadata;
use vitrine_oip::{DataType, Tensor};

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
    /// The model's `BYTES` inputs: a `U8` tensor given for one carries BYTES elements.
    bytes_inputs: BTreeSet<String>,
}

/// An execution context of one model.
struct RemoteContext {
    model: String,
    bytes_inputs: BTreeSet<String>,
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
        let answer = http::get(&format!("/v2/models/{name}")).map_err(into_error)?;
        let metadata: ModelMetadata = serde_json::from_slice(&answer.body).map_err(|e| {
            error(
                ErrorCode::RuntimeError,
                format!("invalid metadata of '{name}': {e}"),
            )
        })?;
        Ok(graph::Graph::new(RemoteGraph {
            model: name,
            bytes_inputs: metadata.bytes_inputs(),
        }))
    }
}

impl graph::GuestGraph for RemoteGraph {
    fn init_execution_context(&self) -> Result<inference::GraphExecutionContext, errors::Error> {
        Ok(inference::GraphExecutionContext::new(RemoteContext {
            model: self.model.clone(),
            bytes_inputs: self.bytes_inputs.clone(),
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
        let tensors: Vec<Tensor> = tensors
            .into_iter()
            .map(|(name, t)| Tensor {
                datatype: match to_oip(t.ty) {
                    DataType::U8 if self.bytes_inputs.contains(&name) => DataType::Bytes,
                    datatype => datatype,
                },
                name,
                shape: t.dimensions.iter().map(|d| u64::from(*d)).collect(),
                data: t.data.clone(),
            })
            .collect();
        for t in &tensors {
            t.check()
                .map_err(|e| error(ErrorCode::InvalidArgument, e.to_string()))?;
        }
        let (body, header_length) = encode_request(&tensors, Default::default());
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

/// The worker's outputs as `wasi:nn` tensors.
fn decode_outputs(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<Vec<inference::NamedTensor>, errors::Error> {
    let bad = |what: String| {
        error(
            ErrorCode::RuntimeError,
            format!("invalid inference response: {what}"),
        )
    };
    decode_response(body, header_length)
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .map(|out| {
            let ty = from_oip(out.datatype).ok_or_else(|| {
                bad(format!(
                    "output '{}': {} has no wasi:nn type",
                    out.name, out.datatype
                ))
            })?;
            let dimensions = out
                .shape
                .iter()
                .map(|d| u32::try_from(*d))
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    bad(format!(
                        "output '{}': shape {:?} is too large",
                        out.name, out.shape
                    ))
                })?;
            let tensor = tensor::Tensor::new(RemoteTensor {
                dimensions,
                ty,
                data: out.data,
            });
            Ok((out.name, tensor))
        })
        .collect()
}

vitrine_oip::wasi_nn_tensor_types!(TensorType);
