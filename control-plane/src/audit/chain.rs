//! The chain's arithmetic: how a record's hash is computed and what a checkpoint signs.
//!
//! `hash(n) = SHA-256(hash(n-1) || n as u64 big-endian || record bytes)`, with `hash(0)` =
//! 32 zero bytes. The record bytes are the protobuf `UsageRecord` exactly as stored, so anyone
//! can recompute the chain from the database alone.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;

pub type Hash = [u8; 32];

/// The `prev_hash` of record 1.
pub const GENESIS: Hash = [0; 32];

/// Domain separation: a checkpoint signature can never be mistaken for a signature over
/// anything else made with the same key.
const CHECKPOINT_CONTEXT: &[u8] = b"modelgate.audit.checkpoint.v1\0";

pub fn record_hash(prev: &Hash, seq: u64, record: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(record);
    h.finalize().into()
}

/// The tip of the chain: the last record's position and hash (`0` and [`GENESIS`] when empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPosition {
    pub seq: u64,
    pub hash: Hash,
}

impl ChainPosition {
    pub const EMPTY: Self = Self {
        seq: 0,
        hash: GENESIS,
    };
}

/// A signed statement "the chain's record `seq` has hash `chain_hash`".
///
/// Checkpoints are numbered without gaps, so deleting one from the middle shows; each also
/// signs the checkpoint policy (`every_records`) in force, so a verifier knows how many
/// unsigned records may legitimately follow the newest one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub number: u64,
    pub seq: u64,
    pub chain_hash: Hash,
    pub created_at: Timestamp,
    pub every_records: u64,
    pub signer: [u8; 32],
    pub signature: [u8; 64],
}

/// The exact bytes a checkpoint's signature covers.
fn signed_message(
    number: u64,
    seq: u64,
    chain_hash: &Hash,
    created_at: Timestamp,
    every_records: u64,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_CONTEXT.len() + 8 * 4 + 32);
    m.extend_from_slice(CHECKPOINT_CONTEXT);
    m.extend_from_slice(&number.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(chain_hash);
    m.extend_from_slice(&created_at.as_millis().to_be_bytes());
    m.extend_from_slice(&every_records.to_be_bytes());
    m
}

impl Checkpoint {
    pub fn sign(
        key: &SigningKey,
        number: u64,
        position: ChainPosition,
        created_at: Timestamp,
        every_records: u64,
    ) -> Self {
        let message = signed_message(
            number,
            position.seq,
            &position.hash,
            created_at,
            every_records,
        );
        Self {
            number,
            seq: position.seq,
            chain_hash: position.hash,
            created_at,
            every_records,
            signer: key.verifying_key().to_bytes(),
            signature: key.sign(&message).to_bytes(),
        }
    }

    /// Whether the signature is valid for the fields as they are and was made by `signer`.
    pub fn signature_is_valid(&self) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.signer) else {
            return false;
        };
        let message = signed_message(
            self.number,
            self.seq,
            &self.chain_hash,
            self.created_at,
            self.every_records,
        );
        key.verify_strict(&message, &Signature::from_bytes(&self.signature))
            .is_ok()
    }

    pub fn position(&self) -> ChainPosition {
        ChainPosition {
            seq: self.seq,
            hash: self.chain_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32])
    }

    #[test]
    fn hashes_commit_to_the_previous_hash_the_position_and_the_bytes() {
        let h1 = record_hash(&GENESIS, 1, b"a");
        assert_ne!(h1, record_hash(&GENESIS, 2, b"a"), "position");
        assert_ne!(h1, record_hash(&GENESIS, 1, b"b"), "bytes");
        assert_ne!(h1, record_hash(&[1; 32], 1, b"a"), "previous hash");
        assert_eq!(h1, record_hash(&GENESIS, 1, b"a"));
        // Known answer, so the layout can never drift silently.
        let mut expected = Sha256::new();
        expected.update([0u8; 32]);
        expected.update([0, 0, 0, 0, 0, 0, 0, 1]);
        expected.update(b"a");
        assert_eq!(h1, <Hash>::from(expected.finalize()));
    }

    #[test]
    fn checkpoints_verify_and_every_field_is_signed() {
        let position = ChainPosition {
            seq: 7,
            hash: [9; 32],
        };
        let cp = Checkpoint::sign(&key(1), 3, position, Timestamp::from_millis(1_000), 100);
        assert!(cp.signature_is_valid());
        assert_eq!(cp.position(), position);

        let tampered = [
            Checkpoint {
                number: 4,
                ..cp.clone()
            },
            Checkpoint {
                seq: 8,
                ..cp.clone()
            },
            Checkpoint {
                chain_hash: [8; 32],
                ..cp.clone()
            },
            Checkpoint {
                created_at: Timestamp::from_millis(1_001),
                ..cp.clone()
            },
            Checkpoint {
                every_records: 101,
                ..cp.clone()
            },
            Checkpoint {
                signer: key(2).verifying_key().to_bytes(),
                ..cp.clone()
            },
        ];
        for t in tampered {
            assert!(!t.signature_is_valid(), "{t:?}");
        }
    }
}
