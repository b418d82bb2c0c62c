//! Tensors as the worker's models see them: a datatype, a shape and the data (row-major
//! little-endian elements; length-prefixed elements for `BYTES`). Datatypes, sizes and the JSON
//! form of elements are the protocol's, from [`vitrine_oip`].

use serde_json::Value;
use vitrine_oip::{binary, json_data};

use crate::error::InferError;

pub use vitrine_oip::DataType;

/// A named tensor with raw little-endian data.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Input or output name.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Shape, batch dimension first for batched models.
    pub shape: Vec<usize>,
    /// `shape.product() * datatype.size()` bytes, row-major, little-endian.
    pub data: Vec<u8>,
}

impl Tensor {
    /// Builds a tensor, checking that the data length matches the shape.
    pub fn new(
        name: impl Into<String>,
        datatype: DataType,
        shape: Vec<usize>,
        data: Vec<u8>,
    ) -> Result<Self, InferError> {
        let name = name.into();
        binary::check_data(&name, datatype, &shape, &data)?;
        Ok(Self {
            name,
            datatype,
            shape,
            data,
        })
    }

    /// An `FP32` tensor from values.
    pub fn from_f32(
        name: impl Into<String>,
        shape: Vec<usize>,
        values: &[f32],
    ) -> Result<Self, InferError> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new(name, DataType::F32, shape, data)
    }

    /// The elements converted to `f32` (any numeric datatype).
    pub fn to_f32(&self) -> Vec<f32> {
        self.values().map(|v| v as f32).collect()
    }

    /// Decodes the JSON `data` field: a flat or nested array of numbers, booleans or strings.
    pub fn from_json(
        name: &str,
        datatype: DataType,
        shape: Vec<usize>,
        data: &Value,
    ) -> Result<Self, InferError> {
        let bytes = json_data::to_bytes(name, datatype, &shape, data)?;
        Self::new(name, datatype, shape, bytes)
    }

    /// The elements as a flat JSON array.
    pub fn to_json(&self) -> Result<Value, InferError> {
        Ok(json_data::to_json(&self.name, self.datatype, &self.data)?)
    }

    /// The numeric elements as `f64`; `BYTES` has none.
    fn values(&self) -> Box<dyn Iterator<Item = f64> + '_> {
        fn le<const N: usize, T>(
            data: &[u8],
            convert: impl Fn([u8; N]) -> T + 'static,
        ) -> impl Iterator<Item = T> + '_ {
            data.chunks_exact(N)
                .map(move |c| convert(c.try_into().expect("chunks_exact gives N bytes")))
        }
        let d = &self.data;
        match self.datatype {
            DataType::Bool | DataType::U8 => Box::new(d.iter().map(|b| *b as f64)),
            DataType::I8 => Box::new(d.iter().map(|b| *b as i8 as f64)),
            DataType::U16 => Box::new(le(d, |b| u16::from_le_bytes(b) as f64)),
            DataType::I16 => Box::new(le(d, |b| i16::from_le_bytes(b) as f64)),
            DataType::U32 => Box::new(le(d, |b| u32::from_le_bytes(b) as f64)),
            DataType::I32 => Box::new(le(d, |b| i32::from_le_bytes(b) as f64)),
            DataType::U64 => Box::new(le(d, |b| u64::from_le_bytes(b) as f64)),
            DataType::I64 => Box::new(le(d, |b| i64::from_le_bytes(b) as f64)),
            DataType::F16 => Box::new(le(d, |b| half::f16::from_le_bytes(b).to_f64())),
            DataType::BF16 => Box::new(le(d, |b| half::bf16::from_le_bytes(b).to_f64())),
            DataType::F32 => Box::new(le(d, |b| f32::from_le_bytes(b) as f64)),
            DataType::F64 => Box::new(le(d, f64::from_le_bytes)),
            DataType::Bytes => Box::new(std::iter::empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_values_and_accepts_nesting() {
        let t = Tensor::from_json(
            "x",
            DataType::I32,
            vec![2, 2],
            &serde_json::json!([[1, -2], [3, 4]]),
        )
        .unwrap();
        assert_eq!(t.to_json().unwrap(), serde_json::json!([1, -2, 3, 4]));
        let f = Tensor::from_json(
            "y",
            DataType::F32,
            vec![3],
            &serde_json::json!([0.5, 1, -2.25]),
        )
        .unwrap();
        assert_eq!(f.to_f32(), vec![0.5, 1.0, -2.25]);
    }

    #[test]
    fn wrong_element_count_and_out_of_range_values_are_rejected() {
        let err = Tensor::from_json(
            "x",
            DataType::F32,
            vec![2, 2],
            &serde_json::json!([1, 2, 3]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("has 4 elements but data has 3"),
            "{err}"
        );
        let err =
            Tensor::from_json("x", DataType::U8, vec![1], &serde_json::json!([300])).unwrap_err();
        assert!(err.to_string().contains("not a valid UINT8"), "{err}");
        assert!(DataType::parse("BF17").is_err());
    }
}
