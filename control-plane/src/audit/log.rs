//! The server's handle on the audit log: appends what `ReportUsage` receives, seals idle
//! tails, keeps the witness of the newest checkpoint it signed, and wakes the JSONL sink.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use tokio::sync::{Mutex, Notify};

use super::chain::Checkpoint;
use super::query::PruneOutcome;
use super::seal::{self, CheckpointPolicy, Sealer, WitnessError};
use super::signing::{self, SigningKeyError};
use super::sink;
use super::store::AuditStore;
use super::verify::{Failure, VerifyReport};
use crate::clock::Timestamp;
use crate::domain::{UsageBatch, UsageReceipt};
use crate::store::{StoreError, StoreResult};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    SigningKey(#[from] SigningKeyError),
    #[error(transparent)]
    Witness(#[from] WitnessError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The newest checkpoint this process vouches for. `Broken` once the database no longer holds
/// it as signed: from then on the witness file stays as it was, so `audit verify` keeps failing
/// until an admin has looked (and removed the file).
#[derive(Debug)]
enum Witness {
    Tracking(Option<Checkpoint>),
    Broken,
}

#[derive(Debug)]
pub struct AuditLog<S> {
    store: S,
    sealer: Sealer,
    data_dir: PathBuf,
    witness: Mutex<Witness>,
    appended: Notify,
}

impl<S: AuditStore> AuditLog<S> {
    /// Loads (or creates) the signing key, chains records stored before the chain existed,
    /// checks the witness and seals any unsigned tail left by the previous run.
    pub async fn open(
        store: S,
        data_dir: &Path,
        policy: CheckpointPolicy,
    ) -> Result<Self, AuditError> {
        let (key, created) = signing::load_or_create(data_dir)?;
        let key_path = signing::key_file(data_dir);
        if created {
            eprintln!(
                "modelgate: audit signing key written to {}",
                key_path.display()
            );
        } else if signing::is_exposed(&key_path) {
            tracing::warn!(path = %key_path.display(), "audit signing key is readable by group or others; chmod 600 it");
        }
        let witness = seal::read_witness(data_dir)?;
        let log = Self {
            store,
            sealer: Sealer::new(key, policy),
            data_dir: data_dir.to_owned(),
            witness: Mutex::new(Witness::Tracking(None)),
            appended: Notify::new(),
        };
        if let Some(w) = witness {
            if log.intact(&w).await? {
                *log.witness.lock().await = Witness::Tracking(Some(w));
            } else {
                log.tampered(&w);
                *log.witness.lock().await = Witness::Broken;
            }
        }
        let adopted = log.store.chain_unchained().await?;
        if adopted > 0 {
            tracing::warn!(
                records = adopted,
                "chained usage records stored before the audit chain existed"
            );
        }
        log.seal(true).await?;
        Ok(log)
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.sealer.public_key()
    }

    pub fn policy(&self) -> CheckpointPolicy {
        self.sealer.policy()
    }

    /// Woken after every append that stored records.
    pub fn appended(&self) -> &Notify {
        &self.appended
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub async fn append(&self, batch: &UsageBatch) -> StoreResult<UsageReceipt> {
        let appended = self.store.append(batch, Some(&self.sealer)).await?;
        if let Some(cp) = appended.checkpoint {
            self.witnessed(cp).await;
        }
        if matches!(appended.receipt, UsageReceipt::Stored { records } if records > 0) {
            self.appended.notify_one();
        }
        Ok(appended.receipt)
    }

    /// Signs the unsigned tail when it is due (`force`: whenever there is one).
    pub async fn seal(&self, force: bool) -> StoreResult<()> {
        if let Some(cp) = self.store.seal(&self.sealer, force).await? {
            self.witnessed(cp).await;
        }
        Ok(())
    }

    /// Verifies the log with this server's key (plus `extra_keys`) and witness.
    pub async fn verify(
        &self,
        extra_keys: &[VerifyingKey],
    ) -> Result<Result<VerifyReport, Failure>, AuditError> {
        verify(&self.store, Some(&self.data_dir), extra_keys).await
    }

    pub async fn prune(&self, cutoff: Timestamp) -> Result<PruneOutcome, AuditError> {
        prune(&self.store, Some(&self.data_dir), cutoff).await
    }

    /// Whether the database still holds `w` exactly as signed (or pruned it legitimately).
    async fn intact(&self, w: &Checkpoint) -> StoreResult<bool> {
        match self.store.checkpoint(w.number).await? {
            Some(c) => Ok(c == *w),
            None => Ok(self
                .store
                .oldest_checkpoint_number()
                .await?
                .is_some_and(|oldest| oldest > w.number)),
        }
    }

    fn tampered(&self, w: &Checkpoint) {
        tracing::error!(
            checkpoint = w.number,
            seq = w.seq,
            "AUDIT LOG TAMPERED: a checkpoint this server signed is missing or changed in the \
             database; run `modelgate audit verify`"
        );
    }

    async fn witnessed(&self, cp: Checkpoint) {
        let mut witness = self.witness.lock().await;
        let previous = match &*witness {
            Witness::Broken => return,
            // Concurrent appends may report their checkpoints out of order.
            Witness::Tracking(Some(prev)) if prev.number >= cp.number => return,
            Witness::Tracking(prev) => prev.clone(),
        };
        if let Some(prev) = previous {
            match self.intact(&prev).await {
                Ok(true) => {}
                Ok(false) => {
                    self.tampered(&prev);
                    *witness = Witness::Broken;
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check the audit witness; keeping the old one");
                    return;
                }
            }
        }
        match seal::write_witness(&self.data_dir, &cp) {
            Ok(()) => *witness = Witness::Tracking(Some(cp)),
            Err(e) => tracing::error!(error = %e, "cannot write the audit witness"),
        }
    }
}

/// Verifies `store`'s log. Trusted keys: the data dir's signing key (when there is one) and
/// `extra_keys`; the witness comes from the data dir too.
pub async fn verify<S: AuditStore>(
    store: &S,
    data_dir: Option<&Path>,
    extra_keys: &[VerifyingKey],
) -> Result<Result<VerifyReport, Failure>, AuditError> {
    let mut trusted: Vec<[u8; 32]> = extra_keys.iter().map(VerifyingKey::to_bytes).collect();
    let mut witness = None;
    if let Some(dir) = data_dir {
        match signing::public_key(dir) {
            Ok(key) => trusted.push(key.to_bytes()),
            Err(SigningKeyError::Missing(_)) if !extra_keys.is_empty() => {}
            Err(e) => return Err(e.into()),
        }
        witness = seal::read_witness(dir)?;
    }
    Ok(store.verify_chain(&trusted, witness.as_ref()).await?)
}

/// Prunes the database and, with a data dir, the JSONL files of days before the cutoff.
pub async fn prune<S: AuditStore>(
    store: &S,
    data_dir: Option<&Path>,
    cutoff: Timestamp,
) -> Result<PruneOutcome, AuditError> {
    let outcome = store.prune(cutoff).await?;
    if let Some(dir) = data_dir {
        let removed = sink::remove_days_before(&sink::sink_dir(dir), cutoff);
        if removed > 0 {
            tracing::info!(
                files = removed,
                "removed audit JSONL files older than the cutoff"
            );
        }
    }
    Ok(outcome)
}
