//! The Open Inference Protocol (KServe v2, as Triton's HTTP server speaks it) as data, owned
//! once for both halves of Vitrine: the runtime's worker pool and the `nn-remote` component
//! send requests with it, the worker decodes them with it.
//!
//! - [`DataType`]: the protocol's element types, their names and sizes, checked size arithmetic;
//! - [`messages`]: the JSON inference request and response;
//! - [`json_data`]: tensor elements as JSON `data` arrays;
//! - [`binary`]: the binary tensor data extension (a JSON header, then raw tensors), and
//!   `BYTES` elements (each a 4-byte little-endian length, then its bytes).
//!
//! Transport, retries and validation against a model's configuration are the users' concern.
//! Serde only: it builds for native targets and for `wasm32-wasip2`.

pub mod binary;
mod datatype;
pub mod json_data;
pub mod messages;

pub use binary::{Tensor, HEADER_LENGTH};
pub use datatype::{element_count, DataType};

/// A message or tensor that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OipError {
    /// A datatype name the protocol does not define.
    #[error("unsupported datatype '{0}' (supported: {list})", list = DataType::names())]
    UnknownDataType(String),
    /// A shape whose element or byte count does not fit in memory.
    #[error("shape {0} is too large")]
    ShapeTooLarge(String),
    /// Tensor data that does not match its datatype and shape.
    #[error("tensor '{name}': {problem}")]
    Data {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A body that is not a well-formed inference message.
    #[error("{0}")]
    Message(String),
}

/// Defines `to_oip(ty) -> DataType` and `from_oip(datatype) -> Option<ty>` for a `tensor-type`
/// enum generated from `wasi:nn@0.2.0-rc-2024-10-28`. Each side of that interface (the
/// runtime's host, `nn-remote`, `nn-client`) has its own generated type, so the table is
/// written once, here. `BOOL` travels as `u8`; other datatypes have no `wasi:nn` type.
#[macro_export]
macro_rules! wasi_nn_tensor_types {
    ($tensor_type:ty) => {
        /// The protocol datatype of a `wasi:nn` tensor type.
        #[allow(dead_code)]
        fn to_oip(ty: $tensor_type) -> $crate::DataType {
            type T = $tensor_type;
            match ty {
                T::Fp16 => $crate::DataType::F16,
                T::Fp32 => $crate::DataType::F32,
                T::Fp64 => $crate::DataType::F64,
                T::Bf16 => $crate::DataType::BF16,
                T::U8 => $crate::DataType::U8,
                T::I32 => $crate::DataType::I32,
                T::I64 => $crate::DataType::I64,
            }
        }

        /// The `wasi:nn` tensor type carrying a protocol datatype, if there is one.
        #[allow(dead_code)]
        fn from_oip(datatype: $crate::DataType) -> Option<$tensor_type> {
            type T = $tensor_type;
            Some(match datatype {
                $crate::DataType::F16 => T::Fp16,
                $crate::DataType::F32 => T::Fp32,
                $crate::DataType::F64 => T::Fp64,
                $crate::DataType::BF16 => T::Bf16,
                $crate::DataType::U8 | $crate::DataType::Bool => T::U8,
                $crate::DataType::I32 => T::I32,
                $crate::DataType::I64 => T::I64,
                _ => return None,
            })
        }
    };
}
