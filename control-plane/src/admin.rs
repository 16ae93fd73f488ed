//! Admin operations, shared by the gRPC `AdminService` and the LiteLLM-compatible REST API:
//! who may call them, how raw input becomes validated domain values, key minting, and what
//! admins see (entities with their current budget state). Transports only map their wire
//! format to these inputs and [`AdminError`] to their status codes.

use std::sync::Arc;

use crate::assertion::{AssertionPatch, AssertionSecret, UserAssertion};
use crate::budget::{Budget, Window, DAY_MS};
use crate::clock::Timestamp;
use crate::domain::{
    self, ApiKey, Change, DailySpend, KeyFilter, KeyPatch, KeyStatus, Metadata, ModelPatch,
    ModelRoute, NewKey, ScopeKind, Team, TeamAlias, TeamPatch, User, UserPatch, ValidationError,
};
use crate::identity;
use crate::keys::{self, KeySecret, MintedKey, RandomnessError};
use crate::limits::{Limits, LimitsInput};
use crate::master_key::MasterKey;
use crate::spend::{SpendState, SpendTracker};
use crate::store::{Store, StoreError};

/// Drawing a taken public id twice in a row (62 bits each) means something else is wrong.
const MINT_ATTEMPTS: usize = 3;
/// Daily history is capped at about two years.
const MAX_HISTORY_DAYS: u32 = 731;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("virtual keys cannot call the admin API; use the master key")]
    PermissionDenied,
    #[error("cannot draw a key: {0}")]
    Random(#[from] RandomnessError),
}

impl AdminError {
    /// Validation failures, whether found before or inside a store transaction.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid(_) | Self::Store(StoreError::Invalid(_)))
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// A new team as an admin typed it.
#[derive(Debug, Clone, Default)]
pub struct TeamInput {
    pub alias: String,
    pub models: Vec<String>,
    pub limits: LimitsInput,
    /// JSON object text; `None` or empty = no metadata.
    pub metadata: Option<String>,
    pub redaction_policy: Option<String>,
    pub high_trust: bool,
    pub keep_redacted_prompt: bool,
    pub blocked: bool,
    pub idp_groups: Vec<String>,
}

/// A change to a team: `None` keeps a field; `clear` names fields to unset.
#[derive(Debug, Clone, Default)]
pub struct TeamUpdate {
    pub alias: Option<String>,
    pub models: Option<Vec<String>>,
    pub limits: LimitsInput,
    pub metadata: Option<String>,
    pub redaction_policy: Option<String>,
    pub high_trust: Option<bool>,
    pub keep_redacted_prompt: Option<bool>,
    pub blocked: Option<bool>,
    pub clear: Vec<String>,
    /// Replaces the team's IdP groups (an empty list removes them).
    pub idp_groups: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyInput {
    /// Team id or alias.
    pub team: String,
    pub user_id: Option<String>,
    pub alias: Option<String>,
    /// RFC 3339 or a duration from now (`30d`); `None` = never.
    pub expires: Option<String>,
    pub models: Vec<String>,
    pub limits: LimitsInput,
    pub metadata: Option<String>,
    pub blocked: bool,
    /// A service key: it may name the end user it calls for.
    pub can_assert_user: bool,
    /// HS256 secret of the signed form (implies `can_assert_user`); hidden from `Debug`.
    pub assert_user_secret: Option<KeySecret>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub alias: Option<String>,
    pub user_id: Option<String>,
    pub expires: Option<String>,
    pub models: Option<Vec<String>>,
    pub limits: LimitsInput,
    pub metadata: Option<String>,
    pub blocked: Option<bool>,
    pub can_assert_user: Option<bool>,
    pub assert_user_secret: Option<KeySecret>,
    pub clear: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyQuery {
    pub team: Option<String>,
    pub user_id: Option<String>,
    /// `name=value`
    pub tags: Vec<String>,
    pub expired: bool,
    pub unused_days: Option<u32>,
    pub include_revoked: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ModelInput {
    pub name: String,
    pub upstream_model: String,
    pub cluster: String,
    pub input_cost_per_mtok: f64,
    pub output_cost_per_mtok: f64,
    /// 0 = the filter's default.
    pub default_max_tokens: u64,
}

/// `Some("")` resets the upstream name or cluster; `Some(0)` the default max tokens.
#[derive(Debug, Clone, Default)]
pub struct ModelUpdate {
    pub upstream_model: Option<String>,
    pub cluster: Option<String>,
    pub input_cost_per_mtok: Option<f64>,
    pub output_cost_per_mtok: Option<f64>,
    pub default_max_tokens: Option<u64>,
}

/// Which scope a spend report is about, as referenced by an admin.
#[derive(Debug, Clone)]
pub enum SpendScope {
    /// Public id or whole key.
    Key(String),
    /// Team id or alias.
    Team(String),
    User(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TeamView {
    pub team: Team,
    pub spend: Option<SpendState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyView {
    pub key: ApiKey,
    pub last_used_at: Option<Timestamp>,
    pub spend: Option<SpendState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserView {
    pub user: User,
    pub spend: Option<SpendState>,
}

#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub view: KeyView,
    /// The whole key, shown once.
    pub secret: KeySecret,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpendReport {
    pub scope: ScopeKind,
    pub id: String,
    pub limits: Limits,
    /// The current budget window, or everything since creation without a resetting budget.
    pub window: Window,
    pub spend: f64,
    pub exhausted: bool,
    pub total_spend: f64,
    pub history: Vec<DailySpend>,
}

pub struct Admin<S> {
    store: S,
    spend: Arc<SpendTracker>,
    master_key: MasterKey,
}

fn text(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn metadata(json: Option<&str>) -> Result<Metadata, ValidationError> {
    Metadata::parse(json.unwrap_or_default())
}

impl<S: Store> Admin<S> {
    pub fn new(store: S, spend: Arc<SpendTracker>, master_key: MasterKey) -> Self {
        Self {
            store,
            spend,
            master_key,
        }
    }

    /// Admits `Bearer <master key>`. A valid virtual key is a known caller without the admin
    /// role ([`AdminError::PermissionDenied`]); anything else is unauthenticated.
    pub async fn authorize(&self, authorization: Option<&str>, peer: &str) -> AdminResult<()> {
        let Some(value) = authorization else {
            tracing::warn!(%peer, "admin call without authorization");
            return Err(AdminError::Unauthenticated(
                "missing authorization: send 'Authorization: Bearer <master key>'",
            ));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(AdminError::Unauthenticated(
                "malformed authorization: expected 'Bearer <master key>'",
            ))?;
        if self.master_key.matches(token) {
            return Ok(());
        }
        if keys::public_id_of(token).is_some() {
            let known = self.store.find_key_by_hash(&keys::hash_key(token)).await?;
            if known.is_some_and(|k| k.status == KeyStatus::Active) {
                tracing::warn!(%peer, "admin call with a virtual key");
                return Err(AdminError::PermissionDenied);
            }
        }
        tracing::warn!(%peer, "admin call with an invalid master key");
        Err(AdminError::Unauthenticated("invalid master key"))
    }

    fn state_of(&self, kind: ScopeKind, id: &str, limits: &Limits) -> Option<SpendState> {
        let now = Timestamp::now();
        limits
            .budget
            .map(|b| self.spend.reader().state(kind, id, &b, now))
    }

    fn team_view(&self, team: Team) -> TeamView {
        TeamView {
            spend: self.state_of(ScopeKind::Team, &team.id, &team.limits),
            team,
        }
    }

    fn key_view(&self, key: ApiKey, last_used_at: Option<Timestamp>) -> KeyView {
        KeyView {
            spend: self.state_of(ScopeKind::Key, &key.public_id, &key.limits),
            key,
            last_used_at,
        }
    }

    fn user_view(&self, user: User) -> UserView {
        UserView {
            spend: self.state_of(ScopeKind::User, &user.id, &user.limits),
            user,
        }
    }

    pub async fn create_team(&self, input: TeamInput) -> AdminResult<TeamView> {
        let now = Timestamp::now();
        let alias = TeamAlias::parse(&input.alias)?;
        let mut team = Team::new(
            domain::new_team_id()?,
            alias.into_string(),
            domain::parse_models(&input.models)?,
            now,
        );
        team.limits = input.limits.to_limits(now)?;
        team.metadata = metadata(input.metadata.as_deref())?;
        team.redaction_policy =
            domain::parse_redaction_policy(input.redaction_policy.as_deref().unwrap_or_default())?;
        team.high_trust = input.high_trust;
        team.keep_redacted_prompt = input.keep_redacted_prompt;
        team.blocked = input.blocked;
        team.idp_groups = identity::parse_names("IdP group", &input.idp_groups)?;
        self.store.create_team(&team).await?;
        tracing::info!(team_id = %team.id, alias = %team.alias, "team created");
        Ok(self.team_view(team))
    }

    pub async fn list_teams(&self) -> AdminResult<Vec<TeamView>> {
        let teams = self.store.list_teams().await?;
        Ok(teams.into_iter().map(|t| self.team_view(t)).collect())
    }

    pub async fn get_team(&self, team: &str) -> AdminResult<TeamView> {
        let team = team_ref(team)?;
        let found = self
            .store
            .find_team(team)
            .await?
            .ok_or_else(|| StoreError::TeamNotFound(team.to_owned()))?;
        Ok(self.team_view(found))
    }

    pub async fn update_team(&self, team: &str, update: TeamUpdate) -> AdminResult<TeamView> {
        let team = team_ref(team)?;
        let (limits_clear, own) = domain::parse_clear_list(
            update.clear.iter().map(String::as_str),
            &["metadata", "redaction_policy"],
            TeamPatch::CLEARABLE,
        )?;
        let patch = TeamPatch {
            alias: update.alias.as_deref().map(TeamAlias::parse).transpose()?,
            models: update.models.map(domain::parse_models).transpose()?,
            limits: update.limits,
            limits_clear,
            metadata: Change::set_or_clear(
                update
                    .metadata
                    .as_deref()
                    .map(Metadata::parse)
                    .transpose()?,
                own.contains(&"metadata"),
                "metadata",
            )?,
            redaction_policy: redaction_change(
                update.redaction_policy.as_deref(),
                own.contains(&"redaction_policy"),
            )?,
            high_trust: update.high_trust,
            keep_redacted_prompt: update.keep_redacted_prompt,
            blocked: update.blocked,
            idp_groups: update
                .idp_groups
                .map(|g| identity::parse_names("IdP group", g))
                .transpose()?,
        };
        self.patch_team(team, &patch).await
    }

    pub async fn set_team_blocked(&self, team: &str, blocked: bool) -> AdminResult<TeamView> {
        self.patch_team(team_ref(team)?, &TeamPatch::blocked(blocked))
            .await
    }

    async fn patch_team(&self, team: &str, patch: &TeamPatch) -> AdminResult<TeamView> {
        let updated = self
            .store
            .update_team(team, patch, Timestamp::now())
            .await?;
        tracing::info!(team_id = %updated.id, blocked = updated.blocked, "team updated");
        Ok(self.team_view(updated))
    }

    pub async fn create_key(&self, input: KeyInput) -> AdminResult<CreatedKey> {
        let team = team_ref(&input.team)?;
        let now = Timestamp::now();
        let user_id = domain::parse_user_id(input.user_id.as_deref().unwrap_or_default())?;
        let alias = domain::parse_key_alias(input.alias.as_deref().unwrap_or_default())?;
        let models = domain::parse_models(&input.models)?;
        let expires_at = keys::parse_expiry(input.expires.as_deref().unwrap_or_default(), now)
            .map_err(ValidationError::from)?;
        let limits = input.limits.to_limits(now)?;
        let metadata = metadata(input.metadata.as_deref())?;
        let user_assertion = UserAssertion::new(
            input.can_assert_user,
            input
                .assert_user_secret
                .as_ref()
                .map(|secret| AssertionSecret::parse(secret.expose()))
                .transpose()?,
        );

        for _ in 0..MINT_ATTEMPTS {
            let minted = MintedKey::generate()?;
            let new_key = NewKey {
                team: team.to_owned(),
                public_id: minted.public_id.clone(),
                key_sha256: minted.sha256,
                last4: minted.last4.clone(),
                user_id: user_id.clone(),
                alias: alias.clone(),
                models: models.clone(),
                limits,
                metadata: metadata.clone(),
                blocked: input.blocked,
                user_assertion: user_assertion.clone(),
                created_at: now,
                expires_at,
            };
            match self.store.create_key(&new_key).await {
                Ok(key) => {
                    tracing::info!(public_id = %key.public_id, team_id = %key.team_id, "key created");
                    return Ok(CreatedKey {
                        view: self.key_view(key, None),
                        secret: minted.secret,
                    });
                }
                Err(StoreError::KeyIdTaken) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::KeyIdTaken.into())
    }

    pub async fn list_keys(&self, query: KeyQuery) -> AdminResult<Vec<KeyView>> {
        let now = Timestamp::now();
        let filter = KeyFilter {
            team: text(query.team.as_deref()).map(str::to_owned),
            include_revoked: query.include_revoked,
            user_id: text(query.user_id.as_deref()).map(str::to_owned),
            tags: query
                .tags
                .iter()
                .map(|t| domain::parse_tag(t))
                .collect::<Result<_, _>>()?,
            expired_at: query.expired.then_some(now),
            unused_since: query
                .unused_days
                .map(|days| Timestamp::from_millis(now.as_millis() - i64::from(days) * DAY_MS)),
        };
        let keys = self.store.list_keys(&filter).await?;
        Ok(keys
            .into_iter()
            .map(|k| self.key_view(k.key, k.last_used_at))
            .collect())
    }

    /// A key by public id or by the whole key.
    pub async fn get_key(&self, key: &str) -> AdminResult<KeyView> {
        let public_id = self.resolve_key(key).await?;
        let found = self
            .store
            .find_key(&public_id)
            .await?
            .ok_or(StoreError::KeyNotFound(public_id))?;
        Ok(self.key_view(found.key, found.last_used_at))
    }

    pub async fn update_key(&self, key: &str, update: KeyUpdate) -> AdminResult<KeyView> {
        let public_id = self.resolve_key(key).await?;
        let (limits_clear, own) = domain::parse_clear_list(
            update.clear.iter().map(String::as_str),
            &[
                "metadata",
                "expires",
                "key_alias",
                "user_id",
                "models",
                "assert_user_secret",
            ],
            KeyPatch::CLEARABLE,
        )?;
        let cleared = |f| own.contains(&f);
        let expires = text(update.expires.as_deref())
            .map(|e| keys::parse_expiry(e, Timestamp::now()))
            .transpose()
            .map_err(ValidationError::from)?
            .flatten();
        let models = match (update.models, cleared("models")) {
            (Some(_), true) => return Err(ValidationError::SetAndCleared("models").into()),
            (Some(m), false) => Some(domain::parse_models(&m)?),
            (None, true) => Some(Vec::new()),
            (None, false) => None,
        };
        let patch = KeyPatch {
            alias: Change::set_or_clear(
                text(update.alias.as_deref())
                    .map(domain::parse_key_alias)
                    .transpose()?
                    .flatten(),
                cleared("key_alias"),
                "key_alias",
            )?,
            user_id: Change::set_or_clear(
                text(update.user_id.as_deref())
                    .map(domain::parse_user_id)
                    .transpose()?
                    .flatten(),
                cleared("user_id"),
                "user_id",
            )?,
            expires_at: Change::set_or_clear(expires, cleared("expires"), "expires")?,
            models,
            limits: update.limits,
            limits_clear,
            metadata: Change::set_or_clear(
                update
                    .metadata
                    .as_deref()
                    .map(Metadata::parse)
                    .transpose()?,
                cleared("metadata"),
                "metadata",
            )?,
            blocked: update.blocked,
            user_assertion: AssertionPatch {
                can_assert_user: update.can_assert_user,
                secret: Change::set_or_clear(
                    update
                        .assert_user_secret
                        .as_ref()
                        .map(|secret| AssertionSecret::parse(secret.expose()))
                        .transpose()?,
                    cleared("assert_user_secret"),
                    "assert_user_secret",
                )?,
            },
        };
        self.patch_key(&public_id, &patch).await
    }

    pub async fn set_key_blocked(&self, key: &str, blocked: bool) -> AdminResult<KeyView> {
        let public_id = self.resolve_key(key).await?;
        self.patch_key(&public_id, &KeyPatch::blocked(blocked))
            .await
    }

    async fn patch_key(&self, public_id: &str, patch: &KeyPatch) -> AdminResult<KeyView> {
        let updated = self
            .store
            .update_key(public_id, patch, Timestamp::now())
            .await?;
        tracing::info!(public_id = %updated.public_id, blocked = updated.blocked, "key updated");
        self.get_key(&updated.public_id).await
    }

    pub async fn revoke_key(&self, key: &str) -> AdminResult<KeyView> {
        let public_id = self.resolve_key(key).await?;
        let key = self.store.revoke_key(&public_id, Timestamp::now()).await?;
        tracing::info!(public_id = %key.public_id, "key revoked");
        Ok(self.key_view(key, None))
    }

    /// The public id of a key given by public id or as the whole key (looked up by hash, so
    /// the secret is never stored or echoed).
    async fn resolve_key(&self, key: &str) -> AdminResult<String> {
        let key = key.trim();
        if !key.starts_with(keys::KEY_PREFIX) {
            return Ok(domain::parse_public_id(key)?);
        }
        let hash = keys::hash_key(key);
        // Named as the filter's logs name unknown keys, never by the secret.
        let shown = keys::public_id_of(key).map_or_else(
            || format!("unknown:{}", hex::encode(&hash[..4])),
            str::to_owned,
        );
        let found = self.store.find_key_by_hash(&hash).await?;
        Ok(found.ok_or(StoreError::KeyNotFound(shown))?.public_id)
    }

    pub async fn create_user(&self, user_id: &str, limits: LimitsInput) -> AdminResult<UserView> {
        let now = Timestamp::now();
        let user = User {
            id: domain::parse_email(user_id)?,
            team_id: None,
            limits: limits.to_limits(now)?,
            created_at: now,
        };
        self.store.create_user(&user).await?;
        tracing::info!(user_id = %user.id, "user created");
        Ok(self.user_view(user))
    }

    pub async fn update_user(
        &self,
        user_id: &str,
        limits: LimitsInput,
        team: Option<&str>,
        clear: &[String],
    ) -> AdminResult<UserView> {
        let (limits_clear, own) = domain::parse_clear_list(
            clear.iter().map(String::as_str),
            &["team"],
            UserPatch::CLEARABLE,
        )?;
        let team = text(team).map(team_ref).transpose()?.map(str::to_owned);
        let patch = UserPatch {
            limits,
            limits_clear,
            team: Change::set_or_clear(team, own.contains(&"team"), "team")?,
        };
        let user = self
            .store
            .update_user(user_id.trim(), &patch, Timestamp::now())
            .await?;
        tracing::info!(user_id = %user.id, "user updated");
        Ok(self.user_view(user))
    }

    pub async fn get_user(&self, user_id: &str) -> AdminResult<UserView> {
        let user_id = user_id.trim();
        let user = self
            .store
            .find_user(user_id)
            .await?
            .ok_or_else(|| StoreError::UserNotFound(user_id.to_owned()))?;
        Ok(self.user_view(user))
    }

    pub async fn list_users(&self) -> AdminResult<Vec<UserView>> {
        let users = self.store.list_users().await?;
        Ok(users.into_iter().map(|u| self.user_view(u)).collect())
    }

    pub async fn create_model(&self, input: ModelInput) -> AdminResult<ModelRoute> {
        let model = ModelRoute {
            name: domain::parse_route_name(&input.name)?,
            upstream_model: domain::parse_upstream_model(&input.upstream_model)?,
            cluster: domain::parse_cluster(&input.cluster)?,
            input_cost_per_mtok: domain::parse_price(
                "input_cost_per_mtok",
                input.input_cost_per_mtok,
            )?,
            output_cost_per_mtok: domain::parse_price(
                "output_cost_per_mtok",
                input.output_cost_per_mtok,
            )?,
            default_max_tokens: (input.default_max_tokens > 0).then_some(input.default_max_tokens),
            created_at: Timestamp::now(),
        };
        self.store.create_model(&model).await?;
        tracing::info!(model = %model.name, "model route created");
        Ok(model)
    }

    pub async fn update_model(&self, name: &str, update: ModelUpdate) -> AdminResult<ModelRoute> {
        let optional = |v: Option<Option<String>>| match v {
            None => Change::Keep,
            Some(None) => Change::Clear,
            Some(Some(s)) => Change::Set(s),
        };
        let patch = ModelPatch {
            upstream_model: optional(
                update
                    .upstream_model
                    .as_deref()
                    .map(domain::parse_upstream_model)
                    .transpose()?,
            ),
            cluster: optional(
                update
                    .cluster
                    .as_deref()
                    .map(domain::parse_cluster)
                    .transpose()?,
            ),
            input_cost_per_mtok: update
                .input_cost_per_mtok
                .map(|v| domain::parse_price("input_cost_per_mtok", v))
                .transpose()?,
            output_cost_per_mtok: update
                .output_cost_per_mtok
                .map(|v| domain::parse_price("output_cost_per_mtok", v))
                .transpose()?,
            default_max_tokens: match update.default_max_tokens {
                None => Change::Keep,
                Some(0) => Change::Clear,
                Some(n) => Change::Set(n),
            },
        };
        let model = self.store.update_model(name.trim(), &patch).await?;
        tracing::info!(model = %model.name, "model route updated");
        Ok(model)
    }

    pub async fn delete_model(&self, name: &str) -> AdminResult<ModelRoute> {
        let model = self.store.delete_model(name.trim()).await?;
        tracing::info!(model = %model.name, "model route deleted");
        Ok(model)
    }

    pub async fn list_models(&self) -> AdminResult<Vec<ModelRoute>> {
        Ok(self.store.list_models().await?)
    }

    /// Spend of one scope: its current window (read from the usage records, so it includes
    /// what arrived since the last tick) and `history_days` of daily totals.
    pub async fn spend(&self, scope: SpendScope, history_days: u32) -> AdminResult<SpendReport> {
        let now = Timestamp::now();
        let (kind, id, limits, created_at) = match scope {
            SpendScope::Key(key) => {
                let view = self.get_key(&key).await?;
                let k = view.key;
                (ScopeKind::Key, k.public_id, k.limits, k.created_at)
            }
            SpendScope::Team(team) => {
                let t = self.get_team(&team).await?.team;
                (ScopeKind::Team, t.id, t.limits, t.created_at)
            }
            SpendScope::User(user) => {
                let user = user.trim().to_owned();
                // Keys name users freely, so spend exists for users without a record.
                match self.store.find_user(&user).await? {
                    Some(u) => (ScopeKind::User, u.id, u.limits, u.created_at),
                    None => (
                        ScopeKind::User,
                        user,
                        Limits::default(),
                        Timestamp::from_millis(0),
                    ),
                }
            }
        };
        let window = limits.budget.map_or(
            Window {
                start: created_at,
                reset_at: None,
            },
            |b: Budget| b.window_at(now),
        );
        let all = i64::MAX;
        let spend = self.store.scope_spend(kind, &id, window.start, all).await?;
        let total_spend = self
            .store
            .scope_spend(kind, &id, Timestamp::from_millis(0), all)
            .await?;
        let history = match history_days.min(MAX_HISTORY_DAYS) {
            0 => Vec::new(),
            days => {
                let today = now.as_millis() - now.as_millis().rem_euclid(DAY_MS);
                let since = Timestamp::from_millis(today - i64::from(days - 1) * DAY_MS);
                self.store.spend_history(kind, &id, since).await?
            }
        };
        Ok(SpendReport {
            scope: kind,
            exhausted: limits.budget.is_some_and(|b| b.is_exhausted(spend)),
            id,
            limits,
            window,
            spend,
            total_spend,
            history,
        })
    }
}

fn team_ref(team: &str) -> Result<&str, ValidationError> {
    let team = team.trim();
    if team.is_empty() {
        Err(ValidationError::MissingTeam)
    } else {
        Ok(team)
    }
}

fn redaction_change(json: Option<&str>, cleared: bool) -> Result<Change<String>, ValidationError> {
    // Setting an empty policy is the same as clearing it: the filter's default applies.
    let parsed = match json {
        Some(j) => Some(domain::parse_redaction_policy(j)?),
        None => None,
    };
    match (parsed, cleared) {
        (Some(_), true) => Err(ValidationError::SetAndCleared("redaction_policy")),
        (Some(Some(p)), false) => Ok(Change::Set(p)),
        (Some(None), false) | (None, true) => Ok(Change::Clear),
        (None, false) => Ok(Change::Keep),
    }
}
