//! The audit log: every record the filters report, in one append-only hash chain with signed
//! checkpoints, readable by time, key, team, user, model and outcome.
//!
//! Design and guarantees:
//! - Chain ([`chain`]): record `n` stores `prev_hash` (record `n-1`'s hash) and
//!   `hash = SHA-256(prev_hash || n || record bytes)`, the bytes being the protobuf the filter
//!   sent. The columns reports query are derived from those bytes, and verification derives
//!   them again, so editing a column shows as surely as editing the record.
//! - One writer ([`store`]): an append locks the chain head row (`BEGIN IMMEDIATE` on SQLite,
//!   a row lock on PostgreSQL, so replicas too take turns), de-duplicates the batch id, chains
//!   the records, writes a checkpoint if one is due, and commits all of it at once.
//! - Checkpoints ([`seal`]): numbered, Ed25519-signed statements "record `n` has hash `h`",
//!   written every `every_records` records or `interval` of time (in the append's transaction,
//!   or by the server's ticker for an idle tail, and at start and stop). The key lives in the
//!   data dir only ([`signing`]), so a database writer can recompute hashes but cannot sign.
//! - Detection ([`verify`]): an edited, deleted, inserted or reordered record breaks its hash,
//!   its successor's `prev_hash`, the position sequence or the signed hash of the next
//!   checkpoint; re-chaining everything after an edit still contradicts that checkpoint.
//!   Truncating the tail and appending forged rows contradicts the checkpoints covering the
//!   removed records; deleting those checkpoints as well shows as a gap in checkpoint numbers,
//!   as more unsigned records than the newest checkpoint's signed policy allows, and as a
//!   mismatch with the witness file in which the server keeps the newest checkpoint it
//!   signed (outside the database).
//! - Residual window: records after the newest checkpoint (fewer than `every_records`, younger
//!   than `interval` while the server runs) are protected by the chain alone until sealed;
//!   someone with database write access could rewrite that tail consistently in the meantime.
//!   Deleting the oldest records up to a checkpoint looks like `audit prune`: verify prints
//!   where the log starts, to compare with the retention policy. The chain proves records were
//!   not changed after they were accepted; it does not prove who sent them.
//! - Retention ([`AuditLog::prune`]): deletes records older than the cutoff up to the newest
//!   checkpoint before it, keeping the record that checkpoint covers as the signed anchor.
//! - Reading: [`query`] (filters, pages, reports), [`record`] (the JSON record with the field
//!   names of DESIGN.md), [`sink`] (daily JSONL files a SIEM can tail).

pub mod chain;
pub mod log;
pub mod query;
pub mod record;
pub mod seal;
pub mod signing;
pub mod sink;
pub mod store;
pub mod verify;

pub use log::{AuditError, AuditLog};
pub use query::{AuditFilter, GroupBy, PruneOutcome, QueryCursor, ReportRow, StoredRecord};
pub use record::{entry_from_record, RecordJson, RecordKind, RecordStatus};
pub use seal::CheckpointPolicy;
pub use store::{AuditStore, PAGE};
pub use verify::{Failure, VerifyReport};
