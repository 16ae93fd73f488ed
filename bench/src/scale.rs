//! The scale runs (`scale` binary): a control plane holding 100k keys, the snapshot it builds,
//! the filter decoding it in every worker of real Envoy, Envoy's memory per worker, and how
//! long a revocation takes to be enforced by every worker. Results go to
//! `target/bench/scale.json` as a list of measurements with their targets (issue 7).
//!
//! Seeding is not measured as a user operation: the keys are inserted with the control plane
//! library's `KeyStore::create_keys` (one transaction) on the running control plane's SQLite
//! file, since the admin API creates one key per call.

use std::path::Path;
use std::time::{Duration, Instant};

use modelgate_control_plane::clock::Timestamp;
use modelgate_control_plane::domain::{new_team_id, NewKey, Team};
use modelgate_control_plane::keys::{MintedKey, RandomnessError};
use modelgate_control_plane::limits::Limits;
use modelgate_control_plane::store::{
    KeyStore, PolicyStore, SqliteStore, Store, StoreError, TeamStore,
};
use modelgate_e2e::api::MODEL;
use modelgate_e2e::{artifacts, ControlPlane, ControlPlaneAccess, Envoy, EnvoyConfig, Upstream};
use modelgate_proto::v1::policy_service_client::PolicyServiceClient;
use modelgate_proto::v1::{GetSnapshotRequest, RevokeKeyRequest};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tonic::metadata::{Ascii, MetadataValue};

use crate::procfs::{self, ProcError};

/// A 100k-key snapshot is tens of MB; tonic's default cap is 4 MiB.
const MAX_SNAPSHOT_BYTES: usize = 1 << 30;
/// The filter's poll period in `EnvoyConfig::default()` (what `make run` uses).
const POLL_TICK: Duration = Duration::from_secs(1);
/// How long a snapshot or a revocation may take to reach every worker before the run fails.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(60);
/// Requests per probing round, per worker: enough that every worker gets a connection.
const PROBES_PER_WORKER: usize = 4;
/// Workers of the Envoy that measures revocation.
const REVOCATION_WORKERS: u32 = 2;
/// What a worker logs when it adopts a snapshot version (one line per worker and version).
const DECODE_LINE: &str = "snapshot decoded ";
/// What the control plane logs when it has built a snapshot.
const BUILT_LINE: &str = "policy snapshot built";
const MB: f64 = 1e6;

/// How much to measure.
#[derive(Clone, Debug)]
pub struct Settings {
    pub keys: usize,
    /// GetSnapshot calls timed, after a version change and from the cache each.
    pub snapshot_runs: usize,
    pub revocations: usize,
    /// `--concurrency` values whose memory is compared.
    pub concurrencies: Vec<u32>,
    pub smoke: bool,
}

impl Settings {
    pub fn full() -> Self {
        Self {
            keys: 100_000,
            snapshot_runs: 10,
            revocations: 20,
            concurrencies: vec![1, 2, 4],
            smoke: false,
        }
    }

    /// A quick pass (CI): the same steps at 10k keys and few repetitions.
    pub fn smoke() -> Self {
        Self {
            keys: 10_000,
            snapshot_runs: 3,
            revocations: 3,
            concurrencies: vec![1, 2],
            smoke: true,
        }
    }
}

/// `target/bench/scale.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScaleResults {
    pub measurements: Vec<Measurement>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measurement {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// E.g. "<= 100 ms"; `None` when the issue sets no target.
    pub target: Option<String>,
    pub met: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("minting keys: {0}")]
    Randomness(#[from] RandomnessError),
    #[error("connect to the control plane: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("gRPC call: {0}")]
    Grpc(#[from] tonic::Status),
    #[error("{0}")]
    Proc(#[from] ProcError),
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("GetSnapshot answered without a snapshot")]
    NoSnapshot,
    #[error("the data-plane token is not a valid gRPC header value")]
    TokenHeader,
    #[error("not true after {PROPAGATION_LIMIT:?}: {0}")]
    Timeout(String),
}

impl ScaleResults {
    /// Records a measurement and prints it.
    fn measured(&mut self, name: &str, value: f64, unit: &str, target: Option<(&str, bool)>) {
        let verdict = match target {
            Some((target, true)) => format!("  (target {target}: met)"),
            Some((target, false)) => format!("  (target {target}: MISSED)"),
            None => String::new(),
        };
        println!("{name}: {value:.3} {unit}{verdict}");
        self.measurements.push(Measurement {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            target: target.map(|(t, _)| t.to_owned()),
            met: target.map(|(_, met)| met),
        });
    }

    fn note(&mut self, note: String) {
        println!("note: {note}");
        self.notes.push(note);
    }
}

/// Keys whose secrets the run keeps (the rest exist only as hashes in the store).
struct Seeded {
    /// Never revoked: shows that a worker serves the current snapshot.
    probe: String,
    /// `(public id, secret)`, one per revocation.
    victims: Vec<(String, String)>,
}

pub async fn run(settings: &Settings) -> Result<ScaleResults, ScaleError> {
    let mut results = ScaleResults::default();
    results.note(format!(
        "load average at start: {}; {} keys{}",
        // The 1, 5 and 15 minute load averages.
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        settings.keys,
        if settings.smoke { " (smoke run)" } else { "" }
    ));
    wasm_size(&mut results)?;

    let upstream = Upstream::start();
    let mut control_plane = ControlPlane::start().await;
    control_plane.create_model(MODEL).await;
    let seeded = seed(&control_plane, settings, &mut results).await?;
    // Minted while the control plane runs; every client and Envoy of this run presents it.
    let access = control_plane.data_plane_access("bench-scale");
    snapshot_timings(&control_plane, &access, settings, &mut results).await?;

    let mut rss = Vec::new();
    let mut decodes = Vec::new();
    for &workers in &settings.concurrencies {
        // Envoy starts with no control plane to reach, so its memory before the snapshot is
        // known; the restarted control plane (same address and data) then serves it.
        control_plane.kill();
        let envoy = Envoy::start(
            upstream.addr(),
            &access,
            EnvoyConfig::default().concurrency(workers),
        )
        .await;
        tokio::time::sleep(POLL_TICK * 2).await;
        let before = procfs::rss_kib(envoy.pid())?;
        control_plane.restart().await;
        let arrived = every_worker_answers(&envoy, &seeded.probe, 200, Instant::now()).await?;
        let after = procfs::rss_kib(envoy.pid())?;
        results.measured(
            &format!("envoy --concurrency {workers}: snapshot served by every worker after control plane start"),
            arrived.as_secs_f64(),
            "s",
            None,
        );
        results.measured(
            &format!("envoy --concurrency {workers}: RSS before the snapshot"),
            kib_to_mb(before),
            "MB",
            None,
        );
        results.measured(
            &format!("envoy --concurrency {workers}: RSS with the snapshot in every worker"),
            kib_to_mb(after),
            "MB",
            None,
        );
        rss.push((workers, before, after));
        decodes.extend(decode_micros(&envoy.log(), settings.keys));
    }
    memory_per_worker(&rss, &mut results);

    let envoy = Envoy::start(
        upstream.addr(),
        &access,
        EnvoyConfig::default().concurrency(REVOCATION_WORKERS),
    )
    .await;
    every_worker_answers(&envoy, &seeded.probe, 200, Instant::now()).await?;
    revocations(&control_plane, &envoy, &seeded.victims, &mut results).await?;
    decodes.extend(decode_micros(&envoy.log(), settings.keys));
    decode_times(&decodes, &mut results);
    build_breakdown(&control_plane, settings.keys, &mut results);
    Ok(results)
}

fn wasm_size(results: &mut ScaleResults) -> Result<(), ScaleError> {
    let path = artifacts::wasm();
    let bytes = std::fs::metadata(&path)
        .map_err(|source| ScaleError::Read {
            path: path.display().to_string(),
            source,
        })?
        .len();
    results.measured(
        "filter .wasm size",
        bytes as f64 / MB,
        "MB",
        Some(("<= 2 MB", bytes as f64 <= 2.0 * MB)),
    );
    results.note(format!("filter: {}", path.display()));
    Ok(())
}

/// One team allowed every model, and `settings.keys` keys in it, inserted in one transaction.
async fn seed(
    control_plane: &ControlPlane,
    settings: &Settings,
    results: &mut ScaleResults,
) -> Result<Seeded, ScaleError> {
    let store = open_store(&control_plane.data_dir()).await?;
    let now = Timestamp::now();
    let team = Team::new(
        new_team_id()?,
        "scale".to_owned(),
        vec!["*".to_owned()],
        now,
    );
    store.create_team(&team).await?;

    let started = Instant::now();
    let mut secrets = Vec::new();
    let mut keys = Vec::with_capacity(settings.keys);
    for i in 0..settings.keys {
        let minted = MintedKey::generate()?;
        // The first keys' secrets are kept: one to probe with, one per revocation.
        if i <= settings.revocations {
            secrets.push((minted.public_id.clone(), minted.secret.expose().to_owned()));
        }
        keys.push(NewKey {
            team: Some(team.id.clone()),
            public_id: minted.public_id,
            key_sha256: minted.sha256,
            last4: minted.last4,
            user_id: None,
            alias: None,
            models: Vec::new(),
            limits: Limits::default(),
            metadata: Default::default(),
            blocked: false,
            user_assertion: Default::default(),
            created_at: now,
            expires_at: None,
        });
    }
    store.create_keys(&keys).await?;
    store.close().await;
    results.measured(
        "seeding: mint and insert keys (KeyStore::create_keys, one transaction)",
        started.elapsed().as_secs_f64(),
        "s",
        None,
    );
    results.note(
        "seeding is not an admin operation: the keys are minted and inserted by this program \
         with the control plane library's KeyStore::create_keys, in one SQLite transaction"
            .to_owned(),
    );
    let mut secrets = secrets.into_iter();
    let probe = secrets.next().map(|(_, secret)| secret).unwrap_or_default();
    Ok(Seeded {
        probe,
        victims: secrets.collect(),
    })
}

async fn open_store(data_dir: &Path) -> Result<SqliteStore, ScaleError> {
    Ok(SqliteStore::open_file(&data_dir.join("modelgate.db")).await?)
}

/// GetSnapshot as a filter calls it, timed from this client: right after a version change
/// (the control plane reads the store and builds the snapshot) and again (from its cache).
async fn snapshot_timings(
    control_plane: &ControlPlane,
    access: &ControlPlaneAccess,
    settings: &Settings,
    results: &mut ScaleResults,
) -> Result<(), ScaleError> {
    let store = open_store(&control_plane.data_dir()).await?;
    let mut client = PolicyServiceClient::connect(control_plane.grpc_url())
        .await?
        .max_decoding_message_size(MAX_SNAPSHOT_BYTES);
    let authorization: MetadataValue<Ascii> = format!("Bearer {}", access.token)
        .parse()
        .map_err(|_| ScaleError::TokenHeader)?;
    let (mut built, mut cached) = (Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..settings.snapshot_runs {
        store.bump_policy_version().await?;
        for times in [&mut built, &mut cached] {
            let started = Instant::now();
            let mut request = tonic::Request::new(GetSnapshotRequest {
                known_version: 0,
                node_id: "scale-bench".to_owned(),
                ..GetSnapshotRequest::default()
            });
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
            let response = client.get_snapshot(request).await?.into_inner();
            times.push(started.elapsed());
            size = response
                .snapshot
                .ok_or(ScaleError::NoSnapshot)?
                .encoded_len();
        }
    }
    store.close().await;
    for (what, times) in [("after a policy change", built), ("cached", cached)] {
        let times = Percentiles::of(times);
        results.measured(
            &format!("GetSnapshot {what}, client-observed, p50"),
            ms(times.p50),
            "ms",
            None,
        );
        results.measured(
            &format!("GetSnapshot {what}, client-observed, max"),
            ms(times.max),
            "ms",
            None,
        );
    }
    results.measured("snapshot size (encoded)", size as f64 / MB, "MB", None);
    Ok(())
}

/// Sends rounds of requests with `key`, each on a new connection, until one round in which
/// every worker accepted a connection got `status` from all of them. Returns the time since
/// `since`; it overstates by at most one round (a few milliseconds), since a worker that has
/// adopted a version keeps it.
async fn every_worker_answers(
    envoy: &Envoy,
    key: &str,
    status: u16,
    since: Instant,
) -> Result<Duration, ScaleError> {
    let mut last = String::new();
    while since.elapsed() < PROPAGATION_LIMIT {
        let before = envoy.connections_per_worker().await;
        let mut round = JoinSet::new();
        for _ in 0..before.len().max(1) * PROBES_PER_WORKER {
            let gateway = envoy.gateway().clone();
            let key = key.to_owned();
            round.spawn(async move { gateway.chat(Some(&key)).await.status });
        }
        let statuses = round.join_all().await;
        let after = envoy.connections_per_worker().await;
        let all_workers = !after.is_empty()
            && after.len() == before.len()
            && after.iter().zip(&before).all(|(a, b)| a > b);
        if all_workers && statuses.iter().all(|&s| s == status) {
            return Ok(since.elapsed());
        }
        last = format!("answers {statuses:?}, connections per worker {before:?} -> {after:?}");
    }
    Err(ScaleError::Timeout(format!(
        "every worker answering {status}; last round: {last}"
    )))
}

/// Revokes one key at a time over the admin API and times until every worker refuses it.
async fn revocations(
    control_plane: &ControlPlane,
    envoy: &Envoy,
    victims: &[(String, String)],
    results: &mut ScaleResults,
) -> Result<(), ScaleError> {
    let mut admin = control_plane.admin().await;
    let mut times = Vec::new();
    for (i, (public_id, secret)) in victims.iter().enumerate() {
        // A round ends just after a poll; spread the revocations over the poll period so
        // they sample every phase of it.
        tokio::time::sleep(POLL_TICK.mul_f64(i as f64 / victims.len() as f64)).await;
        admin
            .revoke_key(RevokeKeyRequest {
                public_id: public_id.clone(),
            })
            .await?;
        times.push(every_worker_answers(envoy, secret, 401, Instant::now()).await?);
    }
    let n = times.len();
    let times = Percentiles::of(times);
    let name = format!("revocation enforced by all {REVOCATION_WORKERS} workers");
    results.measured(&format!("{name}, p50"), ms(times.p50), "ms", None);
    results.measured(
        &format!("{name}, p99"),
        ms(times.p99),
        "ms",
        Some(("<= 2000 ms", times.p99 <= Duration::from_secs(2))),
    );
    results.measured(&format!("{name}, max"), ms(times.max), "ms", None);
    results.note(format!(
        "revocation: {n} keys revoked one at a time over gRPC RevokeKey; timed from the call's \
         return until a round of {} new connections covering every worker all got 401 \
         (p99 of {n} samples is their nearest-rank 99th percentile)",
        REVOCATION_WORKERS as usize * PROBES_PER_WORKER
    ));
    Ok(())
}

/// `micros=` of every `snapshot decoded … keys=<keys> …` line in an Envoy log.
fn decode_micros(log: &str, keys: usize) -> Vec<u64> {
    logged_values(log, DECODE_LINE, keys, &["micros"])
        .into_iter()
        .map(|values| values[0])
        .collect()
}

/// For every line of `log` containing `marker` and `keys=<keys>` after it, the numbers of
/// the `name=<u64>` fields `names` (lines lacking one are skipped).
fn logged_values(log: &str, marker: &str, keys: usize, names: &[&str]) -> Vec<Vec<u64>> {
    log.lines()
        .filter_map(|line| {
            let (_, fields) = line.split_once(marker)?;
            let field = |name: &str| -> Option<u64> {
                fields
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))?
                    .parse()
                    .ok()
            };
            if field("keys")? != keys as u64 {
                return None;
            }
            names.iter().map(|name| field(name)).collect()
        })
        .collect()
}

/// Where the control plane's snapshot builds spent their time, from its own
/// `policy snapshot built … read_ms=… build_ms=…` lines. The harness writes the control
/// plane's logs as `modelgate-<start>.log` beside its data directory.
fn build_breakdown(control_plane: &ControlPlane, keys: usize, results: &mut ScaleResults) {
    let mut logs = String::new();
    if let Some(Ok(entries)) = control_plane.data_dir().parent().map(std::fs::read_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("modelgate-") && name.ends_with(".log") {
                logs.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
    }
    let builds = logged_values(&logs, BUILT_LINE, keys, &["read_ms", "build_ms"]);
    if builds.is_empty() {
        results.note(format!(
            "no `{BUILT_LINE}` lines in the control plane's logs: this build does not log \
             where snapshot builds spend their time"
        ));
        return;
    }
    for (i, part) in ["store read (load_policy)", "snapshot build"]
        .iter()
        .enumerate()
    {
        let times = Percentiles::of(
            builds
                .iter()
                .map(|values| Duration::from_millis(values[i]))
                .collect(),
        );
        let name = format!("control plane {part} per policy version (its log)");
        results.measured(&format!("{name}, p50"), ms(times.p50), "ms", None);
        results.measured(&format!("{name}, max"), ms(times.max), "ms", None);
    }
}

fn decode_times(micros: &[u64], results: &mut ScaleResults) {
    if micros.is_empty() {
        results.note(format!(
            "no `{DECODE_LINE}version=… keys=… micros=…` lines in the Envoy logs: this filter \
             build does not log its decode time, so it is not reported"
        ));
        return;
    }
    let times = Percentiles::of(micros.iter().map(|&us| Duration::from_micros(us)).collect());
    let name = "snapshot decode in a worker (filter's own log)";
    results.measured(&format!("{name}, p50"), ms(times.p50), "ms", None);
    results.measured(
        &format!("{name}, max"),
        ms(times.max),
        "ms",
        Some(("<= 100 ms", times.max <= Duration::from_millis(100))),
    );
    results.note(format!(
        "decode: {} worker decodes of the full snapshot, from the memory runs and every \
         revocation",
        micros.len()
    ));
}

/// What each worker adds: the least-squares slope of Envoy's RSS over `--concurrency`, with
/// the snapshot decoded in every worker, and of the snapshot's own share (with − before).
fn memory_per_worker(rss: &[(u32, u64, u64)], results: &mut ScaleResults) {
    if rss.len() < 2 {
        return;
    }
    let with_snapshot: Vec<(f64, f64)> = rss
        .iter()
        .map(|&(w, _, after)| (f64::from(w), kib_to_mb(after)))
        .collect();
    let snapshot_share: Vec<(f64, f64)> = rss
        .iter()
        .map(|&(w, before, after)| (f64::from(w), kib_to_mb(after) - kib_to_mb(before)))
        .collect();
    let per_worker = slope(&with_snapshot);
    results.measured(
        "memory per worker VM with the snapshot (RSS slope over --concurrency)",
        per_worker,
        "MB",
        Some(("<= 64 MB", per_worker <= 64.0)),
    );
    results.measured(
        "snapshot's share per worker (slope of RSS with - before over --concurrency)",
        slope(&snapshot_share),
        "MB",
        None,
    );
}

fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    covariance / variance
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Percentiles {
    /// Nearest-rank percentiles; zero for no samples.
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let rank = |p: f64| {
            let index = ((p * samples.len() as f64).ceil() as usize).saturating_sub(1);
            samples.get(index).copied().unwrap_or_default()
        };
        Self {
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / MB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_lines_are_read_for_the_full_snapshot_only() {
        let log = "[info] wasm log modelgate: snapshot decoded version=7 keys=100000 micros=41234\n\
                   [info] wasm log modelgate: snapshot decoded version=7 keys=3 micros=12\n\
                   [info] something else micros=5\n\
                   [info] wasm log modelgate: snapshot decoded version=8 keys=100000 micros=39001\n";
        assert_eq!(decode_micros(log, 100_000), [41_234, 39_001]);
        assert_eq!(decode_micros(log, 3), [12]);
        assert!(decode_micros(log, 10).is_empty());
    }

    #[test]
    fn control_plane_build_lines_give_read_and_build_times() {
        let log = "2026-11-27T08:00:00Z  INFO modelgate_control_plane::snapshot: policy snapshot \
                   built version=9 keys=100000 read_ms=2500 build_ms=310\n\
                   2026-11-27T08:00:01Z  INFO modelgate_control_plane::snapshot: policy snapshot \
                   built version=10 keys=100000 read_ms=2400\n";
        let builds = logged_values(log, BUILT_LINE, 100_000, &["read_ms", "build_ms"]);
        assert_eq!(builds, [vec![2500, 310]]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        let p = Percentiles::of(samples);
        assert_eq!(p.p50, Duration::from_millis(10));
        assert_eq!(p.p99, Duration::from_millis(20));
        assert_eq!(p.max, Duration::from_millis(20));
        assert_eq!(Percentiles::of(Vec::new()).max, Duration::ZERO);
    }

    #[test]
    fn slope_is_the_cost_per_worker() {
        let points = [(1.0, 50.0), (2.0, 80.0), (4.0, 140.0)];
        assert!((slope(&points) - 30.0).abs() < 1e-9);
    }
}
