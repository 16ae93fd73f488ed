//! The real `modelgate serve` on port 0 with a temp data dir, and the CLI binary beside it.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use modelgate_proto::v1::policy_service_client::PolicyServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;

pub const BIN: &str = env!("CARGO_BIN_EXE_modelgate");
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running control plane; killed on drop.
pub struct ControlPlane {
    child: Option<Child>,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// With `--policy-addr`: where PolicyService listens.
    pub policy_addr: Option<SocketAddr>,
    /// `https` when started with `--tls-cert`.
    scheme: &'static str,
    pub data_dir: PathBuf,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    /// The token [`ControlPlane::policy_client`] presents, minted on first use.
    data_plane_token: OnceLock<String>,
}

/// A `PolicyService` client that presents a fixed `authorization` value (or none), as an
/// Envoy presents its data-plane token.
pub type PolicyClient = PolicyServiceClient<InterceptedService<Channel, PresentedCredential>>;

#[derive(Clone)]
pub struct PresentedCredential(Option<MetadataValue<Ascii>>);

impl Interceptor for PresentedCredential {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Every variable the binary reads, so the developer's environment cannot leak into a test.
const ENV_VARS: &[&str] = &[
    "MODELGATE_ADDR",
    "MODELGATE_MASTER_KEY",
    "MODELGATE_ADMIN_KEY",
    "MODELGATE_ADMIN_TOKEN",
    "MODELGATE_DATA_DIR",
    "MODELGATE_GRPC_ADDR",
    "MODELGATE_HTTP_ADDR",
    "MODELGATE_DATABASE_URL",
    "MODELGATE_POLICY_ADDR",
    "MODELGATE_TLS_CERT",
    "MODELGATE_TLS_KEY",
    "MODELGATE_CLIENT_CA",
    "MODELGATE_CA_CERT",
    "MODELGATE_CLIENT_CERT",
    "MODELGATE_CLIENT_KEY",
];

pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for var in ENV_VARS {
        cmd.env_remove(var);
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

impl ControlPlane {
    /// Starts `modelgate serve` with `--data-dir data_dir`, ports 0 and any extra args/env.
    pub fn start(data_dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = command();
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(extra_args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn modelgate serve");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let out_pipe = child.stdout.take().expect("stdout");
        let err_pipe = child.stderr.take().expect("stderr");
        let readers = vec![
            spawn_reader(out_pipe, Arc::clone(&stdout), Some(tx)),
            spawn_reader(err_pipe, Arc::clone(&stderr), None),
        ];

        let mut grpc = None;
        let mut http = None;
        let mut policy = None;
        let wants_policy = extra_args.contains(&"--policy-addr");
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        while grpc.is_none() || http.is_none() || (wants_policy && policy.is_none()) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("modelgate: grpc listening on ") {
                        grpc = Some(a.trim().parse().expect("grpc addr"));
                    } else if let Some(a) = line.strip_prefix("modelgate: http listening on ") {
                        http = Some(a.trim().parse().expect("http addr"));
                    } else if let Some(a) = line.strip_prefix("modelgate: policy listening on ") {
                        policy = Some(a.trim().parse().expect("policy addr"));
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "modelgate serve did not announce its addresses; stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
        Self {
            child: Some(child),
            grpc_addr: grpc.unwrap(),
            http_addr: http.unwrap(),
            policy_addr: policy,
            scheme: if extra_args.contains(&"--tls-cert") {
                "https"
            } else {
                "http"
            },
            data_dir: data_dir.to_owned(),
            stdout,
            stderr,
            readers,
            data_plane_token: OnceLock::new(),
        }
    }

    /// `modelgate dataplane token create --name NAME`: the whole token.
    pub fn create_data_plane_token(&self, name: &str) -> String {
        let created = self
            .cli(&["dataplane", "token", "create", "--name", name, "--json"])
            .json();
        created["token"].as_str().expect("token").to_owned()
    }

    /// A `PolicyService` client sending `authorization: <authorization>`, or nothing.
    pub async fn policy_client_with(&self, authorization: Option<&str>) -> PolicyClient {
        let channel = Channel::from_shared(self.grpc_url())
            .expect("url")
            .connect()
            .await
            .expect("connect to the control plane");
        let value = authorization.map(|a| a.parse().expect("ascii authorization"));
        PolicyServiceClient::with_interceptor(channel, PresentedCredential(value))
    }

    /// A `PolicyService` client presenting this control plane's test data-plane token
    /// (`test-envoy`), as the filter does.
    pub async fn policy_client(&self) -> PolicyClient {
        let token = self
            .data_plane_token
            .get_or_init(|| self.create_data_plane_token("test-envoy"));
        self.policy_client_with(Some(&format!("Bearer {token}")))
            .await
    }

    pub fn grpc_url(&self) -> String {
        format!("{}://{}", self.scheme, self.grpc_addr)
    }

    /// Runs the CLI against this server; the master key comes from the data dir's file unless
    /// `args` or `env` say otherwise.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        self.cli_with_env(args, &[])
    }

    pub fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> CliOutput {
        let out = command()
            .args(["--addr", &self.grpc_url(), "--data-dir"])
            .arg(&self.data_dir)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run modelgate CLI");
        CliOutput::from(out)
    }

    /// SIGTERM, then wait: returns whether it exited 0, with everything it printed.
    pub fn stop(mut self) -> (bool, String, String) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let exit = wait_with_timeout(&mut child, Duration::from_secs(20));
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (exit, out, err)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.success();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("modelgate serve did not stop within {timeout:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
            if let Some(tx) = &lines {
                let _ = tx.send(line);
            }
        }
    })
}

#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for CliOutput {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl CliOutput {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "CLI failed: {self:?}");
        &self.stdout
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts exit code 1 with exactly one line on stderr, and returns that line.
    pub fn fails(&self) -> &str {
        assert_eq!(self.code, Some(1), "expected exit 1: {self:?}");
        let err = self.stderr.trim_end();
        assert_eq!(err.lines().count(), 1, "expected one error line: {self:?}");
        err
    }
}
