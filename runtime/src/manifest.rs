//! The Spin application manifest (`spin.toml`, manifest version 2): parsing and validation.
//!
//! Every field Spin defines for HTTP applications is accepted; fields Spin does not define are
//! errors, as are references to unknown components or variables. Vitrine's own settings live
//! under `[application.tool.vitrine]` and `[component.<id>.tool.vitrine]`, so the file stays
//! valid for stock Spin. `docs/manifest.md` lists the supported subset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::outbound_http::AllowedHostPattern;
use crate::routes::{RoutePattern, Router};
use crate::variables::{is_valid_name, Template};

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {path}: {source}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the manifest's shape.
    #[error("invalid manifest {path}: {message}")]
    Syntax {
        /// The manifest path.
        path: PathBuf,
        /// The parser's message, naming the field and its line.
        message: String,
    },
    /// A field has a value the runtime cannot accept.
    #[error("invalid manifest {path}: `{field}`: {problem}")]
    Invalid {
        /// The manifest path.
        path: PathBuf,
        /// The offending field, as a TOML path.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// A validated application manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// `[application]` name.
    pub name: String,
    /// `[application]` version, if any.
    pub version: Option<String>,
    /// `[application]` description, if any.
    pub description: Option<String>,
    /// Application variables by name.
    pub variables: BTreeMap<String, VariableDef>,
    /// HTTP triggers, in manifest order.
    pub triggers: Vec<HttpTrigger>,
    /// Components by id.
    pub components: BTreeMap<String, Component>,
    /// Application-wide runtime settings (`[application.tool.vitrine]`).
    pub settings: Settings,
    /// The response header that carries each request's id (`[application.tool.vitrine]
    /// request_id_header`); none by default, as stock Spin adds no header of its own.
    pub request_id_header: Option<http::HeaderName>,
}

/// An `[variables]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VariableDef {
    /// The value used when no provider has one.
    #[serde(default)]
    pub default: Option<String>,
    /// Startup fails when no provider has a value.
    #[serde(default)]
    pub required: bool,
    /// The value is sensitive and never logged.
    #[serde(default)]
    pub secret: bool,
}

/// A `[[trigger.http]]` entry.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The route, or `None` for a private component reachable only from the app itself.
    pub route: Option<RoutePattern>,
    /// The component that handles the route.
    pub component: String,
}

/// A `[component.<id>]` table.
#[derive(Debug, Clone)]
pub struct Component {
    /// The component id.
    pub id: String,
    /// The Wasm file (component or WASI preview 1 module), absolute.
    pub source: PathBuf,
    /// Free text.
    pub description: Option<String>,
    /// The component's variables, as templates over the application variables.
    pub variables: BTreeMap<String, Template>,
    /// Environment variables for the guest.
    pub environment: BTreeMap<String, String>,
    /// Files mounted into the guest: (host path, guest path) pairs.
    pub files: Vec<FileMount>,
    /// Glob patterns of files to leave out of `files`.
    pub exclude_files: Vec<String>,
    /// Where outbound HTTP may go.
    pub allowed_outbound_hosts: Vec<AllowedHostPattern>,
    /// Key-value store labels the component may open.
    pub key_value_stores: Vec<String>,
    /// SQLite database labels the component may open.
    pub sqlite_databases: Vec<String>,
    /// Model names the component may use through `wasi:nn`.
    pub ai_models: Vec<String>,
    /// Components that satisfy some of this component's imports (`[component.<id>.dependencies]`).
    pub dependencies: Vec<Dependency>,
    /// How `vitrine build` builds the source.
    pub build: Option<BuildConfig>,
    /// Component-specific runtime settings (`[component.<id>.tool.vitrine]`).
    pub settings: Settings,
}

/// A component dependency: the imports named by `name` (a package such as `wasi:nn` or
/// `wasi:nn@0.2.0-rc-2024-10-28`, or one interface such as `wasi:nn/graph@0.2.0-rc-2024-10-28`)
/// are satisfied by the exports of the component at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The package or interface name the dependency satisfies.
    pub name: String,
    /// The dependency component, resolved against the manifest directory.
    pub path: PathBuf,
}

/// One entry of a component's `files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMount {
    /// A glob pattern relative to the manifest directory; matches keep their relative path.
    Pattern(String),
    /// A host file or directory mounted at a guest path.
    Placement {
        /// Host path, relative to the manifest directory.
        source: String,
        /// Absolute guest path.
        destination: String,
    },
}

/// A component's `[component.<id>.build]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// The command(s) to run, through the shell.
    #[serde(rename = "command")]
    pub commands: Commands,
    /// Working directory, relative to the manifest directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Globs (relative to `workdir`) whose changes make the source stale.
    #[serde(default)]
    pub watch: Vec<String>,
    /// Extra environment for the command.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// One build command or several run in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Commands {
    /// A single command.
    One(String),
    /// Commands run in order.
    Many(Vec<String>),
}

impl Commands {
    /// The commands in order.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Commands::One(c) => std::slice::from_ref(c),
            Commands::Many(cs) => cs,
        }
    }
}

/// Vitrine runtime settings, from `tool.vitrine` tables; a component's override the app's.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Per-request deadline in milliseconds.
    pub request_timeout_ms: Option<u64>,
    /// Per-request linear memory limit in MiB.
    pub memory_limit_mb: Option<u64>,
    /// Largest accepted request body in bytes.
    pub max_request_body_bytes: Option<u64>,
}

impl Settings {
    /// These settings with unset fields taken from `fallback`.
    pub fn or(self, fallback: Settings) -> Settings {
        Settings {
            request_timeout_ms: self.request_timeout_ms.or(fallback.request_timeout_ms),
            memory_limit_mb: self.memory_limit_mb.or(fallback.memory_limit_mb),
            max_request_body_bytes: self
                .max_request_body_bytes
                .or(fallback.max_request_body_bytes),
        }
    }
}

// ---- The raw TOML shape ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDef>,
    #[serde(default)]
    trigger: BTreeMap<String, toml::Value>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
    // Accepted for Spin compatibility; this runtime does not use them.
    #[serde(default, rename = "authors")]
    _authors: Vec<String>,
    #[serde(default, rename = "targets")]
    _targets: Vec<String>,
    #[serde(default)]
    trigger: Option<toml::Table>,
    #[serde(default)]
    tool: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    #[serde(default)]
    id: Option<String>,
    route: RawRoute,
    component: RawComponentRef,
    #[serde(default)]
    executor: Option<RawExecutor>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawComponentRef {
    Id(String),
    Inline(Box<RawComponent>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecutor {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    source: RawSource,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<RawFileMount>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    build: Option<BuildConfig>,
    #[serde(default)]
    tool: BTreeMap<String, toml::Value>,
    // Accepted for Spin compatibility; meaningful only with `dependencies`.
    #[serde(default, rename = "dependencies_inherit_configuration")]
    _dependencies_inherit_configuration: bool,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSource {
    Path(String),
    Remote(toml::Table),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFileMount {
    Pattern(String),
    Placement { source: String, destination: String },
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates manifest text; `path` locates relative paths and names the file in
    /// errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Self::from_raw(raw, path, &dir).map_err(|Problem(field, problem)| ManifestError::Invalid {
            path: path.to_path_buf(),
            field,
            problem,
        })
    }

    /// Validates the parsed TOML, step by step; relative paths start from `dir`.
    fn from_raw(raw: RawManifest, path: &Path, dir: &Path) -> Result<Self, Problem> {
        check_version(&raw.spin_manifest_version)?;
        let app = raw.application;
        if app.name.trim().is_empty() {
            return Err(problem("application.name", "must not be empty"));
        }
        if let Some(key) = app.trigger.as_ref().and_then(|t| t.keys().next()) {
            return Err(problem(
                format!("application.trigger.{key}"),
                "application-wide trigger settings (such as `base`) were removed in Spin 3; \
                 write full routes instead",
            ));
        }
        let mut app_tool = app.tool;
        let request_id_header = take_request_id_header(&mut app_tool)?;
        let settings = tool_settings(&app_tool, "application.tool.vitrine")?;
        check_variables(&raw.variables)?;

        let mut raw_components = raw.component;
        let triggers = parse_triggers(raw.trigger, &mut raw_components)?;
        let components = raw_components
            .into_iter()
            .map(|(id, rc)| {
                let component = parse_component(id.clone(), rc, dir, &raw.variables)?;
                Ok((id, component))
            })
            .collect::<Result<_, Problem>>()?;
        Ok(Manifest {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            name: app.name,
            version: app.version,
            description: app.description,
            variables: raw.variables,
            triggers,
            components,
            settings,
            request_id_header,
        })
    }

    /// The directory relative paths in the manifest start from.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// A field of the manifest and what is wrong with it.
struct Problem(String, String);

fn problem(field: impl Into<String>, text: impl Into<String>) -> Problem {
    Problem(field.into(), text.into())
}

fn check_version(version: &toml::Value) -> Result<(), Problem> {
    if version.as_integer() == Some(2) || version.as_str() == Some("2") {
        return Ok(());
    }
    Err(problem(
        "spin_manifest_version",
        format!("must be 2 (found {version}); version 1 manifests are not supported"),
    ))
}

fn check_variables(variables: &BTreeMap<String, VariableDef>) -> Result<(), Problem> {
    for (name, def) in variables {
        let field = format!("variables.{name}");
        if !is_valid_name(name) {
            return Err(problem(field, VARIABLE_NAMES));
        }
        match (&def.default, def.required) {
            (Some(_), true) => {
                return Err(problem(
                    field,
                    "cannot be both `required` and have a `default`",
                ))
            }
            (None, false) => return Err(problem(field, "needs a `default` or `required = true`")),
            _ => {}
        }
    }
    Ok(())
}

const VARIABLE_NAMES: &str =
    "variable names use lowercase letters, digits and `_`, starting with a letter";

/// The HTTP triggers; inline components join `components`. Routes must not conflict.
fn parse_triggers(
    tables: BTreeMap<String, toml::Value>,
    components: &mut BTreeMap<String, RawComponent>,
) -> Result<Vec<HttpTrigger>, Problem> {
    let mut triggers = Vec::new();
    for (kind, value) in tables {
        if kind != "http" {
            return Err(problem(
                format!("trigger.{kind}"),
                "only `http` triggers are supported",
            ));
        }
        let entries: Vec<RawHttpTrigger> = value
            .try_into()
            .map_err(|e: toml::de::Error| problem("trigger.http", e.message()))?;
        for (index, entry) in entries.into_iter().enumerate() {
            triggers.push(parse_trigger(index, entry, components)?);
        }
    }
    Router::new(
        triggers
            .iter()
            .filter_map(|t| t.route.clone().map(|r| (r, ())))
            .collect(),
    )
    .map_err(|p| problem("trigger.http", p))?;
    Ok(triggers)
}

fn parse_trigger(
    index: usize,
    entry: RawHttpTrigger,
    components: &mut BTreeMap<String, RawComponent>,
) -> Result<HttpTrigger, Problem> {
    let field = |name: &str| format!("trigger.http[{index}].{name}");
    if let Some(executor) = entry.executor.filter(|e| e.kind != "spin") {
        return Err(problem(
            field("executor"),
            format!(
                "executor `{}` is not supported (only `spin`)",
                executor.kind
            ),
        ));
    }
    let route = match entry.route {
        RawRoute::Path(route) => {
            Some(RoutePattern::parse(&route).map_err(|p| problem(field("route"), p))?)
        }
        RawRoute::Private { private: true } => None,
        RawRoute::Private { private: false } => {
            return Err(problem(
                field("route"),
                "`{ private = false }` is not a route; give a path",
            ))
        }
    };
    let component = match entry.component {
        RawComponentRef::Id(id) if components.contains_key(&id) => id,
        RawComponentRef::Id(id) => {
            return Err(problem(
                field("component"),
                format!("no component `{id}` is defined"),
            ))
        }
        RawComponentRef::Inline(component) => {
            let id = entry
                .id
                .unwrap_or_else(|| format!("inline-component-{index}"));
            if components.insert(id.clone(), *component).is_some() {
                return Err(problem(
                    field("component"),
                    format!("inline component id `{id}` is already used"),
                ));
            }
            id
        }
    };
    Ok(HttpTrigger { route, component })
}

/// One `[component.<id>]` table, checked against the application variables.
fn parse_component(
    id: String,
    rc: RawComponent,
    dir: &Path,
    app_variables: &BTreeMap<String, VariableDef>,
) -> Result<Component, Problem> {
    let field = |name: &str| format!("component.{id}.{name}");
    if !is_valid_component_id(&id) {
        return Err(problem(
            format!("component.{id}"),
            "component ids use lowercase letters, digits and single `-` between words",
        ));
    }
    let source = match rc.source {
        RawSource::Path(p) => dir.join(p),
        RawSource::Remote(table) => {
            let keys: Vec<&str> = table.keys().map(String::as_str).collect();
            return Err(problem(
                field("source"),
                format!(
                    "remote sources ({{ {} }}) are not supported; give a local path",
                    keys.join(", ")
                ),
            ));
        }
    };
    let mut variables = BTreeMap::new();
    for (name, text) in rc.variables {
        let vfield = field(&format!("variables.{name}"));
        if !is_valid_name(&name) {
            return Err(problem(vfield, VARIABLE_NAMES));
        }
        let template = Template::parse(&text).map_err(|p| problem(&vfield, p))?;
        if let Some(unknown) = unknown_variable(template.variables(), app_variables) {
            return Err(problem(
                vfield,
                format!("refers to unknown application variable `{unknown}`"),
            ));
        }
        variables.insert(name, template);
    }
    let mut allowed_outbound_hosts = Vec::new();
    for text in rc.allowed_outbound_hosts {
        let hosts_field = field("allowed_outbound_hosts");
        let pattern = AllowedHostPattern::parse(&text).map_err(|p| problem(&hosts_field, p))?;
        if let Some(unknown) = unknown_variable(pattern.template_variables(), app_variables) {
            return Err(problem(
                hosts_field,
                format!("`{text}` refers to unknown application variable `{unknown}`"),
            ));
        }
        allowed_outbound_hosts.push(pattern);
    }
    for (name, labels) in [
        ("key_value_stores", &rc.key_value_stores),
        ("sqlite_databases", &rc.sqlite_databases),
    ] {
        if let Some(bad) = labels.iter().find(|l| !is_valid_label(l)) {
            return Err(problem(
                field(name),
                format!("label `{bad}` must use letters, digits, `_` and `-`"),
            ));
        }
    }
    let files = rc
        .files
        .into_iter()
        .map(|f| match f {
            RawFileMount::Pattern(p) => Ok(FileMount::Pattern(p)),
            RawFileMount::Placement {
                source,
                destination,
            } if destination.starts_with('/') => Ok(FileMount::Placement {
                source,
                destination,
            }),
            RawFileMount::Placement { destination, .. } => Err(problem(
                field("files"),
                format!("destination `{destination}` must be an absolute guest path"),
            )),
        })
        .collect::<Result<_, _>>()?;
    let dependencies = rc
        .dependencies
        .into_iter()
        .map(|(name, value)| parse_dependency(name, &value, dir, &field))
        .collect::<Result<_, _>>()?;
    let settings = tool_settings(&rc.tool, &field("tool.vitrine"))?;
    Ok(Component {
        id,
        source,
        description: rc.description,
        variables,
        environment: rc.environment,
        files,
        exclude_files: rc.exclude_files,
        allowed_outbound_hosts,
        key_value_stores: rc.key_value_stores,
        sqlite_databases: rc.sqlite_databases,
        ai_models: rc.ai_models,
        dependencies,
        build: rc.build,
        settings,
    })
}

/// The first of `names` that is not an application variable.
fn unknown_variable<'a>(
    mut names: impl Iterator<Item = &'a str>,
    app_variables: &BTreeMap<String, VariableDef>,
) -> Option<&'a str> {
    names.find(|name| !app_variables.contains_key(*name))
}

/// One `dependencies` entry: a local path, keyed by a package or interface name.
fn parse_dependency(
    name: String,
    value: &toml::Value,
    dir: &Path,
    field: &dyn Fn(&str) -> String,
) -> Result<Dependency, Problem> {
    let dfield = field(&format!("dependencies.\"{name}\""));
    let path = match value.as_table().map(|t| (t.get("path"), t.len())) {
        Some((Some(toml::Value::String(path)), 1)) => dir.join(path),
        _ => {
            return Err(problem(
                dfield,
                "only local dependencies are supported: `{ path = \"dep.wasm\" }`",
            ))
        }
    };
    if !name.contains(':') {
        return Err(problem(
            dfield,
            "name a package (`ns:pkg[@version]`) or an interface (`ns:pkg/interface[@version]`)",
        ));
    }
    Ok(Dependency { name, path })
}

/// Takes the application-only `request_id_header` out of `[application.tool.vitrine]`.
fn take_request_id_header(
    tool: &mut BTreeMap<String, toml::Value>,
) -> Result<Option<http::HeaderName>, Problem> {
    let field = "application.tool.vitrine.request_id_header";
    let Some(value) = tool
        .get_mut("vitrine")
        .and_then(|v| v.as_table_mut())
        .and_then(|t| t.remove("request_id_header"))
    else {
        return Ok(None);
    };
    let name = value
        .as_str()
        .ok_or_else(|| problem(field, "must be a string, such as \"x-request-id\""))?;
    http::HeaderName::from_bytes(name.as_bytes())
        .map(Some)
        .map_err(|_| problem(field, format!("`{name}` is not a valid header name")))
}

/// Reads the `vitrine` entry of a `tool` table; other tools' entries are left to them.
fn tool_settings(tool: &BTreeMap<String, toml::Value>, field: &str) -> Result<Settings, Problem> {
    match tool.get("vitrine") {
        None => Ok(Settings::default()),
        Some(value) => value
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| problem(field, e.message())),
    }
}

/// Spin component ids: lowercase words of letters and digits joined by single `-`.
fn is_valid_component_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// Store and database labels.
fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
spin_manifest_version = 2
[application]
name = "shop"
[application.tool.vitrine]
request_timeout_ms = 500
[variables]
api_host = { default = "example.com" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/api/..."
component = "api"
[[trigger.http]]
route = { private = true }
component = "worker"
[component.api]
source = "api.wasm"
variables = { upstream = "https://{{ api_host }}" }
allowed_outbound_hosts = ["https://{{ api_host }}", "http://self"]
key_value_stores = ["default"]
[component.api.tool.vitrine]
memory_limit_mb = 64
[component.worker]
source = "worker.wasm"
[component.worker.build]
command = "cargo build"
workdir = "worker"
watch = ["src/**/*.rs"]
"#;

    fn err(text: &str) -> String {
        Manifest::parse(text, Path::new("/app/spin.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_a_full_manifest() {
        let m = Manifest::parse(GOOD, Path::new("/app/spin.toml")).unwrap();
        assert_eq!(m.name, "shop");
        assert_eq!(m.triggers.len(), 2);
        assert!(m.triggers[1].route.is_none());
        let api = &m.components["api"];
        assert_eq!(api.source, Path::new("/app/api.wasm"));
        assert_eq!(api.settings.memory_limit_mb, Some(64));
        assert_eq!(m.settings.request_timeout_ms, Some(500));
        assert_eq!(api.allowed_outbound_hosts.len(), 2);
        assert!(m.components["worker"].build.is_some());
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = err(&GOOD.replace("source = \"api.wasm\"", "source = \"api.wasm\"\nsorce = 1"));
        assert!(e.contains("sorce"), "{e}");
        let e = err(&GOOD.replace("memory_limit_mb = 64", "memory_limit = 64"));
        assert!(
            e.contains("memory_limit") && e.contains("tool.vitrine"),
            "{e}"
        );
    }

    #[test]
    fn references_are_checked() {
        let e = err(&GOOD.replace("component = \"api\"", "component = \"apx\""));
        assert!(
            e.contains("trigger.http[0].component") && e.contains("apx"),
            "{e}"
        );
        let e = err(&GOOD.replace("{{ api_host }}\" }", "{{ nope }}\" }"));
        assert!(
            e.contains("component.api.variables.upstream") && e.contains("nope"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "https://{{ api_host }}\", \"http",
            "https://{{ other }}\", \"http",
        ));
        assert!(
            e.contains("allowed_outbound_hosts") && e.contains("other"),
            "{e}"
        );
    }

    #[test]
    fn routes_and_versions_are_checked() {
        let dup = GOOD.replace("route = { private = true }", "route = \"/api/...\"");
        assert!(err(&dup).contains("duplicate route `/api/...`"));
        assert!(
            err(&GOOD.replace("route = \"/api/...\"", "route = \"api\""))
                .contains("must start with `/`")
        );
        assert!(
            err(&GOOD.replace("spin_manifest_version = 2", "spin_manifest_version = 1"))
                .contains("spin_manifest_version")
        );
        assert!(err(&GOOD.replace(
            "token = { required = true, secret = true }",
            "token = { secret = true }"
        ))
        .contains("variables.token"));
    }
}
