//! Policy snapshots for filters: built from the store, cached by version.
//!
//! Filters poll every second, so the common answer is "unchanged" (one version lookup); a
//! snapshot is built once per version no matter how many Envoys ask for it.

use std::sync::Arc;

use modelgate_proto::v1 as pb;
use tokio::sync::{Mutex, RwLock};

use crate::clock::Timestamp;
use crate::domain::{ApiKey, KeyStatus, PolicyState, Team};
use crate::store::{PolicyStore, StoreResult};

/// What a filter holding `known_version` needs.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotAnswer {
    Unchanged { version: u64 },
    Changed(Arc<pb::PolicySnapshot>),
}

#[derive(Debug)]
pub struct SnapshotCache<S> {
    store: S,
    current: RwLock<Option<Arc<pb::PolicySnapshot>>>,
    /// Held while building, so a new version is built once even when many filters ask at once.
    build: Mutex<()>,
}

impl<S: PolicyStore> SnapshotCache<S> {
    pub fn new(store: S) -> Self {
        Self {
            store,
            current: RwLock::new(None),
            build: Mutex::new(()),
        }
    }

    /// Always asks the store for the version, since another replica may have changed policy.
    pub async fn answer(&self, known_version: u64) -> StoreResult<SnapshotAnswer> {
        let version = self.store.policy_version().await?;
        if version == known_version {
            return Ok(SnapshotAnswer::Unchanged { version });
        }
        if let Some(s) = self.cached_at_least(version).await {
            return Ok(SnapshotAnswer::Changed(s));
        }
        let _building = self.build.lock().await;
        if let Some(s) = self.cached_at_least(version).await {
            return Ok(SnapshotAnswer::Changed(s));
        }
        let state = self.store.load_policy().await?;
        let snapshot = Arc::new(build_snapshot(&state, Timestamp::now()));
        *self.current.write().await = Some(Arc::clone(&snapshot));
        Ok(SnapshotAnswer::Changed(snapshot))
    }

    /// The cached snapshot if it is at least `version` (it may be newer when a change landed
    /// between the version lookup and now; newer is never wrong to hand out).
    async fn cached_at_least(&self, version: u64) -> Option<Arc<pb::PolicySnapshot>> {
        self.current
            .read()
            .await
            .as_ref()
            .filter(|s| s.version >= version)
            .map(Arc::clone)
    }
}

pub fn build_snapshot(state: &PolicyState, now: Timestamp) -> pb::PolicySnapshot {
    pb::PolicySnapshot {
        version: state.version,
        generated_at_ms: now.as_millis(),
        keys: state.keys.iter().map(key_policy).collect(),
        teams: state.teams.iter().map(team_policy).collect(),
        users: Vec::new(),
        models: Vec::new(),
    }
}

fn key_policy(key: &ApiKey) -> pb::KeyPolicy {
    let status = match key.status {
        KeyStatus::Active => pb::KeyStatus::Active,
        KeyStatus::Revoked => pb::KeyStatus::Revoked,
    };
    pb::KeyPolicy {
        key_sha256: key.key_sha256.to_vec(),
        public_id: key.public_id.clone(),
        team_id: key.team_id.clone(),
        user_id: key.user_id.clone().unwrap_or_default(),
        key_alias: key.alias.clone().unwrap_or_default(),
        status: status.into(),
        expires_at_ms: key.expires_at.map_or(0, Timestamp::as_millis),
        models: key.models.clone(),
        limits: None,
        spend: None,
    }
}

fn team_policy(team: &Team) -> pb::TeamPolicy {
    pb::TeamPolicy {
        team_id: team.id.clone(),
        alias: team.alias.clone(),
        models: team.models.clone(),
        limits: None,
        blocked: team.blocked,
        spend: None,
        redaction_policy_json: String::new(),
        high_trust: false,
        keep_redacted_prompt: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> PolicyState {
        PolicyState {
            version: 7,
            teams: vec![Team {
                id: "team_aaaaaaaaaaaa".into(),
                alias: "ml".into(),
                models: vec!["llama3".into()],
                blocked: false,
                created_at: Timestamp::from_millis(1),
            }],
            keys: vec![ApiKey {
                public_id: "abcdefghijkl".into(),
                key_sha256: [7; 32],
                last4: "wxyz".into(),
                team_id: "team_aaaaaaaaaaaa".into(),
                user_id: None,
                alias: Some("ci".into()),
                models: vec![],
                status: KeyStatus::Revoked,
                created_at: Timestamp::from_millis(2),
                expires_at: Some(Timestamp::from_millis(99)),
                revoked_at: Some(Timestamp::from_millis(3)),
            }],
        }
    }

    #[test]
    fn snapshot_carries_hashes_status_and_teams() {
        let s = build_snapshot(&state(), Timestamp::from_millis(5));
        assert_eq!(s.version, 7);
        assert_eq!(s.generated_at_ms, 5);
        let k = &s.keys[0];
        assert_eq!(k.key_sha256, vec![7; 32]);
        assert_eq!(k.status(), pb::KeyStatus::Revoked);
        assert_eq!(k.expires_at_ms, 99);
        assert_eq!(k.user_id, "");
        assert_eq!(k.key_alias, "ci");
        assert_eq!(s.teams[0].alias, "ml");
        assert_eq!(s.teams[0].models, vec!["llama3".to_owned()]);
    }
}
