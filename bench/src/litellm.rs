//! Configuration (e): the LiteLLM proxy in front of the same nginx, for comparison. It lives
//! in its own venv (`make litellm-venv`, which pins the version), since it is large and optional: when it is not
//! installed or does not start, the whole-path run says so and goes on without it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use modelgate_e2e::process::{free_port, new_log, Process};
use tempfile::TempDir;

/// LiteLLM recommends one worker per CPU core; this machine class has two.
pub const WORKERS: u32 = 2;
/// Loading LiteLLM's modules takes a while, more so with two workers on two busy cores.
const START_TIMEOUT: Duration = Duration::from_secs(180);
const MASTER_KEY: &str = "sk-modelgate-bench-master";

#[derive(Debug, thiserror::Error)]
pub enum LiteLlmError {
    #[error("{0} not found (run `make litellm-venv`)")]
    Missing(String),
    #[error("temp dir / config: {0}")]
    Io(#[from] std::io::Error),
    #[error("did not start: {0}")]
    Start(String),
}

/// A running LiteLLM proxy; killed with its workers on drop.
pub struct LiteLlm {
    addr: SocketAddr,
    process: Process,
    _dir: TempDir,
}

impl LiteLlm {
    /// Starts LiteLLM routing `model` to the OpenAI-compatible server at `upstream`.
    pub async fn start(upstream: SocketAddr, model: &str) -> Result<LiteLlm, LiteLlmError> {
        let bin = venv().join("bin/litellm");
        if !bin.is_file() {
            return Err(LiteLlmError::Missing(bin.display().to_string()));
        }
        let dir = tempfile::Builder::new()
            .prefix("modelgate-bench-litellm-")
            .tempdir()?;
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: http://{upstream}/v1
      api_key: unused
general_settings:
  master_key: {MASTER_KEY}
litellm_settings:
  telemetry: false
"
            ),
        )?;
        let addr = free_port();
        let log = new_log(dir.path(), "litellm.log");
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("--host")
            .arg(addr.ip().to_string())
            .arg("--port")
            .arg(addr.port().to_string())
            .arg("--num_workers")
            .arg(WORKERS.to_string())
            // Under gunicorn: uvicorn's own multi-worker mode kills workers that take over
            // 5 s to answer its health ping, which importing LiteLLM does on a busy 2-core
            // machine, and then restarts them forever.
            .arg("--run_gunicorn")
            // No database: keys are the master key only.
            .env_remove("DATABASE_URL")
            .env("LITELLM_LOG", "ERROR");
        let mut process = Process::spawn_group("litellm", cmd, &log);
        // The harness's readiness poll fails by panicking; catch that here so a LiteLLM that
        // does not come up is reported, not fatal for the rest of the benchmark.
        let url = format!("http://{addr}/health/liveliness");
        let ready = tokio::spawn(async move {
            process.wait_ready(&url, START_TIMEOUT).await;
            process
        })
        .await;
        match ready {
            Ok(process) => Ok(LiteLlm {
                addr,
                process,
                _dir: dir,
            }),
            Err(e) => {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                Err(LiteLlmError::Start(format!(
                    "{e}; log ends: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )))
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn master_key(&self) -> &str {
        MASTER_KEY
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The installed version, as the venv's package metadata says.
    pub fn version(&self) -> String {
        Command::new(venv().join("bin/python"))
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('litellm'))",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }
}

/// `~/.cache/modelgate/litellm-venv`, or `LITELLM_VENV`.
pub fn venv() -> PathBuf {
    if let Some(dir) = std::env::var_os("LITELLM_VENV") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/modelgate/litellm-venv")
}
