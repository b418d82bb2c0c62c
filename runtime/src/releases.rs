//! Releases: immutable, content-addressed copies of an application, kept in the state
//! directory so that `vitrine up` can serve one (or, later, several at once) without the
//! sources it was built from.
//!
//! `<state>/releases` is an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`), so a
//! release copies between machines as a directory and OCI tools (`oras cp --from-oci-layout`)
//! can push it to a registry. A release is an OCI image manifest whose layers are its files,
//! each named by an `org.opencontainers.image.title` annotation (as ORAS names files): the
//! manifest `spin.toml`, rewritten to point at the release's own copies; each component's Wasm
//! (`components/<id>.wasm`) and dependencies (`components/<id>.deps/<n>.wasm`), with the media
//! type Spin's registry artifacts use; and each component's files as the guest sees them
//! (`files/<id>/…`). Its config blob holds the application's name and version, its variables
//! schema (names, required, secret, defaults of non-secret ones) and its components' digests.
//! The release's digest is the manifest's: the same application deployed twice is the same
//! release. Labels (`--version`) name releases in `index.json`; a label never moves to
//! another release.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component as PathPart, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::{stage_files, FilesError};
use crate::manifest::Manifest;

/// Media types of a release's parts.
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const ARTIFACT_TYPE: &str = "application/vnd.vitrine.release.v1";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.vitrine.release.config.v1+json";
/// As in Spin's registry artifacts.
const WASM_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";
const DATA_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+data";
const TOML_MEDIA_TYPE: &str = "application/toml";
/// OCI annotations.
const TITLE: &str = "org.opencontainers.image.title";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CREATED: &str = "org.opencontainers.image.created";
const VERSION: &str = "org.opencontainers.image.version";

/// Why a release could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// A file of the store or of the application could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A component's `files` could not be collected.
    #[error("component `{component}`: files: {source}")]
    Files {
        /// The component id.
        component: String,
        /// What went wrong.
        source: FilesError,
    },
    /// The manifest could not be rewritten or read back.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The label already names another release.
    #[error("version `{label}` already names release {digest}: labels never move; choose another --version")]
    LabelTaken {
        /// The label.
        label: String,
        /// The release it names.
        digest: String,
    },
    /// A label that is not one.
    #[error("version `{0}` is not a label: use letters, digits, `.`, `_` and `-` (up to 128, starting with a letter or digit)")]
    BadLabel(String),
    /// No release has this label or digest.
    #[error("no release `{0}` (see `vitrine releases`)")]
    NotFound(String),
    /// A digest prefix matches several releases.
    #[error("`{0}` matches several releases: give more of the digest")]
    Ambiguous(String),
    /// Stored content does not match its digest, or is not what a release holds.
    #[error("release store damaged: {0}")]
    Damaged(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A content descriptor (OCI).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// An OCI image manifest: a release.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    schema_version: u32,
    media_type: String,
    artifact_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// The OCI layout's `index.json`: the labelled releases.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    manifests: Vec<Descriptor>,
}

/// What a release's config blob holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReleaseConfig {
    /// `[application]` name.
    pub name: String,
    /// `[application]` version, if any.
    pub version: Option<String>,
    /// The variables schema.
    pub variables: BTreeMap<String, VariableSchema>,
    /// Each component's Wasm digest.
    pub components: BTreeMap<String, String>,
}

/// One application variable, as a release declares it.
#[derive(Debug, Serialize, Deserialize)]
pub struct VariableSchema {
    /// Startup fails when no provider has a value.
    pub required: bool,
    /// The value is sensitive (its default is not recorded).
    pub secret: bool,
    /// The default, unless secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A labelled release, as [`ReleaseStore::list`] shows it.
#[derive(Debug, Clone)]
pub struct ReleaseInfo {
    /// The label (`--version`).
    pub label: String,
    /// `sha256:…` of the release manifest.
    pub digest: String,
    /// When it was labelled (RFC 3339).
    pub created: String,
    /// The application's name.
    pub application: String,
    /// How many components it has.
    pub components: usize,
    /// Bytes of its files.
    pub size: u64,
}

/// The releases of one state directory.
#[derive(Debug, Clone)]
pub struct ReleaseStore {
    root: PathBuf,
}

impl ReleaseStore {
    /// The store in `state_dir` (created when first written).
    pub fn new(state_dir: &Path) -> Self {
        Self {
            root: state_dir.join("releases"),
        }
    }

    /// Stores the application of `manifest` (its sources built) as a release and returns its
    /// digest; the same application stored again gives the same digest. It is listed once
    /// [`Self::label`]led.
    pub fn store(&self, manifest: &Manifest) -> Result<String, ReleaseError> {
        let files = collect(
            manifest,
            &self.root.join(format!("tmp-{}", std::process::id())),
        )?;
        let mut layers = Vec::new();
        for (title, content) in &files {
            let media_type = match title.as_str() {
                "spin.toml" => TOML_MEDIA_TYPE,
                t if t.starts_with("components/") => WASM_MEDIA_TYPE,
                _ => DATA_MEDIA_TYPE,
            };
            let mut descriptor = self.put_blob(media_type, content)?;
            descriptor.annotations.insert(TITLE.into(), title.clone());
            layers.push(descriptor);
        }
        let digest_of = |title: &str| {
            layers
                .iter()
                .find(|l| l.annotations.get(TITLE).map(String::as_str) == Some(title))
                .map(|l| l.digest.clone())
                .unwrap_or_default()
        };
        let config = ReleaseConfig {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            variables: manifest
                .variables
                .iter()
                .map(|(name, v)| {
                    let schema = VariableSchema {
                        required: v.required,
                        secret: v.secret,
                        default: v.default.clone().filter(|_| !v.secret),
                    };
                    (name.clone(), schema)
                })
                .collect(),
            components: manifest
                .components
                .keys()
                .map(|id| (id.clone(), digest_of(&format!("components/{id}.wasm"))))
                .collect(),
        };
        let config = self.put_blob(CONFIG_MEDIA_TYPE, &to_json(&config)?)?;
        let mut annotations = BTreeMap::from([(TITLE.to_string(), manifest.name.clone())]);
        if let Some(version) = &manifest.version {
            annotations.insert(VERSION.into(), version.clone());
        }
        let image = ImageManifest {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE.into(),
            artifact_type: ARTIFACT_TYPE.into(),
            config,
            layers,
            annotations,
        };
        Ok(self
            .put_blob(MANIFEST_MEDIA_TYPE, &to_json(&image)?)?
            .digest)
    }

    /// Names release `digest` `label`; `Ok(false)` if the label already named it. A label
    /// never moves to another release.
    pub fn label(&self, digest: &str, label: &str) -> Result<bool, ReleaseError> {
        check_label(label)?;
        let image = self.read_blob(digest)?;
        let _lock = self.lock()?;
        let mut index = self.index()?;
        if let Some(named) = index
            .manifests
            .iter()
            .find(|m| m.annotations.get(REF_NAME).map(String::as_str) == Some(label))
        {
            return match named.digest == digest {
                true => Ok(false),
                false => Err(ReleaseError::LabelTaken {
                    label: label.into(),
                    digest: named.digest.clone(),
                }),
            };
        }
        let mut descriptor = Descriptor {
            media_type: MANIFEST_MEDIA_TYPE.into(),
            digest: digest.into(),
            size: image.len() as u64,
            annotations: BTreeMap::new(),
        };
        descriptor.annotations = BTreeMap::from([
            (REF_NAME.to_string(), label.to_string()),
            (
                CREATED.to_string(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        ]);
        index.manifests.push(descriptor);
        self.write_atomically(&self.root.join("index.json"), &to_json(&index)?)?;
        Ok(true)
    }

    /// The labelled releases, oldest first.
    pub fn list(&self) -> Result<Vec<ReleaseInfo>, ReleaseError> {
        self.index()?
            .manifests
            .iter()
            .map(|entry| {
                let image = self.image(&entry.digest)?;
                let config: ReleaseConfig = from_json(&self.read_blob(&image.config.digest)?)?;
                Ok(ReleaseInfo {
                    label: entry.annotations.get(REF_NAME).cloned().unwrap_or_default(),
                    digest: entry.digest.clone(),
                    created: entry.annotations.get(CREATED).cloned().unwrap_or_default(),
                    application: config.name,
                    components: config.components.len(),
                    size: image.layers.iter().map(|l| l.size).sum(),
                })
            })
            .collect()
    }

    /// The digest of the release `reference` names: a label, a digest (`sha256:…`), or a
    /// unique prefix of one (at least 6 hex digits, with or without `sha256:`).
    pub fn resolve(&self, reference: &str) -> Result<String, ReleaseError> {
        let index = self.index()?;
        if let Some(entry) = index
            .manifests
            .iter()
            .find(|m| m.annotations.get(REF_NAME).map(String::as_str) == Some(reference))
        {
            return Ok(entry.digest.clone());
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() < 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReleaseError::NotFound(reference.into()));
        }
        let mut found: Vec<&str> = index
            .manifests
            .iter()
            .map(|m| m.digest.as_str())
            .filter(|d| d.trim_start_matches("sha256:").starts_with(hex))
            .collect();
        found.dedup();
        match found.as_slice() {
            [one] => Ok(one.to_string()),
            [] => Err(ReleaseError::NotFound(reference.into())),
            _ => Err(ReleaseError::Ambiguous(reference.into())),
        }
    }

    /// Unpacks release `digest` (once; checked against its digests) and returns the path of
    /// its `spin.toml`, ready for [`Manifest::load`].
    pub fn unpack(&self, digest: &str) -> Result<PathBuf, ReleaseError> {
        let hex = hex_of(digest)?;
        let dir = self.root.join("unpacked").join(hex);
        if dir.join("spin.toml").is_file() {
            return Ok(dir.join("spin.toml"));
        }
        let image = self.image(digest)?;
        let tmp = self
            .root
            .join(format!("unpacked/tmp-{hex}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        for layer in &image.layers {
            let title = layer
                .annotations
                .get(TITLE)
                .filter(|t| is_plain_relative(t))
                .ok_or_else(|| {
                    ReleaseError::Damaged(format!("layer {} has no usable title", layer.digest))
                })?;
            let path = tmp.join(title);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&path, self.read_blob(&layer.digest)?).map_err(io(&path))?;
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(dir.join("spin.toml")),
            // Another process unpacked it first.
            Err(_) if dir.join("spin.toml").is_file() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dir.join("spin.toml"))
            }
            Err(e) => Err(io(&dir)(e)),
        }
    }

    /// The release manifest `digest`.
    fn image(&self, digest: &str) -> Result<ImageManifest, ReleaseError> {
        let image: ImageManifest = from_json(&self.read_blob(digest)?)?;
        if image.artifact_type != ARTIFACT_TYPE {
            return Err(ReleaseError::Damaged(format!("{digest} is not a release")));
        }
        Ok(image)
    }

    fn index(&self) -> Result<Index, ReleaseError> {
        let path = self.root.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => from_json(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                manifests: Vec::new(),
            }),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Holds the store's lock (one writer of `index.json` at a time, across processes).
    fn lock(&self) -> Result<std::fs::File, ReleaseError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let path = self.root.join("index.lock");
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }

    /// Stores `content` as a blob (once) and describes it.
    fn put_blob(&self, media_type: &str, content: &[u8]) -> Result<Descriptor, ReleaseError> {
        let hex = hex::encode(Sha256::digest(content));
        let path = self.root.join("blobs/sha256").join(&hex);
        if !path.is_file() {
            let layout = self.root.join("oci-layout");
            if !layout.is_file() {
                self.write_atomically(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            }
            self.write_atomically(&path, content)?;
        }
        Ok(Descriptor {
            media_type: media_type.into(),
            digest: format!("sha256:{hex}"),
            size: content.len() as u64,
            annotations: BTreeMap::new(),
        })
    }

    /// The blob `digest`, checked against it.
    fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ReleaseError> {
        let hex = hex_of(digest)?;
        let path = self.root.join("blobs/sha256").join(hex);
        let content = match std::fs::read(&path) {
            Ok(content) => content,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ReleaseError::Damaged(format!("blob {digest} is missing")))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        if hex::encode(Sha256::digest(&content)) != hex {
            return Err(ReleaseError::Damaged(format!(
                "blob {digest} does not match its digest"
            )));
        }
        Ok(content)
    }

    /// Writes `content` to `path` through a temporary file and a rename, so that a reader never
    /// sees half a file.
    fn write_atomically(&self, path: &Path, content: &[u8]) -> Result<(), ReleaseError> {
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut tmp = tempfile_in(dir)?;
        tmp.1.write_all(content).map_err(io(&tmp.0))?;
        tmp.1.sync_all().map_err(io(&tmp.0))?;
        std::fs::rename(&tmp.0, path).map_err(io(path))
    }
}

/// A new file with a unique name in `dir`.
fn tempfile_in(dir: &Path) -> Result<(PathBuf, std::fs::File), ReleaseError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(".tmp-{}-{n}", std::process::id()));
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    Ok((path, file))
}

/// The hex part of `sha256:<64 hex digits>`.
fn hex_of(digest: &str) -> Result<&str, ReleaseError> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ReleaseError::Damaged(format!("`{digest}` is not a sha256 digest")))
}

/// A label: 1–128 of letters, digits, `.`, `_`, `-`, starting with a letter or digit (an OCI
/// tag's alphabet).
fn check_label(label: &str) -> Result<(), ReleaseError> {
    let ok = !label.is_empty()
        && label.len() <= 128
        && label
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match ok {
        true => Ok(()),
        false => Err(ReleaseError::BadLabel(label.into())),
    }
}

/// A relative path without `..`, so unpacking stays inside its directory.
fn is_plain_relative(path: &str) -> bool {
    let path = Path::new(path);
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, PathPart::Normal(_)))
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, ReleaseError> {
    serde_json::to_vec(value).map_err(|e| ReleaseError::Manifest(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ReleaseError> {
    serde_json::from_slice(bytes).map_err(|e| ReleaseError::Damaged(e.to_string()))
}

/// Every file of the release by its path in it: the rewritten `spin.toml`, the components'
/// Wasm and dependencies, and their files as the guest sees them. `scratch` is a working
/// directory (removed before returning).
pub(crate) fn collect(
    manifest: &Manifest,
    scratch: &Path,
) -> Result<BTreeMap<String, Vec<u8>>, ReleaseError> {
    let text = std::fs::read_to_string(&manifest.path).map_err(io(&manifest.path))?;
    let mut raw: toml::Table =
        toml::from_str(&text).map_err(|e| ReleaseError::Manifest(e.to_string()))?;
    let mut files = BTreeMap::new();
    let read = |path: &Path| std::fs::read(path).map_err(io(path));
    let result = (|| {
        for (id, component) in &manifest.components {
            let table = raw
                .get_mut("component")
                .and_then(|c| c.get_mut(id.as_str()))
                .and_then(toml::Value::as_table_mut)
                .ok_or_else(|| ReleaseError::Manifest(format!("no [component.{id}] table")))?;
            let source = format!("components/{id}.wasm");
            files.insert(source.clone(), read(&component.source)?);
            table.insert("source".into(), source.into());
            table.remove("build");
            table.remove("exclude_files");
            if let Some(deps) = table
                .get_mut("dependencies")
                .and_then(toml::Value::as_table_mut)
            {
                for (n, dependency) in component.dependencies.iter().enumerate() {
                    let path = format!("components/{id}.deps/{n}.wasm");
                    files.insert(path.clone(), read(&dependency.path)?);
                    let mut entry = toml::Table::new();
                    entry.insert("path".into(), path.into());
                    deps.insert(dependency.name.clone(), entry.into());
                }
            }
            table.remove("files");
            let mounts = stage_files(component, manifest.dir(), scratch).map_err(|source| {
                ReleaseError::Files {
                    component: id.clone(),
                    source,
                }
            })?;
            let mut any = false;
            for (host, guest) in mounts {
                for file in walk(&host)? {
                    let rel = file.strip_prefix(&host).unwrap_or(&file);
                    let guest = Path::new(guest.trim_start_matches('/')).join(rel);
                    let title = format!("files/{id}/{}", guest.to_string_lossy());
                    files.insert(title, read(&file)?);
                    any = true;
                }
            }
            if any {
                let mut mount = toml::Table::new();
                mount.insert("source".into(), format!("files/{id}").into());
                mount.insert("destination".into(), "/".into());
                table.insert("files".into(), vec![toml::Value::Table(mount)].into());
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(scratch);
    result?;
    let text = toml::to_string(&raw).map_err(|e| ReleaseError::Manifest(e.to_string()))?;
    files.insert("spin.toml".into(), text.into_bytes());
    Ok(files)
}

/// The files under `dir`, recursively, in name order.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, ReleaseError> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(out)
}
