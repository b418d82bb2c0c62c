//! End-to-end tests of the runtime over real HTTP, one module per area. They live in a single
//! test binary: each binary links wasmtime and candle, so one link instead of seven.

mod campaigns;
mod catalog;
mod events;
mod fraud;
mod host_apis;
mod infra;
mod limits;
mod lookbook;
mod manifest_errors;
mod nn;
mod releases;
mod routing;
mod spin_compat;
mod triton_client;
