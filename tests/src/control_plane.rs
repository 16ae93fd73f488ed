//! The real control plane (`modelgate serve`) in a temporary data directory, and its two
//! admin interfaces: the CLI (same binary) and gRPC.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use modelgate_proto::v1::admin_service_client::AdminServiceClient;
use modelgate_proto::v1::{CreateKeyRequest, CreateModelRequest, CreateTeamRequest};
use serde_json::Value;
use tempfile::TempDir;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::artifacts;
use crate::pki::{CertFiles, TestPki};
use crate::process::{new_log, Process};

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A `modelgate serve` process; killed on drop. Its data directory outlives
/// [`ControlPlane::kill`] so [`ControlPlane::restart`] comes back with the same store.
pub struct ControlPlane {
    dir: TempDir,
    process: Option<Process>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    /// With TLS: PolicyService on its own listener (`--policy-addr`).
    policy_addr: Option<SocketAddr>,
    tls: Option<ControlPlaneTls>,
    starts: u32,
}

/// A control plane serving TLS and requiring client certificates (mTLS): the files it was
/// started with and those the CLI uses.
#[derive(Clone, Debug)]
pub struct ControlPlaneTls {
    pub ca_cert: PathBuf,
    pub server: CertFiles,
    /// What the CLI presents.
    pub admin: CertFiles,
}

/// Where an Envoy reaches the control plane's gRPC port, and the data-plane token it
/// presents there.
#[derive(Clone, Debug)]
pub struct ControlPlaneAccess {
    pub addr: SocketAddr,
    pub token: String,
    /// The control plane's HTTP (LiteLLM REST) address, which Envoy serves under /litellm/.
    pub http_addr: SocketAddr,
}

/// A key as `modelgate key create --json` prints it.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    pub key: String,
    pub public_id: String,
    pub team_id: String,
}

/// gRPC admin client that sends the master key with every call.
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Adds `authorization: Bearer <master key>` to each call.
#[derive(Clone)]
pub struct BearerAuth(MetadataValue<Ascii>);

impl tonic::service::Interceptor for BearerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

impl ControlPlane {
    /// Starts on ports chosen by the OS (`--grpc-addr 127.0.0.1:0`), read back from the
    /// "listening on" lines it prints.
    pub async fn start() -> ControlPlane {
        Self::start_on(any_port()).await
    }

    /// Starts with gRPC on `grpc_addr`, e.g. an address an Envoy was already given.
    pub async fn start_on(grpc_addr: SocketAddr) -> ControlPlane {
        Self::start_with(grpc_addr, None).await
    }

    /// Starts with TLS on every listener, client certificates from `pki`'s CA required, and
    /// PolicyService on its own listener; the CLI connects with `pki`'s CA and a client
    /// certificate of its own.
    pub async fn start_mtls(pki: &TestPki) -> ControlPlane {
        let tls = ControlPlaneTls {
            ca_cert: pki.ca_cert(),
            server: pki.server("control-plane"),
            admin: pki.client("admin-cli"),
        };
        Self::start_with(any_port(), Some(tls)).await
    }

    async fn start_with(grpc_addr: SocketAddr, tls: Option<ControlPlaneTls>) -> ControlPlane {
        let mut control_plane = ControlPlane {
            dir: tempfile::Builder::new()
                .prefix("modelgate-cp-")
                .tempdir()
                .expect("temp dir"),
            process: None,
            grpc_addr,
            http_addr: any_port(),
            policy_addr: tls.as_ref().map(|_| any_port()),
            tls,
            starts: 0,
        };
        control_plane.launch().await;
        control_plane
    }

    async fn launch(&mut self) {
        self.starts += 1;
        let log = new_log(self.dir.path(), &format!("modelgate-{}.log", self.starts));
        let mut cmd = command();
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--grpc-addr")
            .arg(self.grpc_addr.to_string())
            .arg("--http-addr")
            .arg(self.http_addr.to_string());
        if let Some(tls) = &self.tls {
            cmd.arg("--tls-cert")
                .arg(&tls.server.cert)
                .arg("--tls-key")
                .arg(&tls.server.key)
                .arg("--client-ca")
                .arg(&tls.ca_cert);
        }
        if let Some(policy) = self.policy_addr {
            cmd.arg("--policy-addr").arg(policy.to_string());
        }
        let mut process = Process::spawn("control plane", cmd, &log);

        let (mut grpc, mut http, mut policy) = (None, None, None);
        while grpc.is_none() || http.is_none() || (self.policy_addr.is_some() && policy.is_none()) {
            let (kind, addr) = process.wait_for_line(START_TIMEOUT, parse_listening);
            match kind {
                Listener::Grpc => grpc = Some(addr),
                Listener::Http => http = Some(addr),
                Listener::Policy => policy = Some(addr),
            }
        }
        self.grpc_addr = grpc.expect("grpc address");
        self.http_addr = http.expect("http address");
        self.policy_addr = policy;
        // Over TLS the harness's plain HTTP client cannot ask /ready; the addresses are
        // announced only once the store is open and the listeners bound, which is what /ready
        // would confirm.
        if self.tls.is_none() {
            process
                .wait_ready(&format!("http://{}/ready", self.http_addr), START_TIMEOUT)
                .await;
        }
        self.process = Some(process);
    }

    /// SIGKILL: no graceful shutdown, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Kills the process if it is running and starts it again on the same addresses and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The HTTP port: the LiteLLM-compatible REST API, `/ready`, `/metrics`.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn grpc_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.grpc_addr)
    }

    /// The listener serving PolicyService: its own with `--policy-addr`, else the gRPC one.
    pub fn policy_addr(&self) -> SocketAddr {
        self.policy_addr.unwrap_or(self.grpc_addr)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The master key the control plane generated into its data directory.
    pub fn master_key(&self) -> String {
        let path = self.data_dir().join("master.key");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    /// A gRPC `AdminService` client authorised with the master key.
    pub async fn admin(&self) -> AdminClient {
        let channel = Channel::from_shared(self.grpc_url())
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to the control plane");
        let auth = format!("Bearer {}", self.master_key())
            .parse()
            .expect("ascii master key");
        AdminServiceClient::with_interceptor(channel, BearerAuth(auth))
    }

    /// Creates `team` over gRPC and a key of it; returns the key (Envoy may not know it yet).
    pub async fn create_team_key(&self, team: CreateTeamRequest) -> String {
        let mut admin = self.admin().await;
        let team = admin
            .create_team(team)
            .await
            .expect("CreateTeam")
            .into_inner();
        admin
            .create_key(CreateKeyRequest {
                team: team.team_id,
                ..CreateKeyRequest::default()
            })
            .await
            .expect("CreateKey")
            .into_inner()
            .secret
    }

    /// Runs the CLI against this control plane (`MODELGATE_ADDR`, and `MODELGATE_DATA_DIR` so
    /// it reads the master key file as an admin on this host would).
    /// Over TLS it trusts the test CA and presents the admin client certificate.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = self.cli_without_client_certificate(args);
        if let Some(tls) = &self.tls {
            cmd.env("MODELGATE_CLIENT_CERT", &tls.admin.cert)
                .env("MODELGATE_CLIENT_KEY", &tls.admin.key);
        }
        cmd.output().expect("run the modelgate CLI")
    }

    /// The CLI as [`ControlPlane::cli`] runs it, less the client certificate, not yet run.
    pub fn cli_without_client_certificate(&self, args: &[&str]) -> Command {
        let mut cmd = command();
        cmd.args(args)
            .env("MODELGATE_ADDR", self.grpc_url())
            .env("MODELGATE_DATA_DIR", self.data_dir());
        if let Some(tls) = &self.tls {
            cmd.env("MODELGATE_CA_CERT", &tls.ca_cert);
        }
        cmd
    }

    /// Runs the CLI with `--json`, asserts it succeeded and returns what it printed.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.cli(&args);
        assert!(
            output.status.success(),
            "modelgate {}: {}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "modelgate {} printed no JSON ({e}): {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// `modelgate team create --alias ALIAS --models MODELS`; returns the team id.
    pub fn create_team(&self, alias: &str, models: &str) -> String {
        let team = self.cli_json(&["team", "create", "--alias", alias, "--models", models]);
        team["team_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no team_id in {team}"))
            .to_string()
    }

    /// `modelgate key create --team TEAM`.
    pub fn create_key(&self, team: &str) -> CreatedKey {
        let created = self.cli_json(&["key", "create", "--team", team]);
        let field = |name: &str| {
            created[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in key create output"))
                .to_string()
        };
        CreatedKey {
            key: field("key"),
            public_id: field("public_id"),
            team_id: field("team_id"),
        }
    }

    /// A new team that may use every model the control plane routes (`--models '*'`), with
    /// one key.
    pub fn team_with_key(&self, alias: &str) -> CreatedKey {
        let team_id = self.create_team(alias, "*");
        self.create_key(&team_id)
    }

    /// Routes the public model `name` to the filter's default cluster (`AdminService.CreateModel`).
    /// The filter serves only models its snapshot routes.
    pub async fn create_model(&self, name: &str) {
        self.admin()
            .await
            .create_model(CreateModelRequest {
                name: name.to_string(),
                ..CreateModelRequest::default()
            })
            .await
            .unwrap_or_else(|status| panic!("CreateModel {name}: {status}"));
    }

    /// `modelgate dataplane token create --name NAME`: what an Envoy needs to reach this
    /// control plane.
    pub fn data_plane_access(&self, name: &str) -> ControlPlaneAccess {
        let created = self.cli_json(&["dataplane", "token", "create", "--name", name]);
        ControlPlaneAccess {
            addr: self.policy_addr(),
            token: created["token"]
                .as_str()
                .unwrap_or_else(|| panic!("no token in {created}"))
                .to_string(),
            http_addr: self.http_addr(),
        }
    }

    /// `modelgate dataplane token revoke NAME`, asserting success.
    pub fn revoke_data_plane_token(&self, name: &str) {
        let output = self.cli(&["dataplane", "token", "revoke", name]);
        assert!(
            output.status.success(),
            "modelgate dataplane token revoke {name}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `modelgate key revoke PUBLIC_ID`, asserting success.
    pub fn revoke_key(&self, public_id: &str) {
        let output = self.cli(&["key", "revoke", public_id]);
        assert!(
            output.status.success(),
            "modelgate key revoke {public_id}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The binary with no inherited `MODELGATE_*` settings, so tests are hermetic.
fn command() -> Command {
    let mut cmd = Command::new(artifacts::modelgate_bin());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MODELGATE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

enum Listener {
    Grpc,
    Http,
    Policy,
}

/// `modelgate: grpc listening on 127.0.0.1:PORT` / `modelgate: http listening on ...`.
fn parse_listening(line: &str) -> Option<(Listener, SocketAddr)> {
    let rest = line.strip_prefix("modelgate: ")?;
    let (kind, addr) = rest.split_once(" listening on ")?;
    let kind = match kind {
        "grpc" => Listener::Grpc,
        "http" => Listener::Http,
        "policy" => Listener::Policy,
        _ => return None,
    };
    Some((kind, addr.trim().parse().ok()?))
}
