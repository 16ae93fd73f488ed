//! End-to-end harness: the real Envoy running the real `modelgate_filter.wasm`, the real
//! `modelgate` control plane, and an OpenAI-compatible upstream stand-in (and, for IdP tokens,
//! a real OpenID provider: [`idp`]), each started on free ports and killed on drop; scenarios
//! live in `tests/*.rs`, named after what users do.
//!
//! Artifacts come from `MODELGATE_WASM`, `MODELGATE_BIN` and `ENVOY_BIN` (the Makefile sets
//! them; see [`artifacts`] for the fallbacks). `make test` builds them first; when running
//! `cargo test -p modelgate-e2e` by hand, run `make build` after changing the filter or the
//! control plane.
//!
//! This crate only ever runs under `cargo test`: a harness step that cannot go on fails the
//! test at that spot, with the reason and the tails of the processes' logs, so panicking is
//! the error model here (as in linkerd2-proxy's and TensorZero's harnesses).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod api;
pub mod artifacts;
pub mod control_plane;
pub mod envoy;
pub mod exchange;
pub mod idp;
pub mod llama;
pub mod pki;
pub mod poll;
pub mod process;
pub mod stack;
pub mod upstream;

pub use api::{ApiResponse, Gateway};
pub use control_plane::{ControlPlane, ControlPlaneAccess, CreatedKey};
pub use envoy::{Envoy, EnvoyConfig};
pub use stack::Stack;
pub use upstream::{Behaviour, RecordedRequest, Upstream};
