//! Persistence: one trait per concern, implemented by [`SqliteStore`] (embedded default) and
//! [`PostgresStore`] (several replicas). Both run the same SQL (see `sql.rs`); each backend
//! supplies its connection setup, transaction flavour and migrations (`migrations/<backend>/`).
//!
//! Every policy change (anything that alters a snapshot) bumps the policy version in the same
//! transaction, so a snapshot's version always names exactly the data it was built from.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;

use crate::budget::Budget;
use crate::clock::Timestamp;
use crate::domain::{
    ApiKey, DailySpend, KeyFilter, KeyPatch, ListedKey, ModelPatch, ModelRoute, NewKey,
    PolicyState, ScopeKind, Team, TeamPatch, UsageBatch, UsageReceipt, UsageRow, User, UserPatch,
    ValidationError,
};

mod admin_key;
mod dataplane;
mod identity;
mod migrations;
mod named_budget;
mod postgres;
mod sql;
mod sqlite;

pub use admin_key::AdminKeyStore;
pub use dataplane::DataPlaneStore;
pub use identity::IdentityStore;
pub use named_budget::NamedBudgetStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a team with alias {0:?} already exists")]
    TeamAliasTaken(String),
    #[error("a team with id {0:?} already exists (as an id or an alias)")]
    TeamIdTaken(String),
    #[error("team {0:?} not found")]
    TeamNotFound(String),
    #[error("key {0:?} not found")]
    KeyNotFound(String),
    #[error("key {0:?} is revoked and cannot be changed")]
    KeyRevoked(String),
    #[error("user {0:?} not found")]
    UserNotFound(String),
    #[error("a user {0:?} already exists")]
    UserExists(String),
    #[error("model {0:?} not found")]
    ModelNotFound(String),
    #[error("a model named {0:?} already exists")]
    ModelExists(String),
    #[error("a live data-plane token named {0:?} already exists (revoke it first)")]
    DataPlaneNameTaken(String),
    #[error("no live data-plane token named {0:?} and no token with that public id")]
    DataPlaneTokenNotFound(String),
    /// A batch id stored for one data plane, sent again by another.
    #[error("usage batch {0:?} was delivered by another data plane")]
    BatchFromAnotherDataPlane(String),
    #[error("no admin key with public id {0:?}")]
    AdminKeyNotFound(String),
    #[error("identity provider {0:?} not found")]
    IdentityProviderNotFound(String),
    #[error("identity provider {0:?} is already registered")]
    IdentityProviderExists(String),
    #[error("budget {0:?} not found")]
    BudgetNotFound(String),
    #[error("a budget {0:?} already exists")]
    BudgetExists(String),
    /// LiteLLM refuses too (the budget row is referenced); nothing is detached.
    #[error("budget {budget:?} is attached to {attached}: detach it first (set budget_id to null on them)")]
    BudgetInUse { budget: String, attached: String },
    /// A change that the current data makes invalid (e.g. a key wider than its team).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A freshly drawn public id is already in use; the caller draws another.
    #[error("key id already in use")]
    KeyIdTaken,
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("unsupported database URL (expected sqlite:… or postgres://…)")]
    UnsupportedUrl,
    /// A task reading the store ended without an answer (it panicked, or the runtime is
    /// shutting down).
    #[error("a background read of the store did not finish: {0}")]
    TaskFailed(#[source] tokio::task::JoinError),
}

impl StoreError {
    /// Whether retrying the same call later may succeed (lost connection, busy database).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let transient = match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => is_transient_database_error(db.as_ref()),
            _ => false,
        };
        if transient {
            Self::Unavailable(e)
        } else {
            Self::Database(e)
        }
    }
}

fn is_transient_database_error(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // Extended result codes keep the primary code in the low byte: SQLITE_BUSY (5) and
        // SQLITE_LOCKED (6) with all their variants.
        return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
    }
    // PostgreSQL SQLSTATE: serialization failure, deadlock, connection exception (08…),
    // operator intervention such as admin shutdown or "cannot connect now" (57P…).
    matches!(code.as_ref(), "40001" | "40P01") || code.starts_with("08") || code.starts_with("57P")
}

pub type StoreResult<T> = Result<T, StoreError>;

pub trait TeamStore: Send + Sync {
    /// Inserts a team; [`StoreError::TeamAliasTaken`] when the alias is in use.
    fn create_team(&self, team: &Team) -> impl Future<Output = StoreResult<()>> + Send;
    /// Teams ordered by alias.
    fn list_teams(&self) -> impl Future<Output = StoreResult<Vec<Team>>> + Send;
    /// Looks a team up by id or by alias.
    fn find_team(
        &self,
        id_or_alias: &str,
    ) -> impl Future<Output = StoreResult<Option<Team>>> + Send;
    /// Applies `patch` to the team (by id or alias) in one transaction; a patch that changes
    /// nothing leaves the version alone. [`StoreError::TeamNotFound`],
    /// [`StoreError::TeamAliasTaken`], [`StoreError::Invalid`].
    fn update_team(
        &self,
        id_or_alias: &str,
        patch: &TeamPatch,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<Team>> + Send;
    /// Deletes the teams (by id or alias) and every key of theirs, revoked ones included (as
    /// LiteLLM deletes a team's keys), all or nothing; returns the teams and how many keys
    /// went. [`StoreError::TeamNotFound`] deletes nothing.
    fn delete_teams(
        &self,
        ids_or_aliases: &[String],
    ) -> impl Future<Output = StoreResult<(Vec<Team>, u64)>> + Send;
}

pub trait KeyStore: Send + Sync {
    /// Inserts a key for `key.team` (id or alias), after checking it against the team's
    /// models and limits in the same transaction: [`StoreError::TeamNotFound`],
    /// [`StoreError::KeyIdTaken`], [`StoreError::Invalid`].
    fn create_key(&self, key: &NewKey) -> impl Future<Output = StoreResult<ApiKey>> + Send;
    /// Inserts many keys in one transaction with one version bump, each checked as by
    /// [`KeyStore::create_key`]; the first failure leaves none of them. Returns the new
    /// version. For bulk imports, where a transaction per key pays a commit per key.
    fn create_keys(&self, keys: &[NewKey]) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Keys ordered by creation, with their last use; [`StoreError::TeamNotFound`] for an
    /// unknown team filter.
    fn list_keys(
        &self,
        filter: &KeyFilter,
    ) -> impl Future<Output = StoreResult<Vec<ListedKey>>> + Send;
    fn find_key(
        &self,
        public_id: &str,
    ) -> impl Future<Output = StoreResult<Option<ListedKey>>> + Send;
    fn find_key_by_hash(
        &self,
        sha256: &[u8; 32],
    ) -> impl Future<Output = StoreResult<Option<ApiKey>>> + Send;
    /// Replaces a live key's secret (its hash and last four characters) in one transaction;
    /// the old secret stays valid until `grace_until`, or stops working at once when `None`.
    /// [`StoreError::KeyNotFound`], [`StoreError::KeyRevoked`].
    fn replace_key_secret(
        &self,
        public_id: &str,
        sha256: &[u8; 32],
        last4: &str,
        grace_until: Option<Timestamp>,
    ) -> impl Future<Output = StoreResult<ApiKey>> + Send;
    /// Marks the key revoked (the row stays). Revoking a revoked key changes nothing and
    /// returns it as it is, so retries are safe.
    fn revoke_key(
        &self,
        public_id: &str,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<ApiKey>> + Send;
    /// Applies `patch` and checks the result against the key's team, in one transaction; a
    /// patch that changes nothing leaves the version alone. [`StoreError::KeyNotFound`],
    /// [`StoreError::KeyRevoked`], [`StoreError::Invalid`].
    fn update_key(
        &self,
        public_id: &str,
        patch: &KeyPatch,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<ApiKey>> + Send;
}

pub trait UserStore: Send + Sync {
    /// [`StoreError::UserExists`] when the id is taken.
    fn create_user(&self, user: &User) -> impl Future<Output = StoreResult<()>> + Send;
    /// [`StoreError::UserNotFound`], [`StoreError::Invalid`].
    fn update_user(
        &self,
        user_id: &str,
        patch: &UserPatch,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<User>> + Send;
    fn find_user(&self, user_id: &str) -> impl Future<Output = StoreResult<Option<User>>> + Send;
    /// Users ordered by id.
    fn list_users(&self) -> impl Future<Output = StoreResult<Vec<User>>> + Send;
    /// Deletes the users and every key naming them as owner (as LiteLLM does), all or
    /// nothing; returns the users and how many keys went. [`StoreError::UserNotFound`]
    /// deletes nothing.
    fn delete_users(
        &self,
        user_ids: &[String],
    ) -> impl Future<Output = StoreResult<(Vec<User>, u64)>> + Send;
}

pub trait ModelStore: Send + Sync {
    /// [`StoreError::ModelExists`] when the name is taken.
    fn create_model(&self, model: &ModelRoute) -> impl Future<Output = StoreResult<()>> + Send;
    /// [`StoreError::ModelNotFound`].
    fn update_model(
        &self,
        name: &str,
        patch: &ModelPatch,
    ) -> impl Future<Output = StoreResult<ModelRoute>> + Send;
    /// Removes the route and returns it; [`StoreError::ModelNotFound`].
    fn delete_model(&self, name: &str) -> impl Future<Output = StoreResult<ModelRoute>> + Send;
    /// Routes ordered by name.
    fn list_models(&self) -> impl Future<Output = StoreResult<Vec<ModelRoute>>> + Send;
}

/// The current window's spend of every budgeted scope, as of chain position `upto_seq`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetSpend {
    pub upto_seq: i64,
    /// `(kind, scope id, spend)` for budgeted scopes with spend in their current window.
    pub spend: Vec<(ScopeKind, String, f64)>,
}

/// Every budget in force, read at one policy version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetState {
    pub version: u64,
    /// Teams, active keys and users that have a budget: their own, or else the `max_budget`
    /// of the budget object they name (see [`crate::named_budget`]).
    pub budgets: Vec<(ScopeKind, String, Budget)>,
}

/// Budgets, and spend read from the usage records (`usage_records`, in audit-chain order
/// `seq`).
pub trait SpendStore: Send + Sync {
    /// The budgets of the current policy version (only the budget columns: cheaper than
    /// loading the whole policy).
    fn load_budgets(&self) -> impl Future<Output = StoreResult<BudgetState>> + Send;
    /// Up to `limit` records after chain position `after_seq`, in chain order. Positions are
    /// gapless and become visible in order (appends take turns on the chain head).
    fn usage_after(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<UsageRow>>> + Send;
    /// Sums every budgeted team, key and user over its window at `now` (records up to
    /// `upto_seq`, or up to the newest when `None`), in one consistent read.
    fn budget_spend(
        &self,
        now: Timestamp,
        upto_seq: Option<i64>,
    ) -> impl Future<Output = StoreResult<BudgetSpend>> + Send;
    /// Spend of one scope from `since` on, counting records up to `upto_seq`.
    fn scope_spend(
        &self,
        kind: ScopeKind,
        id: &str,
        since: Timestamp,
        upto_seq: i64,
    ) -> impl Future<Output = StoreResult<f64>> + Send;
    /// Daily totals of one scope from `since` on, oldest first (days without records left out).
    fn spend_history(
        &self,
        kind: ScopeKind,
        id: &str,
        since: Timestamp,
    ) -> impl Future<Output = StoreResult<Vec<DailySpend>>> + Send;
}

/// Implemented with the audit chain (`crate::audit::store`): records are chained as stored.
pub trait UsageStore: Send + Sync {
    /// Stores a batch once: a batch id seen before adds nothing and reports a duplicate, or
    /// [`StoreError::BatchFromAnotherDataPlane`] when another data plane delivered it.
    /// Signs no checkpoint; the server appends through `crate::audit::AuditLog`, which does.
    fn record_usage(
        &self,
        batch: &UsageBatch,
    ) -> impl Future<Output = StoreResult<UsageReceipt>> + Send;
}

pub trait PolicyStore: Send + Sync {
    /// The current policy version (bumped by every policy change).
    fn policy_version(&self) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Version, teams, keys, users and model routes read at one consistent point, with the
    /// limits of attached budget objects resolved into the scopes' limits (their spend caps
    /// as [`SpendStore::load_budgets`] reads them).
    fn load_policy(&self) -> impl Future<Output = StoreResult<PolicyState>> + Send;
    /// Bumps the version without a data change, so filters fetch a snapshot whose budget
    /// state (computed from usage, not stored) has changed. Returns the new version.
    fn bump_policy_version(&self) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// Everything the services need from a backend.
pub trait Store:
    TeamStore
    + KeyStore
    + UserStore
    + ModelStore
    + SpendStore
    + UsageStore
    + PolicyStore
    + DataPlaneStore
    + AdminKeyStore
    + IdentityStore
    + NamedBudgetStore
    + crate::audit::AuditStore
    + Clone
    + 'static
{
    /// A cheap round trip, for readiness checks.
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// Which database to open.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// The embedded default: a file path, used as is (no URL escaping surprises).
    SqliteFile(PathBuf),
    /// `sqlite:…` or `postgres://…` / `postgresql://…`.
    Url(String),
}

/// A URL may carry a password: `Debug` shows only its scheme.
impl fmt::Debug for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SqliteFile(path) => f.debug_tuple("SqliteFile").field(path).finish(),
            Self::Url(url) => {
                let scheme = url.split(':').next().unwrap_or_default();
                write!(f, "Url({scheme}:<redacted>)")
            }
        }
    }
}

/// An opened, migrated store of whichever backend the location selects.
#[derive(Debug, Clone)]
pub enum OpenedStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl OpenedStore {
    pub async fn open(location: &DatabaseLocation) -> StoreResult<Self> {
        match location {
            DatabaseLocation::SqliteFile(path) => {
                Ok(Self::Sqlite(SqliteStore::open_file(path).await?))
            }
            DatabaseLocation::Url(url) if url.starts_with("sqlite:") => {
                Ok(Self::Sqlite(SqliteStore::open_url(url).await?))
            }
            DatabaseLocation::Url(url)
                if url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                Ok(Self::Postgres(PostgresStore::connect(url).await?))
            }
            DatabaseLocation::Url(_) => Err(StoreError::UnsupportedUrl),
        }
    }
}
