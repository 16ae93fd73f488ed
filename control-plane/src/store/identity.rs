//! Storage of IdP issuers ([`IdentityStore`]): the SQL both backends run and the
//! implementation stamped per backend by [`impl_identity_store!`] (beside `impl_sql_store!`,
//! whose row helpers and version bump it shares).
//!
//! Settings changes and changed keys bump the policy version (they are in every snapshot);
//! the fetch bookkeeping (when, last error) does not.

use std::future::Future;

use super::sql::limit_columns;
use super::{StoreError, StoreResult};
use crate::authz::Role;
use crate::clock::Timestamp;
use crate::identity::{AdminRoleGroup, IdentityProvider, IdentityProviderPatch, JwksFetchOutcome};

pub trait IdentityStore: Send + Sync {
    /// [`super::StoreError::IdentityProviderExists`] when the issuer is registered.
    fn create_identity_provider(
        &self,
        provider: &IdentityProvider,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Applies `patch` in one transaction; a patch that changes nothing leaves the version
    /// alone. [`super::StoreError::IdentityProviderNotFound`], [`super::StoreError::Invalid`].
    fn update_identity_provider(
        &self,
        issuer: &str,
        patch: &IdentityProviderPatch,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<IdentityProvider>> + Send;
    /// Removes the issuer and returns it as it was.
    fn delete_identity_provider(
        &self,
        issuer: &str,
    ) -> impl Future<Output = StoreResult<IdentityProvider>> + Send;
    fn find_identity_provider(
        &self,
        issuer: &str,
    ) -> impl Future<Output = StoreResult<Option<IdentityProvider>>> + Send;
    /// Issuers ordered by issuer.
    fn list_identity_providers(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<IdentityProvider>>> + Send;
    /// Records a fetch of the issuer's keys; bumps the version only when the keys changed.
    /// Returns the issuer as stored afterwards, `None` if it was removed meanwhile.
    fn record_jwks_fetch(
        &self,
        issuer: &str,
        outcome: &JwksFetchOutcome,
    ) -> impl Future<Output = StoreResult<Option<IdentityProvider>>> + Send;
}

/// The limit columns (default user limits) last, as on every table that has them.
macro_rules! idp_columns {
    () => {
        concat!(
            "issuer, audiences, allowed_groups, jwks_source, jwks_url, jwks_json, \
             jwks_fetched_at_ms, next_refresh_at_ms, last_error, last_error_at_ms, user_claim, \
             groups_claim, clock_skew_s, admin_roles, created_at_ms, ",
            limit_columns!()
        )
    };
}
/// Binds in `bind_provider!` order, then the creation time.
pub(super) const INSERT_IDP: &str = concat!(
    "INSERT INTO identity_providers (issuer, audiences, allowed_groups, jwks_source, jwks_url, \
     jwks_json, jwks_fetched_at_ms, next_refresh_at_ms, last_error, last_error_at_ms, \
     user_claim, groups_claim, clock_skew_s, admin_roles, ",
    limit_columns!(),
    ", created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
     $15, $16, $17, $18, $19, $20, $21, $22)"
);
pub(super) const UPDATE_IDP: &str = "UPDATE identity_providers SET audiences = $2, \
     allowed_groups = $3, jwks_source = $4, jwks_url = $5, jwks_json = $6, \
     jwks_fetched_at_ms = $7, next_refresh_at_ms = $8, last_error = $9, last_error_at_ms = $10, \
     user_claim = $11, groups_claim = $12, clock_skew_s = $13, admin_roles = $14, \
     rpm_limit = $15, tpm_limit = $16, max_parallel_requests = $17, max_budget = $18, \
     budget_duration_ms = $19, budget_calendar = $20, budget_anchor_ms = $21 WHERE issuer = $1";
pub(super) const SELECT_IDPS: &str = concat!(
    "SELECT ",
    idp_columns!(),
    " FROM identity_providers ORDER BY issuer"
);
pub(super) const SELECT_IDP: &str = concat!(
    "SELECT ",
    idp_columns!(),
    " FROM identity_providers WHERE issuer = $1"
);
/// Keeps a configured URL; records where discovery led otherwise.
pub(super) const RECORD_FETCHED: &str = "UPDATE identity_providers SET jwks_json = $2, \
     jwks_url = CASE WHEN jwks_source = 'url' THEN jwks_url ELSE $3 END, \
     jwks_fetched_at_ms = $4, next_refresh_at_ms = $5, last_error = NULL, \
     last_error_at_ms = NULL WHERE issuer = $1";
/// Fail static: the keys stay.
pub(super) const RECORD_FAILED: &str = "UPDATE identity_providers SET last_error = $2, \
     last_error_at_ms = $3, next_refresh_at_ms = $4 WHERE issuer = $1";
pub(super) const DELETE_IDP: &str = "DELETE FROM identity_providers WHERE issuer = $1";

/// The stored `(jwks_source, jwks_url)` pair as a source.
pub(super) fn source_from_columns(
    source: &str,
    url: Option<String>,
) -> StoreResult<crate::identity::JwksSource> {
    use crate::identity::JwksSource;
    match (source, url) {
        ("url", Some(url)) => Ok(JwksSource::Url(url)),
        ("discovery", _) => Ok(JwksSource::Discovery),
        ("file", _) => Ok(JwksSource::File),
        (other, _) => Err(StoreError::Corrupt(format!(
            "identity provider jwks_source {other:?}"
        ))),
    }
}

/// The `jwks_url` column: the configured URL, else where the keys were last fetched from.
pub(super) fn url_column(provider: &IdentityProvider) -> Option<&str> {
    match &provider.source {
        crate::identity::JwksSource::Url(url) => Some(url),
        _ => provider.keys.fetched_from.as_deref(),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AdminRoleColumn {
    group: String,
    role: String,
}

/// The `admin_roles` column: a JSON list of `{"group", "role"}` in the admin's order.
pub(super) fn encode_admin_roles(roles: &[AdminRoleGroup]) -> StoreResult<String> {
    let column: Vec<AdminRoleColumn> = roles
        .iter()
        .map(|m| AdminRoleColumn {
            group: m.group.clone(),
            role: m.role.as_str().to_owned(),
        })
        .collect();
    serde_json::to_string(&column).map_err(|e| StoreError::Corrupt(format!("admin_roles: {e}")))
}

pub(super) fn decode_admin_roles(column: &str) -> StoreResult<Vec<AdminRoleGroup>> {
    let corrupt = |what: String| StoreError::Corrupt(format!("admin_roles: {what}"));
    let column: Vec<AdminRoleColumn> =
        serde_json::from_str(column).map_err(|e| corrupt(e.to_string()))?;
    column
        .into_iter()
        .map(|m| {
            let role = Role::parse(&m.role).ok_or_else(|| corrupt(m.role.clone()))?;
            Ok(AdminRoleGroup {
                group: m.group,
                role,
            })
        })
        .collect()
}

/// Binds every column but the creation time, in `UPDATE_IDP`'s order (`$1` = issuer).
macro_rules! bind_provider {
    ($query:expr, $p:expr) => {{
        let p: &IdentityProvider = $p;
        let limits = LimitColumns::of(&p.default_user_limits)?;
        let query = $query
            .bind(&p.issuer)
            .bind(sql::encode_models(&p.audiences)?)
            .bind(sql::encode_models(&p.allowed_groups)?)
            .bind(p.source.as_str())
            .bind(idp_sql::url_column(p))
            .bind(&p.keys.jwks_json)
            .bind(p.keys.fetched_at.map(Timestamp::as_millis))
            .bind(p.keys.next_refresh_at.map(Timestamp::as_millis))
            .bind(&p.keys.last_error)
            .bind(p.keys.last_error_at.map(Timestamp::as_millis))
            .bind(&p.user_claim)
            .bind(&p.groups_claim)
            .bind(i64::from(p.clock_skew_s))
            .bind(idp_sql::encode_admin_roles(&p.admin_roles)?);
        bind_limits!(query, limits)
    }};
}
pub(super) use bind_provider;

/// Implements [`IdentityStore`] for `$store`; expanded after `impl_sql_store!` in the same
/// module, whose `DbRow`, `DbConnection`, `limits_from_row`, `bump_version` and imports it uses.
macro_rules! impl_identity_store {
    ($store:ty) => {
        use $crate::identity::{
            IdentityProvider, IdentityProviderPatch, JwksFetchOutcome, JwksState,
        };
        use $crate::store::identity::{self as idp_sql, bind_provider};
        use $crate::store::IdentityStore;

        fn identity_provider_from_row(row: &DbRow) -> StoreResult<IdentityProvider> {
            let millis = |column: &str| -> StoreResult<Option<Timestamp>> {
                Ok(row
                    .try_get::<Option<i64>, _>(column)?
                    .map(Timestamp::from_millis))
            };
            let source = idp_sql::source_from_columns(
                row.try_get("jwks_source")?,
                row.try_get("jwks_url")?,
            )?;
            let fetched_from = match source {
                $crate::identity::JwksSource::Url(_) => None,
                _ => row.try_get("jwks_url")?,
            };
            Ok(IdentityProvider {
                issuer: row.try_get("issuer")?,
                audiences: sql::decode_models(row.try_get("audiences")?)?,
                allowed_groups: sql::decode_models(row.try_get("allowed_groups")?)?,
                source,
                user_claim: row.try_get("user_claim")?,
                groups_claim: row.try_get("groups_claim")?,
                clock_skew_s: u32::try_from(row.try_get::<i64, _>("clock_skew_s")?)
                    .map_err(|_| StoreError::Corrupt("clock_skew_s".into()))?,
                default_user_limits: limits_from_row(row)?,
                admin_roles: idp_sql::decode_admin_roles(row.try_get("admin_roles")?)?,
                created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
                keys: JwksState {
                    jwks_json: row.try_get("jwks_json")?,
                    fetched_from,
                    fetched_at: millis("jwks_fetched_at_ms")?,
                    next_refresh_at: millis("next_refresh_at_ms")?,
                    last_error: row.try_get("last_error")?,
                    last_error_at: millis("last_error_at_ms")?,
                },
            })
        }

        async fn find_identity_provider_on(
            conn: &mut DbConnection,
            issuer: &str,
        ) -> StoreResult<Option<IdentityProvider>> {
            sqlx::query(idp_sql::SELECT_IDP)
                .bind(issuer)
                .fetch_optional(&mut *conn)
                .await?
                .as_ref()
                .map(identity_provider_from_row)
                .transpose()
        }

        async fn load_identity_providers_on(
            conn: &mut DbConnection,
        ) -> StoreResult<Vec<IdentityProvider>> {
            sqlx::query(idp_sql::SELECT_IDPS)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(identity_provider_from_row)
                .collect()
        }

        /// Writes every column but the issuer and creation time.
        async fn write_identity_provider_on(
            conn: &mut DbConnection,
            p: &IdentityProvider,
        ) -> StoreResult<()> {
            bind_provider!(sqlx::query(idp_sql::UPDATE_IDP), p)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        impl IdentityStore for $store {
            async fn create_identity_provider(&self, p: &IdentityProvider) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                if find_identity_provider_on(&mut tx, &p.issuer)
                    .await?
                    .is_some()
                {
                    return Err(StoreError::IdentityProviderExists(p.issuer.clone()));
                }
                bind_provider!(sqlx::query(idp_sql::INSERT_IDP), p)
                    .bind(p.created_at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn update_identity_provider(
                &self,
                issuer: &str,
                patch: &IdentityProviderPatch,
                now: Timestamp,
            ) -> StoreResult<IdentityProvider> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let current = find_identity_provider_on(&mut tx, issuer)
                    .await?
                    .ok_or_else(|| StoreError::IdentityProviderNotFound(issuer.to_owned()))?;
                let updated = patch.apply(&current, now)?;
                if updated == current {
                    // Dropping `tx` rolls the version bump back.
                    return Ok(current);
                }
                write_identity_provider_on(&mut tx, &updated).await?;
                tx.commit().await?;
                Ok(updated)
            }

            async fn delete_identity_provider(
                &self,
                issuer: &str,
            ) -> StoreResult<IdentityProvider> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let current = find_identity_provider_on(&mut tx, issuer)
                    .await?
                    .ok_or_else(|| StoreError::IdentityProviderNotFound(issuer.to_owned()))?;
                sqlx::query(idp_sql::DELETE_IDP)
                    .bind(issuer)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(current)
            }

            async fn find_identity_provider(
                &self,
                issuer: &str,
            ) -> StoreResult<Option<IdentityProvider>> {
                let mut conn = self.pool.acquire().await?;
                find_identity_provider_on(&mut conn, issuer).await
            }

            async fn list_identity_providers(&self) -> StoreResult<Vec<IdentityProvider>> {
                let mut conn = self.pool.acquire().await?;
                load_identity_providers_on(&mut conn).await
            }

            async fn record_jwks_fetch(
                &self,
                issuer: &str,
                outcome: &JwksFetchOutcome,
            ) -> StoreResult<Option<IdentityProvider>> {
                let mut tx = self.begin_write().await?;
                let Some(current) = find_identity_provider_on(&mut tx, issuer).await? else {
                    return Ok(None);
                };
                match outcome {
                    JwksFetchOutcome::Fetched {
                        jwks_json,
                        url,
                        at,
                        next_refresh_at,
                    } => {
                        // Only changed keys make a new snapshot.
                        if current.keys.jwks_json.as_deref() != Some(jwks_json.as_str()) {
                            bump_version(&mut tx).await?;
                        }
                        sqlx::query(idp_sql::RECORD_FETCHED)
                            .bind(issuer)
                            .bind(jwks_json)
                            .bind(url)
                            .bind(at.as_millis())
                            .bind(next_refresh_at.as_millis())
                            .execute(&mut *tx)
                            .await?;
                    }
                    JwksFetchOutcome::Failed {
                        error,
                        at,
                        next_refresh_at,
                    } => {
                        sqlx::query(idp_sql::RECORD_FAILED)
                            .bind(issuer)
                            .bind(error)
                            .bind(at.as_millis())
                            .bind(next_refresh_at.as_millis())
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                let updated = find_identity_provider_on(&mut tx, issuer).await?;
                tx.commit().await?;
                Ok(updated)
            }
        }
    };
}
pub(super) use impl_identity_store;
