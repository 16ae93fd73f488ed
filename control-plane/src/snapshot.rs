//! Policy snapshots for filters: built from the store and the spend tracker, cached by
//! version.
//!
//! Filters poll every second, so the common answer is "unchanged" (one version lookup); a
//! snapshot is built once per version no matter how many Envoys ask for it. Budget state
//! ([`pb::SpendState`]) is not stored data: the spend tracker bumps the version when a
//! budget's window or exhaustion changes (see [`crate::spend`]).
//!
//! Field semantics for the filter:
//! - `KeyPolicy.limits`: what the filter enforces per key, the key's own rpm/tpm/parallel
//!   values or else its team's (team values are defaults for keys); `max_budget` and
//!   `budget_duration` are the key's own budget, or else its budget object's (a team's
//!   budget is enforced at the team scope). `KeyPolicy.models` is the key's own list
//!   (empty = the team's).
//! - `TeamPolicy.limits`: the team's own limits and budget (or its budget object's).
//! - Every scope's limits come with the budget object it names resolved in
//!   ([`crate::named_budget::resolve_into`]).
//! - `*.spend`: set exactly when that scope has a budget.
//! - `KeyPolicy.status`: revoked wins over blocked, blocked over active; expiry is not a
//!   status (the filter compares `expires_at_ms` with its clock).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use modelgate_proto::v1 as pb;
use tokio::sync::{Mutex, OwnedMutexGuard, RwLock};

use crate::clock::Timestamp;
use crate::domain::{KeyStatus, ModelRoute, PolicyKey, PolicyState, ScopeKind, Team, User};
use crate::identity::IdentityProvider;
use crate::limits::Limits;
use crate::spend::{SpendReader, SpendState, SpendTracker};
use crate::store::{PolicyStore, StoreError, StoreResult};

/// What a filter holding `known_version` needs.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotAnswer {
    Unchanged { version: u64 },
    Changed(Arc<pb::PolicySnapshot>),
}

#[derive(Debug)]
pub struct SnapshotCache<S> {
    store: S,
    spend: Arc<SpendTracker>,
    current: Arc<RwLock<Option<Arc<pb::PolicySnapshot>>>>,
    /// Held by the task building a version, so a version is built once even when many
    /// filters ask at once.
    build: Arc<Mutex<()>>,
}

impl<S: PolicyStore + Clone + 'static> SnapshotCache<S> {
    pub fn new(store: S, spend: Arc<SpendTracker>) -> Self {
        Self {
            store,
            spend,
            current: Arc::new(RwLock::new(None)),
            build: Arc::new(Mutex::new(())),
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
        let building = Arc::clone(&self.build).lock_owned().await;
        if let Some(s) = self.cached_at_least(version).await {
            return Ok(SnapshotAnswer::Changed(s));
        }
        // The build runs in its own task, holding the build lock: at 100k keys it can outlast
        // a filter's gRPC timeout, which drops this future, and it must still finish and be
        // cached for that filter's next poll instead of starting over every time.
        let build = tokio::spawn(build_and_cache(
            self.store.clone(),
            Arc::clone(&self.spend),
            Arc::clone(&self.current),
            building,
        ));
        let snapshot = build.await.map_err(StoreError::TaskFailed)??;
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

async fn build_and_cache<S: PolicyStore>(
    store: S,
    spend: Arc<SpendTracker>,
    current: Arc<RwLock<Option<Arc<pb::PolicySnapshot>>>>,
    _building: OwnedMutexGuard<()>,
) -> StoreResult<Arc<pb::PolicySnapshot>> {
    let started = Instant::now();
    let state = store.load_policy().await?;
    let read = started.elapsed();
    let snapshot = Arc::new(build_snapshot(state, Timestamp::now(), &spend.reader()));
    // At 100k keys a build takes seconds; this says whether the store read or the build is
    // where they go.
    tracing::info!(
        version = snapshot.version,
        keys = snapshot.keys.len(),
        read_ms = read.as_millis(),
        build_ms = (started.elapsed() - read).as_millis(),
        "policy snapshot built"
    );
    *current.write().await = Some(Arc::clone(&snapshot));
    Ok(snapshot)
}

/// Takes the state by value so each key's strings move into the snapshot: at 100k keys,
/// copying them again was a noticeable part of a build.
pub fn build_snapshot(
    state: PolicyState,
    now: Timestamp,
    spend: &SpendReader<'_>,
) -> pb::PolicySnapshot {
    let team_limits: HashMap<&str, &Limits> = state
        .teams
        .iter()
        .map(|t| (t.id.as_str(), &t.limits))
        .collect();
    let no_limits = Limits::default();
    pb::PolicySnapshot {
        version: state.version,
        generated_at_ms: now.as_millis(),
        keys: state
            .keys
            .into_iter()
            .map(|k| {
                let team = k
                    .team_id
                    .as_deref()
                    .and_then(|team| team_limits.get(team).copied())
                    .unwrap_or(&no_limits);
                key_policy(k, team, spend, now)
            })
            .collect(),
        teams: state
            .teams
            .iter()
            .map(|t| team_policy(t, spend, now))
            .collect(),
        users: state
            .users
            .iter()
            .map(|u| user_policy(u, spend, now))
            .collect(),
        models: state.models.iter().map(model_route).collect(),
        identity_providers: state
            .identity_providers
            .into_iter()
            .filter_map(identity_provider)
            .collect(),
    }
}

/// `None` when the scope has no limit at all.
pub fn limits(l: &Limits) -> Option<pb::Limits> {
    (*l != Limits::default()).then(|| pb::Limits {
        rpm: l.rpm,
        tpm: l.tpm,
        max_parallel_requests: l.max_parallel,
        max_budget: l.budget.map(|b| b.max_budget),
        budget_duration: l
            .budget
            .map(|b| b.period.snapshot_text())
            .unwrap_or_default(),
    })
}

pub fn spend_state(s: &SpendState) -> pb::SpendState {
    pb::SpendState {
        spend: s.spend,
        window_start_ms: s.window.start.as_millis(),
        window_reset_at_ms: s.window.reset_at.map_or(0, Timestamp::as_millis),
        exhausted: s.exhausted,
    }
}

fn scope_spend(
    spend: &SpendReader<'_>,
    kind: ScopeKind,
    id: &str,
    l: &Limits,
    now: Timestamp,
) -> Option<pb::SpendState> {
    l.budget
        .map(|b| spend_state(&spend.state(kind, id, &b, now)))
}

fn key_policy(
    key: PolicyKey,
    team: &Limits,
    spend: &SpendReader<'_>,
    now: Timestamp,
) -> pb::KeyPolicy {
    let status = match (key.status, key.blocked) {
        (KeyStatus::Revoked, _) => pb::KeyStatus::Revoked,
        (KeyStatus::Active, true) => pb::KeyStatus::Blocked,
        (KeyStatus::Active, false) => pb::KeyStatus::Active,
    };
    let spend = scope_spend(spend, ScopeKind::Key, &key.public_id, &key.limits, now);
    pb::KeyPolicy {
        key_sha256: key.key_sha256.to_vec(),
        public_id: key.public_id,
        team_id: key.team_id.unwrap_or_default(),
        user_id: key.user_id.unwrap_or_default(),
        key_alias: key.alias.unwrap_or_default(),
        status: status.into(),
        expires_at_ms: key.expires_at.map_or(0, Timestamp::as_millis),
        models: key.models,
        limits: limits(&key.limits.inheriting(team)),
        spend,
        can_assert_user: key.user_assertion.can_assert_user(),
        assert_user_secret: key
            .user_assertion
            .secret()
            .map(|secret| secret.expose().as_bytes().to_vec())
            .unwrap_or_default(),
        previous_key_sha256: key
            .previous_secret
            .map(|p| p.sha256.to_vec())
            .unwrap_or_default(),
        previous_key_expires_at_ms: key.previous_secret.map_or(0, |p| p.expires_at.as_millis()),
    }
}

fn team_policy(team: &Team, spend: &SpendReader<'_>, now: Timestamp) -> pb::TeamPolicy {
    pb::TeamPolicy {
        team_id: team.id.clone(),
        alias: team.alias.clone(),
        models: team.models.clone(),
        limits: limits(&team.limits),
        blocked: team.blocked,
        spend: scope_spend(spend, ScopeKind::Team, &team.id, &team.limits, now),
        redaction_policy_json: team.redaction_policy.clone().unwrap_or_default(),
        high_trust: team.high_trust,
        keep_redacted_prompt: team.keep_redacted_prompt,
        idp_groups: team.idp_groups.clone(),
    }
}

fn user_policy(user: &User, spend: &SpendReader<'_>, now: Timestamp) -> pb::UserPolicy {
    pb::UserPolicy {
        user_id: user.id.clone(),
        limits: limits(&user.limits),
        spend: scope_spend(spend, ScopeKind::User, &user.id, &user.limits, now),
        team_id: user.team_id.clone().unwrap_or_default(),
    }
}

/// `None` until the issuer has keys: without them no token of it can verify, and the filter
/// then answers as for an unknown issuer.
pub(crate) fn identity_provider(p: IdentityProvider) -> Option<pb::IdentityProvider> {
    Some(pb::IdentityProvider {
        jwks_json: p.keys.jwks_json?,
        issuer: p.issuer,
        audiences: p.audiences,
        user_claim: p.user_claim,
        groups_claim: p.groups_claim,
        allowed_groups: p.allowed_groups,
        clock_skew_s: p.clock_skew_s,
        default_user_limits: limits(&p.default_user_limits),
    })
}

fn model_route(m: &ModelRoute) -> pb::ModelRoute {
    pb::ModelRoute {
        name: m.name.clone(),
        upstream_model: m.upstream_model.clone().unwrap_or_default(),
        cluster: m.cluster.clone().unwrap_or_default(),
        input_cost_per_mtok: m.input_cost_per_mtok,
        output_cost_per_mtok: m.output_cost_per_mtok,
        default_max_tokens: m.default_max_tokens.unwrap_or(0),
        max_output_tokens: m.max_output_tokens.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests;
