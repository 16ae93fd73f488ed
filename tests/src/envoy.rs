//! The real Envoy running the real filter, configured from `envoy/local.yaml.tmpl` (rendered
//! by `scripts/render-envoy-config`, the same renderer `make run` uses).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::api::Gateway;
use crate::artifacts;
use crate::control_plane::ControlPlaneAccess;
use crate::pki::CertFiles;
use crate::process::{new_log, Process};

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of one Envoy; `EnvoyConfig::default()` is what `make run` uses.
#[derive(Clone, Debug)]
pub struct EnvoyConfig {
    concurrency: u32,
    tick_ms: u64,
    max_staleness_s: u64,
    upstream_authorization: String,
    control_plane_tls: Option<UpstreamTls>,
}

/// How an Envoy checks the control plane's certificate and proves itself to it.
#[derive(Clone, Debug)]
struct UpstreamTls {
    ca_cert: std::path::PathBuf,
    client: CertFiles,
}

impl Default for EnvoyConfig {
    fn default() -> Self {
        EnvoyConfig {
            concurrency: 1,
            tick_ms: 1000,
            max_staleness_s: 30,
            upstream_authorization: String::new(),
            control_plane_tls: None,
        }
    }
}

impl EnvoyConfig {
    /// Worker threads (`--concurrency`); each runs its own copy of the filter's VM.
    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers;
        self
    }

    /// How long the last snapshot is enforced after the control plane went away.
    pub fn max_staleness_s(mut self, seconds: u64) -> Self {
        self.max_staleness_s = seconds;
        self
    }

    /// `Authorization` value the filter sends upstream in place of the client's.
    pub fn upstream_authorization(mut self, value: &str) -> Self {
        self.upstream_authorization = value.to_string();
        self
    }

    /// The control-plane cluster over TLS: the server's certificate must be for `localhost`
    /// and signed by `ca_cert`; Envoy presents `client` (mTLS).
    pub fn control_plane_tls(mut self, ca_cert: &Path, client: &CertFiles) -> Self {
        self.control_plane_tls = Some(UpstreamTls {
            ca_cert: ca_cert.to_owned(),
            client: client.clone(),
        });
        self
    }
}

/// A running Envoy; killed on drop.
pub struct Envoy {
    process: Process,
    admin: SocketAddr,
    gateway: Gateway,
    // Holds the rendered config and the log until the Envoy is gone.
    _dir: TempDir,
}

impl Envoy {
    /// Starts Envoy in front of `upstream`, polling the control plane at `control_plane.addr`
    /// with its token (nothing needs to listen there yet). Returns once the admin interface
    /// says LIVE.
    pub async fn start(
        upstream: SocketAddr,
        control_plane: &ControlPlaneAccess,
        config: EnvoyConfig,
    ) -> Envoy {
        let values = local_config_values(upstream, control_plane, &config);
        let template = artifacts::repo_root().join("envoy/local.yaml.tmpl");
        match &config.control_plane_tls {
            None => Self::start_from_template(&template, &values, config.concurrency).await,
            Some(tls) => {
                let dir = tempfile::tempdir().expect("temp dir");
                let rendered = dir.path().join("local-tls.yaml.tmpl");
                render_template(&template, &values, &rendered);
                let text = std::fs::read_to_string(&rendered).expect("read rendered config");
                std::fs::write(&rendered, with_control_plane_tls(&text, tls))
                    .expect("write TLS config");
                Self::start_from_template(&rendered, &[], config.concurrency).await
            }
        }
    }

    /// Starts Envoy from another template (e.g. the benchmark's router-only config), rendered
    /// with `values`, which should set `LISTEN_PORT` and `ADMIN_PORT` to 0. Returns once the
    /// admin interface says LIVE.
    pub async fn start_from_template(
        template: &Path,
        values: &[(&str, String)],
        concurrency: u32,
    ) -> Envoy {
        let dir = tempfile::Builder::new()
            .prefix("modelgate-envoy-")
            .tempdir()
            .expect("temp dir");
        let config_path = dir.path().join("envoy.yaml");
        render_template(template, values, &config_path);
        let admin_path = dir.path().join("admin.address");
        let log = new_log(dir.path(), "envoy.log");

        let mut cmd = Command::new(artifacts::envoy_bin());
        cmd.arg("-c")
            .arg(&config_path)
            .arg("--concurrency")
            .arg(concurrency.to_string())
            // Envoys of parallel tests would otherwise fight over the hot-restart shared
            // memory of base id 0; a dynamic id is unique by construction.
            .arg("--use-dynamic-base-id")
            .arg("--admin-address-path")
            .arg(&admin_path);
        let mut process = Process::spawn("envoy", cmd, &log);

        let admin = wait_for_admin_address(&mut process, &admin_path).await;
        process
            .wait_ready(&format!("http://{admin}/ready"), START_TIMEOUT)
            .await;

        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let listeners = http
            .get(format!("http://{admin}/listeners?format=json"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("GET /listeners")
            .bytes()
            .await
            .expect("read /listeners");
        let listeners: Value = serde_json::from_slice(&listeners).expect("/listeners is JSON");
        let port = listeners["listener_statuses"][0]["local_address"]["socket_address"]
            ["port_value"]
            .as_u64()
            .unwrap_or_else(|| panic!("no listener port in {listeners}"));
        Envoy {
            process,
            admin,
            gateway: Gateway::new(format!("http://127.0.0.1:{port}")),
            _dir: dir,
        }
    }

    /// The client side: requests to the listener.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Counters and gauges from the admin interface, by name.
    pub async fn stats(&self) -> HashMap<String, u64> {
        let text = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(format!("http://{}/stats", self.admin))
            .send()
            .await
            .expect("GET /stats")
            .text()
            .await
            .expect("stats text");
        text.lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// Connections each worker thread has accepted on the listener, by worker index.
    pub async fn connections_per_worker(&self) -> Vec<u64> {
        let stats = self.stats().await;
        let mut workers: Vec<(usize, u64)> = stats
            .iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix("listener.")?;
                let (_, worker) = rest.split_once(".worker_")?;
                let index = worker.strip_suffix(".downstream_cx_total")?;
                Some((index.parse().ok()?, *value))
            })
            .collect();
        workers.sort_unstable();
        workers.into_iter().map(|(_, value)| value).collect()
    }

    /// The Envoy process id (for reading its CPU time and memory in /proc).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Envoy's log so far (the filter logs through it).
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// The values `envoy/local.yaml.tmpl` needs for this test's ports and artifacts.
fn local_config_values(
    upstream: SocketAddr,
    control_plane: &ControlPlaneAccess,
    config: &EnvoyConfig,
) -> Vec<(&'static str, String)> {
    vec![
        ("LISTEN_PORT", "0".to_string()),
        ("ADMIN_PORT", "0".to_string()),
        ("WASM_PATH", artifacts::wasm().display().to_string()),
        ("UPSTREAM_HOST", upstream.ip().to_string()),
        ("UPSTREAM_PORT", upstream.port().to_string()),
        (
            "UPSTREAM_AUTHORIZATION",
            config.upstream_authorization.clone(),
        ),
        ("CONTROL_PLANE_HOST", control_plane.addr.ip().to_string()),
        ("CONTROL_PLANE_PORT", control_plane.addr.port().to_string()),
        (
            "CONTROL_PLANE_HTTP_PORT",
            control_plane.http_addr.port().to_string(),
        ),
        ("CONTROL_PLANE_TOKEN", control_plane.token.clone()),
        ("TICK_MS", config.tick_ms.to_string()),
        ("MAX_STALENESS_S", config.max_staleness_s.to_string()),
    ]
}

/// `text` (the rendered local config) with a TLS transport socket on the control-plane
/// cluster, as the README's "TLS" section shows it.
fn with_control_plane_tls(text: &str, tls: &UpstreamTls) -> String {
    const ANCHOR: &str = "    load_assignment:\n      cluster_name: modelgate_control_plane\n";
    assert_eq!(
        text.matches(ANCHOR).count(),
        1,
        "envoy/local.yaml.tmpl changed: no single control-plane cluster to add TLS to"
    );
    let socket = format!(
        "    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: localhost
        common_tls_context:
          alpn_protocols: [h2]
          tls_certificates:
          - certificate_chain: {{ filename: {cert} }}
            private_key: {{ filename: {key} }}
          validation_context:
            trusted_ca: {{ filename: {ca} }}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{ exact: localhost }}
",
        cert = tls.client.cert.display(),
        key = tls.client.key.display(),
        ca = tls.ca_cert.display(),
    );
    text.replace(ANCHOR, &format!("{socket}{ANCHOR}"))
}

/// Runs `scripts/render-envoy-config TEMPLATE NAME=value...` into `out`.
pub fn render_template(template: &Path, values: &[(&str, String)], out: &Path) {
    let output = Command::new(artifacts::repo_root().join("scripts/render-envoy-config"))
        .arg(template)
        .args(values.iter().map(|(name, value)| format!("{name}={value}")))
        .output()
        .expect("run scripts/render-envoy-config");
    assert!(
        output.status.success(),
        "render {}: {}",
        template.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(out, &output.stdout).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
}

/// Envoy writes the admin address once it has bound port 0.
async fn wait_for_admin_address(process: &mut Process, path: &Path) -> SocketAddr {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        process.assert_running();
        let written = std::fs::read_to_string(path).ok();
        if let Some(address) = written.and_then(|a| a.trim().parse().ok()) {
            return address;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Envoy wrote no admin address within {START_TIMEOUT:?}"
        );
        tokio::time::sleep(crate::poll::INTERVAL).await;
    }
}
