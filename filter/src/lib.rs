//! Modelgate's Envoy filter: pure request logic, plus a thin proxy-wasm adapter in `wasm/`.
//!
//! Everything outside `wasm/` is plain Rust without proxy-wasm types: it talks to Envoy only
//! through the [`host::Host`] trait, so its tests run natively and, built for
//! `wasm32-wasip1`, under Node's WASI (`filter/wasm-test-runner.mjs`). The workspace lints
//! apply: no `unwrap`/`expect`/`panic` outside tests (a panic kills the VM for every request
//! on its Envoy worker) and no `unsafe`.

pub mod audit;
pub mod config;
pub mod credential;
pub mod endpoint;
pub mod errors;
pub mod exchange;
pub mod flow;
pub mod host;
pub mod identity;
pub mod limits;
pub mod models;
pub mod policy;
pub mod request_id;
pub mod service;
pub mod snapshot;
pub mod sse;
pub mod usage;

// Test binaries are WASI commands run by Node, which has no proxy-wasm host.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod wasm;
