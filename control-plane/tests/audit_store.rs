//! The audit log's behaviour on every store backend: each test runs against SQLite and against
//! PostgreSQL (see `suite!`), through the same `AuditLog` the server uses, and tampers with
//! the database behind its back the way someone with write access could.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use modelgate_control_plane::audit::chain::{record_hash, Hash};
use modelgate_control_plane::audit::{
    entry_from_record, AuditFilter, AuditLog, CheckpointPolicy, Failure, GroupBy, RecordStatus,
    VerifyReport,
};
use modelgate_control_plane::clock::Timestamp;
use modelgate_control_plane::domain::{UsageBatch, UsageReceipt};
use modelgate_control_plane::store::{PostgresStore, SqliteStore, Store};
use modelgate_proto::v1 as pb;
use sqlx::Connection;
use support::postgres::TestDatabase;

/// Keeps a backend's database alive and changes it behind the store's back.
enum Guard {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(TestDatabase),
}

impl Guard {
    /// Runs one statement, binding byte-string parameters in order.
    async fn exec(&self, sql: &str, blobs: &[Vec<u8>]) {
        match self {
            Guard::Sqlite { path, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                let mut q = sqlx::query(sql);
                for b in blobs {
                    q = q.bind(b.clone());
                }
                q.execute(&mut c).await.unwrap();
            }
            Guard::Postgres(db) => {
                let mut c = db.connect().await;
                let mut q = sqlx::query(sql);
                for b in blobs {
                    q = q.bind(b.clone());
                }
                q.execute(&mut c).await.unwrap();
            }
        }
    }

    async fn scalar(&self, sql: &str) -> i64 {
        match self {
            Guard::Sqlite { path, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            Guard::Postgres(db) => {
                let mut c = db.connect().await;
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }

    async fn blob(&self, sql: &str) -> Vec<u8> {
        match self {
            Guard::Sqlite { path, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            Guard::Postgres(db) => {
                let mut c = db.connect().await;
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }
}

trait Backend: Store + Sized {
    async fn fresh() -> (Self, Guard);
    /// Another connection pool on the same database: a second replica.
    async fn reopen(guard: &Guard) -> Self;
}

impl Backend for SqliteStore {
    async fn fresh() -> (Self, Guard) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("modelgate.db");
        let store = SqliteStore::open_file(&path).await.unwrap();
        (store, Guard::Sqlite { _dir: dir, path })
    }

    async fn reopen(guard: &Guard) -> Self {
        let Guard::Sqlite { path, .. } = guard else {
            unreachable!()
        };
        SqliteStore::open_file(path).await.unwrap()
    }
}

impl Backend for PostgresStore {
    async fn fresh() -> (Self, Guard) {
        let db = TestDatabase::create().await;
        let store = PostgresStore::connect_with(db.options()).await.unwrap();
        (store, Guard::Postgres(db))
    }

    async fn reopen(guard: &Guard) -> Self {
        let Guard::Postgres(db) = guard else {
            unreachable!()
        };
        PostgresStore::connect(&db.url).await.unwrap()
    }
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test::<modelgate_control_plane::store::SqliteStore>().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test::<modelgate_control_plane::store::PostgresStore>().await;
                }
            )*
        }
    };
}

suite!(
    an_untouched_log_verifies_with_checkpoints_every_n_records,
    retried_batches_are_stored_once,
    concurrent_appends_from_two_replicas_keep_one_valid_chain,
    an_idle_tail_is_sealed,
    prune_keeps_a_verifiable_anchored_chain,
    queries_filter_and_page_by_time,
    reports_total_per_group,
    an_edited_field_is_named,
    a_deleted_record_is_named,
    swapped_records_are_named,
    tail_truncation_then_forged_rows_is_caught,
    records_stored_before_the_chain_are_chained_at_start,
);

const T0: i64 = 1_700_000_000_000;

fn record(i: u64, status: pb::RequestStatus) -> pb::UsageRecord {
    pb::UsageRecord {
        request_id: format!("req-{i}"),
        timestamp_ms: T0 + i as i64 * 1_000,
        key_id: if i.is_multiple_of(2) {
            "keyevenaaaaa"
        } else {
            "keyoddbbbbbb"
        }
        .into(),
        team_id: if i.is_multiple_of(3) {
            "team_a"
        } else {
            "team_b"
        }
        .into(),
        user_id: "ana@example.com".into(),
        model_requested: "llama3".into(),
        model_resolved: if i.is_multiple_of(2) {
            "llama3.1:8b"
        } else {
            ""
        }
        .into(),
        prompt_sha256: "ab".repeat(32),
        tokens_in: 10,
        tokens_out: 20,
        spend: 0.25,
        latency_ms: 42,
        status: status.into(),
        http_status: if status == pb::RequestStatus::Success {
            200
        } else {
            429
        },
        ..Default::default()
    }
}

/// Records `from..from+n`, successes except every fifth.
fn batch(id: &str, from: u64, n: u64) -> UsageBatch {
    UsageBatch {
        batch_id: id.to_owned(),
        node_id: "envoy-a".into(),
        data_plane: "edge-a".into(),
        received_at: Timestamp::now(),
        entries: (from..from + n)
            .map(|i| {
                let status = if i % 5 == 4 {
                    pb::RequestStatus::Blocked
                } else {
                    pb::RequestStatus::Success
                };
                entry_from_record(&record(i, status))
            })
            .collect(),
    }
}

fn policy(every: u64) -> CheckpointPolicy {
    CheckpointPolicy {
        every_records: every,
        // Long enough that only the record count decides, unless a test waits on purpose.
        interval: Duration::from_secs(3_600),
    }
}

async fn open<S: Store>(store: S, every: u64) -> (AuditLog<S>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(store, dir.path(), policy(every))
        .await
        .unwrap();
    (log, dir)
}

async fn verify<S: Store>(log: &AuditLog<S>) -> Result<VerifyReport, Failure> {
    log.verify(&[]).await.unwrap()
}

/// A log of `n` records in batches of 3, checkpoints every 5 records.
async fn filled<B: Backend>(n: u64) -> (AuditLog<B>, tempfile::TempDir, Guard) {
    let (store, guard) = B::fresh().await;
    let (log, dir) = open(store, 5).await;
    let mut i = 0;
    while i < n {
        let k = (n - i).min(3);
        log.append(&batch(&format!("b{i}"), i, k)).await.unwrap();
        i += k;
    }
    (log, dir, guard)
}

async fn hash_of(guard: &Guard, seq: u64) -> Hash {
    guard
        .blob(&format!("SELECT hash FROM usage_records WHERE seq = {seq}"))
        .await
        .try_into()
        .unwrap()
}

async fn an_untouched_log_verifies_with_checkpoints_every_n_records<B: Backend>() {
    let (log, _dir, guard) = filled::<B>(22).await;
    let r = verify(&log).await.unwrap();
    assert_eq!(r.records, 22);
    assert_eq!((r.first_seq, r.last_seq), (Some(1), Some(22)));
    // Checkpoint 1 seals the first batch (no checkpoint yet), later ones every >= 5 records.
    assert!(r.unsigned_records < 5, "{r:?}");
    assert!(r.checkpoints >= 4, "{r:?}");
    assert!(r.witness_checked);
    assert_eq!(
        guard.scalar("SELECT COUNT(*) FROM audit_checkpoints").await as u64,
        r.checkpoints
    );
    // The head and the stored columns are what the records say.
    assert_eq!(guard.scalar("SELECT seq FROM audit_head").await, 22);
    assert_eq!(
        guard
            .scalar("SELECT COUNT(*) FROM usage_records WHERE status = 'blocked'")
            .await,
        4
    );
}

async fn retried_batches_are_stored_once<B: Backend>() {
    let (store, guard) = B::fresh().await;
    let (log, _dir) = open(store, 5).await;
    let log = Arc::new(log);
    // Eight deliveries of the same batch at once, then a late retry with a different body.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(&batch("same", 0, 4)).await.unwrap() })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap() {
            UsageReceipt::Stored { records: 4 } => stored += 1,
            UsageReceipt::Duplicate { records: 4 } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(
        log.append(&batch("same", 100, 9)).await.unwrap(),
        UsageReceipt::Duplicate { records: 4 }
    );
    assert_eq!(guard.scalar("SELECT COUNT(*) FROM usage_records").await, 4);
    assert_eq!(
        guard
            .scalar("SELECT CAST(SUM(tokens_in) AS BIGINT) FROM usage_records")
            .await,
        40
    );
    assert_eq!(verify(&log).await.unwrap().records, 4);
}

async fn concurrent_appends_from_two_replicas_keep_one_valid_chain<B: Backend>() {
    let (store, guard) = B::fresh().await;
    let other = B::reopen(&guard).await;
    // Two replicas, each with its own data dir and so its own signing key.
    let (a, _dir_a) = open(store, 4).await;
    let (b, _dir_b) = open(other, 7).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for t in 0..6_u64 {
        let log = if t.is_multiple_of(2) {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        tasks.push(tokio::spawn(async move {
            for j in 0..5_u64 {
                let id = format!("t{t}-{j}");
                log.append(&batch(&id, t * 100 + j * 10, 3)).await.unwrap();
                // A retry of each batch, as a filter would after a lost ack.
                log.append(&batch(&id, t * 100 + j * 10, 3)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(guard.scalar("SELECT COUNT(*) FROM usage_records").await, 90);
    assert_eq!(
        guard
            .scalar("SELECT MAX(seq) - MIN(seq) + 1 FROM usage_records")
            .await,
        90
    );
    // Each replica trusts the other's key; alone, a replica names the stranger.
    let b_key = ed25519_dalek::VerifyingKey::from_bytes(&b.public_key()).unwrap();
    let r = a.verify(&[b_key]).await.unwrap().unwrap();
    assert_eq!(r.records, 90);
    assert!(r.unsigned_records < 4, "{r:?}");
    let alone = a.verify(&[]).await.unwrap();
    if let Err(f) = alone {
        assert!(f.reason.contains("not trusted"), "{f}");
    }
}

async fn an_idle_tail_is_sealed<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let fast = CheckpointPolicy {
        every_records: 1_000,
        interval: Duration::from_millis(200),
    };
    let log = AuditLog::open(store, dir.path(), fast).await.unwrap();
    log.append(&batch("b1", 0, 2)).await.unwrap();
    log.append(&batch("b2", 2, 2)).await.unwrap();
    assert_eq!(verify(&log).await.unwrap().unsigned_records, 2);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // What the server's ticker does.
    log.seal(false).await.unwrap();
    assert_eq!(verify(&log).await.unwrap().unsigned_records, 0);
}

async fn prune_keeps_a_verifiable_anchored_chain<B: Backend>() {
    let (log, _dir, guard) = filled::<B>(30).await;
    // Records i have timestamps T0 + i s: cut at record 17's time.
    let cutoff = Timestamp::from_millis(T0 + 17_000);
    let outcome = log.prune(cutoff).await.unwrap();
    let (anchor_no, anchor_seq) = outcome.anchor.unwrap();
    // Record i sits at position i + 1; the anchor is the newest checkpoint before record 17.
    assert!(anchor_seq <= 17, "{outcome:?}");
    assert_eq!(outcome.records_deleted, anchor_seq - 1);
    let r = verify(&log).await.unwrap();
    assert_eq!(r.first_seq, Some(anchor_seq));
    assert_eq!(r.anchor, Some(anchor_no));
    assert_eq!(r.records, 30 - (anchor_seq - 1));
    assert_eq!(
        guard
            .scalar("SELECT MIN(checkpoint_no) FROM audit_checkpoints")
            .await as u64,
        anchor_no
    );
    // Appending after a prune continues the same chain.
    log.append(&batch("after", 1_000, 3)).await.unwrap();
    assert_eq!(verify(&log).await.unwrap().last_seq, Some(33));
    // Pruning again with the same cutoff removes nothing more than the anchor allows.
    let again = log.prune(cutoff).await.unwrap();
    assert_eq!(again.records_deleted, 0);
    verify(&log).await.unwrap();
}

async fn queries_filter_and_page_by_time<B: Backend>() {
    let (log, _dir, _guard) = filled::<B>(20).await;
    let store = log.store();
    let all = AuditFilter::default();
    let first = store.query_records(&all, None, 7).await.unwrap();
    assert_eq!(first.len(), 7);
    let next = store
        .query_records(&all, Some(first[6].cursor()), 100)
        .await
        .unwrap();
    assert_eq!(next.len(), 13);
    assert!(first.iter().chain(&next).map(|r| r.timestamp).is_sorted());

    let window = AuditFilter {
        from: Some(Timestamp::from_millis(T0 + 5_000)),
        to: Some(Timestamp::from_millis(T0 + 10_000)),
        ..Default::default()
    };
    assert_eq!(
        store.query_records(&window, None, 100).await.unwrap().len(),
        5
    );
    let blocked = AuditFilter {
        status: Some(RecordStatus::Blocked),
        ..Default::default()
    };
    assert_eq!(
        store
            .query_records(&blocked, None, 100)
            .await
            .unwrap()
            .len(),
        4
    );
    let narrow = AuditFilter {
        key_id: Some("keyevenaaaaa".into()),
        team_id: Some("team_a".into()),
        model: Some("llama3.1:8b".into()),
        user_id: Some("ana@example.com".into()),
        ..Default::default()
    };
    // Even i divisible by 3 below 20: 0, 6, 12, 18.
    assert_eq!(
        store.query_records(&narrow, None, 100).await.unwrap().len(),
        4
    );
}

async fn reports_total_per_group<B: Backend>() {
    let (log, _dir, _guard) = filled::<B>(20).await;
    let rows = log
        .store()
        .report(&AuditFilter::default(), GroupBy::Key)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let total: u64 = rows.iter().map(|r| r.requests).sum();
    assert_eq!(total, 20);
    let even = rows.iter().find(|r| r.group == "keyevenaaaaa").unwrap();
    assert_eq!(even.requests, 10);
    assert_eq!(even.tokens_in, 100);
    assert_eq!(even.tokens_out, 200);
    assert!((even.spend - 2.5).abs() < 1e-9);
    assert_eq!(even.success + even.blocked, 10);
    let models = log
        .store()
        .report(&AuditFilter::default(), GroupBy::Model)
        .await
        .unwrap();
    let names: Vec<&str> = models.iter().map(|r| r.group.as_str()).collect();
    assert!(
        names.contains(&"llama3") && names.contains(&"llama3.1:8b"),
        "{names:?}"
    );
}

async fn an_edited_field_is_named<B: Backend>() {
    let (log, _dir, guard) = filled::<B>(20).await;
    guard
        .exec("UPDATE usage_records SET spend = 0 WHERE seq = 7", &[])
        .await;
    let f = verify(&log).await.unwrap_err();
    assert_eq!(f.seq, Some(7), "{f}");
    assert!(f.reason.contains("spend"), "{f}");

    let (log, _dir, guard) = filled::<B>(20).await;
    let forged = entry_from_record(&record(99, pb::RequestStatus::Success)).encoded;
    guard
        .exec(
            "UPDATE usage_records SET record = $1 WHERE seq = 9",
            &[forged],
        )
        .await;
    let f = verify(&log).await.unwrap_err();
    assert_eq!(f.seq, Some(9), "{f}");
}

async fn a_deleted_record_is_named<B: Backend>() {
    let (log, _dir, guard) = filled::<B>(20).await;
    guard
        .exec("DELETE FROM usage_records WHERE seq = 12", &[])
        .await;
    let f = verify(&log).await.unwrap_err();
    assert_eq!(f.seq, Some(12), "{f}");
    assert!(f.reason.contains("missing"), "{f}");
}

async fn swapped_records_are_named<B: Backend>() {
    let (log, _dir, guard) = filled::<B>(20).await;
    // Swap positions 5 and 6 (a unique index forbids a direct swap: go through -1).
    guard
        .exec("UPDATE usage_records SET seq = -1 WHERE seq = 5", &[])
        .await;
    guard
        .exec("UPDATE usage_records SET seq = 5 WHERE seq = 6", &[])
        .await;
    guard
        .exec("UPDATE usage_records SET seq = 6 WHERE seq = -1", &[])
        .await;
    let f = verify(&log).await.unwrap_err();
    assert_eq!(f.seq, Some(5), "{f}");
}

/// Deletes records after `keep`, appends `n` forged ones chained onto record `keep` with
/// correct hashes, and moves the head: all a database writer can do without the key.
async fn truncate_and_forge(guard: &Guard, keep: u64, n: u64) {
    guard
        .exec(
            &format!("DELETE FROM usage_records WHERE seq > {keep}"),
            &[],
        )
        .await;
    let mut prev = hash_of(guard, keep).await;
    for seq in keep + 1..=keep + n {
        let mut r = record(500 + seq, pb::RequestStatus::Success);
        r.key_id = "forgedforged".into();
        let e = entry_from_record(&r);
        let hash = record_hash(&prev, seq, &e.encoded);
        guard
            .exec(
                &format!(
                    "INSERT INTO usage_records (batch_id, batch_index, seq, prev_hash, hash, \
                     request_id, timestamp_ms, key_id, team_id, user_id, model, tokens_in, \
                     tokens_out, spend, status, record) VALUES ('b0', {seq}, {seq}, $1, $2, \
                     '{}', {}, '{}', '{}', '{}', '{}', {}, {}, {}, 'success', $3)",
                    e.request_id,
                    e.timestamp.as_millis(),
                    e.key_id,
                    e.team_id,
                    e.user_id,
                    e.model,
                    e.tokens_in,
                    e.tokens_out,
                    e.spend
                ),
                &[prev.to_vec(), hash.to_vec(), e.encoded.clone()],
            )
            .await;
        prev = hash;
    }
    guard
        .exec(
            &format!("UPDATE audit_head SET seq = {}, hash = $1", keep + n),
            &[prev.to_vec()],
        )
        .await;
}

async fn tail_truncation_then_forged_rows_is_caught<B: Backend>() {
    // Checkpoints still covering the removed records contradict the forged ones.
    let (log, _dir, guard) = filled::<B>(30).await;
    truncate_and_forge(&guard, 12, 18).await;
    let f = verify(&log).await.unwrap_err();
    assert!(f.seq.is_some_and(|s| s > 12), "{f}");
    assert!(f.reason.contains("re-chained"), "{f}");

    // Deleting those checkpoints too: the witness the server keeps outside the database
    // names the checkpoint that vanished.
    let (log, dir, guard) = filled::<B>(30).await;
    let last_kept: i64 = guard
        .scalar("SELECT MAX(checkpoint_no) FROM audit_checkpoints WHERE seq <= 12")
        .await;
    guard
        .exec(
            &format!("DELETE FROM audit_checkpoints WHERE checkpoint_no > {last_kept}"),
            &[],
        )
        .await;
    truncate_and_forge(&guard, 12, 1).await;
    let f = verify(&log).await.unwrap_err();
    assert!(f.checkpoint.is_some_and(|n| n > last_kept as u64), "{f}");
    assert!(f.reason.contains("witness"), "{f}");
    // Without the witness (someone else's data dir), a forged tail shorter than the checkpoint
    // policy looks like records not yet signed: the documented residual risk. A longer one is
    // caught anyway.
    std::fs::remove_file(dir.path().join("audit-witness.json")).unwrap();
    verify(&log).await.unwrap();
    truncate_and_forge(&guard, 12, 10).await;
    let f = verify(&log).await.unwrap_err();
    assert!(f.reason.contains("every 5 records"), "{f}");
}

async fn records_stored_before_the_chain_are_chained_at_start<B: Backend>() {
    let (store, guard) = B::fresh().await;
    // As the pre-chain server stored them: no position, no hashes.
    for i in 0..3_u64 {
        let e = entry_from_record(&record(i, pb::RequestStatus::Success));
        guard
            .exec(
                &format!(
                    "INSERT INTO usage_batches (batch_id, node_id, received_at_ms, record_count) \
                     VALUES ('old{i}', 'n', 0, 1)"
                ),
                &[],
            )
            .await;
        guard
            .exec(
                &format!(
                    "INSERT INTO usage_records (batch_id, batch_index, request_id, timestamp_ms, \
                     key_id, team_id, user_id, model, tokens_in, tokens_out, spend, record) \
                     VALUES ('old{i}', 0, '{}', {}, '{}', '{}', '{}', '{}', 10, 20, 0.25, $1)",
                    e.request_id,
                    e.timestamp.as_millis(),
                    e.key_id,
                    e.team_id,
                    e.user_id,
                    e.model
                ),
                std::slice::from_ref(&e.encoded),
            )
            .await;
    }
    let (log, _dir) = open(store, 5).await;
    let r = verify(&log).await.unwrap();
    assert_eq!(r.records, 3);
    assert_eq!(r.unsigned_records, 0);
    assert_eq!(
        guard
            .scalar("SELECT COUNT(*) FROM usage_records WHERE status = 'success'")
            .await,
        3
    );
}
