//! A loaded application: every component compiled and pre-instantiated, its host capabilities
//! ([`crate::capability`]) and files resolved, and a fresh store per request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttp, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::capability::{AppContext, Capabilities, Capability, ComponentHost, HasComponent};
use crate::engine::{load_component, new_engine, EpochTicker, Ticking};
use crate::guest_log::{GuestLog, MetricSink};
use crate::key_value::StoreBackend;
use crate::manifest::{Component, FileMount, Manifest, Settings};
use crate::nn_pool::WorkerPool;
use crate::routes::{RoutePattern, Router};
use crate::sqlite_pool::DatabaseLocation;
use crate::variables::AppVariables;

/// Why an application could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A component's source could not be loaded.
    #[error("component `{component}`: {source}")]
    Component {
        /// The component id.
        component: String,
        /// What went wrong.
        source: crate::engine::LoadError,
    },
    /// A component's source file does not exist.
    #[error("component `{component}`: source {path} does not exist (run `vitrine build`)")]
    MissingSource {
        /// The component id.
        component: String,
        /// The missing path.
        path: PathBuf,
    },
    /// Variables, outbound hosts or files could not be resolved.
    #[error("{0}")]
    Config(String),
    /// A component's `files` could not be prepared.
    #[error("component `{component}`: files: {source}")]
    Files {
        /// The component id.
        component: String,
        /// What went wrong.
        source: FilesError,
    },
    /// The state directory, or a store (in it or placed by the runtime config), could not be
    /// prepared.
    #[error("{what} {path}: {source}")]
    State {
        /// The state directory or the store's place.
        path: PathBuf,
        /// What was being prepared.
        what: &'static str,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The engine could not be created or the linker set up.
    #[error("wasmtime: {0}")]
    Engine(String),
}

/// How the runtime runs an application, beyond what the manifest says.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Where embedded databases, the compile cache and staged files live.
    pub state_dir: PathBuf,
    /// Variable values that take precedence over every other provider.
    pub variables: BTreeMap<String, String>,
    /// How many instances may run at once (size of the instance pool).
    pub max_instances: u32,
    /// Limits used where the manifest sets none.
    pub defaults: Limits,
    /// The inference workers behind `wasi:nn`; `None`: model loads fail with `runtime-error`.
    pub nn_pool: Option<Arc<WorkerPool>>,
    /// Key-value stores a runtime config file places (`[key_value_store.<label>]`); every
    /// other label is embedded in the state directory.
    pub key_value_stores: BTreeMap<String, StoreBackend>,
    /// SQLite databases a runtime config file places (`[sqlite_database.<label>]`); every
    /// other label is a file in the state directory.
    pub sqlite_databases: BTreeMap<String, DatabaseLocation>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(".vitrine"),
            variables: BTreeMap::new(),
            // As `vitrine up --max-instances`: more let an overload collapse (docs/benchmarks.md).
            max_instances: 64,
            defaults: Limits::default(),
            nn_pool: None,
            key_value_stores: BTreeMap::new(),
            sqlite_databases: BTreeMap::new(),
        }
    }
}

/// Per-request limits of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline for a request, guest execution and I/O included.
    pub timeout: Duration,
    /// Linear memory an instance may use, in bytes.
    pub memory: usize,
    /// Largest accepted request body, in bytes.
    pub max_request_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory: 128 << 20,
            max_request_body: 10 << 20,
        }
    }
}

impl Limits {
    fn with(self, settings: Settings) -> Self {
        Self {
            timeout: settings
                .request_timeout_ms
                .map_or(self.timeout, Duration::from_millis),
            memory: settings
                .memory_limit_mb
                .map_or(self.memory, |mb| (mb as usize) << 20),
            max_request_body: settings
                .max_request_body_bytes
                .unwrap_or(self.max_request_body),
        }
    }
}

/// A component ready to serve: pre-instantiated, with its resolved host capabilities.
pub struct LoadedComponent {
    /// The component id.
    pub id: Arc<str>,
    pre: ProxyPre<InstanceState>,
    /// The component's per-request limits.
    pub limits: Limits,
    host: Arc<ComponentHost>,
    ticker: Arc<EpochTicker>,
    environment: Vec<(String, String)>,
    mounts: Vec<(PathBuf, String)>,
}

/// The data of one instance's store.
pub struct InstanceState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    limits: MemoryLimiter,
    host: Arc<ComponentHost>,
    /// The request's deadline: host work (SQLite, key-value) still running then is stopped.
    deadline: Instant,
    /// Keeps the epoch (deadline checks, yields) ticking while this store exists.
    _ticking: Ticking,
}

/// What capability `C`'s host functions borrow from an instance.
pub struct InstanceParts<'a, C: Capability> {
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
    /// The instance's `wasi:http` state.
    pub http: &'a mut WasiHttpCtx,
    /// What the component may do with `C`.
    pub component: &'a C::Component,
    /// The request's deadline: work still running then is stopped.
    pub deadline: Instant,
}

impl InstanceState {
    /// Whether the instance was refused memory beyond its limit.
    pub fn memory_exceeded(&self) -> bool {
        self.limits.exceeded
    }

    /// The parts of the instance capability `C` works with.
    pub fn parts<C: Capability>(&mut self) -> InstanceParts<'_, C>
    where
        ComponentHost: HasComponent<C>,
    {
        InstanceParts {
            table: &mut self.table,
            http: &mut self.http,
            component: self.host.component(),
            deadline: self.deadline,
        }
    }
}

/// Caps an instance's linear memory and remembers whether the cap was hit.
struct MemoryLimiter {
    max: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.exceeded = true;
            wasmtime::bail!("memory limit of {} bytes exceeded", self.max);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Table elements an instance may have.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// A loaded application.
pub struct App {
    /// The application name.
    pub name: String,
    router: Router<Arc<LoadedComponent>>,
    capabilities: Capabilities,
    /// The response header that carries the request id, if the manifest asks for one.
    pub request_id_header: Option<http::HeaderName>,
}

impl App {
    /// Loads every component of `manifest`: resolves variables, opens stores, compiles (or takes
    /// from the cache) and pre-instantiates each component.
    pub fn load(manifest: &Manifest, config: &RuntimeConfig) -> Result<Self, AppError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|e| AppError::State {
            path: config.state_dir.clone(),
            what: "state directory",
            source: e.into(),
        })?;
        let variables = AppVariables::resolve(&manifest.variables, &config.variables, |k| {
            std::env::var(k).ok()
        })
        .map_err(AppError::Config)?;
        let cx = AppContext {
            manifest,
            config,
            variables: &variables,
        };
        let capabilities = Capabilities::configure(&cx)?;

        let app_limits = config.defaults.with(manifest.settings);
        let max_memory = manifest
            .components
            .values()
            .map(|c| app_limits.with(c.settings).memory)
            .max()
            .unwrap_or(app_limits.memory);
        let (engine, ticker) = new_engine(config.max_instances, max_memory)
            .map_err(|e| AppError::Engine(format!("{e:#}")))?;
        let linker = linker(&engine).map_err(|e| AppError::Engine(format!("{e:#}")))?;
        let cache_dir = config.state_dir.join("compiled");

        let mut loaded = BTreeMap::new();
        for trigger in &manifest.triggers {
            if loaded.contains_key(&trigger.component) {
                continue;
            }
            let component = &manifest.components[&trigger.component];
            let fail = |message: String| {
                AppError::Config(format!("component `{}`: {message}", component.id))
            };
            if !component.source.exists() {
                return Err(AppError::MissingSource {
                    component: component.id.clone(),
                    path: component.source.clone(),
                });
            }
            let wasm = load_component(
                &engine,
                &component.source,
                &component.dependencies,
                &cache_dir,
            )
            .map_err(|source| AppError::Component {
                component: component.id.clone(),
                source,
            })?;
            let pre = linker
                .instantiate_pre(&wasm)
                .and_then(ProxyPre::new)
                .map_err(|e| fail(format!("cannot be instantiated here: {e:#}")))?;
            let host = capabilities
                .configure_component(component, &cx)
                .map_err(fail)?;
            let mounts = stage_files(component, manifest.dir(), &config.state_dir.join("files"))
                .map_err(|source| AppError::Files {
                    component: component.id.clone(),
                    source,
                })?;
            let limits = app_limits.with(component.settings);
            loaded.insert(
                component.id.clone(),
                Arc::new(LoadedComponent {
                    id: component.id.as_str().into(),
                    pre,
                    limits,
                    host: Arc::new(host),
                    ticker: ticker.clone(),
                    environment: component.environment.clone().into_iter().collect(),
                    mounts,
                }),
            );
            tracing::info!(component = %component.id, "component ready");
        }
        let routes: Vec<(RoutePattern, Arc<LoadedComponent>)> = manifest
            .triggers
            .iter()
            .filter_map(|t| Some((t.route.clone()?, loaded[&t.component].clone())))
            .collect();
        let router = Router::new(routes).map_err(AppError::Config)?;
        Ok(Self {
            name: manifest.name.clone(),
            router,
            capabilities,
            request_id_header: manifest.request_id_header.clone(),
        })
    }

    /// Adds the metrics of the application's capabilities (the `wasi:nn` worker pool) to `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.capabilities.register_metrics(registry);
    }

    /// Whether the application can serve: `Err` names what it lacks (a model no inference
    /// worker is ready to serve).
    pub fn readiness(&self) -> Result<(), String> {
        self.capabilities.readiness()
    }

    /// The component whose route best matches `path`.
    pub fn route(
        &self,
        path: &str,
    ) -> Option<(
        &RoutePattern,
        &Arc<LoadedComponent>,
        crate::routes::RouteMatch,
    )> {
        self.router.route(path)
    }

    /// Records where the application is served, for `self` requests.
    pub fn set_address(&self, addr: std::net::SocketAddr) {
        self.capabilities.outbound_http.set_address(addr);
    }
}

impl LoadedComponent {
    /// A fresh store for one request, with the epoch deadline already set; the guest's
    /// business metrics (see [`GuestLog`]) go to `metrics`.
    pub fn new_store(
        &self,
        request_id: &Arc<str>,
        metrics: Option<MetricSink>,
    ) -> Store<InstanceState> {
        let (id, request) = (&self.id, request_id);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestLog::new(
            id.clone(),
            request.clone(),
            "stdout",
            metrics,
        ))
        .stderr(GuestLog::new(id.clone(), request.clone(), "stderr", None))
        .envs(&self.environment);
        for (host, guest) in &self.mounts {
            // Checked while staging; a directory that vanished since only loses its mount.
            let _ = wasi.preopened_dir(host, guest, FsPerms::ReadOnly);
        }
        Capabilities::prepare_wasi(&self.host, &mut wasi);
        let deadline = Instant::now() + self.limits.timeout;
        let state = InstanceState {
            deadline,
            _ticking: self.ticker.ticking(),
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            limits: MemoryLimiter {
                max: self.limits.memory,
                exceeded: false,
            },
            host: self.host.clone(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        // Every epoch tick a running guest yields to the scheduler, so a busy guest never holds
        // a worker thread from other tasks, and tells `cpu_gate` it is still computing; past
        // the deadline it is interrupted.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                crate::cpu_gate::epoch_yield();
                UpdateDeadline::Yield(1)
            })
        });
        store
    }

    /// The pre-instantiated component.
    pub fn pre(&self) -> &ProxyPre<InstanceState> {
        &self.pre
    }
}

/// Links WASI, `wasi:http` and every capability.
fn linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    use wasmtime_wasi_http::p2::bindings::{http, LinkOptions};
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    http::types::add_to_linker::<_, WasiHttp>(
        &mut linker,
        &(&LinkOptions::default()).into(),
        InstanceState::http,
    )?;
    http::outgoing_handler::add_to_linker::<_, WasiHttp>(&mut linker, InstanceState::http)?;
    Capabilities::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Why a component's `files` could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A pattern in `files` or `exclude_files` is not a valid glob.
    #[error("`{pattern}`: {source}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why it is invalid.
        source: glob::PatternError,
    },
    /// A `source` to mount does not exist.
    #[error("`{0}` does not exist")]
    Missing(String),
    /// A file could not be copied into the staging directory.
    #[error("copying {path}: {source}")]
    Copy {
        /// The file (or the staging folder).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Prepares a component's `files`: directories are mounted as they are; files and glob matches
/// are copied into a staging directory mounted at `/`. Returns (host dir, guest path) mounts.
pub(crate) fn stage_files(
    component: &Component,
    manifest_dir: &Path,
    staging_root: &Path,
) -> Result<Vec<(PathBuf, String)>, FilesError> {
    if component.files.is_empty() {
        return Ok(Vec::new());
    }
    let pattern = |p: &str| {
        glob::Pattern::new(p).map_err(|source| FilesError::Pattern {
            pattern: p.to_string(),
            source,
        })
    };
    let excluded: Vec<glob::Pattern> = component
        .exclude_files
        .iter()
        .map(|p| pattern(p))
        .collect::<Result<_, _>>()?;
    let staging = staging_root.join(&component.id);
    let _ = std::fs::remove_dir_all(&staging);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FilesError::Copy { path, source }
    };
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let copy = |from: &Path, to: &Path| -> Result<(), FilesError> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::copy(from, to).map(drop).map_err(io(from))
    };
    let mut mounts = vec![(staging.clone(), "/".to_string())];
    for mount in &component.files {
        match mount {
            FileMount::Pattern(pattern) => {
                let full = manifest_dir.join(pattern);
                let matches =
                    glob::glob(&full.to_string_lossy()).map_err(|source| FilesError::Pattern {
                        pattern: pattern.clone(),
                        source,
                    })?;
                for path in matches.flatten().filter(|p| p.is_file()) {
                    let rel = path.strip_prefix(manifest_dir).unwrap_or(&path);
                    if excluded.iter().any(|x| x.matches_path(rel)) {
                        continue;
                    }
                    copy(&path, &staging.join(rel))?;
                }
            }
            FileMount::Placement {
                source,
                destination,
            } => {
                let from = manifest_dir.join(source);
                if from.is_dir() {
                    mounts.push((from, destination.clone()));
                } else if from.is_file() {
                    copy(&from, &staging.join(destination.trim_start_matches('/')))?;
                } else {
                    return Err(FilesError::Missing(source.clone()));
                }
            }
        }
    }
    Ok(mounts)
}
