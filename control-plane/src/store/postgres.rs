//! The PostgreSQL backend, for several control-plane replicas sharing one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::identity::impl_identity_store;
use super::migrations::{self, EmbeddedMigration};
use super::named_budget::impl_named_budget_store;
use super::sql::impl_sql_store;

const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "teams keys usage",
        sql: include_str!("migrations/postgres/0001_teams_keys_usage.sql"),
    },
    EmbeddedMigration {
        version: 2,
        description: "limits users models",
        sql: include_str!("migrations/postgres/0002_limits_users_models.sql"),
    },
    EmbeddedMigration {
        version: 3,
        description: "dataplane tokens",
        sql: include_str!("migrations/postgres/0003_dataplane_tokens.sql"),
    },
    EmbeddedMigration {
        version: 4,
        description: "identity providers",
        sql: include_str!("migrations/postgres/0004_identity_providers.sql"),
    },
    EmbeddedMigration {
        version: 20,
        description: "audit chain",
        sql: include_str!("migrations/postgres/0020_audit_chain.sql"),
    },
    EmbeddedMigration {
        version: 21,
        description: "admin keys",
        sql: include_str!("migrations/postgres/0021_admin_keys.sql"),
    },
    EmbeddedMigration {
        version: 22,
        description: "service keys",
        sql: include_str!("migrations/postgres/0022_service_keys.sql"),
    },
    EmbeddedMigration {
        version: 23,
        description: "litellm compatibility",
        sql: include_str!("migrations/postgres/0023_litellm_compat.sql"),
    },
    EmbeddedMigration {
        version: 24,
        description: "budgets",
        sql: include_str!("migrations/postgres/0024_budgets.sql"),
    },
    EmbeddedMigration {
        version: 25,
        description: "model output cap",
        sql: include_str!("migrations/postgres/0025_model_output_cap.sql"),
    },
    EmbeddedMigration {
        version: 26,
        description: "idp admin roles",
        sql: include_str!("migrations/postgres/0026_idp_admin_roles.sql"),
    },
    EmbeddedMigration {
        version: 27,
        description: "budget duration ms",
        sql: include_str!("migrations/postgres/0027_budget_duration_ms.sql"),
    },
    EmbeddedMigration {
        version: 28,
        description: "personal keys",
        sql: include_str!("migrations/postgres/0028_personal_keys.sql"),
    },
];

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
}

impl PostgresStore {
    /// Connects to a `postgres://` URL and applies pending migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    pub async fn connect_with(options: PgConnectOptions) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        migrations::migrator(MIGRATIONS).await?.run(&pool).await?;
        Ok(Self { pool })
    }

    /// READ COMMITTED is enough for writers: each bumps the version row first, which
    /// serialises policy changes, and every later statement sees the latest commits.
    pub(crate) async fn begin_write(
        &self,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// One snapshot for the version and the rows it names.
    pub(crate) async fn begin_read(
        &self,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?)
    }
}

impl_sql_store!(PostgresStore, sqlx::Postgres);
impl_identity_store!(PostgresStore);
impl_named_budget_store!(PostgresStore);
