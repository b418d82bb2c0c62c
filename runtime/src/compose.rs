//! Component dependencies (`[component.<id>.dependencies]`): the imports a dependency is named
//! for are satisfied by that dependency's exports, composed into one component with `wac-graph`
//! before compilation (what `wac plug` does, restricted to the named imports).

use std::path::PathBuf;

use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

use crate::manifest::Dependency;

/// Why a component could not be composed with its dependencies.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A dependency's file could not be read.
    #[error("dependency `{name}` ({path}): cannot read it: {source}")]
    Read {
        /// The dependency's name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A component is invalid, a dependency does not fit, or encoding failed (wac-graph's
    /// message, with its causes).
    #[error("{0}")]
    Invalid(String),
}

/// The names of the instances (interfaces) and functions `component` imports.
pub fn imports(component: &[u8]) -> Result<Vec<String>, ComposeError> {
    let mut types = wac_graph::types::Types::default();
    let package = Package::from_bytes("vitrine:inspect", None, component.to_vec(), &mut types)
        .map_err(|e| ComposeError::Invalid(format!("{e:#}")))?;
    Ok(types[package.ty()].imports.keys().cloned().collect())
}

/// Composes `main` with its dependencies and returns the new component's bytes.
pub fn compose(main: &[u8], dependencies: &[Dependency]) -> Result<Vec<u8>, ComposeError> {
    let invalid = |e: &dyn std::fmt::Display| ComposeError::Invalid(format!("{e:#}"));
    let mut graph = CompositionGraph::new();
    let package = Package::from_bytes("vitrine:main", None, main.to_vec(), graph.types_mut())
        .map_err(|e| invalid(&e))?;
    let main_id = graph.register_package(package).map_err(|e| invalid(&e))?;
    let main_instance = graph.instantiate(main_id);
    let imports: Vec<String> = graph.types()[graph[main_id].ty()]
        .imports
        .keys()
        .cloned()
        .collect();
    for (index, dependency) in dependencies.iter().enumerate() {
        let context = |problem: String| {
            ComposeError::Invalid(format!(
                "dependency `{}` ({}): {problem}",
                dependency.name,
                dependency.path.display()
            ))
        };
        let bytes = std::fs::read(&dependency.path).map_err(|source| ComposeError::Read {
            name: dependency.name.clone(),
            path: dependency.path.clone(),
            source,
        })?;
        let package = Package::from_bytes(
            &format!("vitrine:dependency{index}"),
            None,
            bytes,
            graph.types_mut(),
        )
        .map_err(|e| context(format!("{e:#}")))?;
        let id = graph
            .register_package(package)
            .map_err(|e| context(format!("{e:#}")))?;
        let exports: Vec<String> = graph.types()[graph[id].ty()]
            .exports
            .keys()
            .cloned()
            .collect();
        let selected: Vec<&String> = imports
            .iter()
            .filter(|i| satisfies(&dependency.name, i))
            .collect();
        if selected.is_empty() {
            return Err(context("the component imports nothing by this name".into()));
        }
        let instance = graph.instantiate(id);
        for import in selected {
            if !exports.contains(import) {
                return Err(context(format!("it does not export `{import}`")));
            }
            let export = graph
                .alias_instance_export(instance, import)
                .map_err(|e| context(format!("{e:#}")))?;
            graph
                .set_instantiation_argument(main_instance, import, export)
                .map_err(|e| context(format!("`{import}` does not fit: {e:#}")))?;
        }
    }
    let main_exports: Vec<String> = graph.types()[graph[main_id].ty()]
        .exports
        .keys()
        .cloned()
        .collect();
    for name in main_exports {
        let export = graph
            .alias_instance_export(main_instance, &name)
            .map_err(|e| invalid(&e))?;
        graph.export(export, &name).map_err(|e| invalid(&e))?;
    }
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| ComposeError::Invalid(format!("composing failed: {e:#}")))
}

/// Whether the dependency name (`ns:pkg[@v]` or `ns:pkg/iface[@v]`) covers `import`
/// (`ns:pkg/iface@v`).
pub(crate) fn satisfies(name: &str, import: &str) -> bool {
    let (import_path, import_version) = split_version(import);
    let (name_path, name_version) = split_version(name);
    let version_ok = name_version.is_none() || name_version == import_version;
    let path_ok = if name_path.contains('/') {
        name_path == import_path
    } else {
        import_path
            .split_once('/')
            .is_some_and(|(package, _)| package == name_path)
    };
    path_ok && version_ok
}

fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::satisfies;

    #[test]
    fn names_cover_packages_or_single_interfaces() {
        let import = "wasi:nn/graph@0.2.0-rc-2024-10-28";
        assert!(satisfies("wasi:nn", import));
        assert!(satisfies("wasi:nn@0.2.0-rc-2024-10-28", import));
        assert!(satisfies("wasi:nn/graph@0.2.0-rc-2024-10-28", import));
        assert!(satisfies("wasi:nn/graph", import));
        assert!(!satisfies("wasi:nn/tensor", import));
        assert!(!satisfies("wasi:nn@0.3.0", import));
        assert!(!satisfies("wasi:nnx", import));
    }
}
