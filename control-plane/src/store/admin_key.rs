//! Admin keys (`admin_keys`): the SQL written once and stamped for SQLite and PostgreSQL, like
//! the rest of the store. Admin keys are not policy: no version bump.

use std::future::Future;

use super::StoreResult;
use crate::admin_key::{AdminKey, NewAdminKey};
use crate::clock::Timestamp;

pub trait AdminKeyStore: Send + Sync {
    /// Inserts a key; [`super::StoreError::KeyIdTaken`] when the public id is in use.
    fn create_admin_key(
        &self,
        key: &NewAdminKey,
    ) -> impl Future<Output = StoreResult<AdminKey>> + Send;
    /// Keys ordered by creation.
    fn list_admin_keys(
        &self,
        include_revoked: bool,
    ) -> impl Future<Output = StoreResult<Vec<AdminKey>>> + Send;
    fn find_admin_key_by_hash(
        &self,
        sha256: &[u8; 32],
    ) -> impl Future<Output = StoreResult<Option<AdminKey>>> + Send;
    /// Revokes the key (revoking a revoked key returns it unchanged);
    /// [`super::StoreError::AdminKeyNotFound`].
    fn revoke_admin_key(
        &self,
        public_id: &str,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<AdminKey>> + Send;
    /// Records that the key was used at `at`.
    fn touch_admin_key(
        &self,
        public_id: &str,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

mod sql {
    macro_rules! columns {
        () => {
            "public_id, user_id, role, teams, created_at_ms, revoked_at_ms, last_used_at_ms"
        };
    }
    pub const INSERT: &str = "INSERT INTO admin_keys \
         (public_id, key_sha256, user_id, role, teams, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)";
    pub const PUBLIC_ID_TAKEN: &str = "SELECT 1 FROM admin_keys WHERE public_id = $1";
    pub const LIST: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM admin_keys WHERE ($1 OR revoked_at_ms IS NULL) ORDER BY created_at_ms, public_id"
    );
    pub const BY_HASH: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM admin_keys WHERE key_sha256 = $1"
    );
    pub const BY_ID: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM admin_keys WHERE public_id = $1"
    );
    pub const REVOKE: &str = "UPDATE admin_keys SET revoked_at_ms = $2 \
         WHERE public_id = $1 AND revoked_at_ms IS NULL";
    pub const TOUCH: &str = "UPDATE admin_keys SET last_used_at_ms = $2 WHERE public_id = $1";
}

/// Implements [`AdminKeyStore`] for `$store`, whose sqlx database is `$db`.
macro_rules! impl_admin_key_store {
    ($store:ty, $db:ty) => {
        use sqlx::Row as _;
        use $crate::admin_key::{AdminKey, NewAdminKey};
        use $crate::authz::Role;
        use $crate::clock::Timestamp;
        use $crate::store::admin_key::{sql, AdminKeyStore};
        use $crate::store::{StoreError, StoreResult};

        type DbRow = <$db as sqlx::Database>::Row;

        fn key_from_row(row: &DbRow) -> StoreResult<AdminKey> {
            let time = |ms: Option<i64>| ms.map(Timestamp::from_millis);
            let role: String = row.try_get("role")?;
            let teams: String = row.try_get("teams")?;
            Ok(AdminKey {
                public_id: row.try_get("public_id")?,
                user_id: row.try_get("user_id")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown admin role {role:?}")))?,
                teams: serde_json::from_str(&teams)
                    .map_err(|e| StoreError::Corrupt(format!("admin key teams: {e}")))?,
                created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
                revoked_at: time(row.try_get("revoked_at_ms")?),
                last_used_at: time(row.try_get("last_used_at_ms")?),
            })
        }

        impl AdminKeyStore for $store {
            async fn create_admin_key(&self, key: &NewAdminKey) -> StoreResult<AdminKey> {
                let mut tx = self.begin_write().await?;
                let taken = sqlx::query(sql::PUBLIC_ID_TAKEN)
                    .bind(&key.public_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    return Err(StoreError::KeyIdTaken);
                }
                let teams = serde_json::to_string(&key.teams)
                    .map_err(|e| StoreError::Corrupt(format!("admin key teams: {e}")))?;
                sqlx::query(sql::INSERT)
                    .bind(&key.public_id)
                    .bind(hex::encode(key.sha256))
                    .bind(&key.user_id)
                    .bind(key.role.as_str())
                    .bind(teams)
                    .bind(key.created_at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(AdminKey {
                    public_id: key.public_id.clone(),
                    user_id: key.user_id.clone(),
                    role: key.role,
                    teams: key.teams.clone(),
                    created_at: key.created_at,
                    revoked_at: None,
                    last_used_at: None,
                })
            }

            async fn list_admin_keys(&self, include_revoked: bool) -> StoreResult<Vec<AdminKey>> {
                sqlx::query(sql::LIST)
                    .bind(include_revoked)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(key_from_row)
                    .collect()
            }

            async fn find_admin_key_by_hash(
                &self,
                sha256: &[u8; 32],
            ) -> StoreResult<Option<AdminKey>> {
                sqlx::query(sql::BY_HASH)
                    .bind(hex::encode(sha256))
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(key_from_row)
                    .transpose()
            }

            async fn revoke_admin_key(
                &self,
                public_id: &str,
                at: Timestamp,
            ) -> StoreResult<AdminKey> {
                let mut tx = self.begin_write().await?;
                let found = sqlx::query(sql::BY_ID)
                    .bind(public_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .as_ref()
                    .map(key_from_row)
                    .transpose()?
                    .ok_or_else(|| StoreError::AdminKeyNotFound(public_id.to_owned()))?;
                if found.revoked_at.is_some() {
                    return Ok(found);
                }
                sqlx::query(sql::REVOKE)
                    .bind(public_id)
                    .bind(at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(AdminKey {
                    revoked_at: Some(at),
                    ..found
                })
            }

            async fn touch_admin_key(&self, public_id: &str, at: Timestamp) -> StoreResult<()> {
                sqlx::query(sql::TOUCH)
                    .bind(public_id)
                    .bind(at.as_millis())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

mod sqlite {
    impl_admin_key_store!(crate::store::SqliteStore, sqlx::Sqlite);
}

mod postgres {
    impl_admin_key_store!(crate::store::PostgresStore, sqlx::Postgres);
}
