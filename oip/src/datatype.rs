//! The protocol's element types.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::OipError;

/// An element type of the Open Inference Protocol (`FP32`, `INT64`, `BYTES`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// Boolean, one byte per element.
    #[serde(rename = "BOOL")]
    Bool,
    /// Unsigned 8-bit integer.
    #[serde(rename = "UINT8")]
    U8,
    /// Unsigned 16-bit integer.
    #[serde(rename = "UINT16")]
    U16,
    /// Unsigned 32-bit integer.
    #[serde(rename = "UINT32")]
    U32,
    /// Unsigned 64-bit integer.
    #[serde(rename = "UINT64")]
    U64,
    /// Signed 8-bit integer.
    #[serde(rename = "INT8")]
    I8,
    /// Signed 16-bit integer.
    #[serde(rename = "INT16")]
    I16,
    /// Signed 32-bit integer.
    #[serde(rename = "INT32")]
    I32,
    /// Signed 64-bit integer.
    #[serde(rename = "INT64")]
    I64,
    /// IEEE half-precision float.
    #[serde(rename = "FP16")]
    F16,
    /// bfloat16.
    #[serde(rename = "BF16")]
    BF16,
    /// 32-bit float.
    #[serde(rename = "FP32")]
    F32,
    /// 64-bit float.
    #[serde(rename = "FP64")]
    F64,
    /// Byte strings of any length (text, encoded images).
    #[serde(rename = "BYTES")]
    Bytes,
}

impl DataType {
    /// Every datatype, in the protocol's order.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F16,
        DataType::BF16,
        DataType::F32,
        DataType::F64,
        DataType::Bytes,
    ];

    /// The protocol name (`"FP32"`).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F16 => "FP16",
            DataType::BF16 => "BF16",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Parses a protocol name (`"FP32"`).
    pub fn parse(name: &str) -> Result<Self, OipError> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| OipError::UnknownDataType(name.to_string()))
    }

    /// Bytes per element; `None` for `BYTES`, whose elements vary in length.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 | DataType::F16 | DataType::BF16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
            DataType::Bytes => return None,
        })
    }

    /// The byte length of a tensor of this datatype and `shape` (checked arithmetic); `None`
    /// for `BYTES`.
    pub fn byte_size<D: Copy + fmt::Debug + TryInto<usize>>(
        self,
        shape: &[D],
    ) -> Result<Option<usize>, OipError> {
        let Some(size) = self.size() else {
            return Ok(None);
        };
        element_count(shape)?
            .checked_mul(size)
            .map(Some)
            .ok_or_else(|| OipError::ShapeTooLarge(format!("{shape:?}")))
    }

    pub(crate) fn names() -> String {
        Self::ALL.map(DataType::name).join(", ")
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DataType {
    type Err = OipError;

    fn from_str(name: &str) -> Result<Self, OipError> {
        Self::parse(name)
    }
}

/// The number of elements of a tensor of `shape`, with checked arithmetic (a hostile shape
/// cannot overflow it).
pub fn element_count<D: Copy + fmt::Debug + TryInto<usize>>(
    shape: &[D],
) -> Result<usize, OipError> {
    shape.iter().try_fold(1usize, |count, d| {
        (*d).try_into()
            .ok()
            .and_then(|d| count.checked_mul(d))
            .ok_or_else(|| OipError::ShapeTooLarge(format!("{shape:?}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serde_agrees() {
        for t in DataType::ALL {
            assert_eq!(DataType::parse(t.name()), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.name());
        }
        let err = DataType::parse("FP8").unwrap_err().to_string();
        assert!(err.contains("'FP8'") && err.contains("BYTES"), "{err}");
    }

    #[test]
    fn sizes_use_checked_arithmetic() {
        assert_eq!(DataType::F32.byte_size(&[2u64, 3]), Ok(Some(24)));
        assert_eq!(DataType::Bytes.byte_size(&[2u64]), Ok(None));
        assert_eq!(element_count::<u64>(&[]), Ok(1));
        assert!(element_count(&[u64::MAX, 2]).is_err());
        assert!(DataType::F64.byte_size(&[usize::MAX / 4]).is_err());
        assert!(element_count(&[-1i64]).is_err());
    }
}
