//! The wasmtime engine: its configuration (pooling allocator, epoch deadlines), the on-disk
//! cache of compiled components, and loading a Wasm file as a component.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wasmtime::component::Component;

use crate::manifest::Dependency;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Bytes of each pooled memory reset in place (not released to the OS) between instances.
const KEEP_RESIDENT: usize = 8 << 20;

/// How often the epoch advances: a running guest yields to other requests (and has its
/// deadline checked) once per tick.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The source file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The source path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Its dependencies could not be composed into it.
    #[error("{path}: {source}")]
    Compose {
        /// The source path.
        path: PathBuf,
        /// What went wrong.
        source: crate::compose::ComposeError,
    },
    /// The file is neither a component nor a core module that can be made one.
    #[error("{path} is not a usable Wasm component: {message}")]
    Invalid {
        /// The source path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Builds the engine shared by every component of an application, and the ticker that
/// advances its epoch while guests run.
///
/// `instances` bounds how many instances run at once; `max_memory` is the largest linear
/// memory any instance may have.
pub fn new_engine(
    instances: u32,
    max_memory: usize,
) -> wasmtime::Result<(Engine, Arc<EpochTicker>)> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .max_memory_size(max_memory);
    // Reset a finished instance's memory by zeroing only the pages it dirtied (found with
    // Linux's PAGEMAP_SCAN where available) instead of `madvise`: no page-table changes, so no
    // cross-CPU TLB shootdowns per request. On a 2-core box this doubled hello-world throughput.
    // Without PAGEMAP_SCAN the whole kept range would be zeroed every time, so keep none.
    let keep_resident = if has_pagemap_scan() { KEEP_RESIDENT } else { 0 };
    pool.pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(keep_resident / 8)
        .decommit_batch_size(8);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // `VITRINE_PERFMAP=1`: name the compiled Wasm functions for `perf` (/tmp/perf-<pid>.map).
    if std::env::var_os("VITRINE_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config)?;
    let ticker = EpochTicker::start(&engine);
    Ok((engine, ticker))
}

/// Whether the kernel has the `PAGEMAP_SCAN` ioctl (Linux 6.7 and later).
fn has_pagemap_scan() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    version >= (6, 7)
}

/// How long the epoch keeps ticking after the last store is dropped: under load, requests
/// follow each other closely and the ticker never stops; an idle runtime parks it.
const IDLE_AFTER: Duration = Duration::from_millis(200);

/// Advances the engine's epoch every [`EPOCH_TICK`] while stores are alive (and for
/// [`IDLE_AFTER`] after the last), and sleeps otherwise, so an idle runtime costs no CPU.
pub struct EpochTicker {
    state: Arc<TickerState>,
    thread: Thread,
}

/// What the ticking thread and the stores share.
struct TickerState {
    live_stores: AtomicUsize,
    /// Set while the ticker is (about to be) parked: the next store wakes it.
    parked: AtomicBool,
}

/// Keeps the epoch ticking while held: one per store.
pub struct Ticking(Arc<EpochTicker>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.state.live_stores.fetch_sub(1, Ordering::SeqCst);
    }
}

impl EpochTicker {
    /// Starts the ticking thread; it ends once the engine is dropped.
    fn start(engine: &Engine) -> Arc<Self> {
        let weak = engine.weak();
        let state = Arc::new(TickerState {
            live_stores: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
        });
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("vitrine-epoch".into())
            .spawn(move || {
                let mut last_active = Instant::now();
                while let Some(engine) = weak.upgrade() {
                    if shared.live_stores.load(Ordering::SeqCst) > 0 {
                        last_active = Instant::now();
                    } else if last_active.elapsed() > IDLE_AFTER {
                        drop(engine);
                        // Announce the park, then look again: a store created in between
                        // either is seen here or sees the flag and unparks us.
                        shared.parked.store(true, Ordering::SeqCst);
                        if shared.live_stores.load(Ordering::SeqCst) == 0 {
                            // The timeout notices a dropped engine.
                            std::thread::park_timeout(Duration::from_secs(1));
                        }
                        shared.parked.store(false, Ordering::SeqCst);
                        continue;
                    }
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawning the epoch thread");
        Arc::new(Self {
            state,
            thread: thread.thread().clone(),
        })
    }

    /// Keeps the epoch ticking until the returned guard is dropped.
    pub fn ticking(self: &Arc<Self>) -> Ticking {
        self.state.live_stores.fetch_add(1, Ordering::SeqCst);
        if self.state.parked.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
        Ticking(self.clone())
    }
}

/// Loads a component from `path`, compiling it only when `cache_dir` has no compiled copy of
/// these exact bytes for this engine. `dependencies` are composed in first. A WASI preview 1 core module is first wrapped into a
/// component with the standard preview 1 adapter.
pub fn load_component(
    engine: &Engine,
    path: &Path,
    dependencies: &[Dependency],
    cache_dir: &Path,
) -> Result<Component, LoadError> {
    let mut bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |message: String| LoadError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if !dependencies.is_empty() {
        bytes =
            crate::compose::compose(&bytes, dependencies).map_err(|source| LoadError::Compose {
                path: path.to_path_buf(),
                source,
            })?;
    }
    let cached = cache_dir.join(format!("{}.cwasm", cache_key(engine, &bytes)));
    if cached.exists() {
        // SAFETY: the cache directory is written only by this function, with artifacts
        // produced by `Engine::precompile_component` of a compatible engine (the key includes
        // the engine's compatibility hash; wasmtime re-checks it while deserializing).
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(component);
        }
    }
    let component_bytes = if is_core_module(&bytes) {
        wit_component::ComponentEncoder::default()
            .module(&bytes)
            .and_then(|e| {
                e.adapter(
                    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                    WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
                )
            })
            .and_then(|e| e.validate(true).encode())
            .map_err(|e| invalid(format!("adapting the preview 1 module failed: {e:#}")))?
    } else {
        bytes
    };
    let compiled = engine
        .precompile_component(&component_bytes)
        .map_err(|e| invalid(format!("{e:#}")))?;
    if std::fs::create_dir_all(cache_dir).is_ok() {
        let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &compiled).is_ok() {
            let _ = std::fs::rename(&tmp, &cached);
        }
    }
    // SAFETY: `compiled` was produced just now by this engine.
    unsafe { Component::deserialize(engine, &compiled) }.map_err(|e| invalid(format!("{e:#}")))
}

/// Whether `bytes` is a core module (version 1) rather than a component.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm") && bytes.get(4..8) == Some(&[1, 0, 0, 0])
}

/// The content hash of the Wasm bytes plus the engine's compatibility hash.
fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut sha = Sha256::new();
    sha.update(bytes);
    sha.update(engine_hash.finish().to_le_bytes());
    hex::encode(&sha.finalize()[..20])
}
