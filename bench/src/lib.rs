//! `make bench` beyond the Criterion micro benchmarks: the whole request path under load
//! through real Envoy (router only, and with the filter in several configurations), the
//! scale runs (100k keys), and the report that puts them side by side in `target/bench/`.

pub mod jwt;
pub mod litellm;
pub mod load;
pub mod procfs;
pub mod report;
pub mod results;
pub mod scale;
pub mod upstream;
pub mod whole_path;

/// Installs rustls's ring provider for this process. The bench links the control plane, whose
/// reqwest is built without a default TLS provider, and cargo unifies that feature into the
/// harness's HTTP clients: without a provider they panic when built.
// ring is deprecated in rustls only for lacking post-quantum key exchange, which loopback
// benchmarks do not need (the control plane makes the same choice in identity/fetch.rs).
#[allow(deprecated)]
pub fn install_tls_provider() {
    // Err only when a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
