//! `stable-diffusion`: a text-to-image generator of the Stable Diffusion 1.x family, from
//! candle-transformers' UNet, VAE and DDIM scheduler and a CLIP text encoder — for a user who
//! supplies weights (none ship with Vitrine; docs/images.md says how to add them). Tensors (no
//! batch dimension):
//!
//! - input `prompt`, BYTES `[1]`: what to draw (UTF-8);
//! - input `seed`, INT64 `[1]`: the starting noise (same prompt and seed, same picture);
//! - output `image`, UINT8 `[height, width, 3]`.
//!
//! Generation stops between denoising steps once no caller waits (deadline passed or gone).
//!
//! A version folder holds `diffusion.json` ([`Settings`]: sizes of the three networks, picture
//! size, steps, guidance), `text_encoder.safetensors`, `unet.safetensors`, `vae.safetensors`
//! (diffusers' tensor names) and `tokenizer.json` (a Hugging Face tokenizer).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor as CandleTensor};
use candle_nn::VarBuilder;
use candle_transformers::models::clip::text_model::{
    Activation, ClipTextConfig, ClipTextTransformer,
};
use candle_transformers::models::stable_diffusion::schedulers::SchedulerConfig;
use candle_transformers::models::stable_diffusion::{ddim, unet_2d, vae};
use serde::Deserialize;
use tokenizers::Tokenizer;

use super::LoadContext;
use crate::backend::ModelInstance;
use crate::config::ModelConfig;
use crate::error::{InferError, LoadError};
use crate::tensor::{DataType, Tensor};

/// The settings file of a version folder.
pub const SETTINGS_FILE: &str = "diffusion.json";
/// The weight files of a version folder.
pub const WEIGHT_FILES: [&str; 3] = [
    "text_encoder.safetensors",
    "unet.safetensors",
    "vae.safetensors",
];
/// The tokenizer file of a version folder.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Longest prompt accepted, in bytes.
pub const MAX_PROMPT_BYTES: usize = 4096;

/// `diffusion.json`: the three networks' sizes and how to sample.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Picture size in pixels (multiples of the VAE's reduction).
    pub width: usize,
    /// Picture height in pixels.
    pub height: usize,
    /// Denoising steps (DDIM).
    pub steps: usize,
    /// Classifier-free guidance scale (1: none).
    pub guidance_scale: f64,
    /// The CLIP text encoder (its `config.json` values).
    pub text_encoder: TextEncoder,
    /// The UNet: per block, output channels, transformer layers of cross-attention (none:
    /// no attention) and attention head size.
    pub unet_blocks: Vec<(usize, Option<usize>, usize)>,
    /// ResNet layers per UNet block.
    pub unet_layers_per_block: usize,
    /// Group-norm groups of the UNet.
    pub unet_norm_groups: usize,
    /// Whether the UNet's transformers project with linear layers (SD 2) or 1×1 convolutions.
    pub unet_linear_projection: bool,
    /// The VAE's block channels (its reduction is 2^(blocks - 1)).
    pub vae_blocks: Vec<usize>,
    /// ResNet layers per VAE block.
    pub vae_layers_per_block: usize,
    /// Group-norm groups of the VAE.
    pub vae_norm_groups: usize,
    /// The latents' scaling (0.18215 for SD 1.x).
    pub vae_scale: f64,
}

/// The CLIP text encoder's sizes (QuickGELU activation, as SD 1.x's).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TextEncoder {
    /// Token vocabulary size.
    pub vocab_size: usize,
    /// Hidden size (the UNet's cross-attention size).
    pub hidden_size: usize,
    /// Feed-forward size.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Tokens per prompt (prompts are cut or padded to it).
    pub max_position_embeddings: usize,
    /// Token id prompts are padded with.
    pub pad_token_id: u32,
}

impl Settings {
    fn clip(&self) -> ClipTextConfig {
        let t = &self.text_encoder;
        ClipTextConfig {
            vocab_size: t.vocab_size,
            embed_dim: t.hidden_size,
            activation: Activation::QuickGelu,
            intermediate_size: t.intermediate_size,
            max_position_embeddings: t.max_position_embeddings,
            pad_with: None,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            projection_dim: t.hidden_size,
        }
    }

    fn unet(&self) -> unet_2d::UNet2DConditionModelConfig {
        unet_2d::UNet2DConditionModelConfig {
            blocks: self
                .unet_blocks
                .iter()
                .map(
                    |&(out_channels, use_cross_attn, attention_head_dim)| unet_2d::BlockConfig {
                        out_channels,
                        use_cross_attn,
                        attention_head_dim,
                    },
                )
                .collect(),
            layers_per_block: self.unet_layers_per_block,
            norm_num_groups: self.unet_norm_groups,
            cross_attention_dim: self.text_encoder.hidden_size,
            use_linear_projection: self.unet_linear_projection,
            ..Default::default()
        }
    }

    fn vae(&self) -> vae::AutoEncoderKLConfig {
        vae::AutoEncoderKLConfig {
            block_out_channels: self.vae_blocks.clone(),
            layers_per_block: self.vae_layers_per_block,
            latent_channels: 4,
            norm_num_groups: self.vae_norm_groups,
            use_quant_conv: true,
            use_post_quant_conv: true,
        }
    }

    /// How many times smaller the latents are than the picture.
    fn reduction(&self) -> usize {
        1 << self.vae_blocks.len().saturating_sub(1)
    }
}

/// The three networks, built from `settings` with the weights `vb` gives for each file.
pub struct Networks {
    text: ClipTextTransformer,
    unet: unet_2d::UNet2DConditionModel,
    vae: vae::AutoEncoderKL,
}

impl Networks {
    /// Builds the networks; `vbs` are the text encoder's, the UNet's and the VAE's weights.
    pub fn new(settings: &Settings, vbs: [VarBuilder; 3]) -> candle_core::Result<Self> {
        let [text, unet, vae] = vbs;
        Ok(Self {
            text: ClipTextTransformer::new(text.pp("text_model"), &settings.clip())?,
            unet: unet_2d::UNet2DConditionModel::new(unet, 4, 4, false, settings.unet())?,
            vae: vae::AutoEncoderKL::new(vae, 3, 3, settings.vae())?,
        })
    }
}

/// Loads a `stable-diffusion` version folder.
pub fn load(
    context: &LoadContext<'_>,
    config: &ModelConfig,
    version_dir: &Path,
) -> Result<Arc<dyn ModelInstance>, LoadError> {
    let settings: Settings = super::read_json(&version_dir.join(SETTINGS_FILE))?;
    let (h, w) = (settings.height as i64, settings.width as i64);
    let fits = config.max_batch_size == 0
        && matches!(&config.inputs[..], [p, s]
            if p.name == "prompt" && p.datatype == DataType::Bytes && p.dims == [1]
            && s.name == "seed" && s.datatype == DataType::I64 && s.dims == [1])
        && matches!(&config.outputs[..], [o] if o.datatype == DataType::U8 && o.dims == [h, w, 3]);
    let reduction = settings.reduction();
    if !fits
        || !settings.width.is_multiple_of(reduction)
        || !settings.height.is_multiple_of(reduction)
        || settings.steps == 0
    {
        return Err(LoadError::Mismatch(format!(
            "stable-diffusion needs max_batch_size = 0, inputs 'prompt' BYTES [1] and 'seed' INT64 [1], one UINT8 output [{h}, {w}, 3] (the size in {SETTINGS_FILE}), a size that is a multiple of {reduction}, and steps > 0"
        )));
    }
    let tokenizer_path = version_dir.join(TOKENIZER_FILE);
    let tokenizer =
        Tokenizer::from_file(&tokenizer_path).map_err(super::file_error(&tokenizer_path))?;
    let weights = WEIGHT_FILES.map(|name| version_dir.join(name));
    // SAFETY: weight files are memory-mapped read-only; the repository never rewrites a
    // version folder in place.
    let vbs = weights.clone().map(|path| unsafe {
        VarBuilder::from_mmaped_safetensors(&[path], DType::F32, context.device)
    });
    let mut built = Vec::new();
    for (vb, path) in vbs.into_iter().zip(&weights) {
        built.push(vb.map_err(|source| LoadError::Weights {
            path: path.clone(),
            source,
        })?);
    }
    let vbs: [VarBuilder; 3] = built
        .try_into()
        .map_err(|_| LoadError::Mismatch("three weight files".into()))?;
    let networks = Networks::new(&settings, vbs).map_err(|source| LoadError::Weights {
        path: version_dir.to_path_buf(),
        source,
    })?;
    Ok(Arc::new(Diffusion {
        settings,
        networks,
        tokenizer,
        device: context.device.clone(),
        output: config.outputs[0].name.clone(),
    }))
}

struct Diffusion {
    settings: Settings,
    networks: Networks,
    tokenizer: Tokenizer,
    device: Device,
    output: String,
}

impl Diffusion {
    /// `prompt` as token ids, cut or padded to the text encoder's length.
    fn tokens(&self, prompt: &str) -> Result<Vec<u32>, InferError> {
        let t = &self.settings.text_encoder;
        let mut ids = self
            .tokenizer
            .encode(prompt, true)
            .map_err(|e| InferError::Invalid(format!("cannot tokenize the prompt: {e}")))?
            .get_ids()
            .to_vec();
        ids.truncate(t.max_position_embeddings);
        ids.resize(t.max_position_embeddings, t.pad_token_id);
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= t.vocab_size) {
            return Err(InferError::Compute(format!(
                "the tokenizer gave token {bad}, outside the text encoder's {} tokens",
                t.vocab_size
            )));
        }
        Ok(ids)
    }

    /// The text encoder's states for `tokens`: `[1, tokens, hidden]`.
    fn encode(&self, tokens: &[u32]) -> candle_core::Result<CandleTensor> {
        let ids = CandleTensor::new(tokens, &self.device)?.unsqueeze(0)?;
        self.networks.text.forward_with_mask(&ids, usize::MAX)
    }

    /// The picture for `prompt` (and the empty prompt, for guidance), as `[h, w, 3]` bytes;
    /// `None` if `stop()` turned true before a denoising step.
    fn generate(
        &self,
        prompt: &[u32],
        empty: &[u32],
        seed: u64,
        stop: &dyn Fn() -> bool,
    ) -> candle_core::Result<Option<Vec<u8>>> {
        let s = &self.settings;
        let guided = s.guidance_scale != 1.0;
        let text = self.encode(prompt)?;
        let context = if guided {
            CandleTensor::cat(&[self.encode(empty)?, text], 0)?
        } else {
            text
        };
        let mut scheduler = ddim::DDIMSchedulerConfig::default().build(s.steps)?;
        let shape = (1, 4, s.height / s.reduction(), s.width / s.reduction());
        let count = shape.0 * shape.1 * shape.2 * shape.3;
        let noise = CandleTensor::from_vec(normal(seed, count), shape, &self.device)?;
        let mut latents = (noise * scheduler.init_noise_sigma())?;
        for timestep in scheduler.timesteps().to_vec() {
            if stop() {
                return Ok(None);
            }
            let input = if guided {
                CandleTensor::cat(&[&latents, &latents], 0)?
            } else {
                latents.clone()
            };
            let input = scheduler.scale_model_input(input, timestep)?;
            let predicted = self
                .networks
                .unet
                .forward(&input, timestep as f64, &context)?;
            let predicted = if guided {
                let parts = predicted.chunk(2, 0)?;
                let (unconditional, conditional) = (&parts[0], &parts[1]);
                (unconditional + ((conditional - unconditional)? * s.guidance_scale)?)?
            } else {
                predicted
            };
            latents = scheduler.step(&predicted, timestep, &latents)?;
        }
        let image = self.networks.vae.decode(&(latents / s.vae_scale)?)?;
        let image = ((image / 2.0)? + 0.5)?.clamp(0f32, 1f32)?;
        let image = (image * 255.0)?.round()?.to_dtype(DType::U8)?;
        // [1, 3, h, w] → [h, w, 3]
        let pixels = image.squeeze(0)?.permute((1, 2, 0))?.flatten_all()?;
        Ok(Some(pixels.to_vec1::<u8>()?))
    }
}

impl ModelInstance for Diffusion {
    fn check(&self, inputs: &[Tensor]) -> Result<(), InferError> {
        let prompt = prompt(&inputs[0])?;
        if prompt.len() > MAX_PROMPT_BYTES {
            return Err(InferError::Invalid(format!(
                "the prompt has {} bytes, more than {MAX_PROMPT_BYTES}",
                prompt.len()
            )));
        }
        Ok(())
    }

    fn compute(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferError> {
        self.compute_until(inputs, &|| false)
    }

    /// Checks `stop` before each denoising step.
    fn compute_until(
        &self,
        inputs: &[Tensor],
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Tensor>, InferError> {
        let prompt = prompt(&inputs[0])?;
        let seed = i64::from_le_bytes(inputs[1].data[..8].try_into().expect("INT64 [1]"));
        let (tokens, empty) = (self.tokens(&prompt)?, self.tokens("")?);
        let pixels = self
            .generate(&tokens, &empty, seed as u64, stop)
            .map_err(|e| InferError::Compute(format!("generating: {e}")))?
            .ok_or_else(|| InferError::Abandoned("no caller waits for the picture".into()))?;
        let s = &self.settings;
        Ok(vec![Tensor::new(
            self.output.clone(),
            DataType::U8,
            vec![s.height, s.width, 3],
            pixels,
        )?])
    }
}

/// The text of a BYTES `[1]` tensor.
fn prompt(tensor: &Tensor) -> Result<String, InferError> {
    let elements = vitrine_oip::binary::decode_bytes(&tensor.data).map_err(InferError::Invalid)?;
    let bytes = elements
        .first()
        .ok_or_else(|| InferError::Invalid("the prompt is missing".into()))?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| InferError::Invalid("the prompt is not UTF-8".into()))
}

/// `count` standard normal values from `seed` (SplitMix64, Box–Muller): the same on every
/// device, which candle's CPU generator cannot be seeded to give.
fn normal(seed: u64, count: usize) -> Vec<f32> {
    let mut state = seed;
    let mut uniform = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        // In (0, 1].
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + f64::EPSILON
    };
    (0..count)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}
