//! Reads the weights of an ncnn model (`.param` text and `.bin` blob), as Real-ESRGAN ships them
//! for its Vulkan runner, in layer order. Only the layer types our enhancement networks use are
//! accepted: `Convolution` (weights stored as float32 or float16 behind ncnn's 4-byte tag; bias
//! as plain float32) and `PReLU` (plain float32 slopes), plus the weightless layers that wire
//! them together. Any other layer is refused, so a model we do not understand is never
//! converted silently.
//!
//! The format is ncnn's own (`src/net.cpp`, `src/modelbin.cpp`, `src/paramdict.cpp`): a magic
//! line `7767517`, a `layers blobs` count line, then one line per layer:
//! `type name inputs outputs input-blobs… output-blobs… key=value…`.

use candle_core::{Device, Tensor};

/// Layer types without weights that the enhancement graphs use.
const WEIGHTLESS: &[&str] = &[
    "Input",
    "Split",
    "Concat",
    "Eltwise",
    "BinaryOp",
    "Interp",
    "PixelShuffle",
];

/// ncnn's tag before float16 weights.
const FP16_TAG: u32 = 0x0130_6B47;

/// Why an ncnn model could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NcnnError {
    /// The `.param` text is not what ncnn writes.
    #[error("param line {line}: {message}")]
    Param {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A layer type this reader does not convert.
    #[error("layer '{name}' has type {kind}, which the converter does not know")]
    UnknownLayer {
        /// The layer's name.
        name: String,
        /// Its type.
        kind: String,
    },
    /// The `.bin` blob is shorter or longer than the layers need, or holds quantized weights.
    #[error("weights: {0}")]
    Bin(String),
    /// candle could not build a tensor.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// One layer that carries weights, in graph order.
#[derive(Debug)]
pub enum WeightLayer {
    /// A 2-D convolution: weight `[out, in, k, k]` and optional bias `[out]`.
    Convolution {
        /// The layer's name in the `.param` file.
        name: String,
        /// The kernel.
        weight: Tensor,
        /// The bias, if the layer has one.
        bias: Option<Tensor>,
        /// ncnn's fused activation (0 none, 1 ReLU, 2 leaky ReLU, …) and its parameters.
        activation: (i64, Vec<f32>),
    },
    /// A per-channel PReLU: slopes `[channels]`.
    PRelu {
        /// The layer's name.
        name: String,
        /// The slopes.
        weight: Tensor,
    },
}

/// A layer's `key=value` parameters; arrays (negative keys below -23300) keep their values.
struct Params(Vec<(i64, Vec<f32>)>);

impl Params {
    fn parse(fields: &[&str]) -> Result<Self, String> {
        let mut values = Vec::new();
        for field in fields {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| format!("'{field}' is not key=value"))?;
            let key: i64 = key.parse().map_err(|_| format!("bad key in '{field}'"))?;
            let number = |s: &str| {
                s.parse::<f32>()
                    .map_err(|_| format!("bad value in '{field}'"))
            };
            let parsed = if key <= -23300 {
                // An array: its length, then the elements.
                let mut items = value.split(',');
                let _length = items.next();
                items.map(number).collect::<Result<Vec<_>, _>>()?
            } else {
                vec![number(value)?]
            };
            values.push((if key <= -23300 { -key - 23300 } else { key }, parsed));
        }
        Ok(Self(values))
    }

    fn get(&self, key: i64) -> Option<&[f32]> {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice())
    }

    fn int(&self, key: i64, default: i64) -> i64 {
        self.get(key).map_or(default, |v| v[0] as i64)
    }
}

/// A cursor over the `.bin` blob.
struct Blob<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Blob<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], NcnnError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            NcnnError::Bin(format!(
                "the file ends at byte {} but the layers need more",
                self.bytes.len()
            ))
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// `n` plain float32 values (ncnn's `load(n, 1)`).
    fn floats(&mut self, n: usize) -> Result<Vec<f32>, NcnnError> {
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// `n` tagged values (ncnn's `load(n, 0)`): float16 behind its tag, or float32 behind a
    /// zero tag.
    fn tagged(&mut self, n: usize) -> Result<Vec<f32>, NcnnError> {
        let tag = self.take(4)?;
        let tag = u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]);
        match tag {
            FP16_TAG => {
                let values = self
                    .take(n * 2)?
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect();
                // float16 data is padded to a multiple of 4 bytes.
                self.take((4 - (n * 2) % 4) % 4)?;
                Ok(values)
            }
            0 => self.floats(n),
            other => Err(NcnnError::Bin(format!(
                "weights tagged {other:#010x} (quantized or unknown storage) are not supported"
            ))),
        }
    }
}

/// The weight-carrying layers of an ncnn model, in graph order, as float32 tensors on the CPU.
pub fn read(param: &str, bin: &[u8]) -> Result<Vec<WeightLayer>, NcnnError> {
    let bad = |line: usize, message: String| NcnnError::Param { line, message };
    let mut lines = param.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, magic)) if magic.trim() == "7767517" => {}
        _ => return Err(bad(1, "not an ncnn param file (no 7767517 magic)".into())),
    }
    let (_, counts) = lines
        .next()
        .ok_or_else(|| bad(2, "the layer count line is missing".into()))?;
    let layer_count: usize = counts
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad(2, format!("'{counts}' is not 'layers blobs'")))?;
    let mut blob = Blob { bytes: bin, at: 0 };
    let mut layers = Vec::new();
    let mut seen = 0;
    for (number, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        seen += 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [kind, name, inputs, outputs, ..] = fields[..] else {
            return Err(bad(
                number,
                "a layer line needs type, name and blob counts".into(),
            ));
        };
        let count = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| bad(number, format!("'{s}' is not a blob count")))
        };
        let blobs = count(inputs)? + count(outputs)?;
        let rest = fields
            .get(4 + blobs..)
            .ok_or_else(|| bad(number, "fewer blob names than counted".into()))?;
        let params = Params::parse(rest).map_err(|m| bad(number, m))?;
        let name = name.to_string();
        match kind {
            "Convolution" => {
                let out = params.int(0, 0) as usize;
                let kernel = params.int(1, 0) as usize;
                let size = params.int(6, 0) as usize;
                if out == 0 || kernel == 0 || !size.is_multiple_of(out * kernel * kernel) {
                    return Err(bad(
                        number,
                        format!("convolution '{name}': weight size {size} does not divide into {out} outputs of {kernel}x{kernel}"),
                    ));
                }
                for (key, default, what) in [(2, 1, "dilation"), (3, 1, "stride")] {
                    if params.int(key, default) != 1 {
                        return Err(bad(
                            number,
                            format!("convolution '{name}': {what} other than 1 is not supported"),
                        ));
                    }
                }
                if params.int(4, 0) as usize != kernel / 2 {
                    return Err(bad(
                        number,
                        format!("convolution '{name}': only 'same' padding is supported"),
                    ));
                }
                let input = size / (out * kernel * kernel);
                let weight = blob.tagged(size)?;
                let weight = Tensor::from_vec(weight, (out, input, kernel, kernel), &Device::Cpu)?;
                let bias = match params.int(5, 0) {
                    0 => None,
                    _ => Some(Tensor::from_vec(blob.floats(out)?, out, &Device::Cpu)?),
                };
                let activation = (
                    params.int(9, 0),
                    params.get(10).map(<[f32]>::to_vec).unwrap_or_default(),
                );
                layers.push(WeightLayer::Convolution {
                    name,
                    weight,
                    bias,
                    activation,
                });
            }
            "PReLU" => {
                let slopes = params.int(0, 0) as usize;
                let weight = Tensor::from_vec(blob.floats(slopes)?, slopes, &Device::Cpu)?;
                layers.push(WeightLayer::PRelu { name, weight });
            }
            kind if WEIGHTLESS.contains(&kind) => {}
            kind => {
                return Err(NcnnError::UnknownLayer {
                    name,
                    kind: kind.to_string(),
                })
            }
        }
    }
    if seen != layer_count {
        return Err(bad(
            2,
            format!("the file announces {layer_count} layers but holds {seen}"),
        ));
    }
    if blob.at != bin.len() {
        return Err(NcnnError::Bin(format!(
            "the layers use {} of the file's {} bytes",
            blob.at,
            bin.len()
        )));
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv_param(extra: &str) -> String {
        format!("7767517\n3 3\nInput in 0 1 data\nConvolution c0 1 1 data a 0=2 1=1 4=0 5=1 6=2 {extra}\nPReLU p0 1 1 a out 0=2\n")
    }

    #[test]
    fn reads_float16_and_float32_weights_with_bias_and_slopes() {
        let mut bin = FP16_TAG.to_le_bytes().to_vec();
        for v in [1.5f32, -2.0] {
            bin.extend(half::f16::from_f32(v).to_le_bytes());
        }
        for v in [0.25f32, 0.5, 0.1, 0.2] {
            bin.extend(v.to_le_bytes());
        }
        let layers = read(&conv_param("9=2 -23310=1,2.000000e-01"), &bin).unwrap();
        let [WeightLayer::Convolution {
            weight,
            bias: Some(bias),
            activation,
            ..
        }, WeightLayer::PRelu { weight: slopes, .. }] = &layers[..]
        else {
            panic!("unexpected layers {layers:?}");
        };
        assert_eq!(weight.dims(), [2, 1, 1, 1]);
        let w: Vec<f32> = weight.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(w, [1.5, -2.0]);
        assert_eq!(bias.to_vec1::<f32>().unwrap(), [0.25, 0.5]);
        assert_eq!(slopes.to_vec1::<f32>().unwrap(), [0.1, 0.2]);
        assert_eq!(activation, &(2, vec![0.2]));

        let mut f32_bin = 0u32.to_le_bytes().to_vec();
        for v in [1.5f32, -2.0, 0.25, 0.5, 0.1, 0.2] {
            f32_bin.extend(v.to_le_bytes());
        }
        let layers = read(&conv_param(""), &f32_bin).unwrap();
        let WeightLayer::Convolution { weight, .. } = &layers[0] else {
            panic!()
        };
        let w: Vec<f32> = weight.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(w, [1.5, -2.0]);
    }

    #[test]
    fn refuses_short_long_quantized_and_unknown_models() {
        let mut bin = 0u32.to_le_bytes().to_vec();
        for v in [1.5f32, -2.0, 0.25, 0.5, 0.1, 0.2] {
            bin.extend(v.to_le_bytes());
        }
        let param = conv_param("");
        let short = read(&param, &bin[..bin.len() - 4]).unwrap_err();
        assert!(short.to_string().contains("the file ends"), "{short}");
        let mut long = bin.clone();
        long.extend([0; 4]);
        let long = read(&param, &long).unwrap_err();
        assert!(
            long.to_string().contains("use 28 of the file's 32"),
            "{long}"
        );
        let mut int8 = bin.clone();
        int8[..4].copy_from_slice(&0x000D_4B38u32.to_le_bytes());
        let int8 = read(&param, &int8).unwrap_err();
        assert!(int8.to_string().contains("quantized"), "{int8}");
        let unknown = read(&param.replace("PReLU", "Deconvolution"), &bin).unwrap_err();
        assert!(
            matches!(unknown, NcnnError::UnknownLayer { .. }),
            "{unknown}"
        );
        let miscounted = read(&param.replace("3 3", "4 3"), &bin).unwrap_err();
        assert!(miscounted.to_string().contains("announces 4 layers"));
        assert!(read("7767", &bin).is_err());
        let strided = read(&conv_param("3=2"), &bin).unwrap_err();
        assert!(strided.to_string().contains("stride"), "{strided}");
    }
}
