//! `modelgate audit …`: verify, query, export, report, prune and the public key.
//!
//! By default the commands read the database themselves (`--database-url`, else the SQLite
//! file in `--data-dir`), so an auditor can check the log while the server is down and without
//! trusting it; `--remote` asks the running control plane (`AuditService`, admin key or
//! master key) instead.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use ed25519_dalek::VerifyingKey;
use modelgate_proto::v1 as pb;
use prost::Message;
use serde_json::json;

use super::client::AdminClient;
use super::output::{json_line, table};
use super::{connect_args, CliError, GlobalArgs};
use crate::audit::log as audit_log;
use crate::audit::query::{parse_time_arg, TimeArgError};
use crate::audit::signing::{self, SigningKeyError};
use crate::audit::{
    AuditError, AuditFilter, AuditStore, CheckpointPolicy, Failure, GroupBy, PruneOutcome,
    QueryCursor, RecordJson, RecordKind, RecordStatus, ReportRow, VerifyReport, PAGE,
};
use crate::clock::{parse_duration, DurationError, Timestamp};
use crate::grpc::audit as convert;
use crate::store::{DatabaseLocation, OpenedStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuditCliError {
    #[error(transparent)]
    Cli(#[from] CliError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    SigningKey(#[from] SigningKeyError),
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("no database at {0} (point --data-dir at the server's data directory or pass --database-url)")]
    NoDatabase(PathBuf),
    #[error(transparent)]
    Time(#[from] TimeArgError),
    #[error("invalid --older-than: {0}")]
    OlderThan(DurationError),
    #[error("invalid --public-key {0:?}: expected 64 hex characters as printed by `modelgate audit public-key`")]
    PublicKey(String),
    #[error("invalid --status {0:?}: use success, blocked, errored, cancelled or unspecified")]
    Status(String),
    #[error("invalid --kind {0:?}: use request or admin")]
    Kind(String),
    #[error("the control plane returned a record that does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the audit log FAILED verification")]
    VerifyFailed,
}

impl From<std::io::Error> for AuditCliError {
    fn from(e: std::io::Error) -> Self {
        Self::Cli(CliError::Output(e))
    }
}

/// `serve` options for the audit log.
#[derive(Args)]
pub struct AuditServeArgs {
    /// Sign an audit checkpoint at least every N records.
    #[arg(long, env = "MODELGATE_AUDIT_CHECKPOINT_EVERY", default_value_t = CheckpointPolicy::default().every_records)]
    pub audit_checkpoint_every: u64,
    /// ... and at least this often while records arrive (15s, 1m).
    #[arg(long, env = "MODELGATE_AUDIT_CHECKPOINT_INTERVAL", default_value = "2s", value_parser = parse_interval)]
    pub audit_checkpoint_interval: Duration,
}

fn parse_interval(s: &str) -> Result<Duration, DurationError> {
    parse_duration(s)
}

impl AuditServeArgs {
    pub fn policy(&self) -> CheckpointPolicy {
        CheckpointPolicy {
            every_records: self.audit_checkpoint_every.max(1),
            interval: self.audit_checkpoint_interval,
        }
    }
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and the checkpoint signatures; exit 1 on the first problem.
    Verify {
        #[command(flatten)]
        source: SourceArgs,
        /// Also trust checkpoints signed with this public key (another replica's); repeatable.
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Records in a time range as a table, or JSON with --json.
    Query {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many records (0 = all).
        #[arg(long, default_value_t = 1000)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// Records in a time range as JSON lines on stdout.
    Export {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Requests, tokens and spend per key, team, user or model.
    Report {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum)]
        by: ReportBy,
        #[arg(long)]
        json: bool,
    },
    /// Delete records older than a duration; the rest still verifies.
    Prune {
        #[command(flatten)]
        source: SourceArgs,
        /// e.g. 90d.
        #[arg(long)]
        older_than: String,
        #[arg(long)]
        json: bool,
    },
    /// Print the Ed25519 public key that checkpoints are signed with (hex).
    PublicKey {
        /// Ask the running control plane instead of reading the data dir.
        #[arg(long)]
        remote: bool,
    },
}

#[derive(Args)]
pub struct SourceArgs {
    /// Ask the running control plane (--addr, admin key or master key) instead of reading the
    /// database.
    #[arg(long)]
    remote: bool,
    /// Database to read: sqlite:… or postgres://… [default: DATA_DIR/modelgate.db]
    #[arg(
        long,
        env = "MODELGATE_DATABASE_URL",
        hide_env_values = true,
        conflicts_with = "remote"
    )]
    database_url: Option<String>,
}

#[derive(Args)]
pub struct FilterArgs {
    /// Start (inclusive): RFC 3339, or how long ago (2h, 7d).
    #[arg(long)]
    from: Option<String>,
    /// End (exclusive): RFC 3339, how long ago, or 'now'.
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    user: Option<String>,
    /// Key public id (or `unknown:…` fingerprint).
    #[arg(long)]
    key: Option<String>,
    /// Team id.
    #[arg(long)]
    team: Option<String>,
    #[arg(long)]
    model: Option<String>,
    /// success, blocked, errored, cancelled.
    #[arg(long)]
    status: Option<String>,
    /// request (the filters' records) or admin (admin calls and denials); default both.
    #[arg(long)]
    kind: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportBy {
    Key,
    Team,
    User,
    Model,
}

impl From<ReportBy> for GroupBy {
    fn from(b: ReportBy) -> Self {
        match b {
            ReportBy::Key => Self::Key,
            ReportBy::Team => Self::Team,
            ReportBy::User => Self::User,
            ReportBy::Model => Self::Model,
        }
    }
}

impl FilterArgs {
    fn parse(self, now: Timestamp) -> Result<AuditFilter, AuditCliError> {
        let time = |t: Option<String>| t.map(|t| parse_time_arg(&t, now)).transpose();
        let text = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let status = match self.status {
            Some(s) => Some(RecordStatus::parse(s.trim()).ok_or(AuditCliError::Status(s))?),
            None => None,
        };
        let kind = match self.kind {
            Some(k) => Some(RecordKind::parse(k.trim()).ok_or(AuditCliError::Kind(k))?),
            None => None,
        };
        Ok(AuditFilter {
            from: time(self.from)?,
            to: time(self.to)?,
            user_id: text(self.user),
            key_id: text(self.key),
            team_id: text(self.team),
            model: text(self.model),
            status,
            kind,
        })
    }
}

/// Runs `body` with the opened store, whichever backend it is.
macro_rules! with_store {
    ($opened:expr, $s:ident => $body:expr) => {
        match $opened {
            OpenedStore::Sqlite($s) => $body,
            OpenedStore::Postgres($s) => $body,
        }
    };
}

/// Where the records come from.
enum Source {
    Direct {
        store: OpenedStore,
        data_dir: PathBuf,
    },
    Remote(Box<AdminClient>),
}

impl Source {
    async fn open(global: &GlobalArgs, args: SourceArgs) -> Result<Self, AuditCliError> {
        if args.remote {
            let (addr, key) = connect_args(global)?;
            return Ok(Self::Remote(Box::new(
                AdminClient::connect(addr, key).await?,
            )));
        }
        let location = match args.database_url.filter(|u| !u.trim().is_empty()) {
            Some(url) => DatabaseLocation::Url(url),
            None => {
                let path = global.data_dir.join("modelgate.db");
                // Opening would create an empty database and report on nothing.
                if !path.exists() {
                    return Err(AuditCliError::NoDatabase(path));
                }
                DatabaseLocation::SqliteFile(path)
            }
        };
        Ok(Self::Direct {
            store: OpenedStore::open(&location).await?,
            data_dir: global.data_dir.clone(),
        })
    }

    /// One page of records after `after`, and the cursor for the next page if there may be one.
    async fn page(
        &mut self,
        filter: &AuditFilter,
        after: Option<QueryCursor>,
        limit: u32,
    ) -> Result<(Vec<(u64, pb::UsageRecord)>, Option<QueryCursor>), AuditCliError> {
        match self {
            Self::Direct { store, .. } => {
                let page = with_store!(store, s => s.query_records(filter, after, limit).await?);
                let next = page
                    .last()
                    .map(|r| r.cursor())
                    .filter(|_| page.len() == limit as usize);
                let records = page
                    .iter()
                    .map(|r| Ok((r.seq, pb::UsageRecord::decode(r.record.as_slice())?)))
                    .collect::<Result<Vec<_>, prost::DecodeError>>()?;
                Ok((records, next))
            }
            Self::Remote(client) => {
                let resp = client
                    .audit()
                    .query(pb::AuditQueryRequest {
                        filter: Some(convert::filter_to_proto(filter)),
                        page_size: limit,
                        page_token: after.map(QueryCursor::to_token).unwrap_or_default(),
                    })
                    .await
                    .map_err(CliError::from)?
                    .into_inner();
                let next = QueryCursor::parse_token(&resp.next_page_token);
                let records = resp
                    .entries
                    .into_iter()
                    .map(|e| (e.seq, e.record.unwrap_or_default()))
                    .collect();
                Ok((records, next))
            }
        }
    }

    async fn report(
        &mut self,
        filter: &AuditFilter,
        by: GroupBy,
    ) -> Result<Vec<ReportRow>, AuditCliError> {
        match self {
            Self::Direct { store, .. } => Ok(with_store!(store, s => s.report(filter, by).await?)),
            Self::Remote(client) => {
                let resp = client
                    .audit()
                    .report(pb::AuditReportRequest {
                        filter: Some(convert::filter_to_proto(filter)),
                        group_by: convert::group_by_to_proto(by).into(),
                    })
                    .await
                    .map_err(CliError::from)?
                    .into_inner();
                Ok(resp
                    .rows
                    .iter()
                    .map(convert::report_row_from_proto)
                    .collect())
            }
        }
    }

    async fn verify(
        &mut self,
        keys: &[VerifyingKey],
    ) -> Result<Result<VerifyReport, Failure>, AuditCliError> {
        match self {
            Self::Direct { store, data_dir } => Ok(with_store!(
                store,
                s => audit_log::verify(s, Some(data_dir.as_path()), keys).await?
            )),
            Self::Remote(client) => {
                let resp = client
                    .audit()
                    .verify(pb::AuditVerifyRequest {
                        trusted_public_keys: keys.iter().map(|k| k.to_bytes().to_vec()).collect(),
                    })
                    .await
                    .map_err(CliError::from)?
                    .into_inner();
                if let Some(f) = resp.failure.filter(|_| !resp.ok) {
                    return Ok(Err(Failure {
                        seq: (f.seq != 0).then_some(f.seq),
                        checkpoint: (f.checkpoint_no != 0).then_some(f.checkpoint_no),
                        reason: f.reason,
                    }));
                }
                let nonzero = |n: u64| (n != 0).then_some(n);
                Ok(Ok(VerifyReport {
                    records: resp.records,
                    checkpoints: resp.checkpoints,
                    first_seq: nonzero(resp.first_seq),
                    last_seq: nonzero(resp.last_seq),
                    unsigned_records: resp.unsigned_records,
                    anchor: None,
                    witness_checked: true,
                }))
            }
        }
    }

    async fn prune(&mut self, cutoff: Timestamp) -> Result<PruneOutcome, AuditCliError> {
        match self {
            Self::Direct { store, data_dir } => Ok(with_store!(
                store,
                s => audit_log::prune(s, Some(data_dir.as_path()), cutoff).await?
            )),
            Self::Remote(client) => {
                let resp = client
                    .audit()
                    .prune(pb::AuditPruneRequest {
                        older_than_ms: cutoff.as_millis(),
                    })
                    .await
                    .map_err(CliError::from)?
                    .into_inner();
                Ok(PruneOutcome {
                    records_deleted: resp.records_deleted,
                    checkpoints_deleted: resp.checkpoints_deleted,
                    anchor: (resp.anchor_checkpoint_no != 0)
                        .then_some((resp.anchor_checkpoint_no, resp.anchor_seq)),
                })
            }
        }
    }

    async fn close(self) {
        if let Self::Direct { store, .. } = self {
            use crate::store::Store as _;
            with_store!(store, s => s.close().await);
        }
    }
}

pub async fn run_audit(global: &GlobalArgs, command: AuditCommand) -> Result<(), AuditCliError> {
    let now = Timestamp::now();
    let mut out = std::io::stdout().lock();
    match command {
        AuditCommand::PublicKey { remote } => {
            let key = if remote {
                let (addr, key) = connect_args(global)?;
                let mut client = AdminClient::connect(addr, key).await?;
                client
                    .audit()
                    .get_public_key(pb::GetAuditPublicKeyRequest {})
                    .await
                    .map_err(CliError::from)?
                    .into_inner()
                    .public_key
            } else {
                signing::public_key(&global.data_dir)?.to_bytes().to_vec()
            };
            writeln!(out, "{}", hex::encode(key))?;
            Ok(())
        }
        AuditCommand::Verify {
            source,
            public_keys,
            json,
        } => {
            let keys = public_keys
                .iter()
                .map(|k| {
                    signing::parse_public_key(k).ok_or_else(|| AuditCliError::PublicKey(k.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut source = Source::open(global, source).await?;
            let result = source.verify(&keys).await;
            source.close().await;
            let result = result?;
            print_verify(&mut out, &result, json)?;
            result.map(|_| ()).map_err(|_| AuditCliError::VerifyFailed)
        }
        AuditCommand::Query {
            source,
            filter,
            limit,
            json,
        } => {
            let filter = filter.parse(now)?;
            let mut source = Source::open(global, source).await?;
            let result = collect(&mut source, &filter, limit).await;
            source.close().await;
            let (records, more) = result?;
            if json {
                let items: Vec<RecordJson<'_>> = records
                    .iter()
                    .map(|(seq, r)| RecordJson::new(*seq, r))
                    .collect();
                json_line(&mut out, &items)?;
            } else {
                records_table(&mut out, &records)?;
            }
            if more {
                eprintln!(
                    "(only the first {limit} records are shown: narrow the filter, raise --limit, or use `audit export`)"
                );
            }
            Ok(())
        }
        AuditCommand::Export { source, filter } => {
            let filter = filter.parse(now)?;
            let mut source = Source::open(global, source).await?;
            let result = export(&mut source, &filter, &mut out).await;
            source.close().await;
            result
        }
        AuditCommand::Report {
            source,
            filter,
            by,
            json,
        } => {
            let filter = filter.parse(now)?;
            let mut source = Source::open(global, source).await?;
            let result = source.report(&filter, by.into()).await;
            source.close().await;
            print_report(&mut out, &result?, by.into(), json)
        }
        AuditCommand::Prune {
            source,
            older_than,
            json,
        } => {
            let age = parse_duration(&older_than).map_err(AuditCliError::OlderThan)?;
            let cutoff = Timestamp::from_millis(
                now.as_millis()
                    .saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)),
            );
            let mut source = Source::open(global, source).await?;
            let result = source.prune(cutoff).await;
            source.close().await;
            print_prune(&mut out, &result?, cutoff, json)
        }
    }
}

/// Pages until `limit` records (0 = all); also says whether more matched.
async fn collect(
    source: &mut Source,
    filter: &AuditFilter,
    limit: u64,
) -> Result<(Vec<(u64, pb::UsageRecord)>, bool), AuditCliError> {
    let mut records = Vec::new();
    let mut after = None;
    loop {
        let want = if limit == 0 {
            u64::from(PAGE)
        } else {
            (limit + 1 - records.len() as u64).min(u64::from(PAGE))
        };
        let (page, next) = source
            .page(filter, after, u32::try_from(want).unwrap_or(PAGE))
            .await?;
        records.extend(page);
        if limit != 0 && records.len() as u64 > limit {
            records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            return Ok((records, true));
        }
        match next {
            Some(c) => after = Some(c),
            None => return Ok((records, false)),
        }
    }
}

async fn export(
    source: &mut Source,
    filter: &AuditFilter,
    out: &mut impl Write,
) -> Result<(), AuditCliError> {
    let mut after = None;
    loop {
        let (page, next) = source.page(filter, after, PAGE).await?;
        for (seq, r) in &page {
            let line = RecordJson::new(*seq, r)
                .to_line()
                .map_err(std::io::Error::from)?;
            out.write_all(line.as_bytes())?;
        }
        match next {
            Some(c) => after = Some(c),
            None => return Ok(out.flush()?),
        }
    }
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

fn records_table(
    out: &mut impl Write,
    records: &[(u64, pb::UsageRecord)],
) -> Result<(), AuditCliError> {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|(seq, r)| {
            // An admin record shows its actor, admin key and action where requests show
            // theirs.
            let (key, user, what) = match &r.admin {
                Some(a) => (
                    a.admin_key_id.clone(),
                    a.actor.clone(),
                    format!("{} {}:{}", r.path, a.object_kind, a.object_id),
                ),
                None => (
                    r.key_id.clone(),
                    r.user_id.clone(),
                    if r.model_resolved.is_empty() {
                        r.model_requested.clone()
                    } else {
                        r.model_resolved.clone()
                    },
                ),
            };
            vec![
                Timestamp::from_millis(r.timestamp_ms).to_rfc3339(),
                seq.to_string(),
                dash(&key),
                dash(&user),
                dash(&r.team_id),
                dash(&what),
                RecordStatus::from_proto(r.status()).as_str().to_owned(),
                r.http_status.to_string(),
                r.tokens_in.to_string(),
                r.tokens_out.to_string(),
                format!("{:.6}", r.spend),
                r.latency_ms.to_string(),
                dash(&r.reason),
                dash(&r.request_id),
                dash(&r.auth_method),
                dash(&r.issuer),
            ]
        })
        .collect();
    Ok(table(
        out,
        &[
            "TIME",
            "SEQ",
            "KEY",
            "USER",
            "TEAM",
            "MODEL",
            "STATUS",
            "HTTP",
            "IN",
            "OUT",
            "SPEND",
            "MS",
            "REASON",
            "REQUEST_ID",
            "AUTH",
            "ISSUER",
        ],
        &rows,
    )?)
}

fn print_verify(
    out: &mut impl Write,
    result: &Result<VerifyReport, Failure>,
    json: bool,
) -> Result<(), AuditCliError> {
    match (result, json) {
        (Ok(r), true) => json_line(
            out,
            &json!({
                "ok": true,
                "records": r.records,
                "checkpoints": r.checkpoints,
                "first_seq": r.first_seq,
                "last_seq": r.last_seq,
                "unsigned_records": r.unsigned_records,
                "anchor_checkpoint": r.anchor,
                "witness_checked": r.witness_checked,
            }),
        )?,
        (Err(f), true) => json_line(
            out,
            &json!({
                "ok": false,
                "failure": {"seq": f.seq, "checkpoint": f.checkpoint, "reason": f.reason},
            }),
        )?,
        (Ok(r), false) => {
            let range = match (r.first_seq, r.last_seq) {
                (Some(a), Some(b)) => format!(" ({a}..{b})"),
                _ => String::new(),
            };
            writeln!(
                out,
                "OK: {} records{range}, {} checkpoints, {} records after the newest checkpoint (not yet signed)",
                r.records, r.checkpoints, r.unsigned_records
            )?;
            if let (Some(anchor), Some(first)) = (r.anchor, r.first_seq) {
                writeln!(
                    out,
                    "the log starts at record {first}, anchored on checkpoint {anchor} (older records were pruned)"
                )?;
            }
            if !r.witness_checked {
                writeln!(
                    out,
                    "note: no witness file in the data dir, so deleted newest checkpoints are caught only by the checkpoint policy"
                )?;
            }
        }
        (Err(f), false) => writeln!(out, "FAILED: {f}")?,
    }
    Ok(())
}

fn group_field(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Key => "key_id",
        GroupBy::Team => "team_id",
        GroupBy::User => "user_id",
        GroupBy::Model => "model",
    }
}

fn print_report(
    out: &mut impl Write,
    rows: &[ReportRow],
    by: GroupBy,
    json: bool,
) -> Result<(), AuditCliError> {
    if json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                json!({
                    group_field(by): r.group,
                    "requests": r.requests,
                    "success": r.success,
                    "blocked": r.blocked,
                    "errored": r.errored,
                    "cancelled": r.cancelled,
                    "tokens_in": r.tokens_in,
                    "tokens_out": r.tokens_out,
                    "spend": r.spend,
                })
            })
            .collect();
        return Ok(json_line(out, &items)?);
    }
    let header = by.as_str().to_uppercase();
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                dash(&r.group),
                r.requests.to_string(),
                r.success.to_string(),
                r.blocked.to_string(),
                r.errored.to_string(),
                r.cancelled.to_string(),
                r.tokens_in.to_string(),
                r.tokens_out.to_string(),
                format!("{:.6}", r.spend),
            ]
        })
        .collect();
    Ok(table(
        out,
        &[
            &header,
            "REQUESTS",
            "SUCCESS",
            "BLOCKED",
            "ERRORED",
            "CANCELLED",
            "TOKENS_IN",
            "TOKENS_OUT",
            "SPEND",
        ],
        &table_rows,
    )?)
}

fn print_prune(
    out: &mut impl Write,
    outcome: &PruneOutcome,
    cutoff: Timestamp,
    json: bool,
) -> Result<(), AuditCliError> {
    if json {
        return Ok(json_line(
            out,
            &json!({
                "cutoff": cutoff.to_rfc3339(),
                "records_deleted": outcome.records_deleted,
                "checkpoints_deleted": outcome.checkpoints_deleted,
                "anchor_checkpoint": outcome.anchor.map(|a| a.0),
                "first_seq": outcome.anchor.map(|a| a.1),
            }),
        )?);
    }
    match outcome.anchor {
        Some((number, seq)) => writeln!(
            out,
            "Pruned {} records and {} checkpoints older than {}; the log now starts at record {seq} (checkpoint {number})",
            outcome.records_deleted,
            outcome.checkpoints_deleted,
            cutoff.to_rfc3339()
        )?,
        None => writeln!(
            out,
            "Nothing to prune: no signed checkpoint before {}",
            cutoff.to_rfc3339()
        )?,
    }
    Ok(())
}
