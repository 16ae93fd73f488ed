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
    EmbeddedMigration {
        version: 28,
        description: "personal keys",
        sql: include_str!("migrations/sqlite/0028_personal_keys.sql"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A database made before personal keys (migration 28 rebuilds `api_keys`) keeps every
    /// key, its columns and its tags, with foreign keys enforced throughout.
    #[tokio::test]
    async fn the_personal_keys_migration_keeps_existing_keys_and_their_tags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        let before: Vec<_> = MIGRATIONS
            .iter()
            .copied()
            .filter(|m| m.version < 28)
            .collect();
        let before: &'static [EmbeddedMigration] = Box::leak(before.into_boxed_slice());
        migrations::migrator(before)
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        for statement in [
            "INSERT INTO teams (team_id, alias, models, created_at_ms) \
             VALUES ('team_old', 'old', '[\"m\"]', 1)",
            "INSERT INTO api_keys (public_id, key_sha256, last4, team_id, user_id, models, \
             status, created_at_ms, rpm_limit, metadata, previous_key_sha256) \
             VALUES ('oldkey000001', \
             'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'wxyz', \
             'team_old', 'ana@corp', '[\"m\"]', 'active', 5, 60, '{\"owner\":\"ana\"}', NULL)",
            "INSERT INTO key_tags (public_id, tag_name, tag_value) \
             VALUES ('oldkey000001', 'owner', 'ana')",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let store = SqliteStore::open_file(&path).await.unwrap();
        let found = store.find_key("oldkey000001").await.unwrap().unwrap().key;
        assert_eq!(found.team_id.as_deref(), Some("team_old"));
        assert_eq!(found.user_id.as_deref(), Some("ana@corp"));
        assert_eq!(found.limits.rpm, Some(60));
        assert!(found.metadata.has_tag("owner", "ana"));
        let tags: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM key_tags")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(tags, 1);
        let broken: Vec<(String,)> =
            sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert!(broken.is_empty(), "{broken:?}");
        // The rebuilt table takes a key without a team and still refuses an unknown one.
        sqlx::query(
            "INSERT INTO api_keys (public_id, key_sha256, last4, team_id, status, created_at_ms) \
             VALUES ('personal0001', 'cc', 'abcd', NULL, 'active', 6)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let orphan = sqlx::query(
            "INSERT INTO api_keys (public_id, key_sha256, last4, team_id, status, created_at_ms) \
             VALUES ('orphan000001', 'dd', 'abcd', 'no_such_team', 'active', 6)",
        )
        .execute(&store.pool)
        .await;
        assert!(orphan.is_err(), "the team foreign key survives the rebuild");
    }
}
