//! Admin operations, shared by the gRPC `AdminService` and the LiteLLM-compatible REST API:
//! how raw input becomes validated domain values, key minting, and what admins see (entities
//! with their current budget state). Every operation takes the [`Caller`] first and asks
//! [`access`] whether it may, with the action and the object it resolved. Transports only
//! map their wire format to these inputs and [`AdminError`] to their status codes.

pub mod access;
mod admin_keys;

use std::sync::Arc;

pub use access::{FieldChange, Target};
pub use admin_keys::{AdminKeyInput, CreatedAdminKey};

use crate::admin_key::AdminKeyError;
use crate::audit::AuditLog;
use crate::authz::{self, Action, Caller, Denied, Object};
use crate::budget::{Budget, Window, DAY_MS};
use crate::clock::Timestamp;
use crate::domain::{
    self, ApiKey, Change, DailySpend, KeyFilter, KeyPatch, Metadata, ModelPatch, ModelRoute,
    NewKey, ScopeKind, Team, TeamAlias, TeamPatch, User, UserPatch, ValidationError,
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
    Unauthenticated(String),
    #[error(transparent)]
    AdminKey(#[from] AdminKeyError),
    #[error("permission denied: {0}")]
    Denied(#[from] Denied),
    #[error("cannot draw a key: {0}")]
    Random(#[from] RandomnessError),
}

impl AdminError {
    /// Validation failures, whether found before or inside a store transaction.
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_) | Self::AdminKey(_) | Self::Store(StoreError::Invalid(_))
        )
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
    /// Where admin writes and denials are chained; `None` only in tools without a log.
    audit: Option<Arc<AuditLog<S>>>,
}

fn text(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn metadata(json: Option<&str>) -> Result<Metadata, ValidationError> {
    Metadata::parse(json.unwrap_or_default())
}

impl<S: Store> Admin<S> {
    pub fn new(
        store: S,
        spend: Arc<SpendTracker>,
        master_key: MasterKey,
        audit: Option<Arc<AuditLog<S>>>,
    ) -> Self {
        Self {
            store,
            spend,
            master_key,
            audit,
        }
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

    pub async fn create_team(&self, caller: &Caller, input: TeamInput) -> AdminResult<TeamView> {
        self.permit(caller, Action::CreateTeam, Object::Global, Target::NONE)
            .await?;
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
        self.record_write(
            caller,
            Action::CreateTeam,
            Target::new("team", &team.id),
            access::changes(&[], &access::team_fields(&team)),
        )
        .await;
        Ok(self.team_view(team))
    }

    /// The teams the caller may read.
    pub async fn list_teams(&self, caller: &Caller) -> AdminResult<Vec<TeamView>> {
        let teams = self.store.list_teams().await?;
        Ok(teams
            .into_iter()
            .filter(|t| authz::authorize(caller, Action::ReadTeam, &Object::Team(&t.id)).is_ok())
            .map(|t| self.team_view(t))
            .collect())
    }

    async fn find_team(&self, team: &str) -> AdminResult<Team> {
        let team = team_ref(team)?;
        Ok(self
            .store
            .find_team(team)
            .await?
            .ok_or_else(|| StoreError::TeamNotFound(team.to_owned()))?)
    }

    pub async fn get_team(&self, caller: &Caller, team: &str) -> AdminResult<TeamView> {
        let found = self.find_team(team).await?;
        self.permit(
            caller,
            Action::ReadTeam,
            Object::Team(&found.id),
            Target::new("team", &found.id),
        )
        .await?;
        Ok(self.team_view(found))
    }

    pub async fn update_team(
        &self,
        caller: &Caller,
        team: &str,
        update: TeamUpdate,
    ) -> AdminResult<TeamView> {
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
        self.patch_team(caller, team, &patch).await
    }

    pub async fn set_team_blocked(
        &self,
        caller: &Caller,
        team: &str,
        blocked: bool,
    ) -> AdminResult<TeamView> {
        self.patch_team(caller, team, &TeamPatch::blocked(blocked))
            .await
    }

    async fn patch_team(
        &self,
        caller: &Caller,
        team: &str,
        patch: &TeamPatch,
    ) -> AdminResult<TeamView> {
        let before = self.find_team(team).await?;
        let target = Target::new("team", &before.id);
        self.permit(caller, Action::UpdateTeam, Object::Team(&before.id), target)
            .await?;
        let updated = self
            .store
            .update_team(&before.id, patch, Timestamp::now())
            .await?;
        tracing::info!(team_id = %updated.id, blocked = updated.blocked, "team updated");
        let changes = access::changes(
            &access::team_fields(&before),
            &access::team_fields(&updated),
        );
        self.record_write(caller, Action::UpdateTeam, target, changes)
            .await;
        Ok(self.team_view(updated))
    }

    pub async fn create_key(&self, caller: &Caller, input: KeyInput) -> AdminResult<CreatedKey> {
        let team = self.find_team(&input.team).await?;
        let team = team.id.as_str();
        let now = Timestamp::now();
        let user_id = domain::parse_user_id(input.user_id.as_deref().unwrap_or_default())?;
        let object = Object::Key {
            team_id: team,
            user_id: user_id.as_deref(),
        };
        self.permit(caller, Action::CreateKey, object, Target::new("team", team))
            .await?;
        let alias = domain::parse_key_alias(input.alias.as_deref().unwrap_or_default())?;
        let models = domain::parse_models(&input.models)?;
        let expires_at = keys::parse_expiry(input.expires.as_deref().unwrap_or_default(), now)
            .map_err(ValidationError::from)?;
        let limits = input.limits.to_limits(now)?;
        let metadata = metadata(input.metadata.as_deref())?;

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
                created_at: now,
                expires_at,
            };
            match self.store.create_key(&new_key).await {
                Ok(key) => {
                    tracing::info!(public_id = %key.public_id, team_id = %key.team_id, "key created");
                    self.record_write(
                        caller,
                        Action::CreateKey,
                        Target::new("key", &key.public_id),
                        access::changes(&[], &access::key_fields(&key)),
                    )
                    .await;
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

    /// The keys matching `query` that the caller may read.
    pub async fn list_keys(&self, caller: &Caller, query: KeyQuery) -> AdminResult<Vec<KeyView>> {
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
            .filter(|k| authz::authorize(caller, Action::ReadKey, &key_object(&k.key)).is_ok())
            .map(|k| self.key_view(k.key, k.last_used_at))
            .collect())
    }

    /// A key by public id or by the whole key, as stored.
    async fn find_key(&self, key: &str) -> AdminResult<KeyView> {
        let public_id = self.resolve_key(key).await?;
        let found = self
            .store
            .find_key(&public_id)
            .await?
            .ok_or(StoreError::KeyNotFound(public_id))?;
        Ok(self.key_view(found.key, found.last_used_at))
    }

    /// A key by public id or by the whole key, after asking whether the caller may `action` it.
    async fn permitted_key(
        &self,
        caller: &Caller,
        action: Action,
        key: &str,
    ) -> AdminResult<KeyView> {
        let view = self.find_key(key).await?;
        let target = Target::new("key", &view.key.public_id);
        self.permit(caller, action, key_object(&view.key), target)
            .await?;
        Ok(view)
    }

    pub async fn get_key(&self, caller: &Caller, key: &str) -> AdminResult<KeyView> {
        self.permitted_key(caller, Action::ReadKey, key).await
    }

    pub async fn update_key(
        &self,
        caller: &Caller,
        key: &str,
        update: KeyUpdate,
    ) -> AdminResult<KeyView> {
        let before = self.permitted_key(caller, Action::UpdateKey, key).await?;
        let public_id = before.key.public_id.clone();
        let (limits_clear, own) = domain::parse_clear_list(
            update.clear.iter().map(String::as_str),
            &["metadata", "expires", "key_alias", "user_id", "models"],
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
        };
        // Handing a key to another user is asked as an update of the key it becomes.
        let new_owner = match &patch.user_id {
            Change::Keep => None,
            Change::Set(user) => Some(Some(user.as_str())),
            Change::Clear => Some(None),
        };
        if let Some(user_id) = new_owner {
            let object = Object::Key {
                team_id: &before.key.team_id,
                user_id,
            };
            self.permit(
                caller,
                Action::UpdateKey,
                object,
                Target::new("key", &public_id),
            )
            .await?;
        }
        self.patch_key(caller, &before.key, &patch).await
    }

    pub async fn set_key_blocked(
        &self,
        caller: &Caller,
        key: &str,
        blocked: bool,
    ) -> AdminResult<KeyView> {
        let before = self.permitted_key(caller, Action::UpdateKey, key).await?;
        self.patch_key(caller, &before.key, &KeyPatch::blocked(blocked))
            .await
    }

    async fn patch_key(
        &self,
        caller: &Caller,
        before: &ApiKey,
        patch: &KeyPatch,
    ) -> AdminResult<KeyView> {
        let updated = self
            .store
            .update_key(&before.public_id, patch, Timestamp::now())
            .await?;
        tracing::info!(public_id = %updated.public_id, blocked = updated.blocked, "key updated");
        let changes = access::changes(&access::key_fields(before), &access::key_fields(&updated));
        self.record_write(
            caller,
            Action::UpdateKey,
            Target::new("key", &updated.public_id),
            changes,
        )
        .await;
        self.find_key(&updated.public_id).await
    }

    pub async fn revoke_key(&self, caller: &Caller, key: &str) -> AdminResult<KeyView> {
        let before = self.permitted_key(caller, Action::RevokeKey, key).await?;
        let key = self
            .store
            .revoke_key(&before.key.public_id, Timestamp::now())
            .await?;
        tracing::info!(public_id = %key.public_id, "key revoked");
        let changes = access::changes(&access::key_fields(&before.key), &access::key_fields(&key));
        self.record_write(
            caller,
            Action::RevokeKey,
            Target::new("key", &key.public_id),
            changes,
        )
        .await;
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

    pub async fn create_user(
        &self,
        caller: &Caller,
        user_id: &str,
        limits: LimitsInput,
    ) -> AdminResult<UserView> {
        let now = Timestamp::now();
        let user = User {
            id: domain::parse_email(user_id)?,
            limits: limits.to_limits(now)?,
            created_at: now,
        };
        let target = Target::new("user", &user.id);
        self.permit(caller, Action::CreateUser, Object::User(&user.id), target)
            .await?;
        self.store.create_user(&user).await?;
        tracing::info!(user_id = %user.id, "user created");
        let changes = access::changes(&[], &access::user_fields(&user));
        self.record_write(caller, Action::CreateUser, target, changes)
            .await;
        Ok(self.user_view(user))
    }

    pub async fn update_user(
        &self,
        caller: &Caller,
        user_id: &str,
        limits: LimitsInput,
        clear: &[String],
    ) -> AdminResult<UserView> {
        let before = self
            .permitted_user(caller, Action::UpdateUser, user_id)
            .await?;
        let (limits_clear, _) =
            domain::parse_clear_list(clear.iter().map(String::as_str), &[], UserPatch::CLEARABLE)?;
        let patch = UserPatch {
            limits,
            limits_clear,
        };
        let user = self
            .store
            .update_user(&before.id, &patch, Timestamp::now())
            .await?;
        tracing::info!(user_id = %user.id, "user updated");
        let changes = access::changes(&access::user_fields(&before), &access::user_fields(&user));
        self.record_write(
            caller,
            Action::UpdateUser,
            Target::new("user", &user.id),
            changes,
        )
        .await;
        Ok(self.user_view(user))
    }

    async fn permitted_user(
        &self,
        caller: &Caller,
        action: Action,
        user_id: &str,
    ) -> AdminResult<User> {
        let user_id = user_id.trim();
        let user = self
            .store
            .find_user(user_id)
            .await?
            .ok_or_else(|| StoreError::UserNotFound(user_id.to_owned()))?;
        self.permit(
            caller,
            action,
            Object::User(&user.id),
            Target::new("user", &user.id),
        )
        .await?;
        Ok(user)
    }

    pub async fn get_user(&self, caller: &Caller, user_id: &str) -> AdminResult<UserView> {
        let user = self
            .permitted_user(caller, Action::ReadUser, user_id)
            .await?;
        Ok(self.user_view(user))
    }

    /// The users the caller may read.
    pub async fn list_users(&self, caller: &Caller) -> AdminResult<Vec<UserView>> {
        let users = self.store.list_users().await?;
        Ok(users
            .into_iter()
            .filter(|u| authz::authorize(caller, Action::ReadUser, &Object::User(&u.id)).is_ok())
            .map(|u| self.user_view(u))
            .collect())
    }

    async fn permit_models(&self, caller: &Caller, action: Action, name: &str) -> AdminResult<()> {
        self.permit(caller, action, Object::Global, Target::new("model", name))
            .await
    }

    pub async fn create_model(
        &self,
        caller: &Caller,
        input: ModelInput,
    ) -> AdminResult<ModelRoute> {
        self.permit_models(caller, Action::ManageModels, &input.name)
            .await?;
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
        let changes = access::changes(&[], &access::model_fields(&model));
        self.record_write(
            caller,
            Action::ManageModels,
            Target::new("model", &model.name),
            changes,
        )
        .await;
        Ok(model)
    }

    pub async fn update_model(
        &self,
        caller: &Caller,
        name: &str,
        update: ModelUpdate,
    ) -> AdminResult<ModelRoute> {
        self.permit_models(caller, Action::ManageModels, name)
            .await?;
        let before = self
            .store
            .list_models()
            .await?
            .into_iter()
            .find(|m| m.name == name.trim());
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
        let before = before
            .as_ref()
            .map(access::model_fields)
            .unwrap_or_default();
        let changes = access::changes(&before, &access::model_fields(&model));
        self.record_write(
            caller,
            Action::ManageModels,
            Target::new("model", &model.name),
            changes,
        )
        .await;
        Ok(model)
    }

    pub async fn delete_model(&self, caller: &Caller, name: &str) -> AdminResult<ModelRoute> {
        self.permit_models(caller, Action::ManageModels, name)
            .await?;
        let model = self.store.delete_model(name.trim()).await?;
        tracing::info!(model = %model.name, "model route deleted");
        let changes = access::changes(&access::model_fields(&model), &[]);
        self.record_write(
            caller,
            Action::ManageModels,
            Target::new("model", &model.name),
            changes,
        )
        .await;
        Ok(model)
    }

    pub async fn list_models(&self, caller: &Caller) -> AdminResult<Vec<ModelRoute>> {
        self.permit_models(caller, Action::ReadModels, "").await?;
        Ok(self.store.list_models().await?)
    }

    /// Spend of one scope: its current window (read from the usage records, so it includes
    /// what arrived since the last tick) and `history_days` of daily totals.
    pub async fn spend(
        &self,
        caller: &Caller,
        scope: SpendScope,
        history_days: u32,
    ) -> AdminResult<SpendReport> {
        let now = Timestamp::now();
        let (kind, id, limits, created_at) = match scope {
            SpendScope::Key(key) => {
                let k = self
                    .permitted_key(caller, Action::ReadSpend, &key)
                    .await?
                    .key;
                (ScopeKind::Key, k.public_id, k.limits, k.created_at)
            }
            SpendScope::Team(team) => {
                let t = self.find_team(&team).await?;
                let target = Target::new("team", &t.id);
                self.permit(caller, Action::ReadSpend, Object::Team(&t.id), target)
                    .await?;
                (ScopeKind::Team, t.id, t.limits, t.created_at)
            }
            SpendScope::User(user) => {
                let user = user.trim().to_owned();
                let target = Target::new("user", &user);
                self.permit(caller, Action::ReadSpend, Object::User(&user), target)
                    .await?;
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

/// A key as [`authz::authorize`] sees it: its team and owner.
fn key_object(key: &ApiKey) -> Object<'_> {
    Object::Key {
        team_id: &key.team_id,
        user_id: key.user_id.as_deref(),
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
