//! The real inference server: llama.cpp's `llama-server` with SmolLM2-135M-Instruct, started
//! through `scripts/llama-server.sh serve` (which builds or reuses the cached binary and model)
//! on a free port; killed on drop.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::artifacts;
use crate::process::{free_port, new_log, Process};

/// The name the server answers to (`--alias` in the script) and the scenarios ask for.
pub const MODEL: &str = "smollm2-135m";

/// Loading the 98 MB model takes a few seconds; a build on a machine without the cached binary
/// takes far longer, so that belongs to `scripts/llama-server.sh build`, not to a test.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `llama-server`.
pub struct LlamaServer {
    // Field order: the process dies before its log directory goes.
    process: Process,
    addr: SocketAddr,
    _dir: TempDir,
}

impl LlamaServer {
    /// Starts the server and returns once `/health` answers 200 (it answers 503 while the model
    /// loads).
    pub async fn start() -> LlamaServer {
        let dir = tempfile::Builder::new()
            .prefix("modelgate-llama-")
            .tempdir()
            .expect("temp dir");
        let log = new_log(dir.path(), "llama-server.log");
        let addr = free_port();
        let mut cmd = Command::new(artifacts::repo_root().join("scripts/llama-server.sh"));
        cmd.arg("serve").arg(addr.port().to_string());
        let mut process = Process::spawn_group("llama-server", cmd, &log);
        process
            .wait_ready(&format!("http://{addr}/health"), START_TIMEOUT)
            .await;
        LlamaServer {
            process,
            addr,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the OpenAI base URL without `/v1`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fails the test, with the server's log, if it has exited.
    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }
}
