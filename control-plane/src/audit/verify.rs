//! Checking a stored log: pure logic over the rows and checkpoints a store hands over, so the
//! same code runs in `modelgate audit verify` (straight on the database) and behind
//! `AuditService.Verify`.
//!
//! What is checked, in order:
//! - checkpoints: numbered without gaps, covering strictly increasing positions, each signature
//!   valid and made by a trusted key; the newest checkpoint this server signed (its witness
//!   file, outside the database) is still there, unchanged;
//! - records, by position: no gaps; each one's hash recomputed from its stored `prev_hash`,
//!   position and bytes; each `prev_hash` equal to the previous record's hash; the queryable
//!   columns equal to what the record bytes say; every checkpoint's hash equal to the hash of
//!   the record it covers;
//! - the start: record 1 follows the genesis hash, or (after `audit prune`) the first record is
//!   covered by a checkpoint;
//! - the end: no checkpoint covers a record past the last one (tail truncation), the stored
//!   chain head is the last record, and fewer records follow the newest checkpoint than its
//!   signed policy allows (so deleting the newest checkpoints shows too).

use std::fmt;

use super::chain::{record_hash, ChainPosition, Checkpoint, Hash, GENESIS};
use super::record::mismatched_column;
use crate::domain::UsageEntry;

/// One stored record as verification reads it. The hashes are raw column values: verification
/// must report a missing or malformed hash, not fail to read it.
#[derive(Debug, Clone)]
pub struct ChainRow {
    pub seq: u64,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Option<Vec<u8>>,
    pub entry: UsageEntry,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The record at fault, if the problem is with one.
    pub seq: Option<u64>,
    /// The checkpoint at fault, if the problem is with one.
    pub checkpoint: Option<u64>,
    pub reason: String,
}

impl Failure {
    fn record(seq: u64, reason: impl Into<String>) -> Self {
        Self {
            seq: Some(seq),
            checkpoint: None,
            reason: reason.into(),
        }
    }

    fn checkpoint(number: u64, reason: impl Into<String>) -> Self {
        Self {
            seq: None,
            checkpoint: Some(number),
            reason: reason.into(),
        }
    }

    pub fn unreadable_record(seq: u64, why: &str) -> Self {
        Self::record(seq, format!("cannot be read: {why}"))
    }

    pub fn malformed_checkpoint(number: u64) -> Self {
        Self::checkpoint(
            number,
            "is malformed (a hash, key or signature of the wrong length)",
        )
    }

    fn log(reason: impl Into<String>) -> Self {
        Self {
            seq: None,
            checkpoint: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.seq, self.checkpoint) {
            (Some(seq), _) => write!(f, "record {seq}: {}", self.reason),
            (None, Some(n)) => write!(f, "checkpoint {n}: {}", self.reason),
            (None, None) => f.write_str(&self.reason),
        }
    }
}

/// What a log that verified holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: u64,
    pub checkpoints: u64,
    /// First and last record positions; `None` when the log is empty.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Records after the newest checkpoint, not yet covered by a signature.
    pub unsigned_records: u64,
    /// The checkpoint the log starts from after a prune (`None` when it starts at record 1).
    pub anchor: Option<u64>,
    /// Whether the server's witness of its newest checkpoint was checked.
    pub witness_checked: bool,
}

fn as_hash(bytes: Option<&Vec<u8>>) -> Option<Hash> {
    bytes.and_then(|b| <Hash>::try_from(b.as_slice()).ok())
}

fn short(h: &Hash) -> String {
    hex::encode(&h[..6])
}

/// Feed it records and checkpoints merged by position, a record before a checkpoint at the
/// same position (checkpoints in number order, records in position order), then call
/// [`Verifier::finish`]. It holds only the current position, so logs of any size stream through.
#[derive(Debug)]
pub struct Verifier<'a> {
    trusted: &'a [[u8; 32]],
    witness: Option<&'a Checkpoint>,
    witness_seen: bool,
    first_checkpoint: Option<u64>,
    last_checkpoint: Option<Checkpoint>,
    /// The newest checkpoint that matched a record, for locating an alteration.
    last_matched: Option<u64>,
    checkpoints: u64,
    prev: Option<ChainPosition>,
    first: Option<u64>,
    records: u64,
    anchor: Option<u64>,
    /// A log that does not start at record 1 must have a checkpoint on its first record.
    awaiting_anchor: Option<u64>,
    /// A checkpoint past the last record seen so far: `(number, seq)`.
    beyond: Option<(u64, u64)>,
}

impl<'a> Verifier<'a> {
    /// `trusted`: public keys whose signatures count; `witness`: the newest checkpoint this
    /// server signed, from its data dir.
    pub fn new(trusted: &'a [[u8; 32]], witness: Option<&'a Checkpoint>) -> Self {
        Self {
            trusted,
            witness,
            witness_seen: false,
            first_checkpoint: None,
            last_checkpoint: None,
            last_matched: None,
            checkpoints: 0,
            prev: None,
            first: None,
            records: 0,
            anchor: None,
            awaiting_anchor: None,
            beyond: None,
        }
    }

    pub fn checkpoint(&mut self, cp: Checkpoint) -> Result<(), Failure> {
        if let Some(before) = &self.last_checkpoint {
            if cp.number != before.number + 1 {
                return Err(Failure::checkpoint(
                    before.number + 1,
                    format!(
                        "missing: checkpoints jump from {} to {} (deleted)",
                        before.number, cp.number
                    ),
                ));
            }
            if cp.seq <= before.seq {
                return Err(Failure::checkpoint(
                    cp.number,
                    format!(
                        "covers record {} but checkpoint {} already covers record {} \
                         (checkpoints reordered)",
                        cp.seq, before.number, before.seq
                    ),
                ));
            }
        }
        if !cp.signature_is_valid() {
            return Err(Failure::checkpoint(
                cp.number,
                "its signature does not match its contents (edited or forged)",
            ));
        }
        if !self.trusted.contains(&cp.signer) {
            return Err(Failure::checkpoint(
                cp.number,
                format!(
                    "signed by key {} which is not trusted (pass it with --public-key if it is \
                     another replica's)",
                    hex::encode(cp.signer)
                ),
            ));
        }
        if let Some(w) = self.witness.filter(|w| w.number == cp.number) {
            if *w != cp {
                return Err(Failure::checkpoint(
                    cp.number,
                    "differs from the one this server signed (see its witness file): the \
                     checkpoint was replaced",
                ));
            }
            self.witness_seen = true;
        }
        if let Some(first) = self.awaiting_anchor.take() {
            if cp.seq != first {
                return Err(no_anchor(first));
            }
            self.anchor = Some(cp.number);
        }
        match self.prev {
            Some(prev) if cp.seq == prev.seq => {
                if cp.chain_hash != prev.hash {
                    let from = self
                        .last_matched
                        .map_or_else(|| self.first.unwrap_or(1), |s| s + 1);
                    return Err(Failure::record(
                        prev.seq,
                        format!(
                            "its hash {} differs from {} signed in checkpoint {}: records \
                             {from}..{} were altered and re-chained",
                            short(&prev.hash),
                            short(&cp.chain_hash),
                            cp.number,
                            prev.seq
                        ),
                    ));
                }
                self.last_matched = Some(cp.seq);
            }
            Some(prev) if cp.seq > prev.seq => self.beyond = Some((cp.number, cp.seq)),
            // Before the first record: left over from before a prune.
            Some(_) | None => {}
        }
        self.first_checkpoint.get_or_insert(cp.number);
        self.checkpoints += 1;
        self.last_checkpoint = Some(cp);
        Ok(())
    }

    pub fn record(&mut self, row: &ChainRow) -> Result<(), Failure> {
        if let Some(first) = self.awaiting_anchor {
            return Err(no_anchor(first));
        }
        let seq = row.seq;
        match self.prev {
            Some(prev) if seq <= prev.seq => {
                return Err(Failure::record(seq, "appears twice or out of order"));
            }
            Some(prev) if seq > prev.seq + 1 => {
                let missing = if seq == prev.seq + 2 {
                    format!("record {} is missing", prev.seq + 1)
                } else {
                    format!("records {}..{} are missing", prev.seq + 1, seq - 1)
                };
                return Err(Failure::record(
                    prev.seq + 1,
                    format!("{missing} (deleted)"),
                ));
            }
            Some(_) | None => {}
        }
        let (Some(prev_hash), Some(hash)) =
            (as_hash(row.prev_hash.as_ref()), as_hash(row.hash.as_ref()))
        else {
            return Err(Failure::record(seq, "its prev_hash or hash is missing"));
        };
        if record_hash(&prev_hash, seq, &row.entry.encoded) != hash {
            return Err(Failure::record(
                seq,
                "its contents do not match its hash (the record was edited)",
            ));
        }
        match mismatched_column(&row.entry) {
            Ok(None) => {}
            Ok(Some(column)) => {
                return Err(Failure::record(
                    seq,
                    format!("column {column} differs from the hashed record (edited)"),
                ))
            }
            Err(_) => {
                return Err(Failure::record(
                    seq,
                    "its stored bytes are not a valid record",
                ))
            }
        }
        match self.prev {
            Some(prev) if prev_hash != prev.hash => {
                return Err(Failure::record(
                    seq,
                    format!(
                        "does not follow record {}: its prev_hash is not that record's hash \
                         (a record was inserted, replaced, reordered or edited and re-hashed)",
                        prev.seq
                    ),
                ));
            }
            Some(_) => {}
            None if seq == 1 => {
                if prev_hash != GENESIS {
                    return Err(Failure::record(1, "its prev_hash is not the chain's start"));
                }
            }
            None => self.awaiting_anchor = Some(seq),
        }
        self.first.get_or_insert(seq);
        self.prev = Some(ChainPosition { seq, hash });
        self.records += 1;
        Ok(())
    }

    /// `head` is the stored chain head; `unchained` counts records without a position.
    pub fn finish(self, head: ChainPosition, unchained: u64) -> Result<VerifyReport, Failure> {
        if let Some(first) = self.awaiting_anchor {
            return Err(no_anchor(first));
        }
        if let Some(w) = self.witness.filter(|_| !self.witness_seen) {
            let pruned = self.first_checkpoint.is_some_and(|n| n > w.number);
            if !pruned {
                return Err(Failure::checkpoint(
                    w.number,
                    format!(
                        "this server signed it (record {}, see its witness file) but it is \
                         missing: newer checkpoints were deleted and the log's tail rewritten",
                        w.seq
                    ),
                ));
            }
        }
        if unchained > 0 {
            return Err(Failure::log(format!(
                "{unchained} record(s) have no place in the chain: stored before the audit \
                 chain existed (start the server once to chain them) or inserted behind its back"
            )));
        }
        let Some(last) = self.prev else {
            if let Some(cp) = &self.last_checkpoint {
                return Err(Failure::checkpoint(
                    cp.number,
                    format!(
                        "covers record {} but the log has no records: they were deleted",
                        cp.seq
                    ),
                ));
            }
            if head != ChainPosition::EMPTY {
                return Err(Failure::log(format!(
                    "the chain head says record {} but the log is empty",
                    head.seq
                )));
            }
            return Ok(self.report(0));
        };
        if let Some((number, seq)) = self.beyond {
            return Err(Failure::checkpoint(
                number,
                format!(
                    "covers record {seq} but the log ends at record {}: records after it were \
                     deleted (tail truncated)",
                    last.seq
                ),
            ));
        }
        if head != last {
            return Err(Failure::log(format!(
                "the chain head (record {}) is not the last record ({}): the head was edited \
                 or records were deleted",
                head.seq, last.seq
            )));
        }
        let Some(cp) = &self.last_checkpoint else {
            return Err(Failure::log(format!(
                "no signed checkpoint covers any of the {} record(s)",
                self.records
            )));
        };
        let unsigned = last.seq - cp.seq;
        if unsigned >= cp.every_records {
            return Err(Failure::checkpoint(
                cp.number + 1,
                format!(
                    "missing: {unsigned} records follow checkpoint {} but checkpoints are \
                     written at least every {} records (newer checkpoints were deleted)",
                    cp.number, cp.every_records
                ),
            ));
        }
        Ok(self.report(unsigned))
    }

    fn report(&self, unsigned_records: u64) -> VerifyReport {
        VerifyReport {
            records: self.records,
            checkpoints: self.checkpoints,
            first_seq: self.first,
            last_seq: self.prev.map(|p| p.seq),
            unsigned_records,
            anchor: self.anchor,
            witness_checked: self.witness.is_some(),
        }
    }
}

fn no_anchor(first: u64) -> Failure {
    Failure::record(
        first,
        format!(
            "the log starts here but no signed checkpoint covers it: records 1..{} were \
             deleted without `audit prune`",
            first - 1
        ),
    )
}

#[cfg(test)]
mod tests;
