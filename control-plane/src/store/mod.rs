//! Persistence: one trait per concern, implemented by [`SqliteStore`] (embedded default) and
//! [`PostgresStore`] (several replicas). Both run the same SQL (see `sql.rs`); each backend
//! supplies its connection setup, transaction flavour and migrations (`migrations/<backend>/`).
//!
//! Every policy change (anything that alters a snapshot) bumps the policy version in the same
//! transaction, so a snapshot's version always names exactly the data it was built from.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;

use crate::clock::Timestamp;
use crate::domain::{ApiKey, KeyFilter, NewKey, PolicyState, Team, UsageBatch, UsageReceipt};

mod migrations;
mod postgres;
mod sql;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a team with alias {0:?} already exists")]
    TeamAliasTaken(String),
    #[error("team {0:?} not found")]
    TeamNotFound(String),
    #[error("key {0:?} not found")]
    KeyNotFound(String),
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
}

pub trait KeyStore: Send + Sync {
    /// Inserts a key for `key.team` (id or alias): [`StoreError::TeamNotFound`],
    /// [`StoreError::KeyIdTaken`].
    fn create_key(&self, key: &NewKey) -> impl Future<Output = StoreResult<ApiKey>> + Send;
    /// Keys ordered by creation; [`StoreError::TeamNotFound`] for an unknown team filter.
    fn list_keys(
        &self,
        filter: &KeyFilter,
    ) -> impl Future<Output = StoreResult<Vec<ApiKey>>> + Send;
    fn find_key_by_hash(
        &self,
        sha256: &[u8; 32],
    ) -> impl Future<Output = StoreResult<Option<ApiKey>>> + Send;
    /// Marks the key revoked (the row stays). Revoking a revoked key changes nothing and
    /// returns it as it is, so retries are safe.
    fn revoke_key(
        &self,
        public_id: &str,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<ApiKey>> + Send;
}

/// Implemented with the audit chain (`crate::audit::store`): records are chained as stored.
pub trait UsageStore: Send + Sync {
    /// Stores a batch once: a batch id seen before adds nothing and reports a duplicate.
    /// Signs no checkpoint; the server appends through `crate::audit::AuditLog`, which does.
    fn record_usage(
        &self,
        batch: &UsageBatch,
    ) -> impl Future<Output = StoreResult<UsageReceipt>> + Send;
}

pub trait PolicyStore: Send + Sync {
    /// The current policy version (bumped by every policy change).
    fn policy_version(&self) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Version, teams and keys read at one consistent point.
    fn load_policy(&self) -> impl Future<Output = StoreResult<PolicyState>> + Send;
}

/// Everything the services need from a backend.
pub trait Store:
    TeamStore + KeyStore + UsageStore + PolicyStore + crate::audit::AuditStore + Clone + 'static
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
