//! An application as a self-contained Spin application directory, for stock Spin and SpinKube
//! (`spin registry push` publishes it; a `SpinApp` runs it): the same files as a release —
//! `spin.toml` rewritten to point at its own copies, each component's Wasm, its files — with
//! every component that imports `wasi:nn` composed ahead of time with the `nn-remote` adapter,
//! which turns its inference into Open Inference Protocol requests to a worker. Stock Spin has
//! no `wasi:nn` of ours; the composed components need only `wasi:http`, which it has.

use std::path::{Path, PathBuf};

use crate::compose::{compose, imports, ComposeError};
use crate::manifest::{Dependency, Manifest};
use crate::releases::{collect, ReleaseError};

/// The package the adapter satisfies.
const WASI_NN: &str = "wasi:nn";

/// Where composed components send their inference.
#[derive(Debug, Clone)]
pub struct RemoteNn {
    /// The `nn-remote` adapter component (`nn_remote.wasm`).
    pub adapter: PathBuf,
    /// The worker's base URL (`http://host:port`), as the functions will reach it.
    pub url: String,
}

/// Why the directory could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The application's files could not be collected.
    #[error(transparent)]
    Collect(#[from] ReleaseError),
    /// A component could not be composed with the adapter.
    #[error("component `{component}`: {source}")]
    Compose {
        /// The component id.
        component: String,
        /// What went wrong.
        source: ComposeError,
    },
    /// The worker URL is not an `http(s)://host[:port]` origin.
    #[error("worker URL `{0}`: expected http://host[:port] or https://host[:port]")]
    BadUrl(String),
    /// The output directory exists and is not empty.
    #[error("{0}: exists and is not empty; remove it or choose another")]
    NotEmpty(PathBuf),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Writes the application of `manifest` (its sources built) into `out` (created; it must be
/// absent or empty) and returns the ids of the components composed with the adapter.
pub fn export(manifest: &Manifest, nn: &RemoteNn, out: &Path) -> Result<Vec<String>, ExportError> {
    let url = origin(&nn.url)?;
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ExportError::NotEmpty(out.to_path_buf()));
    }
    let mut files = collect(manifest, &out.with_extension("tmp-files"))?;
    let text = String::from_utf8_lossy(&files["spin.toml"]).into_owned();
    let mut raw: toml::Table = toml::from_str(&text)
        .map_err(|e| ExportError::Collect(ReleaseError::Manifest(e.to_string())))?;
    let mut composed = Vec::new();
    for (id, component) in &manifest.components {
        let compose_error = |source| ExportError::Compose {
            component: id.clone(),
            source,
        };
        let bytes = &files[&format!("components/{id}.wasm")];
        let covered = |import: &String| {
            component
                .dependencies
                .iter()
                .any(|d| crate::compose::satisfies(&d.name, import))
        };
        let needs_nn = imports(bytes)
            .map_err(compose_error)?
            .iter()
            .any(|i| i.starts_with("wasi:nn/") && !covered(i));
        if !needs_nn {
            continue;
        }
        let mut dependencies = component.dependencies.clone();
        dependencies.push(Dependency {
            name: WASI_NN.into(),
            path: nn.adapter.clone(),
        });
        let wasm = compose(bytes, &dependencies).map_err(compose_error)?;
        files.insert(format!("components/{id}.wasm"), wasm);
        files.retain(|path, _| !path.starts_with(&format!("components/{id}.deps/")));
        if let Some(table) = raw
            .get_mut("component")
            .and_then(|c| c.get_mut(id.as_str()))
            .and_then(toml::Value::as_table_mut)
        {
            wire_to_worker(table, &url);
        }
        composed.push(id.clone());
    }
    let text = toml::to_string(&raw)
        .map_err(|e| ExportError::Collect(ReleaseError::Manifest(e.to_string())))?;
    files.insert("spin.toml".into(), text.into_bytes());
    for (name, content) in &files {
        let path = out.join(name);
        let io = |source| ExportError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, content).map_err(io)?;
    }
    Ok(composed)
}

/// A composed component's manifest entry: its dependencies are inside it now, the host's AI
/// models are no longer what it uses, and the adapter reads the worker's URL from the
/// environment and may reach it.
fn wire_to_worker(table: &mut toml::Table, url: &str) {
    table.remove("dependencies");
    table.remove("dependencies_inherit_configuration");
    table.remove("ai_models");
    let environment = table
        .entry("environment")
        .or_insert_with(|| toml::Table::new().into());
    if let Some(environment) = environment.as_table_mut() {
        environment.insert("VITRINE_NN_URL".into(), url.into());
    }
    let hosts = table
        .entry("allowed_outbound_hosts")
        .or_insert_with(|| toml::value::Array::new().into());
    if let Some(hosts) = hosts.as_array_mut() {
        if !hosts.iter().any(|h| h.as_str() == Some(url)) {
            hosts.push(url.into());
        }
    }
}

/// `url` without a trailing slash, checked to be an http(s) origin.
fn origin(url: &str) -> Result<String, ExportError> {
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => {
            Ok(trimmed.to_string())
        }
        _ => Err(ExportError::BadUrl(url.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_urls_are_origins() {
        assert_eq!(
            origin("http://vitrine-worker:8000/").unwrap(),
            "http://vitrine-worker:8000"
        );
        assert_eq!(origin("https://w.example").unwrap(), "https://w.example");
        for bad in ["vitrine-worker:8000", "http://", "http://w/v2", "ftp://w"] {
            assert!(matches!(origin(bad), Err(ExportError::BadUrl(_))), "{bad}");
        }
    }

    #[test]
    fn a_composed_component_reaches_the_worker_and_nothing_else_changes() {
        let mut table: toml::Table = toml::from_str(
            r#"
source = "components/classify.wasm"
ai_models = ["intent-mlp"]
allowed_outbound_hosts = ["https://api.example"]
environment = { LOG = "1" }
dependencies_inherit_configuration = true
[dependencies]
"wasi:nn" = { path = "x.wasm" }
"#,
        )
        .unwrap();
        wire_to_worker(&mut table, "http://w:8000");
        wire_to_worker(&mut table, "http://w:8000");
        let expected: toml::Table = toml::from_str(
            r#"
source = "components/classify.wasm"
allowed_outbound_hosts = ["https://api.example", "http://w:8000"]
environment = { LOG = "1", VITRINE_NN_URL = "http://w:8000" }
"#,
        )
        .unwrap();
        assert_eq!(table, expected);
    }
}
