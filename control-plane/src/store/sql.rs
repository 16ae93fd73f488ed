//! The SQL both backends run, written once.
//!
//! SQLite and PostgreSQL accept the same `$n` placeholders, `RETURNING` and
//! `ON CONFLICT … DO NOTHING`, so the queries are shared constants and [`impl_sql_store!`]
//! stamps the trait implementations for each backend's concrete sqlx types (statically typed,
//! no `Any` driver). A backend provides `pool`, `begin_write` and `begin_read`: that is where
//! the dialects differ (SQLite takes the write lock up front; PostgreSQL reads snapshots at
//! REPEATABLE READ).

use super::{StoreError, StoreResult};

pub(super) const SELECT_VERSION: &str = "SELECT version FROM policy_version WHERE id = 1";
pub(super) const BUMP_VERSION: &str =
    "UPDATE policy_version SET version = version + 1 WHERE id = 1 RETURNING version";

pub(super) const INSERT_TEAM: &str =
    "INSERT INTO teams (team_id, alias, models, blocked, created_at_ms) VALUES ($1, $2, $3, $4, $5)";
pub(super) const SELECT_TEAMS: &str =
    "SELECT team_id, alias, models, blocked, created_at_ms FROM teams ORDER BY alias";
// Ids (`team_…`) and aliases (no `_`) never overlap, so this matches at most one row.
pub(super) const SELECT_TEAM: &str =
    "SELECT team_id, alias, models, blocked, created_at_ms FROM teams WHERE team_id = $1 OR alias = $1";
pub(super) const SELECT_TEAM_ALIAS_TAKEN: &str = "SELECT 1 FROM teams WHERE alias = $1";

macro_rules! key_columns {
    () => {
        "public_id, key_sha256, last4, team_id, user_id, key_alias, models, status, \
         created_at_ms, expires_at_ms, revoked_at_ms"
    };
}
pub(super) const INSERT_KEY: &str = "INSERT INTO api_keys (public_id, key_sha256, last4, team_id, \
     user_id, key_alias, models, status, created_at_ms, expires_at_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9)";
pub(super) const SELECT_KEY_ID_TAKEN: &str = "SELECT 1 FROM api_keys WHERE public_id = $1";
pub(super) const REVOKE_KEY: &str = "UPDATE api_keys SET status = 'revoked', revoked_at_ms = $2 \
                                     WHERE public_id = $1 AND status = 'active'";
/// `$1`: team id or NULL for all teams; `$2`: include revoked keys.
pub(super) const SELECT_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE ($1 IS NULL OR team_id = $1) AND ($2 OR status = 'active') \
     ORDER BY created_at_ms, public_id"
);
pub(super) const SELECT_ALL_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys ORDER BY created_at_ms, public_id"
);
pub(super) const SELECT_KEY_BY_ID: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE public_id = $1"
);
pub(super) const SELECT_KEY_BY_HASH: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE key_sha256 = $1"
);

pub(super) fn encode_models(models: &[String]) -> StoreResult<String> {
    serde_json::to_string(models).map_err(|e| StoreError::Corrupt(format!("model list: {e}")))
}

pub(super) fn decode_models(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("model list: {e}")))
}

pub(super) fn decode_sha256(hex_digest: &str) -> StoreResult<[u8; 32]> {
    hex::decode(hex_digest)
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| StoreError::Corrupt("key hash is not 32 bytes of hex".into()))
}

pub(super) fn to_u64(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {what}")))
}

/// Implements every store trait for `$store`, whose sqlx database is `$db`.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        use sqlx::Row as _;
        use $crate::clock::Timestamp;
        use $crate::domain::{ApiKey, KeyFilter, KeyStatus, NewKey, PolicyState, Team};
        use $crate::store::sql;
        use $crate::store::{KeyStore, PolicyStore, Store, StoreError, StoreResult, TeamStore};

        type DbRow = <$db as sqlx::Database>::Row;
        type DbConnection = <$db as sqlx::Database>::Connection;

        fn team_from_row(row: &DbRow) -> StoreResult<Team> {
            Ok(Team {
                id: row.try_get("team_id")?,
                alias: row.try_get("alias")?,
                models: sql::decode_models(row.try_get("models")?)?,
                blocked: row.try_get("blocked")?,
                created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
            })
        }

        fn key_from_row(row: &DbRow) -> StoreResult<ApiKey> {
            let status: &str = row.try_get("status")?;
            Ok(ApiKey {
                public_id: row.try_get("public_id")?,
                key_sha256: sql::decode_sha256(row.try_get("key_sha256")?)?,
                last4: row.try_get("last4")?,
                team_id: row.try_get("team_id")?,
                user_id: row.try_get("user_id")?,
                alias: row.try_get("key_alias")?,
                models: sql::decode_models(row.try_get("models")?)?,
                status: KeyStatus::parse(status)
                    .ok_or_else(|| StoreError::Corrupt(format!("key status {status:?}")))?,
                created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
                expires_at: row
                    .try_get::<Option<i64>, _>("expires_at_ms")?
                    .map(Timestamp::from_millis),
                revoked_at: row
                    .try_get::<Option<i64>, _>("revoked_at_ms")?
                    .map(Timestamp::from_millis),
            })
        }

        async fn bump_version(conn: &mut DbConnection) -> StoreResult<u64> {
            let v: i64 = sqlx::query_scalar(sql::BUMP_VERSION)
                .fetch_one(&mut *conn)
                .await?;
            sql::to_u64(v, "policy version")
        }

        async fn find_team_on(
            conn: &mut DbConnection,
            id_or_alias: &str,
        ) -> StoreResult<Option<Team>> {
            sqlx::query(sql::SELECT_TEAM)
                .bind(id_or_alias)
                .fetch_optional(&mut *conn)
                .await?
                .as_ref()
                .map(team_from_row)
                .transpose()
        }

        async fn find_key_on(
            conn: &mut DbConnection,
            public_id: &str,
        ) -> StoreResult<Option<ApiKey>> {
            sqlx::query(sql::SELECT_KEY_BY_ID)
                .bind(public_id)
                .fetch_optional(&mut *conn)
                .await?
                .as_ref()
                .map(key_from_row)
                .transpose()
        }

        impl TeamStore for $store {
            async fn create_team(&self, team: &Team) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                // Bumping first takes the version row lock: policy writers run one at a time,
                // so the alias check below cannot race another insert.
                bump_version(&mut tx).await?;
                let taken = sqlx::query(sql::SELECT_TEAM_ALIAS_TAKEN)
                    .bind(&team.alias)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if taken {
                    return Err(StoreError::TeamAliasTaken(team.alias.clone()));
                }
                sqlx::query(sql::INSERT_TEAM)
                    .bind(&team.id)
                    .bind(&team.alias)
                    .bind(sql::encode_models(&team.models)?)
                    .bind(team.blocked)
                    .bind(team.created_at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_teams(&self) -> StoreResult<Vec<Team>> {
                sqlx::query(sql::SELECT_TEAMS)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(team_from_row)
                    .collect()
            }

            async fn find_team(&self, id_or_alias: &str) -> StoreResult<Option<Team>> {
                let mut conn = self.pool.acquire().await?;
                find_team_on(&mut conn, id_or_alias).await
            }
        }

        impl KeyStore for $store {
            async fn create_key(&self, key: &NewKey) -> StoreResult<ApiKey> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let team = find_team_on(&mut tx, &key.team)
                    .await?
                    .ok_or_else(|| StoreError::TeamNotFound(key.team.clone()))?;
                let id_taken = sqlx::query(sql::SELECT_KEY_ID_TAKEN)
                    .bind(&key.public_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if id_taken {
                    return Err(StoreError::KeyIdTaken);
                }
                sqlx::query(sql::INSERT_KEY)
                    .bind(&key.public_id)
                    .bind(hex::encode(key.key_sha256))
                    .bind(&key.last4)
                    .bind(&team.id)
                    .bind(&key.user_id)
                    .bind(&key.alias)
                    .bind(sql::encode_models(&key.models)?)
                    .bind(key.created_at.as_millis())
                    .bind(key.expires_at.map(Timestamp::as_millis))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(ApiKey {
                    public_id: key.public_id.clone(),
                    key_sha256: key.key_sha256,
                    last4: key.last4.clone(),
                    team_id: team.id,
                    user_id: key.user_id.clone(),
                    alias: key.alias.clone(),
                    models: key.models.clone(),
                    status: KeyStatus::Active,
                    created_at: key.created_at,
                    expires_at: key.expires_at,
                    revoked_at: None,
                })
            }

            async fn list_keys(&self, filter: &KeyFilter) -> StoreResult<Vec<ApiKey>> {
                let mut conn = self.pool.acquire().await?;
                let team_id = match &filter.team {
                    Some(team) => Some(
                        find_team_on(&mut conn, team)
                            .await?
                            .ok_or_else(|| StoreError::TeamNotFound(team.clone()))?
                            .id,
                    ),
                    None => None,
                };
                sqlx::query(sql::SELECT_KEYS)
                    .bind(team_id)
                    .bind(filter.include_revoked)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(key_from_row)
                    .collect()
            }

            async fn find_key_by_hash(&self, sha256: &[u8; 32]) -> StoreResult<Option<ApiKey>> {
                sqlx::query(sql::SELECT_KEY_BY_HASH)
                    .bind(hex::encode(sha256))
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(key_from_row)
                    .transpose()
            }

            async fn revoke_key(&self, public_id: &str, at: Timestamp) -> StoreResult<ApiKey> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let changed = sqlx::query(sql::REVOKE_KEY)
                    .bind(public_id)
                    .bind(at.as_millis())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let key = find_key_on(&mut tx, public_id)
                    .await?
                    .ok_or_else(|| StoreError::KeyNotFound(public_id.to_owned()))?;
                if changed == 1 {
                    tx.commit().await?;
                }
                // Otherwise it was already revoked: dropping `tx` rolls the version bump back.
                Ok(key)
            }
        }

        impl PolicyStore for $store {
            async fn policy_version(&self) -> StoreResult<u64> {
                let v: i64 = sqlx::query_scalar(sql::SELECT_VERSION)
                    .fetch_one(&self.pool)
                    .await?;
                sql::to_u64(v, "policy version")
            }

            async fn load_policy(&self) -> StoreResult<PolicyState> {
                let mut tx = self.begin_read().await?;
                let version: i64 = sqlx::query_scalar(sql::SELECT_VERSION)
                    .fetch_one(&mut *tx)
                    .await?;
                let teams = sqlx::query(sql::SELECT_TEAMS)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(team_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                let keys = sqlx::query(sql::SELECT_ALL_KEYS)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(key_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                tx.commit().await?;
                Ok(PolicyState {
                    version: sql::to_u64(version, "policy version")?,
                    teams,
                    keys,
                })
            }
        }

        impl Store for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}

pub(super) use impl_sql_store;
