//! The model repository: `<root>/<model>/config.toml` plus numbered version folders, loaded
//! through a backend, watched for changes, and loaded or unloaded on request.
//!
//! The newest version folder of a model is served. A model that fails to load is reported
//! unavailable with its reason; the others keep serving.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::error::{InferError, LoadError};
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;

/// A model ready to serve: its configuration, version and scheduler.
pub struct LoadedModel {
    /// Model name (its folder name).
    pub name: String,
    /// The served version.
    pub version: u64,
    /// Its configuration.
    pub config: ModelConfig,
    /// Its queue and instances.
    pub scheduler: Scheduler,
}

enum State {
    Ready(Arc<LoadedModel>),
    Unavailable {
        version: Option<u64>,
        reason: String,
    },
    Unloaded,
}

struct Entry {
    state: State,
    fingerprint: u64,
}

/// One row of the repository index.
#[derive(Debug, Serialize, PartialEq)]
pub struct IndexEntry {
    /// Model name.
    pub name: String,
    /// Served (or failing) version, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `READY`, `UNAVAILABLE` or `UNLOADED`.
    pub state: &'static str,
    /// Why the model is not ready (empty when it is).
    pub reason: String,
}

/// The models of one repository directory.
pub struct Repository {
    root: PathBuf,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    models: RwLock<BTreeMap<String, Entry>>,
}

impl Repository {
    /// Opens `root` and loads every model in it (failures are recorded, not fatal).
    pub fn open(
        root: &Path,
        backend: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("model repository {} is not a directory", root.display()),
            ));
        }
        let repo = Self {
            root: root.to_path_buf(),
            backend,
            metrics,
            models: RwLock::new(BTreeMap::new()),
        };
        repo.poll();
        Ok(repo)
    }

    /// The ready model `name`, or why it cannot serve.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, InferError> {
        let models = self.models.read().unwrap();
        let entry = models
            .get(name)
            .ok_or_else(|| InferError::NotFound(format!("unknown model '{name}'")))?;
        let model = match &entry.state {
            State::Ready(model) => model.clone(),
            State::Unavailable { reason, .. } => {
                return Err(InferError::Unavailable(format!(
                    "model '{name}' is unavailable: {reason}"
                )))
            }
            State::Unloaded => {
                return Err(InferError::Unavailable(format!(
                    "model '{name}' is unloaded"
                )))
            }
        };
        match version {
            Some(v) if v.parse::<u64>().ok() != Some(model.version) => {
                Err(InferError::NotFound(format!(
                    "model '{name}' has no version '{v}' loaded (serving version {})",
                    model.version
                )))
            }
            _ => Ok(model),
        }
    }

    /// Every model folder with its state.
    pub fn index(&self) -> Vec<IndexEntry> {
        let models = self.models.read().unwrap();
        models
            .iter()
            .map(|(name, entry)| {
                let (version, state, reason) = match &entry.state {
                    State::Ready(m) => (Some(m.version), "READY", String::new()),
                    State::Unavailable { version, reason } => {
                        (*version, "UNAVAILABLE", reason.clone())
                    }
                    State::Unloaded => (None, "UNLOADED", "unloaded by request".to_string()),
                };
                IndexEntry {
                    name: name.clone(),
                    version: version.map(|v| v.to_string()),
                    state,
                    reason,
                }
            })
            .collect()
    }

    /// Loads (or reloads) `name` from disk; the error says why it failed.
    pub fn load(&self, name: &str) -> Result<(), InferError> {
        let dir = self.root.join(name);
        if !valid_name(name) || !dir.is_dir() {
            return Err(InferError::NotFound(format!(
                "no model folder '{name}' in {}",
                self.root.display()
            )));
        }
        let fingerprint = fingerprint(&dir);
        let state = self.load_dir(name, &dir);
        let result = match &state {
            State::Unavailable { reason, .. } => Err(InferError::Invalid(format!(
                "failed to load '{name}': {reason}"
            ))),
            _ => Ok(()),
        };
        self.models
            .write()
            .unwrap()
            .insert(name.to_string(), Entry { state, fingerprint });
        result
    }

    /// Unloads `name`; queued requests still finish. It stays unloaded until [`Repository::load`].
    pub fn unload(&self, name: &str) -> Result<(), InferError> {
        let mut models = self.models.write().unwrap();
        let entry = models
            .get_mut(name)
            .ok_or_else(|| InferError::NotFound(format!("unknown model '{name}'")))?;
        entry.state = State::Unloaded;
        tracing::info!(model = name, "unloaded");
        Ok(())
    }

    /// Rescans the directory: loads new models, reloads changed ones, forgets removed ones.
    pub fn poll(&self) {
        let on_disk = self.model_dirs();
        let current: BTreeMap<String, u64> = {
            let models = self.models.read().unwrap();
            models
                .iter()
                .map(|(n, e)| (n.clone(), e.fingerprint))
                .collect()
        };
        for (name, dir) in &on_disk {
            let fingerprint = fingerprint(dir);
            if current.get(name) == Some(&fingerprint) {
                continue;
            }
            let unloaded = matches!(
                self.models.read().unwrap().get(name).map(|e| &e.state),
                Some(State::Unloaded)
            );
            let state = if unloaded {
                State::Unloaded
            } else {
                self.load_dir(name, dir)
            };
            self.models
                .write()
                .unwrap()
                .insert(name.clone(), Entry { state, fingerprint });
        }
        let mut models = self.models.write().unwrap();
        models.retain(|name, _| {
            let keep = on_disk.contains_key(name);
            if !keep {
                tracing::info!(model = %name, "model folder removed; no longer served");
            }
            keep
        });
    }

    /// Polls for changes every `interval` until the repository is dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("repository-watch".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                match weak.upgrade() {
                    Some(repo) => repo.poll(),
                    None => return,
                }
            })
            .expect("spawning the repository watcher");
    }

    fn model_dirs(&self) -> BTreeMap<String, PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return BTreeMap::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .filter(|(name, _)| valid_name(name))
            .collect()
    }

    fn load_dir(&self, name: &str, dir: &Path) -> State {
        let version = latest_version(dir);
        let result = (|| {
            let config = ModelConfig::load(&dir.join("config.toml"))?;
            let version = version.ok_or(LoadError::NoVersion)?;
            let instance = self.backend.load(&config, &dir.join(version.to_string()))?;
            let scheduler = Scheduler::start(name, &config, instance, self.metrics.clone());
            Ok::<_, LoadError>(LoadedModel {
                name: name.to_string(),
                version,
                config,
                scheduler,
            })
        })();
        match result {
            Ok(model) => {
                tracing::info!(model = name, version = model.version, "model ready");
                State::Ready(Arc::new(model))
            }
            Err(error) => {
                let reason = error.to_string();
                tracing::warn!(model = name, %reason, "model unavailable");
                State::Unavailable { version, reason }
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Why a model version could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install a model version at {path}: {source}")]
pub struct InstallError {
    /// The folder or file that could not be written.
    pub path: PathBuf,
    /// What went wrong.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Installs the next version of `<repository>/<name>`, the one way every model is written:
/// `write` fills a staging folder, which is renamed into place as `<latest + 1>/`, so a watching
/// worker never sees half a version. `config` becomes the model's `config.toml` if it has none.
/// Returns the version folder.
pub fn install_version(
    repository: &Path,
    name: &str,
    config: &str,
    write: impl FnOnce(&Path) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
) -> Result<PathBuf, InstallError> {
    let model_dir = repository.join(name);
    let version = latest_version(&model_dir).unwrap_or(0) + 1;
    let staging = model_dir.join(format!(".staging-{version}"));
    let fail = |path: &Path, source: std::io::Error| InstallError {
        path: path.to_path_buf(),
        source: source.into(),
    };
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| fail(&staging, e))?;
    if let Err(source) = write(&staging) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(InstallError {
            path: staging,
            source,
        });
    }
    let config_path = model_dir.join("config.toml");
    if !config_path.exists() {
        std::fs::write(&config_path, config).map_err(|e| fail(&config_path, e))?;
    }
    let version_dir = model_dir.join(version.to_string());
    std::fs::rename(&staging, &version_dir).map_err(|e| fail(&version_dir, e))?;
    Ok(version_dir)
}

/// The highest numbered version folder in a model folder, if any.
pub fn latest_version(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
}

/// A hash of every file's path, size and modification time under `dir`.
fn fingerprint(dir: &Path) -> u64 {
    fn walk(dir: &Path, files: &mut Vec<(PathBuf, u64, Option<std::time::SystemTime>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => walk(&path, files),
                Ok(meta) => files.push((path, meta.len(), meta.modified().ok())),
                Err(_) => {}
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    let mut hasher = DefaultHasher::new();
    files.hash(&mut hasher);
    hasher.finish()
}
