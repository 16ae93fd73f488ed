//! Modelgate's Envoy filter: pure request logic, plus a thin proxy-wasm adapter in `wasm/`.

pub mod sse;
pub mod usage;
