//! Data-plane tokens (`dataplane_tokens`): the SQL written once and stamped for SQLite and
//! PostgreSQL, like the rest of the store. Tokens are not policy: no version bump.

use std::future::Future;

use super::StoreResult;
use crate::clock::Timestamp;
use crate::dataplane::{DataPlaneToken, NewDataPlaneToken};

pub trait DataPlaneStore: Send + Sync {
    /// Inserts a token: [`super::StoreError::DataPlaneNameTaken`] when a live token has the
    /// name, [`super::StoreError::KeyIdTaken`] when the public id is in use.
    fn create_dataplane_token(
        &self,
        token: &NewDataPlaneToken,
    ) -> impl Future<Output = StoreResult<DataPlaneToken>> + Send;
    /// Tokens ordered by creation.
    fn list_dataplane_tokens(
        &self,
        include_revoked: bool,
    ) -> impl Future<Output = StoreResult<Vec<DataPlaneToken>>> + Send;
    fn find_dataplane_token_by_hash(
        &self,
        sha256: &[u8; 32],
    ) -> impl Future<Output = StoreResult<Option<DataPlaneToken>>> + Send;
    /// Revokes the live token with this name, else the token with this public id (revoking a
    /// revoked token returns it unchanged); [`super::StoreError::DataPlaneTokenNotFound`].
    fn revoke_dataplane_token(
        &self,
        name_or_public_id: &str,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<DataPlaneToken>> + Send;
    /// Records that the token was used at `at`.
    fn touch_dataplane_token(
        &self,
        public_id: &str,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

mod sql {
    macro_rules! columns {
        () => {
            "name, public_id, created_at_ms, revoked_at_ms, last_used_at_ms"
        };
    }
    pub const INSERT: &str = "INSERT INTO dataplane_tokens \
         (public_id, name, token_sha256, created_at_ms) VALUES ($1, $2, $3, $4)";
    pub const LIVE_NAME_TAKEN: &str =
        "SELECT 1 FROM dataplane_tokens WHERE name = $1 AND revoked_at_ms IS NULL";
    pub const PUBLIC_ID_TAKEN: &str = "SELECT 1 FROM dataplane_tokens WHERE public_id = $1";
    pub const LIST: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM dataplane_tokens WHERE ($1 OR revoked_at_ms IS NULL) \
         ORDER BY created_at_ms, public_id"
    );
    pub const BY_HASH: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM dataplane_tokens WHERE token_sha256 = $1"
    );
    /// The live token named `$1`, else the one whose public id is `$1`.
    pub const BY_NAME_OR_ID: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM dataplane_tokens WHERE (name = $1 AND revoked_at_ms IS NULL) OR public_id = $1 \
         ORDER BY CASE WHEN revoked_at_ms IS NULL THEN 0 ELSE 1 END LIMIT 1"
    );
    pub const REVOKE: &str = "UPDATE dataplane_tokens SET revoked_at_ms = $2 \
         WHERE public_id = $1 AND revoked_at_ms IS NULL";
    pub const TOUCH: &str = "UPDATE dataplane_tokens SET last_used_at_ms = $2 WHERE public_id = $1";
}

/// Implements [`DataPlaneStore`] for `$store`, whose sqlx database is `$db`.
macro_rules! impl_dataplane_store {
    ($store:ty, $db:ty) => {
        use sqlx::Row as _;
        use $crate::clock::Timestamp;
        use $crate::dataplane::{DataPlaneToken, NewDataPlaneToken};
        use $crate::store::dataplane::{sql, DataPlaneStore};
        use $crate::store::{StoreError, StoreResult};

        type DbRow = <$db as sqlx::Database>::Row;

        fn token_from_row(row: &DbRow) -> StoreResult<DataPlaneToken> {
            let time = |ms: Option<i64>| ms.map(Timestamp::from_millis);
            Ok(DataPlaneToken {
                name: row.try_get("name")?,
                public_id: row.try_get("public_id")?,
                created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
                revoked_at: time(row.try_get("revoked_at_ms")?),
                last_used_at: time(row.try_get("last_used_at_ms")?),
            })
        }

        impl DataPlaneStore for $store {
            async fn create_dataplane_token(
                &self,
                token: &NewDataPlaneToken,
            ) -> StoreResult<DataPlaneToken> {
                let mut tx = self.begin_write().await?;
                let taken = sqlx::query(sql::LIVE_NAME_TAKEN)
                    .bind(&token.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    return Err(StoreError::DataPlaneNameTaken(token.name.clone()));
                }
                let id_taken = sqlx::query(sql::PUBLIC_ID_TAKEN)
                    .bind(&token.public_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if id_taken.is_some() {
                    return Err(StoreError::KeyIdTaken);
                }
                sqlx::query(sql::INSERT)
                    .bind(&token.public_id)
                    .bind(&token.name)
                    .bind(hex::encode(token.sha256))
                    .bind(token.created_at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(DataPlaneToken {
                    name: token.name.clone(),
                    public_id: token.public_id.clone(),
                    created_at: token.created_at,
                    revoked_at: None,
                    last_used_at: None,
                })
            }

            async fn list_dataplane_tokens(
                &self,
                include_revoked: bool,
            ) -> StoreResult<Vec<DataPlaneToken>> {
                sqlx::query(sql::LIST)
                    .bind(include_revoked)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(token_from_row)
                    .collect()
            }

            async fn find_dataplane_token_by_hash(
                &self,
                sha256: &[u8; 32],
            ) -> StoreResult<Option<DataPlaneToken>> {
                sqlx::query(sql::BY_HASH)
                    .bind(hex::encode(sha256))
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(token_from_row)
                    .transpose()
            }

            async fn revoke_dataplane_token(
                &self,
                name_or_public_id: &str,
                at: Timestamp,
            ) -> StoreResult<DataPlaneToken> {
                let mut tx = self.begin_write().await?;
                let found = sqlx::query(sql::BY_NAME_OR_ID)
                    .bind(name_or_public_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .as_ref()
                    .map(token_from_row)
                    .transpose()?
                    .ok_or_else(|| {
                        StoreError::DataPlaneTokenNotFound(name_or_public_id.to_owned())
                    })?;
                if found.revoked_at.is_some() {
                    return Ok(found);
                }
                sqlx::query(sql::REVOKE)
                    .bind(&found.public_id)
                    .bind(at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(DataPlaneToken {
                    revoked_at: Some(at),
                    ..found
                })
            }

            async fn touch_dataplane_token(
                &self,
                public_id: &str,
                at: Timestamp,
            ) -> StoreResult<()> {
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
    impl_dataplane_store!(crate::store::SqliteStore, sqlx::Sqlite);
}

mod postgres {
    impl_dataplane_store!(crate::store::PostgresStore, sqlx::Postgres);
}
