//! Tensors as the inference protocol carries them: a datatype, a shape and little-endian row-major bytes.

use serde_json::Value;

use crate::error::InferError;

/// An element type of the Open Inference Protocol (`FP32`, `INT64`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DataType {
    /// Boolean, one byte per element.
    #[serde(rename = "BOOL")]
    Bool,
    /// Unsigned 8-bit integer.
    #[serde(rename = "UINT8")]
    U8,
    /// Signed 8-bit integer.
    #[serde(rename = "INT8")]
    I8,
    /// Signed 32-bit integer.
    #[serde(rename = "INT32")]
    I32,
    /// Signed 64-bit integer.
    #[serde(rename = "INT64")]
    I64,
    /// 32-bit float.
    #[serde(rename = "FP32")]
    F32,
    /// 64-bit float.
    #[serde(rename = "FP64")]
    F64,
}

impl DataType {
    /// Parses a protocol datatype name (`"FP32"`).
    pub fn parse(name: &str) -> Result<Self, InferError> {
        serde_json::from_value(Value::String(name.to_string())).map_err(|_| {
            InferError::Invalid(format!(
                "unsupported datatype '{name}' (supported: BOOL, UINT8, INT8, INT32, INT64, FP32, FP64)"
            ))
        })
    }

    /// The protocol name of this datatype.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::I8 => "INT8",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::I32 | DataType::F32 => 4,
            DataType::I64 | DataType::F64 => 8,
        }
    }
}

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
        let expected = shape.iter().product::<usize>() * datatype.size();
        if data.len() != expected {
            return Err(InferError::Invalid(format!(
                "tensor '{name}': shape {shape:?} of {} needs {expected} bytes, got {}",
                datatype.name(),
                data.len()
            )));
        }
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

    /// Decodes the JSON `data` field: a flat or nested array of numbers (or booleans).
    pub fn from_json(
        name: &str,
        datatype: DataType,
        shape: Vec<usize>,
        data: &Value,
    ) -> Result<Self, InferError> {
        let mut flat = Vec::new();
        flatten(data, &mut flat);
        let expected: usize = shape.iter().product();
        if flat.len() != expected {
            return Err(InferError::Invalid(format!(
                "input '{name}': shape {shape:?} has {expected} elements but data has {}",
                flat.len()
            )));
        }
        let mut bytes = Vec::with_capacity(expected * datatype.size());
        for value in flat {
            encode(name, datatype, value, &mut bytes)?;
        }
        Self::new(name, datatype, shape, bytes)
    }

    /// The elements as a flat JSON array.
    pub fn to_json(&self) -> Value {
        let values: Vec<Value> = match self.datatype {
            DataType::Bool => self.data.iter().map(|b| Value::Bool(*b != 0)).collect(),
            DataType::F32 | DataType::F64 => self.values().map(|v| serde_json::json!(v)).collect(),
            _ => self.values().map(|v| serde_json::json!(v as i64)).collect(),
        };
        Value::Array(values)
    }

    fn values(&self) -> Box<dyn Iterator<Item = f64> + '_> {
        let d = &self.data;
        match self.datatype {
            DataType::Bool | DataType::U8 => Box::new(d.iter().map(|b| *b as f64)),
            DataType::I8 => Box::new(d.iter().map(|b| *b as i8 as f64)),
            DataType::I32 => Box::new(
                d.chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64),
            ),
            DataType::I64 => Box::new(
                d.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64),
            ),
            DataType::F32 => Box::new(
                d.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64),
            ),
            DataType::F64 => Box::new(
                d.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap())),
            ),
        }
    }
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        other => out.push(other),
    }
}

fn encode(
    name: &str,
    datatype: DataType,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), InferError> {
    let bad = || {
        InferError::Invalid(format!(
            "input '{name}': {value} is not a valid {} element",
            datatype.name()
        ))
    };
    let int = |lo: i64, hi: i64| -> Result<i64, InferError> {
        value
            .as_i64()
            .filter(|v| (lo..=hi).contains(v))
            .ok_or_else(bad)
    };
    match datatype {
        DataType::Bool => out.push(value.as_bool().ok_or_else(bad)? as u8),
        DataType::U8 => out.push(int(0, u8::MAX as i64)? as u8),
        DataType::I8 => out.push(int(i8::MIN as i64, i8::MAX as i64)? as i8 as u8),
        DataType::I32 => out.extend((int(i32::MIN as i64, i32::MAX as i64)? as i32).to_le_bytes()),
        DataType::I64 => out.extend(int(i64::MIN, i64::MAX)?.to_le_bytes()),
        DataType::F32 => out.extend((value.as_f64().ok_or_else(bad)? as f32).to_le_bytes()),
        DataType::F64 => out.extend(value.as_f64().ok_or_else(bad)?.to_le_bytes()),
    }
    Ok(())
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
        assert_eq!(t.to_json(), serde_json::json!([1, -2, 3, 4]));
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
