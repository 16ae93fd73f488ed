//! The policy snapshot, indexed once per version for per-request lookups by key hash, team
//! and model. Keys stay encoded: the index maps each key hash to where its message lies in
//! the snapshot bytes, and a request decodes only the key it presents (a 100k-key snapshot
//! indexes in a fraction of the time and memory that decoding every key took).

pub mod wire;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use modelgate_proto::fields::{key_policy, policy_snapshot};
use modelgate_proto::v1::{
    IdentityProvider, KeyPolicy, KeyStatus, ModelRoute, TeamPolicy, UserPolicy,
};
use prost::Message;

use crate::credential::KeyDigest;
use wire::{Fields, Value, WireError};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy snapshot does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("policy snapshot is malformed: {0}")]
    Wire(#[from] WireError),
    #[error("policy snapshot of {0} bytes is over the 4 GiB an index can address")]
    TooLarge(usize),
}

/// A decoded snapshot, indexed for per-request lookups.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    version: u64,
    /// The encoded snapshot the key spans point into.
    bytes: Vec<u8>,
    keys: HashMap<KeyHash, KeySpan, BuildHasherDefault<KeyHasher>>,
    teams: HashMap<String, TeamPolicy>,
    users: HashMap<String, UserPolicy>,
    routes: HashMap<String, ModelRoute>,
    identity_providers: Vec<ProviderEntry>,
    /// IdP group -> the teams whose `idp_groups` name it.
    group_teams: HashMap<String, Vec<String>>,
}

/// An issuer as the snapshot lists it, with the SHA-256 of its encoded entry (a change of
/// keys or settings changes it).
#[derive(Debug, Clone)]
pub struct ProviderEntry {
    pub provider: IdentityProvider,
    pub fingerprint: [u8; 32],
}

/// A key's SHA-256 as the index's key. The digest is already uniformly distributed, so its
/// first 8 bytes are the hash: no SipHash over 32 bytes per insert and lookup. Lookups of
/// unknown digests cannot degrade the table: its layout depends only on the inserted keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyHash([u8; 32]);

impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(prefix));
    }
}

#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    // Only `KeyHash` is hashed with this hasher, and it writes one u64; anything else still
    // gets a valid (if weak) hash rather than a panic.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
}

/// Where a key's message lies in the snapshot bytes (u32: the index refuses bigger snapshots).
#[derive(Debug, Clone, Copy)]
struct KeySpan {
    start: u32,
    end: u32,
}

/// A key that may call, with its team; `None` for a personal key (one made without a team,
/// as LiteLLM allows), whose own allowlist and limits are the only ones that apply.
#[derive(Debug, Clone)]
pub struct Principal<'a> {
    pub key: KeyPolicy,
    pub team: Option<&'a TeamPolicy>,
}

/// Why a known or unknown key may not call. Known keys come along for the audit record.
#[derive(Debug, Clone, PartialEq)]
pub enum Denial {
    UnknownKey,
    Revoked(Box<KeyPolicy>),
    Blocked(Box<KeyPolicy>),
    Expired(Box<KeyPolicy>),
    /// A status this filter does not know (a newer control plane, or a bug): refused.
    UnrecognisedStatus(Box<KeyPolicy>),
    TeamBlocked(Box<KeyPolicy>),
    /// The key names a team the snapshot lacks: an inconsistent snapshot, refused.
    TeamMissing(Box<KeyPolicy>),
}

impl PolicyIndex {
    /// Indexes an encoded `PolicySnapshot`. The framing of every key is checked here; a key
    /// whose fields do not decode is refused when presented.
    pub fn decode(bytes: Vec<u8>) -> Result<Self, PolicyError> {
        if u32::try_from(bytes.len()).is_err() {
            return Err(PolicyError::TooLarge(bytes.len()));
        }
        let mut index = Self::default();
        let mut spans = Vec::new();
        for field in Fields::new(&bytes) {
            match field? {
                (policy_snapshot::VERSION, Value::Varint(version)) => index.version = version,
                (policy_snapshot::KEYS, Value::Len(range)) => spans.push(range),
                (policy_snapshot::TEAMS, Value::Len(range)) => {
                    let team = TeamPolicy::decode(&bytes[range])?;
                    index.teams.insert(team.team_id.clone(), team);
                }
                (policy_snapshot::USERS, Value::Len(range)) => {
                    let user = UserPolicy::decode(&bytes[range])?;
                    index.users.insert(user.user_id.clone(), user);
                }
                (policy_snapshot::MODELS, Value::Len(range)) => {
                    let route = ModelRoute::decode(&bytes[range])?;
                    index.routes.insert(route.name.clone(), route);
                }
                (policy_snapshot::IDENTITY_PROVIDERS, Value::Len(range)) => {
                    let encoded = &bytes[range];
                    index.identity_providers.push(ProviderEntry {
                        provider: IdentityProvider::decode(encoded)?,
                        fingerprint: crate::identity::fingerprint(encoded),
                    });
                }
                _ => {}
            }
        }
        for team in index.teams.values() {
            for group in &team.idp_groups {
                index
                    .group_teams
                    .entry(group.clone())
                    .or_default()
                    .push(team.team_id.clone());
            }
        }
        index.keys.reserve(spans.len());
        // A regenerated key's previous secret, indexed after every current one so it can
        // never shadow a key; `authorize` checks its grace period.
        let mut previous = Vec::new();
        for span in spans {
            let message = &bytes[span.clone()];
            if let Some(hash) = wire::last_len(message, key_policy::PREVIOUS_KEY_SHA256)?
                .and_then(|hash| message.get(hash))
                .and_then(|hash| <[u8; 32]>::try_from(hash).ok())
            {
                previous.push((KeyHash(hash), span.clone()));
            }
            let hash =
                wire::last_len(message, key_policy::KEY_SHA256)?.and_then(|hash| message.get(hash));
            match hash.and_then(|hash| <[u8; 32]>::try_from(hash).ok()) {
                Some(hash) => {
                    // Lengths were checked against a buffer under 4 GiB above.
                    let span = KeySpan {
                        start: span.start as u32,
                        end: span.end as u32,
                    };
                    index.keys.insert(KeyHash(hash), span);
                }
                None => log::warn!(
                    "snapshot v{}: key {} has a {}-byte hash, not a SHA-256; ignored",
                    index.version,
                    KeyPolicy::decode(message)
                        .map(|key| key.public_id)
                        .unwrap_or_default(),
                    hash.map_or(0, <[u8]>::len)
                ),
            }
        }
        for (hash, span) in previous {
            // Lengths were checked against a buffer under 4 GiB above.
            let span = KeySpan {
                start: span.start as u32,
                end: span.end as u32,
            };
            index.keys.entry(hash).or_insert(span);
        }
        index.bytes = bytes;
        Ok(index)
    }

    /// Test and bench fixtures: the index of a snapshot built in code.
    #[cfg(any(test, feature = "test-util"))]
    #[allow(clippy::expect_used)]
    pub fn from_snapshot(snapshot: modelgate_proto::v1::PolicySnapshot) -> Self {
        Self::decode(snapshot.encode_to_vec()).expect("an encoded snapshot indexes")
    }

    fn key(&self, span: KeySpan) -> Option<KeyPolicy> {
        let message = self.bytes.get(span.start as usize..span.end as usize)?;
        match KeyPolicy::decode(message) {
            Ok(key) => Some(key),
            Err(err) => {
                log::warn!(
                    "snapshot v{}: a key at bytes {}..{} does not decode ({err}); refused",
                    self.version,
                    span.start,
                    span.end
                );
                None
            }
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Decides whether the key with this hash may call at `now_ms`.
    pub fn authorize(&self, digest: &KeyDigest, now_ms: i64) -> Result<Principal<'_>, Denial> {
        let key = self
            .keys
            .get(&KeyHash(*digest.as_bytes()))
            .and_then(|&span| self.key(span))
            .ok_or(Denial::UnknownKey)?;
        // Presented with its previous secret: valid only until the grace period ends, after
        // which it is as unknown as any other string.
        let current = key.key_sha256.as_slice() == digest.as_bytes();
        if !current && now_ms >= key.previous_key_expires_at_ms {
            return Err(Denial::UnknownKey);
        }
        match KeyStatus::try_from(key.status) {
            Ok(KeyStatus::Active) => {}
            Ok(KeyStatus::Revoked) => return Err(Denial::Revoked(Box::new(key))),
            Ok(KeyStatus::Blocked) => return Err(Denial::Blocked(Box::new(key))),
            Ok(KeyStatus::Unspecified) | Err(_) => {
                return Err(Denial::UnrecognisedStatus(Box::new(key)))
            }
        }
        if key.expires_at_ms != 0 && now_ms >= key.expires_at_ms {
            return Err(Denial::Expired(Box::new(key)));
        }
        if key.team_id.is_empty() {
            return Ok(Principal { key, team: None });
        }
        let Some(team) = self.teams.get(&key.team_id) else {
            return Err(Denial::TeamMissing(Box::new(key)));
        };
        if team.blocked {
            return Err(Denial::TeamBlocked(Box::new(key)));
        }
        Ok(Principal {
            key,
            team: Some(team),
        })
    }

    /// The route for a public model name, if the snapshot has one.
    pub fn route(&self, model: &str) -> Option<&ModelRoute> {
        self.routes.get(model)
    }

    /// Every route, in no particular order.
    pub fn routes(&self) -> impl Iterator<Item = &ModelRoute> {
        self.routes.values()
    }

    /// The user's own limits and spend, if the snapshot has any.
    pub fn user(&self, user_id: &str) -> Option<&UserPolicy> {
        self.users.get(user_id)
    }

    pub fn team(&self, team_id: &str) -> Option<&TeamPolicy> {
        self.teams.get(team_id)
    }

    /// The IdP issuers whose tokens this snapshot accepts.
    pub fn identity_providers(&self) -> &[ProviderEntry] {
        &self.identity_providers
    }

    /// The ids of the teams an IdP group belongs to (any order).
    pub fn teams_of_group(&self, group: &str) -> &[String] {
        self.group_teams.get(group).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use modelgate_proto::v1::PolicySnapshot;

    pub(crate) const ALICE_KEY: &str =
        "sk-mg-alice0000001-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    pub(crate) fn key(secret: &str, public_id: &str, status: KeyStatus) -> KeyPolicy {
        KeyPolicy {
            key_sha256: KeyDigest::of(secret).as_bytes().to_vec(),
            public_id: public_id.to_owned(),
            team_id: "team-1".to_owned(),
            user_id: format!("{public_id}@example.com"),
            status: status as i32,
            ..KeyPolicy::default()
        }
    }

    pub(crate) fn route(name: &str, cluster: &str) -> ModelRoute {
        ModelRoute {
            name: name.to_owned(),
            cluster: cluster.to_owned(),
            ..ModelRoute::default()
        }
    }

    pub(crate) fn team(id: &str) -> TeamPolicy {
        TeamPolicy {
            team_id: id.to_owned(),
            alias: format!("{id}-alias"),
            ..TeamPolicy::default()
        }
    }

    /// Alice's key active, plus one key in every refusable state, one team and one route.
    pub(crate) fn snapshot(version: u64) -> PolicySnapshot {
        let mut expired = key("expired-key", "expired00001", KeyStatus::Active);
        expired.expires_at_ms = 1_000;
        let mut orphan = key("orphan-key", "orphan000001", KeyStatus::Active);
        orphan.team_id = "gone".to_owned();
        let mut blocked_team = key("blocked-team-key", "blockedteam1", KeyStatus::Active);
        blocked_team.team_id = "team-blocked".to_owned();
        let mut odd = key("odd-status-key", "oddstatus001", KeyStatus::Active);
        odd.status = 42;
        let mut short_hash = key("short-hash-key", "shorthash001", KeyStatus::Active);
        short_hash.key_sha256.truncate(16);
        PolicySnapshot {
            version,
            generated_at_ms: 1,
            keys: vec![
                key(ALICE_KEY, "alice0000001", KeyStatus::Active),
                key("revoked-key", "revoked00001", KeyStatus::Revoked),
                key("blocked-key", "blocked00001", KeyStatus::Blocked),
                key("unspecified-key", "unspec000001", KeyStatus::Unspecified),
                expired,
                orphan,
                blocked_team,
                odd,
                short_hash,
            ],
            teams: vec![
                TeamPolicy {
                    models: vec!["llama3.1-8b".to_owned(), "qwen2.5-*".to_owned()],
                    ..team("team-1")
                },
                TeamPolicy {
                    blocked: true,
                    ..team("team-blocked")
                },
            ],
            users: vec![],
            models: vec![
                ModelRoute {
                    name: "llama3.1-8b".to_owned(),
                    upstream_model: "llama3.1:8b".to_owned(),
                    cluster: "pool-llama".to_owned(),
                    ..ModelRoute::default()
                },
                route("qwen2.5-7b", "pool-qwen"),
                route("qwen2.5x", "pool-qwen"),
            ],
            ..PolicySnapshot::default()
        }
    }

    fn public_id(denial: &Denial) -> Option<&str> {
        match denial {
            Denial::UnknownKey => None,
            Denial::Revoked(k)
            | Denial::Blocked(k)
            | Denial::Expired(k)
            | Denial::UnrecognisedStatus(k)
            | Denial::TeamBlocked(k)
            | Denial::TeamMissing(k) => Some(k.public_id.as_str()),
        }
    }

    #[test]
    fn a_regenerated_keys_previous_secret_works_until_its_grace_ends() {
        let mut snap = snapshot(3);
        let mut rotated = key("new-secret", "rotated00001", KeyStatus::Active);
        rotated.previous_key_sha256 = KeyDigest::of("old-secret").as_bytes().to_vec();
        rotated.previous_key_expires_at_ms = 5_000;
        // A previous secret equal to another key's current one never shadows that key.
        let mut odd = key("other-new", "rotated00002", KeyStatus::Active);
        odd.previous_key_sha256 = KeyDigest::of(ALICE_KEY).as_bytes().to_vec();
        odd.previous_key_expires_at_ms = 5_000;
        snap.keys.extend([rotated, odd]);
        let index = PolicyIndex::from_snapshot(snap);

        let old = KeyDigest::of("old-secret");
        let new = KeyDigest::of("new-secret");
        for (digest, now_ms, accepted) in [
            (&new, 1_000, true),
            (&old, 1_000, true),
            (&old, 4_999, true),
            (&old, 5_000, false),
            (&new, 9_000, true),
        ] {
            let verdict = index.authorize(digest, now_ms);
            match verdict {
                Ok(principal) => {
                    assert!(accepted, "at {now_ms}");
                    assert_eq!(principal.key.public_id, "rotated00001");
                }
                Err(denial) => {
                    assert!(!accepted, "at {now_ms}: {denial:?}");
                    assert!(matches!(denial, Denial::UnknownKey));
                }
            }
        }
        let alice = index.authorize(&KeyDigest::of(ALICE_KEY), 1_000).unwrap();
        assert_eq!(alice.key.public_id, "alice0000001");
    }

    #[test]
    fn indexes_issuers_and_the_teams_of_each_idp_group() {
        let mut snap = snapshot(3);
        snap.teams[0].idp_groups = vec!["ai-users".to_owned(), "platform".to_owned()];
        snap.teams[1].idp_groups = vec!["ai-users".to_owned()];
        snap.identity_providers = vec![IdentityProvider {
            issuer: "https://idp.example.com".to_owned(),
            jwks_json: r#"{"keys":[]}"#.to_owned(),
            ..IdentityProvider::default()
        }];
        let index = PolicyIndex::from_snapshot(snap.clone());
        let mut teams = index.teams_of_group("ai-users").to_vec();
        teams.sort();
        assert_eq!(teams, ["team-1", "team-blocked"]);
        assert_eq!(index.teams_of_group("platform"), ["team-1"]);
        assert!(index.teams_of_group("nobody").is_empty());
        let [entry] = index.identity_providers() else {
            panic!("one issuer");
        };
        assert_eq!(entry.provider, snap.identity_providers[0]);
        // The same entry in another snapshot has the same fingerprint; new keys another.
        let twin = PolicyIndex::from_snapshot(snap.clone());
        assert_eq!(twin.identity_providers()[0].fingerprint, entry.fingerprint);
        snap.identity_providers[0].jwks_json = r#"{"keys":[{}]}"#.to_owned();
        let changed = PolicyIndex::from_snapshot(snap);
        assert_ne!(
            changed.identity_providers()[0].fingerprint,
            entry.fingerprint
        );
        let again = PolicyIndex::from_snapshot(snapshot(3));
        assert!(again.identity_providers().is_empty());
    }

    #[test]
    fn decodes_and_authorizes_an_active_key() {
        let index = PolicyIndex::decode(snapshot(7).encode_to_vec()).unwrap();
        assert_eq!(index.version(), 7);
        assert_eq!(index.key_count(), 8, "the 16-byte hash is skipped");
        let principal = index.authorize(&KeyDigest::of(ALICE_KEY), 5_000).unwrap();
        assert_eq!(principal.key.public_id, "alice0000001");
        assert_eq!(
            principal.team.map(|t| t.alias.as_str()),
            Some("team-1-alias")
        );
    }

    #[test]
    fn a_key_without_a_team_is_personal_not_orphaned() {
        let mut snapshot = snapshot(1);
        let mut personal = key("personal-key", "personal0001", KeyStatus::Active);
        personal.team_id.clear();
        snapshot.keys.push(personal);
        let index = PolicyIndex::from_snapshot(snapshot);
        let principal = index
            .authorize(&KeyDigest::of("personal-key"), 5_000)
            .unwrap();
        assert_eq!(principal.key.public_id, "personal0001");
        assert!(principal.team.is_none());
    }

    #[test]
    fn every_refusal_is_told_apart() {
        let index = PolicyIndex::from_snapshot(snapshot(1));
        let check = |secret: &str| index.authorize(&KeyDigest::of(secret), 5_000).unwrap_err();
        assert_eq!(check("never-issued"), Denial::UnknownKey);
        assert!(matches!(check("revoked-key"), Denial::Revoked(_)));
        assert!(matches!(check("blocked-key"), Denial::Blocked(_)));
        assert!(matches!(
            check("unspecified-key"),
            Denial::UnrecognisedStatus(_)
        ));
        assert!(matches!(
            check("odd-status-key"),
            Denial::UnrecognisedStatus(_)
        ));
        assert!(matches!(check("expired-key"), Denial::Expired(_)));
        assert!(matches!(check("orphan-key"), Denial::TeamMissing(_)));
        assert!(matches!(check("blocked-team-key"), Denial::TeamBlocked(_)));
        assert_eq!(public_id(&check("revoked-key")), Some("revoked00001"));
        assert_eq!(check("short-hash-key"), Denial::UnknownKey);
    }

    #[test]
    fn expiry_is_exact_to_the_millisecond() {
        let index = PolicyIndex::from_snapshot(snapshot(1));
        let digest = KeyDigest::of("expired-key");
        assert!(index.authorize(&digest, 999).is_ok());
        assert!(matches!(
            index.authorize(&digest, 1_000),
            Err(Denial::Expired(_))
        ));
    }

    #[test]
    fn routes_by_public_model_name() {
        let index = PolicyIndex::from_snapshot(snapshot(1));
        assert_eq!(index.route("llama3.1-8b").unwrap().cluster, "pool-llama");
        assert!(index.route("llama3.1:8b").is_none());
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(PolicyIndex::decode(vec![0xff, 0xff, 0xff]).is_err());
    }

    // On wasm32 this is the 32-bit address space and the wasm allocator: a snapshot of a big
    // organisation (50k keys, ~5 MB encoded) must decode and index without trouble.
    #[test]
    fn large_snapshot_decodes_and_indexes() {
        let keys: Vec<KeyPolicy> = (0..50_000)
            .map(|i| {
                let mut k = key(
                    &format!("sk-mg-bulk-{i}"),
                    &format!("bulk{i:08}"),
                    KeyStatus::Active,
                );
                k.models = vec!["llama3.1-8b".to_owned(), "qwen2.5-7b".to_owned()];
                k
            })
            .collect();
        let big = PolicySnapshot {
            version: u64::from(u32::MAX) + 5,
            keys,
            teams: vec![team("team-1")],
            ..PolicySnapshot::default()
        };
        let bytes = big.encode_to_vec();
        assert!(bytes.len() > 4_000_000, "{} bytes", bytes.len());
        let index = PolicyIndex::decode(bytes).unwrap();
        assert_eq!(index.version(), u64::from(u32::MAX) + 5);
        assert_eq!(index.key_count(), 50_000);
        let found = index
            .authorize(&KeyDigest::of("sk-mg-bulk-49999"), 0)
            .unwrap();
        assert_eq!(found.key.public_id, "bulk00049999");
    }
}
