//! Where the chain lives: `usage_records` (each record with its `seq`, `prev_hash`, `hash` and
//! the columns reports use), `audit_checkpoints`, and `audit_head` (the tip, whose row lock
//! makes appends one at a time across every replica). The SQL is written once and stamped
//! for SQLite and PostgreSQL, like the rest of the store.
//!
//! Appending is one transaction: lock the head, record the batch id and its data plane (a
//! batch seen before from the same data plane adds nothing; from another, it is refused),
//! chain and insert the records, sign a checkpoint when one is due, move the head. So records
//! and the checkpoint that covers them commit together or not at all.

use std::future::Future;

use super::chain::Checkpoint;
use super::query::{AuditFilter, GroupBy, PruneOutcome, QueryCursor, ReportRow, StoredRecord};
use super::seal::Sealer;
use super::verify::{Failure, VerifyReport};
use crate::clock::Timestamp;
use crate::domain::{UsageBatch, UsageReceipt};
use crate::store::StoreResult;

/// How many rows verification and the sink read per query.
pub const PAGE: u32 = 1_000;

/// The outcome of one append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub receipt: UsageReceipt,
    /// The checkpoint written in the same transaction, if one was due.
    pub checkpoint: Option<Checkpoint>,
}

pub trait AuditStore: Send + Sync {
    /// Appends a batch to the chain once (see the module docs). Without a sealer nothing is
    /// signed: only tests and tools that hold no key do that.
    fn append(
        &self,
        batch: &UsageBatch,
        sealer: Option<&Sealer>,
    ) -> impl Future<Output = StoreResult<Appended>> + Send;
    /// Signs a checkpoint over the unsigned tail if one is due (`force`: if there is any).
    fn seal(
        &self,
        sealer: &Sealer,
        force: bool,
    ) -> impl Future<Output = StoreResult<Option<Checkpoint>>> + Send;
    /// Gives records stored before the chain existed their places in it; returns how many.
    fn chain_unchained(&self) -> impl Future<Output = StoreResult<u64>> + Send;
    fn checkpoint(
        &self,
        number: u64,
    ) -> impl Future<Output = StoreResult<Option<Checkpoint>>> + Send;
    fn oldest_checkpoint_number(&self) -> impl Future<Output = StoreResult<Option<u64>>> + Send;
    /// Reads the whole log in one consistent snapshot through a [`super::verify::Verifier`].
    /// The outer error is the database's; the inner one is what verification found.
    fn verify_chain(
        &self,
        trusted: &[[u8; 32]],
        witness: Option<&Checkpoint>,
    ) -> impl Future<Output = StoreResult<Result<VerifyReport, Failure>>> + Send;
    /// Records after position `seq`, in chain order.
    fn records_after(
        &self,
        seq: u64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<StoredRecord>>> + Send;
    /// Records matching `filter`, ordered by time then position, after `after`.
    fn query_records(
        &self,
        filter: &AuditFilter,
        after: Option<QueryCursor>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<StoredRecord>>> + Send;
    /// Totals per group, highest spend first.
    fn report(
        &self,
        filter: &AuditFilter,
        by: GroupBy,
    ) -> impl Future<Output = StoreResult<Vec<ReportRow>>> + Send;
    /// Deletes records older than `cutoff` up to the newest checkpoint that allows it; the
    /// record that checkpoint covers stays, so the remaining chain is anchored on a signature.
    fn prune(&self, cutoff: Timestamp) -> impl Future<Output = StoreResult<PruneOutcome>> + Send;
}

pub(crate) mod sql {
    pub const LOCK_HEAD: &str = "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash";
    pub const SELECT_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
    pub const SET_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";

    pub const INSERT_BATCH: &str = "INSERT INTO usage_batches \
         (batch_id, node_id, received_at_ms, record_count, data_plane) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (batch_id) DO NOTHING";
    /// `data_plane` is NULL for batches stored before data planes authenticated.
    pub const SELECT_BATCH: &str =
        "SELECT record_count, data_plane FROM usage_batches WHERE batch_id = $1";
    pub const INSERT_RECORD: &str = "INSERT INTO usage_records (batch_id, batch_index, seq, \
         prev_hash, hash, request_id, timestamp_ms, key_id, team_id, user_id, model, tokens_in, \
         tokens_out, spend, status, kind, record) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

    macro_rules! checkpoint_columns {
        () => {
            "checkpoint_no, seq, chain_hash, created_at_ms, every_records, signer, signature"
        };
    }
    pub const INSERT_CHECKPOINT: &str = concat!(
        "INSERT INTO audit_checkpoints (",
        checkpoint_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    );
    pub const SELECT_LAST_CHECKPOINT: &str = concat!(
        "SELECT ",
        checkpoint_columns!(),
        " FROM audit_checkpoints ORDER BY checkpoint_no DESC LIMIT 1"
    );
    pub const SELECT_CHECKPOINT: &str = concat!(
        "SELECT ",
        checkpoint_columns!(),
        " FROM audit_checkpoints WHERE checkpoint_no = $1"
    );
    pub const SELECT_CHECKPOINTS_AFTER: &str = concat!(
        "SELECT ",
        checkpoint_columns!(),
        " FROM audit_checkpoints WHERE checkpoint_no > $1 ORDER BY checkpoint_no LIMIT $2"
    );
    pub const SELECT_OLDEST_CHECKPOINT: &str = "SELECT MIN(checkpoint_no) FROM audit_checkpoints";
    /// The newest checkpoint covering a record at or before `$1`: a prune anchor.
    pub const SELECT_ANCHOR: &str = concat!(
        "SELECT ",
        checkpoint_columns!(),
        " FROM audit_checkpoints WHERE seq <= $1 ORDER BY checkpoint_no DESC LIMIT 1"
    );

    pub const SELECT_CHAIN_AFTER: &str = "SELECT seq, prev_hash, hash, record, request_id, \
         timestamp_ms, key_id, team_id, user_id, model, tokens_in, tokens_out, spend, status, \
         kind FROM usage_records WHERE seq > $1 ORDER BY seq LIMIT $2";
    pub const COUNT_UNCHAINED: &str = "SELECT COUNT(*) FROM usage_records WHERE seq IS NULL";
    pub const SELECT_UNCHAINED: &str =
        "SELECT id, record FROM usage_records WHERE seq IS NULL ORDER BY id";
    pub const CHAIN_RECORD: &str = "UPDATE usage_records SET seq = $1, prev_hash = $2, \
         hash = $3, status = $4, kind = $5 WHERE id = $6";

    pub const SELECT_RECORDS_AFTER: &str = "SELECT seq, timestamp_ms, record FROM usage_records \
         WHERE seq > $1 ORDER BY seq LIMIT $2";

    /// `$1..$8`: from, to, user, key, team, model, status, kind (NULL = any).
    macro_rules! filter {
        () => {
            "seq IS NOT NULL \
             AND ($1 IS NULL OR timestamp_ms >= $1) AND ($2 IS NULL OR timestamp_ms < $2) \
             AND ($3 IS NULL OR user_id = $3) AND ($4 IS NULL OR key_id = $4) \
             AND ($5 IS NULL OR team_id = $5) AND ($6 IS NULL OR model = $6) \
             AND ($7 IS NULL OR status = $7) AND ($8 IS NULL OR kind = $8)"
        };
    }
    /// `$9`, `$10`: the cursor (NULL for the first page); `$11`: the limit.
    pub const QUERY_RECORDS: &str = concat!(
        "SELECT seq, timestamp_ms, record FROM usage_records WHERE ",
        filter!(),
        " AND ($9 IS NULL OR timestamp_ms > $9 OR (timestamp_ms = $9 AND seq > $10)) \
         ORDER BY timestamp_ms, seq LIMIT $11"
    );

    macro_rules! report {
        ($column:literal) => {
            concat!(
                "SELECT ",
                $column,
                " AS grp, COUNT(*) AS requests, \
                 CAST(SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS BIGINT) AS success, \
                 CAST(SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS BIGINT) AS blocked, \
                 CAST(SUM(CASE WHEN status = 'errored' THEN 1 ELSE 0 END) AS BIGINT) AS errored, \
                 CAST(SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS BIGINT) AS cancelled, \
                 CAST(SUM(tokens_in) AS BIGINT) AS tokens_in, \
                 CAST(SUM(tokens_out) AS BIGINT) AS tokens_out, \
                 CAST(SUM(spend) AS DOUBLE PRECISION) AS spend \
                 FROM usage_records WHERE ",
                filter!(),
                " GROUP BY ",
                $column,
                " ORDER BY spend DESC, requests DESC, grp"
            )
        };
    }
    pub const REPORT_BY_KEY: &str = report!("key_id");
    pub const REPORT_BY_TEAM: &str = report!("team_id");
    pub const REPORT_BY_USER: &str = report!("user_id");
    pub const REPORT_BY_MODEL: &str = report!("model");

    pub const SELECT_KEEP_FROM: &str =
        "SELECT MIN(seq) FROM usage_records WHERE seq IS NOT NULL AND timestamp_ms >= $1";
    pub const DELETE_RECORDS_BEFORE: &str = "DELETE FROM usage_records WHERE seq < $1";
    pub const DELETE_CHECKPOINTS_BEFORE: &str =
        "DELETE FROM audit_checkpoints WHERE checkpoint_no < $1";
    /// Batch ids stay as long as any of their records does, so a late retry is still
    /// recognised; older ones go with their records.
    pub const DELETE_EMPTY_BATCHES: &str = "DELETE FROM usage_batches WHERE received_at_ms < $1 \
         AND NOT EXISTS (SELECT 1 FROM usage_records r WHERE r.batch_id = usage_batches.batch_id)";
}

pub(crate) fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| crate::store::StoreError::Corrupt("position out of range".into()))
}

pub(crate) fn to_u64(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| crate::store::StoreError::Corrupt(format!("negative {what}")))
}

pub(crate) fn hash32(v: &[u8], what: &str) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(v)
        .map_err(|_| crate::store::StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

/// Implements [`AuditStore`] and `UsageStore` for `$store`, whose sqlx database is `$db`.
macro_rules! impl_audit_store {
    ($store:ty, $db:ty) => {
        use sqlx::Row as _;
        use $crate::audit::chain::{record_hash, ChainPosition, Checkpoint};
        use $crate::audit::query::{
            AuditFilter, GroupBy, PruneOutcome, QueryCursor, ReportRow, StoredRecord,
        };
        use $crate::audit::record::{entry_from_record, RecordKind, RecordStatus};
        use $crate::audit::seal::Sealer;
        use $crate::audit::store::{hash32, sql, to_i64, to_u64, Appended, AuditStore, PAGE};
        use $crate::audit::verify::{ChainRow, Failure, Verifier, VerifyReport};
        use $crate::clock::Timestamp;
        use $crate::domain::{UsageBatch, UsageEntry, UsageReceipt};
        use $crate::store::{StoreError, StoreResult, UsageStore};

        type DbRow = <$db as sqlx::Database>::Row;
        type DbConnection = <$db as sqlx::Database>::Connection;

        fn position(row: &DbRow) -> StoreResult<ChainPosition> {
            Ok(ChainPosition {
                seq: to_u64(row.try_get("seq")?, "seq")?,
                hash: hash32(row.try_get::<Vec<u8>, _>("hash")?.as_slice(), "chain head")?,
            })
        }

        /// `Err(number)` when the row cannot be a checkpoint (wrong lengths): verification
        /// reports that checkpoint instead of failing to read it.
        fn checkpoint_from_row(row: &DbRow) -> StoreResult<Result<Checkpoint, u64>> {
            let number = to_u64(row.try_get("checkpoint_no")?, "checkpoint number")?;
            let chain_hash: Vec<u8> = row.try_get("chain_hash")?;
            let signer: Vec<u8> = row.try_get("signer")?;
            let signature: Vec<u8> = row.try_get("signature")?;
            let (Ok(chain_hash), Ok(signer), Ok(signature)) = (
                <[u8; 32]>::try_from(chain_hash),
                <[u8; 32]>::try_from(signer),
                <[u8; 64]>::try_from(signature),
            ) else {
                return Ok(Err(number));
            };
            let seq: i64 = row.try_get("seq")?;
            let every: i64 = row.try_get("every_records")?;
            let (Ok(seq), Ok(every_records)) = (u64::try_from(seq), u64::try_from(every)) else {
                return Ok(Err(number));
            };
            Ok(Ok(Checkpoint {
                number,
                seq,
                chain_hash,
                created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
                every_records,
                signer,
                signature,
            }))
        }

        fn well_formed(row: &DbRow) -> StoreResult<Checkpoint> {
            checkpoint_from_row(row)?
                .map_err(|n| StoreError::Corrupt(format!("audit checkpoint {n} is malformed")))
        }

        fn stored_record(row: &DbRow) -> StoreResult<StoredRecord> {
            Ok(StoredRecord {
                seq: to_u64(row.try_get("seq")?, "seq")?,
                timestamp: Timestamp::from_millis(row.try_get("timestamp_ms")?),
                record: row.try_get("record")?,
            })
        }

        fn chain_row(row: &DbRow) -> Result<ChainRow, String> {
            let status: String = row.try_get("status").map_err(|e| e.to_string())?;
            let kind: String = row.try_get("kind").map_err(|e| e.to_string())?;
            let get = |e: sqlx::Error| e.to_string();
            let seq: i64 = row.try_get("seq").map_err(get)?;
            Ok(ChainRow {
                seq: u64::try_from(seq).map_err(|_| "negative position".to_owned())?,
                prev_hash: row.try_get("prev_hash").map_err(get)?,
                hash: row.try_get("hash").map_err(get)?,
                entry: UsageEntry {
                    request_id: row.try_get("request_id").map_err(get)?,
                    timestamp: Timestamp::from_millis(row.try_get("timestamp_ms").map_err(get)?),
                    key_id: row.try_get("key_id").map_err(get)?,
                    team_id: row.try_get("team_id").map_err(get)?,
                    user_id: row.try_get("user_id").map_err(get)?,
                    model: row.try_get("model").map_err(get)?,
                    tokens_in: row.try_get("tokens_in").map_err(get)?,
                    tokens_out: row.try_get("tokens_out").map_err(get)?,
                    spend: row.try_get("spend").map_err(get)?,
                    status: RecordStatus::parse(&status)
                        .ok_or_else(|| format!("column status has an unknown value {status:?}"))?,
                    kind: RecordKind::parse(&kind)
                        .ok_or_else(|| format!("column kind has an unknown value {kind:?}"))?,
                    encoded: row.try_get("record").map_err(get)?,
                },
            })
        }

        async fn lock_head(conn: &mut DbConnection) -> StoreResult<ChainPosition> {
            let row = sqlx::query(sql::LOCK_HEAD).fetch_one(&mut *conn).await?;
            position(&row)
        }

        async fn set_head(conn: &mut DbConnection, head: ChainPosition) -> StoreResult<()> {
            sqlx::query(sql::SET_HEAD)
                .bind(to_i64(head.seq)?)
                .bind(head.hash.to_vec())
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        async fn last_checkpoint(conn: &mut DbConnection) -> StoreResult<Option<Checkpoint>> {
            sqlx::query(sql::SELECT_LAST_CHECKPOINT)
                .fetch_optional(&mut *conn)
                .await?
                .as_ref()
                .map(well_formed)
                .transpose()
        }

        /// Signs and inserts a checkpoint over `head` if the sealer says one is due.
        async fn seal_on(
            conn: &mut DbConnection,
            sealer: &Sealer,
            head: ChainPosition,
            force: bool,
        ) -> StoreResult<Option<Checkpoint>> {
            let last = last_checkpoint(&mut *conn).await?;
            let now = Timestamp::now();
            if !sealer.due(head, last.as_ref(), now, force) {
                return Ok(None);
            }
            let cp = sealer.sign(last.as_ref(), head, now);
            sqlx::query(sql::INSERT_CHECKPOINT)
                .bind(to_i64(cp.number)?)
                .bind(to_i64(cp.seq)?)
                .bind(cp.chain_hash.to_vec())
                .bind(cp.created_at.as_millis())
                .bind(to_i64(cp.every_records)?)
                .bind(cp.signer.to_vec())
                .bind(cp.signature.to_vec())
                .execute(&mut *conn)
                .await?;
            Ok(Some(cp))
        }

        fn bind_filter<'q>(
            q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            f: &'q AuditFilter,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            q.bind(f.from.map(Timestamp::as_millis))
                .bind(f.to.map(Timestamp::as_millis))
                .bind(f.user_id.as_deref())
                .bind(f.key_id.as_deref())
                .bind(f.team_id.as_deref())
                .bind(f.model.as_deref())
                .bind(f.status.map(RecordStatus::as_str))
                .bind(f.kind.map(RecordKind::as_str))
        }

        impl AuditStore for $store {
            async fn append(
                &self,
                batch: &UsageBatch,
                sealer: Option<&Sealer>,
            ) -> StoreResult<Appended> {
                let count = i64::try_from(batch.entries.len())
                    .map_err(|_| StoreError::Corrupt("batch too large".into()))?;
                let mut tx = self.begin_write().await?;
                let mut head = lock_head(&mut tx).await?;
                let inserted = sqlx::query(sql::INSERT_BATCH)
                    .bind(&batch.batch_id)
                    .bind(&batch.node_id)
                    .bind(batch.received_at.as_millis())
                    .bind(count)
                    .bind(&batch.data_plane)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if inserted == 0 {
                    let stored = sqlx::query(sql::SELECT_BATCH)
                        .bind(&batch.batch_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    let first: i64 = stored.try_get("record_count")?;
                    let sender: Option<String> = stored.try_get("data_plane")?;
                    // Only the data plane that delivered a batch may retry it: another one
                    // re-sending the id is a replay, not a retry.
                    if sender.is_some_and(|sender| sender != batch.data_plane) {
                        return Err(StoreError::BatchFromAnotherDataPlane(
                            batch.batch_id.clone(),
                        ));
                    }
                    let records = u32::try_from(first)
                        .map_err(|_| StoreError::Corrupt("record count out of range".into()))?;
                    return Ok(Appended {
                        receipt: UsageReceipt::Duplicate { records },
                        checkpoint: None,
                    });
                }
                for (index, entry) in (0_i64..).zip(&batch.entries) {
                    let seq = head.seq + 1;
                    let hash = record_hash(&head.hash, seq, &entry.encoded);
                    sqlx::query(sql::INSERT_RECORD)
                        .bind(&batch.batch_id)
                        .bind(index)
                        .bind(to_i64(seq)?)
                        .bind(head.hash.to_vec())
                        .bind(hash.to_vec())
                        .bind(&entry.request_id)
                        .bind(entry.timestamp.as_millis())
                        .bind(&entry.key_id)
                        .bind(&entry.team_id)
                        .bind(&entry.user_id)
                        .bind(&entry.model)
                        .bind(entry.tokens_in)
                        .bind(entry.tokens_out)
                        .bind(entry.spend)
                        .bind(entry.status.as_str())
                        .bind(entry.kind.as_str())
                        .bind(&entry.encoded)
                        .execute(&mut *tx)
                        .await?;
                    head = ChainPosition { seq, hash };
                }
                set_head(&mut tx, head).await?;
                let checkpoint = match sealer {
                    Some(sealer) => seal_on(&mut tx, sealer, head, false).await?,
                    None => None,
                };
                tx.commit().await?;
                Ok(Appended {
                    receipt: UsageReceipt::Stored {
                        records: u32::try_from(count)
                            .map_err(|_| StoreError::Corrupt("batch too large".into()))?,
                    },
                    checkpoint,
                })
            }

            async fn seal(&self, sealer: &Sealer, force: bool) -> StoreResult<Option<Checkpoint>> {
                let mut tx = self.begin_write().await?;
                let head = lock_head(&mut tx).await?;
                let cp = seal_on(&mut tx, sealer, head, force).await?;
                if cp.is_some() {
                    tx.commit().await?;
                }
                Ok(cp)
            }

            async fn chain_unchained(&self) -> StoreResult<u64> {
                use prost::Message as _;
                let mut tx = self.begin_write().await?;
                let mut head = lock_head(&mut tx).await?;
                let rows = sqlx::query(sql::SELECT_UNCHAINED)
                    .fetch_all(&mut *tx)
                    .await?;
                if rows.is_empty() {
                    return Ok(0);
                }
                for row in &rows {
                    let id: i64 = row.try_get("id")?;
                    let bytes: Vec<u8> = row.try_get("record")?;
                    let (status, kind) = modelgate_proto::v1::UsageRecord::decode(bytes.as_slice())
                        .map_or((RecordStatus::Unspecified, RecordKind::Request), |r| {
                            let entry = entry_from_record(&r);
                            (entry.status, entry.kind)
                        });
                    let seq = head.seq + 1;
                    let hash = record_hash(&head.hash, seq, &bytes);
                    sqlx::query(sql::CHAIN_RECORD)
                        .bind(to_i64(seq)?)
                        .bind(head.hash.to_vec())
                        .bind(hash.to_vec())
                        .bind(status.as_str())
                        .bind(kind.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    head = ChainPosition { seq, hash };
                }
                set_head(&mut tx, head).await?;
                tx.commit().await?;
                Ok(rows.len() as u64)
            }

            async fn checkpoint(&self, number: u64) -> StoreResult<Option<Checkpoint>> {
                sqlx::query(sql::SELECT_CHECKPOINT)
                    .bind(to_i64(number)?)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(well_formed)
                    .transpose()
            }

            async fn oldest_checkpoint_number(&self) -> StoreResult<Option<u64>> {
                let n: Option<i64> = sqlx::query_scalar(sql::SELECT_OLDEST_CHECKPOINT)
                    .fetch_one(&self.pool)
                    .await?;
                n.map(|n| to_u64(n, "checkpoint number")).transpose()
            }

            async fn verify_chain(
                &self,
                trusted: &[[u8; 32]],
                witness: Option<&Checkpoint>,
            ) -> StoreResult<Result<VerifyReport, Failure>> {
                let mut tx = self.begin_read().await?;
                let head_row = sqlx::query(sql::SELECT_HEAD).fetch_one(&mut *tx).await?;
                let head = position(&head_row)?;
                let mut verifier = Verifier::new(trusted, witness);
                let mut records = std::collections::VecDeque::new();
                let mut checkpoints = std::collections::VecDeque::new();
                let (mut records_done, mut checkpoints_done) = (false, false);
                let (mut after_seq, mut after_number) = (0_i64, 0_i64);
                loop {
                    if records.is_empty() && !records_done {
                        let rows = sqlx::query(sql::SELECT_CHAIN_AFTER)
                            .bind(after_seq)
                            .bind(i64::from(PAGE))
                            .fetch_all(&mut *tx)
                            .await?;
                        records_done = rows.len() < PAGE as usize;
                        for row in &rows {
                            let seq: i64 = row.try_get("seq")?;
                            after_seq = seq;
                            let seq = to_u64(seq, "seq")?;
                            records.push_back(chain_row(row).map_err(|why| (seq, why)));
                        }
                    }
                    if checkpoints.is_empty() && !checkpoints_done {
                        let rows = sqlx::query(sql::SELECT_CHECKPOINTS_AFTER)
                            .bind(after_number)
                            .bind(i64::from(PAGE))
                            .fetch_all(&mut *tx)
                            .await?;
                        checkpoints_done = rows.len() < PAGE as usize;
                        for row in &rows {
                            after_number = row.try_get("checkpoint_no")?;
                            checkpoints.push_back(checkpoint_from_row(row)?);
                        }
                    }
                    let record_first = match (records.front(), checkpoints.front()) {
                        (None, None) => break,
                        (Some(_), None) => true,
                        (None, Some(_)) => false,
                        (Some(r), Some(c)) => {
                            let r_seq = match r {
                                Ok(row) => row.seq,
                                Err((seq, _)) => *seq,
                            };
                            // A malformed checkpoint is reported as soon as it is reached.
                            c.as_ref().is_ok_and(|c| r_seq <= c.seq)
                        }
                    };
                    let step = if record_first {
                        match records.pop_front() {
                            Some(Ok(row)) => verifier.record(&row),
                            Some(Err((seq, why))) => Err(Failure::unreadable_record(seq, &why)),
                            None => Ok(()),
                        }
                    } else {
                        match checkpoints.pop_front() {
                            Some(Ok(cp)) => verifier.checkpoint(cp),
                            Some(Err(number)) => Err(Failure::malformed_checkpoint(number)),
                            None => Ok(()),
                        }
                    };
                    if let Err(failure) = step {
                        return Ok(Err(failure));
                    }
                }
                let unchained: i64 = sqlx::query_scalar(sql::COUNT_UNCHAINED)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(verifier.finish(head, to_u64(unchained, "record count")?))
            }

            async fn records_after(&self, seq: u64, limit: u32) -> StoreResult<Vec<StoredRecord>> {
                sqlx::query(sql::SELECT_RECORDS_AFTER)
                    .bind(to_i64(seq)?)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(stored_record)
                    .collect()
            }

            async fn query_records(
                &self,
                filter: &AuditFilter,
                after: Option<QueryCursor>,
                limit: u32,
            ) -> StoreResult<Vec<StoredRecord>> {
                bind_filter(sqlx::query(sql::QUERY_RECORDS), filter)
                    .bind(after.map(|c| c.timestamp.as_millis()))
                    .bind(to_i64(after.map_or(0, |c| c.seq))?)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(stored_record)
                    .collect()
            }

            async fn report(
                &self,
                filter: &AuditFilter,
                by: GroupBy,
            ) -> StoreResult<Vec<ReportRow>> {
                let query = match by {
                    GroupBy::Key => sql::REPORT_BY_KEY,
                    GroupBy::Team => sql::REPORT_BY_TEAM,
                    GroupBy::User => sql::REPORT_BY_USER,
                    GroupBy::Model => sql::REPORT_BY_MODEL,
                };
                // Admin records are not requests: they never count in a report.
                let requests = AuditFilter {
                    kind: Some(RecordKind::Request),
                    ..filter.clone()
                };
                let count = |row: &DbRow, name: &str| -> StoreResult<u64> {
                    to_u64(row.try_get::<Option<i64>, _>(name)?.unwrap_or(0), name)
                };
                bind_filter(sqlx::query(query), &requests)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| {
                        Ok(ReportRow {
                            group: row.try_get("grp")?,
                            requests: count(row, "requests")?,
                            success: count(row, "success")?,
                            blocked: count(row, "blocked")?,
                            errored: count(row, "errored")?,
                            cancelled: count(row, "cancelled")?,
                            tokens_in: count(row, "tokens_in")?,
                            tokens_out: count(row, "tokens_out")?,
                            spend: row.try_get::<Option<f64>, _>("spend")?.unwrap_or(0.0),
                        })
                    })
                    .collect()
            }

            async fn prune(&self, cutoff: Timestamp) -> StoreResult<PruneOutcome> {
                let mut tx = self.begin_write().await?;
                let head = lock_head(&mut tx).await?;
                let keep_from: Option<i64> = sqlx::query_scalar(sql::SELECT_KEEP_FROM)
                    .bind(cutoff.as_millis())
                    .fetch_one(&mut *tx)
                    .await?;
                let limit = match keep_from {
                    Some(seq) => seq,
                    None => to_i64(head.seq)?,
                };
                let anchor = sqlx::query(sql::SELECT_ANCHOR)
                    .bind(limit)
                    .fetch_optional(&mut *tx)
                    .await?
                    .as_ref()
                    .map(well_formed)
                    .transpose()?;
                let Some(anchor) = anchor else {
                    return Ok(PruneOutcome::default());
                };
                let records = sqlx::query(sql::DELETE_RECORDS_BEFORE)
                    .bind(to_i64(anchor.seq)?)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let checkpoints = sqlx::query(sql::DELETE_CHECKPOINTS_BEFORE)
                    .bind(to_i64(anchor.number)?)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(sql::DELETE_EMPTY_BATCHES)
                    .bind(cutoff.as_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(PruneOutcome {
                    records_deleted: records,
                    checkpoints_deleted: checkpoints,
                    anchor: Some((anchor.number, anchor.seq)),
                })
            }
        }

        impl UsageStore for $store {
            async fn record_usage(&self, batch: &UsageBatch) -> StoreResult<UsageReceipt> {
                Ok(self.append(batch, None).await?.receipt)
            }
        }
    };
}

mod sqlite {
    impl_audit_store!(crate::store::SqliteStore, sqlx::Sqlite);
}

mod postgres {
    impl_audit_store!(crate::store::PostgresStore, sqlx::Postgres);
}
