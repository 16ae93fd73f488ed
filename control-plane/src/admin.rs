//! Admin operations, shared by the gRPC `AdminService` and the LiteLLM-compatible REST API:
//! how raw input becomes validated domain values, key minting, and what admins see (entities
//! with their current budget state). Every operation takes the [`Caller`] first and asks
//! [`access`] whether it may, with the action and the object it resolved. Transports only
//! map their wire format to these inputs and [`AdminError`] to their status codes.
//!
//! One file per kind of object: `teams`, `virtual_keys`, `users`, `models`, `spend`,
//! `admin_keys`, `budgets`, `team_members`; [`access`] holds authentication, the permission check and the admin records.

pub mod access;
mod admin_keys;
mod budgets;
mod models;
mod spend;
mod team_members;
mod teams;
mod users;
mod virtual_keys;

use std::collections::HashMap;
use std::sync::Arc;

pub use access::{FieldChange, Target};
pub use admin_keys::{AdminKeyInput, CreatedAdminKey};

use crate::admin_key::AdminKeyError;
use crate::audit::AuditLog;
use crate::authz::Denied;
use crate::budget::{Budget, Window};
use crate::clock::Timestamp;
use crate::domain::{ApiKey, DailySpend, Metadata, ScopeKind, Team, User, ValidationError};
use crate::keys::{KeySecret, RandomnessError};
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
    #[error("an audit record does not decode (run `modelgate audit verify`): {0}")]
    CorruptRecord(#[from] prost::DecodeError),
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
    /// Chosen by the caller, or drawn when `None`.
    pub id: Option<String>,
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
    /// Team id or alias; `None` (or empty) for a personal key.
    pub team: Option<String>,
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
    /// 0 = no output cap.
    pub max_output_tokens: u64,
}

/// `Some("")` resets the upstream name or cluster; `Some(0)` the default max tokens or the
/// output cap.
#[derive(Debug, Clone, Default)]
pub struct ModelUpdate {
    pub upstream_model: Option<String>,
    pub cluster: Option<String>,
    pub input_cost_per_mtok: Option<f64>,
    pub output_cost_per_mtok: Option<f64>,
    pub default_max_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
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
    /// The budget object the team names.
    pub budget_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyView {
    pub key: ApiKey,
    pub last_used_at: Option<Timestamp>,
    pub spend: Option<SpendState>,
    /// The budget object the key names.
    pub budget_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserView {
    pub user: User,
    pub spend: Option<SpendState>,
    /// The budget object the user names.
    pub budget_id: Option<String>,
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

    /// The scope's own budget, or else the one of the budget object it names (as the spend
    /// tracker follows it, so from the tick after it was attached).
    fn effective_budget(&self, kind: ScopeKind, id: &str, limits: &Limits) -> Option<Budget> {
        limits
            .budget
            .or_else(|| self.spend.reader().budget_of(kind, id))
    }

    fn state_of(&self, kind: ScopeKind, id: &str, limits: &Limits) -> Option<SpendState> {
        let now = Timestamp::now();
        self.effective_budget(kind, id, limits)
            .map(|b| self.spend.reader().state(kind, id, &b, now))
    }

    /// Which budget object each scope of `kind` names, for listings.
    async fn budget_ids(&self, kind: ScopeKind) -> AdminResult<HashMap<String, String>> {
        Ok(self.store.budget_links(kind).await?)
    }

    fn team_view(&self, team: Team, budget_id: Option<String>) -> TeamView {
        TeamView {
            spend: self.state_of(ScopeKind::Team, &team.id, &team.limits),
            team,
            budget_id,
        }
    }

    async fn team_view_of(&self, team: Team) -> AdminResult<TeamView> {
        let budget_id = self.budget_of(ScopeKind::Team, &team.id).await?;
        Ok(self.team_view(team, budget_id))
    }

    fn key_view(
        &self,
        key: ApiKey,
        last_used_at: Option<Timestamp>,
        budget_id: Option<String>,
    ) -> KeyView {
        KeyView {
            spend: self.state_of(ScopeKind::Key, &key.public_id, &key.limits),
            key,
            last_used_at,
            budget_id,
        }
    }

    async fn key_view_of(
        &self,
        key: ApiKey,
        last_used_at: Option<Timestamp>,
    ) -> AdminResult<KeyView> {
        let budget_id = self.budget_of(ScopeKind::Key, &key.public_id).await?;
        Ok(self.key_view(key, last_used_at, budget_id))
    }

    fn user_view(&self, user: User, budget_id: Option<String>) -> UserView {
        UserView {
            spend: self.state_of(ScopeKind::User, &user.id, &user.limits),
            user,
            budget_id,
        }
    }

    async fn user_view_of(&self, user: User) -> AdminResult<UserView> {
        let budget_id = self.budget_of(ScopeKind::User, &user.id).await?;
        Ok(self.user_view(user, budget_id))
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
