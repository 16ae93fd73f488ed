//! The embedded default backend: one SQLite file in the data directory (WAL mode).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::identity::impl_identity_store;
use super::migrations::{self, EmbeddedMigration};
use super::named_budget::impl_named_budget_store;
use super::sql::impl_sql_store;

const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "teams keys usage",
        sql: include_str!("migrations/sqlite/0001_teams_keys_usage.sql"),
    },
    EmbeddedMigration {
        version: 2,
        description: "limits users models",
        sql: include_str!("migrations/sqlite/0002_limits_users_models.sql"),
    },
    EmbeddedMigration {
        version: 3,
        description: "dataplane tokens",
        sql: include_str!("migrations/sqlite/0003_dataplane_tokens.sql"),
    },
    EmbeddedMigration {
        version: 4,
        description: "identity providers",
        sql: include_str!("migrations/sqlite/0004_identity_providers.sql"),
    },
    EmbeddedMigration {
        version: 20,
        description: "audit chain",
        sql: include_str!("migrations/sqlite/0020_audit_chain.sql"),
    },
    EmbeddedMigration {
        version: 21,
        description: "admin keys",
        sql: include_str!("migrations/sqlite/0021_admin_keys.sql"),
    },
    EmbeddedMigration {
        version: 22,
        description: "service keys",
        sql: include_str!("migrations/sqlite/0022_service_keys.sql"),
    },
    EmbeddedMigration {
        version: 23,
        description: "litellm compatibility",
        sql: include_str!("migrations/sqlite/0023_litellm_compat.sql"),
    },
    EmbeddedMigration {
        version: 24,
        description: "budgets",
        sql: include_str!("migrations/sqlite/0024_budgets.sql"),
    },
    EmbeddedMigration {
        version: 25,
        description: "model output cap",
        sql: include_str!("migrations/sqlite/0025_model_output_cap.sql"),
    },
    EmbeddedMigration {
        version: 26,
        description: "idp admin roles",
        sql: include_str!("migrations/sqlite/0026_idp_admin_roles.sql"),
    },
    EmbeddedMigration {
        version: 27,
        description: "budget duration ms",
        sql: include_str!("migrations/sqlite/0027_budget_duration_ms.sql"),
    },
];

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database file at `path`.
    pub async fn open_file(path: &Path) -> StoreResult<Self> {
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens a `sqlite:` URL, e.g. `sqlite:///var/lib/modelgate/modelgate.db`.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        Self::open_with(SqliteConnectOptions::from_str(url)?).await
    }

    async fn open_with(options: SqliteConnectOptions) -> StoreResult<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL survives a process crash; only an OS crash may drop the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        migrations::migrator(MIGRATIONS).await?.run(&pool).await?;
        Ok(Self { pool })
    }

    /// `BEGIN IMMEDIATE` takes the write lock before the first read, so two writers never
    /// both read and then fail to upgrade (SQLITE_BUSY that busy_timeout cannot fix).
    pub(crate) async fn begin_write(
        &self,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// A deferred transaction: its first read fixes the snapshot all later reads see.
    pub(crate) async fn begin_read(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin().await?)
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite);
impl_identity_store!(SqliteStore);
impl_named_budget_store!(SqliteStore);
