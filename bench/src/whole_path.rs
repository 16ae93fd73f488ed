//! The whole request path under load: the same chat completion through (a) Envoy as a plain
//! router, (b) Envoy + Modelgate checking a key, its allowlist and limits, (b-jwt) (b) with an
//! IdP JWT instead of the key, (c) (b) with the team's redaction policy masking a 4 KB prompt
//! with PII, (d) (c) with a streamed answer, and optionally (e) the LiteLLM proxy, all in
//! front of the same nginx.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use modelgate_e2e::artifacts;
use modelgate_e2e::{ControlPlane, ControlPlaneAccess, Envoy, EnvoyConfig};
use modelgate_proto::v1::{CreateKeyRequest, CreateModelRequest, CreateTeamRequest, LimitSettings};
use serde_json::{json, Value};

use crate::jwt::{self, JwtSetupError};
use crate::litellm::{LiteLlm, LiteLlmError};
use crate::load::{self, Connection, Load, LoadError, Outcome, RequestTemplate};
use crate::procfs::{self, ProcError};
use crate::results::{Configuration, Point, WholePath};
use crate::upstream::{Nginx, UpstreamError};

/// The public model name every configuration asks for.
pub const MODEL: &str = "bench-model";
const PATH: &str = "/v1/chat/completions";
/// How long a new key may take to reach Envoy (one poll tick plus slack).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Limits high enough never to trip at any rate this machine reaches, so every request pays
/// for the checks without being refused.
fn generous_limits() -> LimitSettings {
    LimitSettings {
        rpm_limit: Some(1_000_000_000),
        tpm_limit: Some(1_000_000_000_000),
        max_parallel_requests: Some(100_000),
        max_budget: Some(1_000_000_000.0),
        budget_duration: Some("30d".to_string()),
        budget_reset: None,
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub duration: Duration,
    pub warmup: Duration,
    /// Envoy worker threads, the same for every configuration.
    pub envoy_concurrency: u32,
    pub loads: Vec<Load>,
    /// Run (e) when LiteLLM is installed.
    pub litellm: bool,
    pub smoke: bool,
    /// Only these configurations ("a", "b", "b-jwt", "c", "d", "e"); empty = all.
    pub only: Vec<String>,
}

impl Settings {
    /// Closed loop at 1, 16 and 64 connections; open loop at 100 and 1,000 req/s.
    pub fn full() -> Self {
        Settings {
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            // Two cores: one for Envoy's worker, one for the load generator and nginx.
            envoy_concurrency: 1,
            loads: vec![
                Load::Closed { connections: 1 },
                Load::Closed { connections: 16 },
                Load::Closed { connections: 64 },
                Load::Open {
                    rate: 100,
                    connections: OPEN_CONNECTIONS,
                },
                Load::Open {
                    rate: 1000,
                    connections: OPEN_CONNECTIONS,
                },
            ],
            litellm: true,
            smoke: false,
            only: Vec::new(),
        }
    }

    /// A quick check that every path works (CI): two points, one second each, no LiteLLM.
    pub fn smoke() -> Self {
        Settings {
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(300),
            loads: vec![
                Load::Closed { connections: 16 },
                Load::Open {
                    rate: 100,
                    connections: OPEN_CONNECTIONS,
                },
            ],
            litellm: false,
            smoke: true,
            ..Settings::full()
        }
    }
}

impl Settings {
    fn wants(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == id)
    }
}

/// Connections an open-loop run may use: enough that a burst never waits for one at the
/// rates measured, so queueing shows only when the gateway itself falls behind.
const OPEN_CONNECTIONS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum WholePathError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error(transparent)]
    LiteLlm(#[from] LiteLlmError),
    #[error("control plane: {0}")]
    ControlPlane(#[from] tonic::Status),
    #[error(transparent)]
    Jwt(#[from] JwtSetupError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("gateway address {0:?}")]
    Address(String),
    #[error("configuration ({0}) never answered 2xx within {READY_TIMEOUT:?}: {1}")]
    NotReady(String, String),
}

/// One configuration being measured: where to send, what, and which process pays.
struct Gateway {
    template: RequestTemplate,
    pid: u32,
    /// The Envoy or LiteLLM process, killed when this is dropped after its points.
    _process: Box<dyn std::any::Any>,
}

/// Runs every configuration at every load, one after the other in this one sitting.
pub async fn run(settings: &Settings) -> Result<WholePath, WholePathError> {
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let load_average_at_start = load_average();
    let nginx = Nginx::start().await?;
    let control_plane = ControlPlane::start().await;
    let keys = Keys::create(&control_plane).await?;
    let plain = chat_body(&plain_prompt(), false);
    let pii = chat_body(&pii_prompt(), false);
    let pii_streamed = chat_body(&pii_prompt(), true);

    let mut configurations = vec![
        Configuration {
            id: "a".into(),
            description: "Envoy router only (no filter)".into(),
            request_bytes: plain.len(),
            streamed: false,
        },
        Configuration {
            id: "b".into(),
            description: "Envoy + Modelgate: key, allowlist, limits".into(),
            request_bytes: plain.len(),
            streamed: false,
        },
        Configuration {
            id: "b-jwt".into(),
            description: "(b) authenticated by an IdP JWT (ES256) instead of a key: verified on \
                          first sight, then from the worker's token cache"
                .into(),
            request_bytes: plain.len(),
            streamed: false,
        },
        Configuration {
            id: "c".into(),
            description: "(b) + redaction (mask) of a 4 KB prompt with PII".into(),
            request_bytes: pii.len(),
            streamed: false,
        },
        Configuration {
            id: "d".into(),
            description: "(c) + streamed answer (SSE)".into(),
            request_bytes: pii_streamed.len(),
            streamed: true,
        },
    ];
    let mut notes = Vec::new();
    let mut points = Vec::new();
    configurations.retain(|c| settings.wants(&c.id));
    // One data-plane token for every filtered Envoy of the run (they run one at a time).
    let access = control_plane.data_plane_access("bench-whole-path");
    for configuration in &configurations {
        let gateway = match configuration.id.as_str() {
            "a" => router_only(nginx.json_addr(), settings, &keys.plain, &plain).await?,
            "b" => with_filter(nginx.json_addr(), &access, settings, &keys.plain, &plain).await?,
            "b-jwt" => with_filter(nginx.json_addr(), &access, settings, &keys.jwt, &plain).await?,
            "c" => with_filter(nginx.json_addr(), &access, settings, &keys.pii, &pii).await?,
            _ => {
                with_filter(
                    nginx.sse_addr(),
                    &access,
                    settings,
                    &keys.pii,
                    &pii_streamed,
                )
                .await?
            }
        };
        points.extend(measure(&configuration.id, &gateway, settings, &mut notes).await?);
    }

    if settings.litellm && settings.wants("e") {
        match LiteLlm::start(nginx.json_addr(), MODEL).await {
            Ok(litellm) => {
                let template = RequestTemplate::json_post(
                    litellm.addr(),
                    PATH,
                    Some(litellm.master_key()),
                    plain.clone(),
                )?;
                wait_until_ok("e", &template).await?;
                configurations.push(Configuration {
                    id: "e".into(),
                    description: format!(
                        "LiteLLM proxy {} ({} workers, master key only, no database)",
                        litellm.version(),
                        crate::litellm::WORKERS
                    ),
                    request_bytes: plain.len(),
                    streamed: false,
                });
                let gateway = Gateway {
                    template,
                    pid: litellm.pid(),
                    _process: Box::new(litellm),
                };
                points.extend(measure("e", &gateway, settings, &mut notes).await?);
            }
            Err(e) => notes.push(format!("(e) LiteLLM not measured: {e}")),
        }
    }

    Ok(WholePath {
        started_at,
        load_average_at_start,
        envoy_concurrency: settings.envoy_concurrency,
        duration_s: settings.duration.as_secs_f64(),
        warmup_s: settings.warmup.as_secs_f64(),
        smoke: settings.smoke,
        configurations,
        points,
        notes,
    })
}

/// The keys of (b) (no redaction) and of (c)/(d) (the team masks every PII type), and the
/// IdP token of (b-jwt).
struct Keys {
    plain: String,
    pii: String,
    jwt: String,
}

impl Keys {
    async fn create(control_plane: &ControlPlane) -> Result<Keys, WholePathError> {
        let mut admin = control_plane.admin().await;
        admin
            .create_model(CreateModelRequest {
                name: MODEL.to_string(),
                // Priced, so the budget check has a cost to add up.
                input_cost_per_mtok: 1.0,
                output_cost_per_mtok: 2.0,
                ..CreateModelRequest::default()
            })
            .await?;
        let key = |alias: &'static str, policy: &'static str| {
            let mut admin = admin.clone();
            async move {
                let team = admin
                    .create_team(CreateTeamRequest {
                        alias: alias.to_string(),
                        models: vec![MODEL.to_string()],
                        limits: Some(generous_limits()),
                        redaction_policy_json: policy.to_string(),
                        ..CreateTeamRequest::default()
                    })
                    .await?
                    .into_inner();
                let key = admin
                    .create_key(CreateKeyRequest {
                        team: team.team_id,
                        models: vec![MODEL.to_string()],
                        limits: Some(generous_limits()),
                        ..CreateKeyRequest::default()
                    })
                    .await?
                    .into_inner();
                Ok::<_, WholePathError>(key.secret)
            }
        };
        let plain = key("bench-plain", "").await?;
        let pii = key("bench-redacted", r#"{"default_action": "mask"}"#).await?;
        let jwt = jwt::issue_token(&mut admin, &[MODEL.to_string()], &generous_limits()).await?;
        Ok(Keys { plain, pii, jwt })
    }
}

async fn router_only(
    upstream: SocketAddr,
    settings: &Settings,
    key: &str,
    body: &[u8],
) -> Result<Gateway, WholePathError> {
    let template = artifacts::repo_root().join("bench/envoy/router-only.yaml.tmpl");
    let values = [
        ("LISTEN_PORT", "0".to_string()),
        ("ADMIN_PORT", "0".to_string()),
        ("UPSTREAM_HOST", upstream.ip().to_string()),
        ("UPSTREAM_PORT", upstream.port().to_string()),
    ];
    let envoy = Envoy::start_from_template(&template, &values, settings.envoy_concurrency).await;
    envoy_gateway("a", envoy, key, body).await
}

async fn with_filter(
    upstream: SocketAddr,
    control_plane: &ControlPlaneAccess,
    settings: &Settings,
    key: &str,
    body: &[u8],
) -> Result<Gateway, WholePathError> {
    let envoy = Envoy::start(
        upstream,
        control_plane,
        EnvoyConfig::default().concurrency(settings.envoy_concurrency),
    )
    .await;
    envoy_gateway("filter", envoy, key, body).await
}

async fn envoy_gateway(
    name: &str,
    envoy: Envoy,
    key: &str,
    body: &[u8],
) -> Result<Gateway, WholePathError> {
    let base = envoy.gateway().url("");
    let addr = base
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .ok_or(WholePathError::Address(base.clone()))?;
    let template = RequestTemplate::json_post(addr, PATH, Some(key), body.to_vec())?;
    wait_until_ok(name, &template).await?;
    Ok(Gateway {
        template,
        pid: envoy.pid(),
        _process: Box::new(envoy),
    })
}

/// Sends the benchmark's own request until it is answered 2xx: the key has reached Envoy and
/// the whole path works.
async fn wait_until_ok(name: &str, template: &RequestTemplate) -> Result<(), WholePathError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last = match Connection::open(template.addr).await {
            Ok(mut connection) => match connection.send(template).await {
                Ok(status) if status.is_success() => return Ok(()),
                Ok(status) => format!("status {status}"),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(WholePathError::NotReady(name.to_string(), last));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every load of `settings` against one gateway, each after a warm-up.
async fn measure(
    config: &str,
    gateway: &Gateway,
    settings: &Settings,
    notes: &mut Vec<String>,
) -> Result<Vec<Point>, WholePathError> {
    let mut points = Vec::new();
    // The highest closed-loop rate seen; an open loop far above it would only measure the
    // queue in front of the gateway (and take minutes to drain), so it is skipped.
    let mut peak_rps: f64 = 0.0;
    for &load in &settings.loads {
        if let Load::Open { rate, .. } = load {
            if peak_rps > 0.0 && f64::from(rate) > peak_rps {
                notes.push(format!(
                    "({config}) open loop at {rate} req/s skipped: above its closed-loop peak of {peak_rps:.0} req/s"
                ));
                continue;
            }
        }
        load::run(&gateway.template, load, settings.warmup).await?;
        let cpu_before = procfs::cpu_ns(gateway.pid)?;
        let outcome = load::run(&gateway.template, load, settings.duration).await?;
        let cpu_ns = procfs::cpu_ns(gateway.pid)?.saturating_sub(cpu_before);
        let rss_kib = procfs::rss_kib(gateway.pid)?;
        let point = point(config, load, &outcome, cpu_ns, rss_kib);
        eprintln!(
            "({config}) {:<14} {:>9.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs  errors {}  CPU {:.1} µs/req",
            point.label(),
            point.requests_per_s,
            point.p50_us,
            point.p99_us,
            point.errors,
            point.cpu_us_per_request.unwrap_or(f64::NAN)
        );
        if matches!(load, Load::Closed { .. }) {
            peak_rps = peak_rps.max(point.requests_per_s);
        }
        points.push(point);
    }
    Ok(points)
}

fn point(config: &str, load: Load, outcome: &Outcome, cpu_ns: u64, rss_kib: u64) -> Point {
    let (kind, connections, rate) = match load {
        Load::Closed { connections } => ("closed", connections, None),
        Load::Open { rate, connections } => ("open", connections, Some(rate)),
    };
    let answered = outcome.ok + outcome.error_count();
    let us = |quantile: f64| outcome.latency.value_at_quantile(quantile) as f64 / 1000.0;
    let elapsed = outcome.elapsed.as_secs_f64();
    Point {
        config: config.to_string(),
        load: kind.to_string(),
        connections,
        rate,
        ok: outcome.ok,
        errors: outcome.error_count(),
        error_kinds: outcome.errors.clone(),
        elapsed_s: elapsed,
        requests_per_s: outcome.ok as f64 / elapsed,
        p50_us: us(0.5),
        p90_us: us(0.9),
        p99_us: us(0.99),
        max_us: outcome.latency.max() as f64 / 1000.0,
        cpu_us_per_request: (answered > 0).then(|| cpu_ns as f64 / 1000.0 / answered as f64),
        rss_kib: Some(rss_kib),
    }
}

/// A chat completion request body.
fn chat_body(prompt: &str, stream: bool) -> Vec<u8> {
    let mut body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a concise assistant for an operations team."},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": 64,
    });
    if stream {
        body["stream"] = Value::Bool(true);
    }
    body.to_string().into_bytes()
}

/// About 1 KB of request in all: ordinary text without personal data.
fn plain_prompt() -> String {
    fill(
        "Summarise the quarterly report: revenue grew in every region, costs stayed flat, \
         and the delayed projects are back on schedule. ",
        860,
    )
}

/// A 4 KB prompt with names, e-mail addresses and phone numbers among ordinary text.
fn pii_prompt() -> String {
    fill(
        "Dear Priya Raman, the shipment to the Berlin office left on Monday and should arrive \
         before the audit; call +1 415 555 0132 or write to ops@example.com with questions. \
         The report covers revenue, costs and the schedule of the two delayed projects. ",
        4096,
    )
}

/// `sentence` repeated and cut to `len` bytes (the sentences are ASCII).
fn fill(sentence: &str, len: usize) -> String {
    sentence.repeat(len / sentence.len() + 1)[..len].to_string()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// `target/bench/` in the repository (not under `CARGO_TARGET_DIR`, which lives outside the
/// checkout): where every `make bench` result and the report go.
pub fn bench_dir() -> PathBuf {
    artifacts::repo_root().join("target/bench")
}
