//! Tensor elements as the JSON `data` field carries them: a flat or nested array of numbers,
//! booleans (`BOOL`) or strings (`BYTES`), converted to and from raw tensor bytes.

use std::fmt::Debug;

use half::{bf16, f16};
use serde_json::{json, Value};

use crate::binary::{decode_bytes, encode_bytes};
use crate::{element_count, DataType, OipError};

/// Encodes a JSON `data` value as the bytes of a `datatype` tensor of `shape`; every element is
/// checked against the datatype's range.
pub fn to_bytes<D: Copy + Debug + TryInto<usize>>(
    name: &str,
    datatype: DataType,
    shape: &[D],
    data: &Value,
) -> Result<Vec<u8>, OipError> {
    let mut flat = Vec::new();
    flatten(data, &mut flat);
    let expected = element_count(shape)?;
    let fail = |problem: String| OipError::Data {
        name: name.to_string(),
        problem,
    };
    if flat.len() != expected {
        return Err(fail(format!(
            "shape {shape:?} has {expected} elements but data has {}",
            flat.len()
        )));
    }
    if datatype == DataType::Bytes {
        let elements = flat
            .iter()
            .map(|v| v.as_str().map(str::as_bytes))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fail("BYTES elements must be strings".into()))?;
        return Ok(encode_bytes(elements));
    }
    let mut bytes = Vec::with_capacity(flat.len() * datatype.size().unwrap_or(1));
    for value in flat {
        encode(datatype, value, &mut bytes)
            .ok_or_else(|| fail(format!("{value} is not a valid {datatype} element")))?;
    }
    Ok(bytes)
}

/// The elements of a tensor's bytes as a flat JSON array (`BYTES` elements must be UTF-8).
pub fn to_json(name: &str, datatype: DataType, data: &[u8]) -> Result<Value, OipError> {
    let d = data;
    let values: Vec<Value> = match datatype {
        DataType::Bool => d.iter().map(|b| json!(*b != 0)).collect(),
        DataType::U8 => d.iter().map(|b| json!(b)).collect(),
        DataType::I8 => d.iter().map(|b| json!(*b as i8)).collect(),
        DataType::U16 => le::<2>(d).map(|b| json!(u16::from_le_bytes(b))).collect(),
        DataType::I16 => le::<2>(d).map(|b| json!(i16::from_le_bytes(b))).collect(),
        DataType::U32 => le::<4>(d).map(|b| json!(u32::from_le_bytes(b))).collect(),
        DataType::I32 => le::<4>(d).map(|b| json!(i32::from_le_bytes(b))).collect(),
        DataType::U64 => le::<8>(d).map(|b| json!(u64::from_le_bytes(b))).collect(),
        DataType::I64 => le::<8>(d).map(|b| json!(i64::from_le_bytes(b))).collect(),
        DataType::F16 => le::<2>(d)
            .map(|b| json!(f16::from_le_bytes(b).to_f32()))
            .collect(),
        DataType::BF16 => le::<2>(d)
            .map(|b| json!(bf16::from_le_bytes(b).to_f32()))
            .collect(),
        DataType::F32 => le::<4>(d).map(|b| json!(f32::from_le_bytes(b))).collect(),
        DataType::F64 => le::<8>(d).map(|b| json!(f64::from_le_bytes(b))).collect(),
        DataType::Bytes => decode_bytes(d)
            .map_err(|problem| OipError::Data {
                name: name.to_string(),
                problem,
            })?
            .into_iter()
            .map(|e| {
                std::str::from_utf8(e)
                    .map(|s| json!(s))
                    .map_err(|_| OipError::Data {
                        name: name.to_string(),
                        problem: "a BYTES element is not UTF-8: ask for it in binary".into(),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Value::Array(values))
}

/// `N`-byte little-endian chunks.
fn le<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    data.chunks_exact(N)
        .map(|c| c.try_into().expect("chunks_exact gives N bytes"))
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        other => out.push(other),
    }
}

/// Appends one element; `None` when the value is not a valid element of `datatype`.
fn encode(datatype: DataType, value: &Value, out: &mut Vec<u8>) -> Option<()> {
    fn int<T: TryFrom<i128>>(value: &Value) -> Option<T> {
        let wide = value
            .as_i64()
            .map(i128::from)
            .or_else(|| value.as_u64().map(i128::from))?;
        T::try_from(wide).ok()
    }
    let float = || value.as_f64();
    match datatype {
        DataType::Bool => out.push(value.as_bool()? as u8),
        DataType::U8 => out.push(int::<u8>(value)?),
        DataType::I8 => out.extend(int::<i8>(value)?.to_le_bytes()),
        DataType::U16 => out.extend(int::<u16>(value)?.to_le_bytes()),
        DataType::I16 => out.extend(int::<i16>(value)?.to_le_bytes()),
        DataType::U32 => out.extend(int::<u32>(value)?.to_le_bytes()),
        DataType::I32 => out.extend(int::<i32>(value)?.to_le_bytes()),
        DataType::U64 => out.extend(int::<u64>(value)?.to_le_bytes()),
        DataType::I64 => out.extend(int::<i64>(value)?.to_le_bytes()),
        DataType::F16 => out.extend(f16::from_f64(float()?).to_le_bytes()),
        DataType::BF16 => out.extend(bf16::from_f64(float()?).to_le_bytes()),
        DataType::F32 => out.extend((float()? as f32).to_le_bytes()),
        DataType::F64 => out.extend(float()?.to_le_bytes()),
        DataType::Bytes => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datatype_round_trips_through_json() {
        let cases = [
            (DataType::Bool, json!([true, false])),
            (DataType::U8, json!([0, 255])),
            (DataType::I8, json!([-128, 127])),
            (DataType::U16, json!([0, 65535])),
            (DataType::I16, json!([-32768, 32767])),
            (DataType::U32, json!([0, 4294967295u64])),
            (DataType::I32, json!([-2147483648i64, 2147483647])),
            (DataType::U64, json!([0, u64::MAX])),
            (DataType::I64, json!([i64::MIN, i64::MAX])),
            (DataType::F16, json!([0.5, -2.0])),
            (DataType::BF16, json!([1.0, -0.5])),
            (DataType::F32, json!([0.25, -1.5])),
            (DataType::F64, json!([0.1, -1e300])),
            (DataType::Bytes, json!(["linen dress", ""])),
        ];
        for (datatype, values) in cases {
            let bytes = to_bytes("x", datatype, &[2u64], &values).unwrap();
            if let Some(size) = datatype.size() {
                assert_eq!(bytes.len(), 2 * size, "{datatype}");
            }
            assert_eq!(
                to_json("x", datatype, &bytes).unwrap(),
                values,
                "{datatype}"
            );
        }
        // Half precision is stored as IEEE binary16: 1.0 is 0x3C00.
        assert_eq!(
            to_bytes("h", DataType::F16, &[1u64], &json!([1.0])).unwrap(),
            [0x00, 0x3c]
        );
    }

    #[test]
    fn nesting_is_flattened_and_bad_elements_are_named() {
        let bytes = to_bytes("x", DataType::I32, &[2usize, 2], &json!([[1, -2], [3, 4]])).unwrap();
        assert_eq!(
            to_json("x", DataType::I32, &bytes).unwrap(),
            json!([1, -2, 3, 4])
        );
        let err = to_bytes("x", DataType::F32, &[2u64, 2], &json!([1, 2, 3])).unwrap_err();
        assert!(
            err.to_string().contains("has 4 elements but data has 3"),
            "{err}"
        );
        let err = to_bytes("x", DataType::U8, &[1u64], &json!([300])).unwrap_err();
        assert!(
            err.to_string().contains("300 is not a valid UINT8"),
            "{err}"
        );
        let err = to_bytes("s", DataType::Bytes, &[1u64], &json!([3])).unwrap_err();
        assert!(err.to_string().contains("strings"), "{err}");
        let not_utf8 = encode_bytes([&[0xffu8][..]]);
        assert!(to_json("s", DataType::Bytes, &not_utf8).is_err());
    }
}
