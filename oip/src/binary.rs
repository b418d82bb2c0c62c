//! The binary tensor data extension: a body is a JSON message of
//! `inference-header-content-length` bytes followed by raw tensors, each announced in the JSON
//! by its `binary_data_size` parameter, in order. `BYTES` elements are each a 4-byte
//! little-endian length followed by the element's bytes, as Triton sends them.

use std::fmt::Debug;

use serde_json::json;

use crate::messages::{
    binary_data_size, InferenceRequest, InferenceResponse, Parameters, RequestInput,
};
use crate::{json_data, DataType, OipError};

/// The header giving the length of the JSON part of a body that carries binary tensors.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// A named tensor and its raw data: row-major little-endian elements, or for `BYTES` the
/// length-prefixed elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Input or output name.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Shape.
    pub shape: Vec<u64>,
    /// The elements.
    pub data: Vec<u8>,
}

impl Tensor {
    /// Checks that the data holds exactly the elements of the shape.
    pub fn check(&self) -> Result<(), OipError> {
        check_data(&self.name, self.datatype, &self.shape, &self.data)
    }
}

/// Checks that `data` holds exactly the elements of a `datatype` tensor of `shape`.
pub fn check_data<D: Copy + Debug + TryInto<usize>>(
    name: &str,
    datatype: DataType,
    shape: &[D],
    data: &[u8],
) -> Result<(), OipError> {
    let data_error = |problem: String| OipError::Data {
        name: name.to_string(),
        problem,
    };
    let fail = |problem: String| Err(data_error(problem));
    match datatype.byte_size(shape)? {
        Some(needed) if needed != data.len() => fail(format!(
            "shape {shape:?} of {datatype} needs {needed} bytes, got {}",
            data.len()
        )),
        Some(_) => Ok(()),
        None => {
            let elements = decode_bytes(data).map_err(data_error)?.len();
            let expected = crate::element_count(shape)?;
            if elements == expected {
                Ok(())
            } else {
                fail(format!(
                    "shape {shape:?} has {expected} elements but the BYTES data holds {elements}"
                ))
            }
        }
    }
}

/// Encodes `BYTES` elements: each a 4-byte little-endian length, then its bytes.
pub fn encode_bytes<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for element in elements {
        let length = u32::try_from(element.len()).expect("a BYTES element is under 4 GiB");
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(element);
    }
    out
}

/// Splits `BYTES` data into its elements.
pub fn decode_bytes(mut data: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut elements = Vec::new();
    while !data.is_empty() {
        let Some((length, rest)) = data.split_first_chunk::<4>() else {
            return Err("BYTES data ends inside an element's 4-byte length".into());
        };
        let length = u32::from_le_bytes(*length) as usize;
        if length > rest.len() {
            return Err(format!(
                "a BYTES element of {length} bytes runs past the data ({} left)",
                rest.len()
            ));
        }
        let (element, rest) = rest.split_at(length);
        elements.push(element);
        data = rest;
    }
    Ok(elements)
}

/// Splits a body into its JSON part and its binary part (empty without `header_length`).
pub fn split_body(body: &[u8], header_length: Option<usize>) -> Result<(&[u8], &[u8]), OipError> {
    match header_length {
        Some(n) if n > body.len() => Err(OipError::Message(format!(
            "Inference-Header-Content-Length is {n} but the body has only {} bytes",
            body.len()
        ))),
        Some(n) => Ok(body.split_at(n)),
        None => Ok((body, &[])),
    }
}

/// Takes the next `size` bytes of the binary part for tensor `name`.
pub fn take_binary<'a>(binary: &mut &'a [u8], size: u64, name: &str) -> Result<&'a [u8], OipError> {
    let size = usize::try_from(size)
        .ok()
        .filter(|size| *size <= binary.len())
        .ok_or_else(|| OipError::Data {
            name: name.to_string(),
            problem: format!(
                "binary_data_size {size} exceeds the {} binary bytes left in the body",
                binary.len()
            ),
        })?;
    let (data, rest) = binary.split_at(size);
    *binary = rest;
    Ok(data)
}

/// A request whose inputs travel as binary data and which asks for every output in binary;
/// `parameters` are added to the request's (`timeout`, `priority`). Returns the body and the
/// length of its JSON part (the [`HEADER_LENGTH`] header).
pub fn encode_request(inputs: &[Tensor], mut parameters: Parameters) -> (Vec<u8>, usize) {
    parameters.insert("binary_data_output".into(), json!(true));
    let request = InferenceRequest {
        parameters,
        inputs: inputs
            .iter()
            .map(|t| RequestInput {
                name: t.name.clone(),
                shape: t.shape.iter().map(|d| *d as i64).collect(),
                datatype: t.datatype.name().into(),
                parameters: [("binary_data_size".to_string(), json!(t.data.len()))]
                    .into_iter()
                    .collect(),
                data: None,
            })
            .collect(),
        ..InferenceRequest::default()
    };
    let mut body = serde_json::to_vec(&request).expect("a request serializes");
    let header_length = body.len();
    for t in inputs {
        body.extend_from_slice(&t.data);
    }
    (body, header_length)
}

/// Decodes a response body into its outputs, whether each came as binary data or as JSON.
pub fn decode_response(body: &[u8], header_length: Option<usize>) -> Result<Vec<Tensor>, OipError> {
    let (json, mut binary) = split_body(body, header_length)?;
    let response: InferenceResponse = serde_json::from_slice(json)
        .map_err(|e| OipError::Message(format!("not an inference response: {e}")))?;
    let tensors = response
        .outputs
        .into_iter()
        .map(|out| {
            let datatype = DataType::parse(&out.datatype)?;
            let fail = |problem: String| OipError::Data {
                name: out.name.clone(),
                problem,
            };
            let data = match (binary_data_size(&out.parameters).map_err(fail)?, &out.data) {
                (Some(size), _) => take_binary(&mut binary, size, &out.name)?.to_vec(),
                (None, Some(data)) => json_data::to_bytes(&out.name, datatype, &out.shape, data)?,
                (None, None) => return Err(fail("neither data nor binary_data_size".into())),
            };
            let tensor = Tensor {
                name: out.name,
                datatype,
                shape: out.shape,
                data,
            };
            tensor.check()?;
            Ok(tensor)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !binary.is_empty() {
        return Err(OipError::Message(format!(
            "{} binary bytes after the last output",
            binary.len()
        )));
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, datatype: DataType, shape: &[u64], data: Vec<u8>) -> Tensor {
        Tensor {
            name: name.into(),
            datatype,
            shape: shape.to_vec(),
            data,
        }
    }

    #[test]
    fn a_binary_request_has_its_json_then_its_tensors() {
        let words = encode_bytes([&b"summer"[..], b"wedding"]);
        let inputs = [
            tensor(
                "x",
                DataType::F32,
                &[1, 2],
                [1f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            tensor("text", DataType::Bytes, &[2], words.clone()),
        ];
        let mut parameters = Parameters::new();
        parameters.insert("timeout".into(), json!(1000));
        let (body, header) = encode_request(&inputs, parameters);
        let request: InferenceRequest = serde_json::from_slice(&body[..header]).unwrap();
        assert_eq!(request.parameters["binary_data_output"], json!(true));
        assert_eq!(request.parameters["timeout"], json!(1000));
        assert_eq!(request.inputs[1].datatype, "BYTES");
        assert_eq!(
            request.inputs[1].parameters["binary_data_size"],
            json!(words.len())
        );
        assert_eq!(&body[header + 8..], &words[..]);
    }

    #[test]
    fn responses_decode_binary_and_json_outputs() {
        let probabilities: Vec<u8> = [0.25f32, 0.75]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let json = serde_json::to_vec(&json!({
            "model_name": "m", "model_version": "1",
            "outputs": [
                { "name": "p", "datatype": "FP32", "shape": [1, 2],
                  "parameters": { "binary_data_size": 8 } },
                { "name": "label", "datatype": "BYTES", "shape": [1], "data": ["dress"] },
            ]
        }))
        .unwrap();
        let mut body = json.clone();
        body.extend_from_slice(&probabilities);
        let outputs = decode_response(&body, Some(json.len())).unwrap();
        assert_eq!(
            outputs[0],
            tensor("p", DataType::F32, &[1, 2], probabilities)
        );
        assert_eq!(decode_bytes(&outputs[1].data).unwrap(), [&b"dress"[..]]);
        // Truncated, over-long and inconsistent bodies are errors, never panics.
        assert!(decode_response(&body[..body.len() - 1], Some(json.len())).is_err());
        assert!(decode_response(&body, Some(body.len() + 1)).is_err());
        let mut extra = body.clone();
        extra.push(0);
        assert!(decode_response(&extra, Some(json.len())).is_err());
    }

    #[test]
    fn bytes_elements_are_length_prefixed() {
        let data = encode_bytes([&b"ab"[..], b"", b"c"]);
        assert_eq!(data, [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0, 1, 0, 0, 0, b'c']);
        assert_eq!(decode_bytes(&data).unwrap(), [&b"ab"[..], b"", b"c"]);
        assert!(decode_bytes(&data[..data.len() - 1]).is_err());
        assert!(decode_bytes(&[1, 0]).is_err());
        assert!(check_data("t", DataType::Bytes, &[3u64], &data).is_ok());
        let err = check_data("t", DataType::Bytes, &[2u64], &data).unwrap_err();
        assert!(err.to_string().contains("holds 3"), "{err}");
        let err = check_data("t", DataType::I64, &[2u64], &[0; 15]).unwrap_err();
        assert!(err.to_string().contains("needs 16 bytes, got 15"), "{err}");
    }
}
