//! How the snapshot travels from the singleton service to the worker VMs: proxy-wasm shared
//! data under two keys. The big one holds the encoded snapshot; the small "head" holds its
//! version and the time of the last successful contact with the control plane. Workers read
//! the head on every request (16 bytes) and the big value only when the version changed.

use std::rc::Rc;

use crate::host::{Host, HostError};
use crate::policy::PolicyIndex;

/// Shared-data key of the encoded `PolicySnapshot`.
pub const SNAPSHOT_KEY: &str = "modelgate.v1.snapshot";
/// Shared-data key of the [`SnapshotHead`].
pub const HEAD_KEY: &str = "modelgate.v1.snapshot.head";

/// Version and freshness of the published snapshot, written as one value so a reader always
/// sees a consistent pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHead {
    pub version: u64,
    pub last_contact_ms: i64,
}

impl SnapshotHead {
    pub const ENCODED_LEN: usize = 16;

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..8].copy_from_slice(&self.version.to_le_bytes());
        out[8..].copy_from_slice(&self.last_contact_ms.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::ENCODED_LEN] = bytes.try_into().ok()?;
        let (version, contact) = bytes.split_at(8);
        Some(Self {
            version: u64::from_le_bytes(version.try_into().ok()?),
            last_contact_ms: i64::from_le_bytes(contact.try_into().ok()?),
        })
    }
}

/// Publishes a new snapshot: the bytes first, then the head, so a worker that sees the new
/// version in the head finds (at least) that snapshot.
pub fn publish_snapshot(
    host: &impl Host,
    encoded: &[u8],
    head: SnapshotHead,
) -> Result<(), HostError> {
    host.set_shared_data(SNAPSHOT_KEY, encoded, None)?;
    publish_head(host, head)
}

/// Records a contact that brought no new snapshot.
pub fn publish_head(host: &impl Host, head: SnapshotHead) -> Result<(), HostError> {
    host.set_shared_data(HEAD_KEY, &head.encode(), None)
}

/// Why no policy can be enforced right now; every case fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("no policy snapshot has been received from the control plane yet")]
    NeverLoaded,
    #[error("the policy snapshot is stale: no contact with the control plane for {age_ms} ms")]
    Stale { age_ms: i64 },
    #[error("the policy snapshot could not be read: {0}")]
    Unreadable(String),
}

/// A worker's decoded copy of the published snapshot; decodes again only when the version in
/// the head changes.
#[derive(Debug, Default)]
pub struct SnapshotCache {
    loaded: Option<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    /// The head version this entry was loaded for (also when decoding failed, so a bad
    /// snapshot is not decoded again on every request).
    head_version: u64,
    index: Result<Rc<PolicyIndex>, String>,
}

impl SnapshotCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The snapshot to enforce at `now_ms`, or why there is none.
    pub fn current(
        &mut self,
        host: &impl Host,
        now_ms: i64,
        max_staleness_ms: u64,
    ) -> Result<Rc<PolicyIndex>, Unavailable> {
        let head = host
            .get_shared_data(HEAD_KEY)
            .map_err(|err| Unavailable::Unreadable(err.to_string()))?;
        let Some(head) = head.bytes else {
            return Err(Unavailable::NeverLoaded);
        };
        let head = SnapshotHead::decode(&head)
            .ok_or_else(|| Unavailable::Unreadable(format!("head is {} bytes", head.len())))?;
        let age_ms = now_ms.saturating_sub(head.last_contact_ms).max(0);
        if age_ms.unsigned_abs() > max_staleness_ms {
            return Err(Unavailable::Stale { age_ms });
        }
        match &self.loaded {
            Some(loaded) if loaded.head_version == head.version => {}
            _ => self.loaded = Some(load(host, head.version)),
        }
        match self.loaded.as_ref().map(|loaded| &loaded.index) {
            Some(Ok(index)) => Ok(Rc::clone(index)),
            Some(Err(reason)) => Err(Unavailable::Unreadable(reason.clone())),
            None => Err(Unavailable::NeverLoaded),
        }
    }
}

fn load(host: &impl Host, head_version: u64) -> Loaded {
    let index = match host.get_shared_data(SNAPSHOT_KEY) {
        Err(err) => Err(err.to_string()),
        Ok(value) => match value.bytes {
            None => Err("head present but snapshot missing".to_owned()),
            Some(bytes) => {
                let started = host.now_micros();
                PolicyIndex::decode(bytes)
                    .map(|index| {
                        let micros = host.now_micros().saturating_sub(started).max(0);
                        // One line per adopted version, in the form `make bench`'s scale run
                        // reads from Envoy's log.
                        log::info!(
                            "snapshot decoded version={} keys={} micros={}",
                            index.version(),
                            index.key_count(),
                            micros.unsigned_abs()
                        );
                        Rc::new(index)
                    })
                    .map_err(|err| err.to_string())
            }
        },
    };
    if let Err(reason) = &index {
        log::error!("policy snapshot v{head_version} unusable, failing closed: {reason}");
    }
    Loaded {
        head_version,
        index,
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::host::fake::FakeHost;
    use crate::policy::tests::snapshot;

    const STALENESS_MS: u64 = 30_000;

    fn published(version: u64) -> FakeHost {
        let host = FakeHost::new();
        publish_snapshot(
            &host,
            &snapshot(version).encode_to_vec(),
            SnapshotHead {
                version,
                last_contact_ms: host.now_ms(),
            },
        )
        .unwrap();
        host
    }

    #[test]
    fn head_round_trips_including_values_beyond_32_bits() {
        let head = SnapshotHead {
            version: u64::MAX - 1,
            last_contact_ms: i64::MIN + 3,
        };
        assert_eq!(SnapshotHead::decode(&head.encode()), Some(head));
        assert_eq!(SnapshotHead::decode(&[0u8; 15]), None);
    }

    #[test]
    fn fails_closed_before_the_first_snapshot() {
        let host = FakeHost::new();
        assert_eq!(
            SnapshotCache::new()
                .current(&host, host.now_ms(), STALENESS_MS)
                .unwrap_err(),
            Unavailable::NeverLoaded
        );
    }

    #[test]
    fn enforces_the_last_snapshot_until_max_staleness_then_fails_closed() {
        let host = published(3);
        let mut cache = SnapshotCache::new();
        assert_eq!(
            cache
                .current(&host, host.now_ms(), STALENESS_MS)
                .unwrap()
                .version(),
            3
        );
        host.advance(30_000);
        assert!(
            cache.current(&host, host.now_ms(), STALENESS_MS).is_ok(),
            "exactly max_staleness is fresh"
        );
        host.advance(1);
        assert_eq!(
            cache
                .current(&host, host.now_ms(), STALENESS_MS)
                .unwrap_err(),
            Unavailable::Stale { age_ms: 30_001 }
        );
        // The service reaches the control plane again: only the head changes.
        publish_head(
            &host,
            SnapshotHead {
                version: 3,
                last_contact_ms: host.now_ms(),
            },
        )
        .unwrap();
        assert_eq!(
            cache
                .current(&host, host.now_ms(), STALENESS_MS)
                .unwrap()
                .version(),
            3
        );
    }

    #[test]
    fn decodes_once_per_version() {
        let host = published(1);
        let mut cache = SnapshotCache::new();
        let first = cache.current(&host, host.now_ms(), STALENESS_MS).unwrap();
        let again = cache.current(&host, host.now_ms(), STALENESS_MS).unwrap();
        assert!(
            Rc::ptr_eq(&first, &again),
            "same version, same decoded index"
        );

        let head = SnapshotHead {
            version: 2,
            last_contact_ms: host.now_ms(),
        };
        publish_snapshot(&host, &snapshot(2).encode_to_vec(), head).unwrap();
        let newer = cache.current(&host, host.now_ms(), STALENESS_MS).unwrap();
        assert_eq!(newer.version(), 2);
        assert!(!Rc::ptr_eq(&first, &newer));
    }

    #[test]
    fn a_corrupt_snapshot_fails_closed_until_a_new_version_arrives() {
        let host = FakeHost::new();
        let head = |version| SnapshotHead {
            version,
            last_contact_ms: FakeHost::START_MS,
        };
        publish_snapshot(&host, b"\xff\xff\xff", head(5)).unwrap();
        let mut cache = SnapshotCache::new();
        assert!(matches!(
            cache.current(&host, host.now_ms(), STALENESS_MS),
            Err(Unavailable::Unreadable(_))
        ));
        publish_snapshot(&host, &snapshot(6).encode_to_vec(), head(6)).unwrap();
        assert_eq!(
            cache
                .current(&host, host.now_ms(), STALENESS_MS)
                .unwrap()
                .version(),
            6
        );
    }

    #[test]
    fn a_malformed_head_fails_closed() {
        let host = FakeHost::new().with_shared(HEAD_KEY, b"short");
        assert!(matches!(
            SnapshotCache::new().current(&host, host.now_ms(), STALENESS_MS),
            Err(Unavailable::Unreadable(_))
        ));
    }
}
