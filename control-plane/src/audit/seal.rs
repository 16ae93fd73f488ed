//! When checkpoints are written and signed, and the server's own record of the newest one it
//! signed (the witness file) that lets `audit verify` notice deleted checkpoints.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::chain::{ChainPosition, Checkpoint};
use crate::clock::Timestamp;

pub const WITNESS_FILE: &str = "audit-witness.json";

/// A checkpoint is written, in the same transaction as the records, once `every_records`
/// records are unsigned or the newest checkpoint is `interval` old; an idle tail is sealed by
/// the server's ticker after `interval`. So at most `every_records - 1` records, accepted
/// within the last `interval`, are ever without a signature while the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    pub every_records: u64,
    pub interval: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_records: 500,
            interval: Duration::from_secs(2),
        }
    }
}

/// Signs checkpoints with the server's key under its policy.
#[derive(Debug)]
pub struct Sealer {
    key: SigningKey,
    policy: CheckpointPolicy,
}

impl Sealer {
    pub fn new(key: SigningKey, policy: CheckpointPolicy) -> Self {
        let policy = CheckpointPolicy {
            every_records: policy.every_records.max(1),
            ..policy
        };
        Self { key, policy }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub fn policy(&self) -> CheckpointPolicy {
        self.policy
    }

    /// Whether the records after `last` need a checkpoint now. `force` seals any unsigned
    /// record (at start and shutdown).
    pub fn due(
        &self,
        head: ChainPosition,
        last: Option<&Checkpoint>,
        now: Timestamp,
        force: bool,
    ) -> bool {
        let Some(last) = last else {
            return head.seq > 0;
        };
        let unsigned = head.seq.saturating_sub(last.seq);
        if unsigned == 0 {
            return false;
        }
        let every = self.every_after(Some(last));
        let age_ms = now.as_millis().saturating_sub(last.created_at.as_millis());
        force
            || unsigned >= every
            || u128::from(age_ms.unsigned_abs()) >= self.policy.interval.as_millis()
    }

    pub fn sign(
        &self,
        last: Option<&Checkpoint>,
        head: ChainPosition,
        now: Timestamp,
    ) -> Checkpoint {
        let number = last.map_or(1, |c| c.number + 1);
        Checkpoint::sign(&self.key, number, head, now, self.every_after(last))
    }

    /// The record count a checkpoint after `last` is due at, and promises: the stricter of
    /// this replica's policy and the one the newest checkpoint promised. Signing the stricter
    /// one too keeps the promise from loosening when a replica (or a restart) with a looser
    /// policy writes the next checkpoint, so "fewer than every_records unsigned" holds for
    /// every verifier across restarts and replicas.
    fn every_after(&self, last: Option<&Checkpoint>) -> u64 {
        last.map_or(self.policy.every_records, |last| {
            self.policy.every_records.min(last.every_records.max(1))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("cannot read the audit witness {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("the audit witness {0} is malformed")]
    Malformed(PathBuf),
    #[error("cannot write the audit witness {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

#[derive(Serialize, Deserialize)]
struct WitnessJson {
    checkpoint_no: u64,
    seq: u64,
    chain_hash: String,
    created_at_ms: i64,
    every_records: u64,
    signer: String,
    signature: String,
}

pub fn witness_file(data_dir: &Path) -> PathBuf {
    data_dir.join(WITNESS_FILE)
}

/// The newest checkpoint this server signed, as it wrote it after the commit.
pub fn read_witness(data_dir: &Path) -> Result<Option<Checkpoint>, WitnessError> {
    let path = witness_file(data_dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(WitnessError::Read { path, source }),
    };
    let malformed = || WitnessError::Malformed(path.clone());
    let w: WitnessJson = serde_json::from_str(&text).map_err(|_| malformed())?;
    let bytes = |s: &str| hex::decode(s).map_err(|_| malformed());
    Ok(Some(Checkpoint {
        number: w.checkpoint_no,
        seq: w.seq,
        chain_hash: bytes(&w.chain_hash)?.try_into().map_err(|_| malformed())?,
        created_at: Timestamp::from_millis(w.created_at_ms),
        every_records: w.every_records,
        signer: bytes(&w.signer)?.try_into().map_err(|_| malformed())?,
        signature: bytes(&w.signature)?.try_into().map_err(|_| malformed())?,
    }))
}

/// Replaces the witness atomically (write a temp file, then rename), so a crash leaves the
/// old one or the new one, never half of either.
pub fn write_witness(data_dir: &Path, cp: &Checkpoint) -> Result<(), WitnessError> {
    let path = witness_file(data_dir);
    let tmp = data_dir.join(format!("{WITNESS_FILE}.tmp"));
    let json = WitnessJson {
        checkpoint_no: cp.number,
        seq: cp.seq,
        chain_hash: hex::encode(cp.chain_hash),
        created_at_ms: cp.created_at.as_millis(),
        every_records: cp.every_records,
        signer: hex::encode(cp.signer),
        signature: hex::encode(cp.signature),
    };
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        serde_json::to_writer(&mut f, &json).map_err(io::Error::from)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|source| WitnessError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(every: u64) -> Sealer {
        Sealer::new(
            SigningKey::from_bytes(&[7; 32]),
            CheckpointPolicy {
                every_records: every,
                interval: Duration::from_secs(2),
            },
        )
    }

    fn at(seq: u64) -> ChainPosition {
        ChainPosition {
            seq,
            hash: [seq as u8; 32],
        }
    }

    #[test]
    fn due_by_count_by_age_by_force_and_never_without_new_records() {
        let s = sealer(10);
        let t0 = Timestamp::from_millis(1_000_000);
        assert!(!s.due(ChainPosition::EMPTY, None, t0, true));
        assert!(s.due(at(1), None, t0, false), "the first records");

        let last = s.sign(None, at(5), t0);
        assert_eq!(last.number, 1);
        assert!(!s.due(at(5), Some(&last), t0, true), "nothing new");
        assert!(!s.due(at(14), Some(&last), t0, false));
        assert!(s.due(at(15), Some(&last), t0, false), "10 unsigned");
        assert!(s.due(at(6), Some(&last), Timestamp::from_millis(1_002_000), false));
        assert!(s.due(at(6), Some(&last), t0, true));

        // A stricter policy in the newest checkpoint wins over a looser local one.
        let loose = sealer(1_000);
        assert!(loose.due(at(15), Some(&last), t0, false));
        let next = loose.sign(Some(&last), at(15), t0);
        assert_eq!(next.number, 2);
        // ...and the looser replica's checkpoint promises the stricter count too, so the next
        // checkpoint (whoever writes it) is still due after 10 records, not 1,000.
        assert_eq!(next.every_records, 10);
        assert!(loose.due(at(25), Some(&next), t0, false));
        assert!(!loose.due(at(24), Some(&next), t0, false));
    }

    #[test]
    fn witness_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_witness(dir.path()).unwrap(), None);
        let cp = sealer(10).sign(None, at(3), Timestamp::from_millis(5));
        write_witness(dir.path(), &cp).unwrap();
        assert_eq!(read_witness(dir.path()).unwrap(), Some(cp));
        assert!(!dir.path().join(format!("{WITNESS_FILE}.tmp")).exists());
        fs::write(witness_file(dir.path()), "{").unwrap();
        assert!(matches!(
            read_witness(dir.path()),
            Err(WitnessError::Malformed(_))
        ));
    }
}
