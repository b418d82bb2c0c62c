//! A small typed client over `wasi:nn@0.2.0-rc-2024-10-28` for edge functions: load a model
//! by name, build tensors from slices, run it with named inputs, read named outputs.
//!
//! ```ignore
//! let model = vitrine_nn::Model::load("intent-mlp")?;
//! let outputs = model.infer(&[("features", vitrine_nn::Tensor::from_f32(&[1, 16], &features)?)])?;
//! let probabilities = outputs.get("probabilities")?.to_f32()?;
//! ```

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/wasi-nn.wit",
        world: "wasi:nn/ml",
    });
}

use bindings::wasi::nn::{errors, graph, inference, tensor};

pub use errors::ErrorCode;
pub use tensor::TensorType;

/// A failed `wasi:nn` call or a misuse of this client: the code and the host's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The `wasi:nn` error code (`invalid-argument` for mistakes caught by this client).
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wasi:nn {:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<errors::Error> for Error {
    fn from(err: errors::Error) -> Self {
        Self {
            code: err.code(),
            message: err.data(),
        }
    }
}

fn invalid(message: String) -> Error {
    Error {
        code: ErrorCode::InvalidArgument,
        message,
    }
}

/// A tensor: dimensions, element type and row-major little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions (`[1]` for a scalar).
    pub dims: Vec<u32>,
    /// Element type.
    pub ty: TensorType,
    /// `dims.product() * element size` bytes.
    pub data: Vec<u8>,
}

impl Tensor {
    /// A tensor from raw bytes, checking their length against the dimensions.
    pub fn new(dims: &[u32], ty: TensorType, data: Vec<u8>) -> Result<Self, Error> {
        vitrine_oip::binary::check_data("", to_oip(ty), dims, &data).map_err(|e| match e {
            vitrine_oip::OipError::Data { problem, .. } => invalid(problem),
            other => invalid(other.to_string()),
        })?;
        Ok(Self {
            dims: dims.to_vec(),
            ty,
            data,
        })
    }

    /// An `FP32` tensor.
    pub fn from_f32(dims: &[u32], values: &[f32]) -> Result<Self, Error> {
        Self::new(
            dims,
            TensorType::Fp32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    /// An `I64` tensor.
    pub fn from_i64(dims: &[u32], values: &[i64]) -> Result<Self, Error> {
        Self::new(
            dims,
            TensorType::I64,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    /// A `U8` tensor.
    pub fn from_u8(dims: &[u32], values: &[u8]) -> Result<Self, Error> {
        Self::new(dims, TensorType::U8, values.to_vec())
    }

    /// Texts for a model's `BYTES` input, one per row (dims `[n, 1]`). `wasi:nn` has no string
    /// type: this is a `U8` tensor holding the texts in the protocol's binary form (each a
    /// 4-byte little-endian length, then its UTF-8), which the host sends as `BYTES` because
    /// the model's metadata declares that input `BYTES`.
    pub fn from_texts(texts: &[&str]) -> Self {
        let elements: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
        Self {
            dims: vec![texts.len() as u32, 1],
            ty: TensorType::U8,
            data: vitrine_oip::binary::encode_bytes(elements),
        }
    }

    /// The elements of an `FP32` tensor.
    pub fn to_f32(&self) -> Result<Vec<f32>, Error> {
        self.expect(TensorType::Fp32)?;
        Ok(self
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The elements of an `I64` tensor.
    pub fn to_i64(&self) -> Result<Vec<i64>, Error> {
        self.expect(TensorType::I64)?;
        Ok(self
            .data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }

    /// The elements of a `U8` tensor.
    pub fn to_u8(&self) -> Result<&[u8], Error> {
        self.expect(TensorType::U8)?;
        Ok(&self.data)
    }

    fn expect(&self, ty: TensorType) -> Result<(), Error> {
        if self.ty == ty {
            Ok(())
        } else {
            Err(invalid(format!(
                "the tensor holds {:?}, not {ty:?}",
                self.ty
            )))
        }
    }
}

vitrine_oip::wasi_nn_tensor_types!(TensorType);

/// A model of the host's inference pool, loaded by name (it must be in the component's `ai_models`).
pub struct Model {
    name: String,
    context: inference::GraphExecutionContext,
    // The context borrows the graph on the host side; keep it alive as long.
    _graph: graph::Graph,
}

impl Model {
    /// Loads `name` (`wasi:nn/graph.load-by-name`) and prepares an execution context.
    pub fn load(name: &str) -> Result<Self, Error> {
        let graph = graph::load_by_name(name)?;
        let context = graph.init_execution_context()?;
        Ok(Self {
            name: name.to_string(),
            context,
            _graph: graph,
        })
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the model on named inputs and returns its named outputs.
    pub fn infer(&self, inputs: &[(&str, Tensor)]) -> Result<Outputs, Error> {
        let inputs = inputs
            .iter()
            .map(|(name, t)| {
                (
                    name.to_string(),
                    tensor::Tensor::new(&t.dims, t.ty, &t.data),
                )
            })
            .collect::<Vec<_>>();
        let outputs = self.context.compute(inputs)?;
        Ok(Outputs(
            outputs
                .into_iter()
                .map(|(name, t)| {
                    (
                        name,
                        Tensor {
                            dims: t.dimensions(),
                            ty: t.ty(),
                            data: t.data(),
                        },
                    )
                })
                .collect(),
        ))
    }
}

/// The named outputs of one inference.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs(Vec<(String, Tensor)>);

impl Outputs {
    /// The output called `name`.
    pub fn get(&self, name: &str) -> Result<&Tensor, Error> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| {
                let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
                invalid(format!(
                    "no output '{name}' (the model returned: {})",
                    names.join(", ")
                ))
            })
    }

    /// Every output, in the order the host returned them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.0.iter().map(|(n, t)| (n.as_str(), t))
    }
}
