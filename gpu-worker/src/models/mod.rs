//! Model code, one module per architecture: the classifiers ([`classifier`]: an MLP and a CNN,
//! plain candle structs built from a `VarBuilder` so the names in a `model.safetensors` file
//! match the code), [`fraud_gnn`], the fraud GNN with its live graph, and [`text_embed`],
//! sentence embeddings from a BERT encoder, [`enhance`], Real-ESRGAN's super-resolution
//! networks, [`look_render`], the compositor of lookbook hero pictures, and [`diffusion`], a
//! Stable Diffusion 1.x-family generator for user-supplied weights. [`ARCHITECTURES`] is
//! the one table the backend loads from: a new model is a module plus a line there.

pub mod classifier;
mod cnn;
pub mod diffusion;
pub mod enhance;
pub mod fraud_gnn;
pub mod look_render;
mod mlp;
pub mod text_embed;

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;

pub use classifier::{build, Network};
pub use cnn::Cnn;
pub use mlp::Mlp;

use crate::backend::ModelInstance;
use crate::config::ModelConfig;
use crate::error::LoadError;

/// What a loader may use besides the model's version folder.
pub struct LoadContext<'a> {
    /// The device to compute on.
    pub device: &'a Device,
    /// The model's name in the repository.
    pub model: &'a str,
    /// Where models keep state of their own (the fraud GNN's live graph); in memory when `None`.
    pub state_dir: Option<&'a Path>,
}

/// The `model.safetensors` of a version folder, memory-mapped as float32 weights.
fn mapped_weights(
    context: &LoadContext<'_>,
    version_dir: &Path,
) -> Result<candle_nn::VarBuilder<'static>, LoadError> {
    let weights = version_dir.join(crate::backend::WEIGHTS_FILE);
    // SAFETY: the weights file is memory-mapped read-only; the repository never rewrites a
    // version folder in place (new versions are renamed in beside it).
    unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[&weights],
            candle_core::DType::F32,
            context.device,
        )
    }
    .map_err(|source| LoadError::Weights {
        path: weights,
        source,
    })
}

/// A load error naming the file `path` of a version folder.
fn file_error(path: &Path) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> LoadError + '_ {
    move |source| LoadError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// A JSON file of a version folder (a model's own configuration).
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    std::fs::read_to_string(path)
        .map_err(Into::into)
        .and_then(|text| serde_json::from_str(&text).map_err(Into::into))
        .map_err(file_error(path))
}

/// Loads one version folder of a model of some architecture, or says why it cannot.
pub type Loader =
    fn(&LoadContext<'_>, &ModelConfig, &Path) -> Result<Arc<dyn ModelInstance>, LoadError>;

/// An architecture a `config.toml` may name.
pub struct Architecture {
    /// The `architecture` value.
    pub name: &'static str,
    /// How a version folder of it is loaded.
    pub load: Loader,
    /// Whether a loaded model keeps state across requests (the fraud GNN's live graph): its
    /// calls must all reach the same worker.
    pub stateful: bool,
}

/// Every architecture, by name.
pub const ARCHITECTURES: &[Architecture] = &[
    Architecture {
        name: "mlp",
        load: classifier::load,
        stateful: false,
    },
    Architecture {
        name: "cnn",
        load: classifier::load,
        stateful: false,
    },
    Architecture {
        name: "fraud-gnn",
        load: fraud_gnn::load,
        stateful: true,
    },
    Architecture {
        name: "sentence-bert",
        load: text_embed::load,
        stateful: false,
    },
    Architecture {
        name: "srvgg",
        load: enhance::load_srvgg,
        stateful: false,
    },
    Architecture {
        name: "rrdbnet",
        load: enhance::load_rrdbnet,
        stateful: false,
    },
    Architecture {
        name: "stable-diffusion",
        load: diffusion::load,
        stateful: false,
    },
    Architecture {
        name: "look-render",
        load: look_render::load,
        stateful: false,
    },
];

/// The architecture named `name`, or an error listing the known ones.
pub fn architecture(name: &str) -> Result<&'static Architecture, LoadError> {
    ARCHITECTURES
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = ARCHITECTURES.iter().map(|a| a.name).collect();
            LoadError::UnknownArchitecture {
                name: name.to_string(),
                available: known.join(", "),
            }
        })
}
