//! Vitrine's edge runtime: a wasmtime host that runs Spin applications.
//!
//! [`Manifest`] reads `spin.toml`; [`App::load`] compiles and pre-instantiates its components
//! with Spin's host APIs; [`Server`] serves the HTTP trigger. One module per host capability,
//! each implementing the trait of `capability.rs`, which also holds the one list of them:
//! `variables`, `key_value`, `sqlite`, `outbound_http`, `redis`, `mqtt`, `nn` (`wasi:nn`, served by the
//! [`nn_pool::WorkerPool`] of inference workers).

mod app;
mod bindings;
mod capability;
mod compose;
mod cpu_gate;
mod engine;
mod guest_log;
mod http_trigger;
mod key_value;
pub mod manifest;
mod metrics;
mod mqtt;
mod nn;
pub mod nn_pool;
pub mod outbound_http;
mod redis;
pub mod releases;
pub mod rollout;
pub mod routes;
pub mod spin_app_dir;
mod sqlite;
mod sqlite_pool;
mod sqlite_writer;
pub mod traffic;
mod traffic_admin;
pub mod variables;

pub use app::{App, AppError, Limits, RuntimeConfig};
pub use http_trigger::{Server, LOCAL_RELEASE};
pub use key_value::StoreBackend;
pub use manifest::{Manifest, ManifestError};
pub use sqlite_pool::DatabaseLocation;
pub use traffic_admin::ReleaseLoader;
