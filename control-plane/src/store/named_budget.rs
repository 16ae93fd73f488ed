//! LiteLLM budget objects (`budgets`) and which key, team or user names one (`budget_links`).
//! The SQL is written once and stamped per backend by [`impl_named_budget_store!`], expanded
//! after `impl_sql_store!` in the same module (it uses that module's `DbRow`,
//! `DbConnection`, `bump_version` and imports). Budget objects change limits and spend caps,
//! so every change to one in force bumps the policy version (and the spend tracker follows).

use std::collections::HashMap;
use std::future::Future;

use super::StoreResult;
use crate::clock::Timestamp;
use crate::domain::ScopeKind;
use crate::named_budget::{NamedBudget, NamedBudgetInput};

pub trait NamedBudgetStore: Send + Sync {
    /// [`super::StoreError::BudgetExists`] when the id is taken.
    fn create_budget(&self, budget: &NamedBudget) -> impl Future<Output = StoreResult<()>> + Send;
    fn find_budget(
        &self,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<NamedBudget>>> + Send;
    /// Budgets ordered by id.
    fn list_budgets(&self) -> impl Future<Output = StoreResult<Vec<NamedBudget>>> + Send;
    /// Applies `input` to the budget in one transaction and returns it before and after;
    /// [`super::StoreError::BudgetNotFound`], [`super::StoreError::Invalid`].
    fn update_budget(
        &self,
        id: &str,
        input: &NamedBudgetInput,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<(NamedBudget, NamedBudget)>> + Send;
    /// Deletes a budget nothing names and returns it; [`super::StoreError::BudgetInUse`]
    /// deletes nothing.
    fn delete_budget(&self, id: &str) -> impl Future<Output = StoreResult<NamedBudget>> + Send;
    /// Makes the scope name `budget` (`None`: no budget) and returns the budget it named
    /// before. [`super::StoreError::BudgetNotFound`].
    fn link_budget(
        &self,
        kind: ScopeKind,
        scope_id: &str,
        budget: Option<&str>,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;
    /// The budget the scope names.
    fn budget_link(
        &self,
        kind: ScopeKind,
        scope_id: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;
    /// The budget each scope of `kind` names, by scope id (links of deleted scopes included:
    /// callers look up scopes they read).
    fn budget_links(
        &self,
        kind: ScopeKind,
    ) -> impl Future<Output = StoreResult<HashMap<String, String>>> + Send;
}

pub(super) mod sql {
    macro_rules! columns {
        () => {
            "b.budget_id, b.max_budget, b.soft_budget, b.budget_duration, b.rpm_limit, \
             b.tpm_limit, b.max_parallel_requests, b.created_at_ms, b.updated_at_ms"
        };
    }
    pub const INSERT: &str = "INSERT INTO budgets (budget_id, max_budget, soft_budget, \
         budget_duration, rpm_limit, tpm_limit, max_parallel_requests, created_at_ms, \
         updated_at_ms, budget_duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (budget_id) DO NOTHING";
    /// Binds like [`INSERT`]; `$8`, the unchanged creation time, pins the row.
    pub const UPDATE: &str = "UPDATE budgets SET max_budget = $2, soft_budget = $3, \
         budget_duration = $4, rpm_limit = $5, tpm_limit = $6, max_parallel_requests = $7, \
         updated_at_ms = $9, budget_duration_ms = $10 WHERE budget_id = $1 \
         AND created_at_ms = $8";
    pub const SELECT_ONE: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM budgets b WHERE b.budget_id = $1"
    );
    pub const SELECT_ALL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM budgets b ORDER BY b.budget_id"
    );
    pub const DELETE: &str = "DELETE FROM budgets WHERE budget_id = $1";
    pub const DELETE_LINKS_TO: &str = "DELETE FROM budget_links WHERE budget_id = $1";
    pub const SELECT_LINK: &str =
        "SELECT budget_id FROM budget_links WHERE scope_kind = $1 AND scope_id = $2";
    pub const SELECT_LINKS_OF_KIND: &str =
        "SELECT scope_id, budget_id FROM budget_links WHERE scope_kind = $1";
    pub const UPSERT_LINK: &str = "INSERT INTO budget_links (scope_kind, scope_id, budget_id) \
         VALUES ($1, $2, $3) ON CONFLICT (scope_kind, scope_id) DO UPDATE SET budget_id = $3";
    pub const DELETE_LINK: &str =
        "DELETE FROM budget_links WHERE scope_kind = $1 AND scope_id = $2";
    /// Links whose scope still exists (see the migration: links outlive deleted scopes).
    macro_rules! live_links {
        () => {
            " FROM budget_links l JOIN budgets b ON b.budget_id = l.budget_id \
             WHERE ((l.scope_kind = 'key' AND EXISTS (SELECT 1 FROM api_keys k \
             WHERE k.public_id = l.scope_id AND k.status = 'active')) \
             OR (l.scope_kind = 'team' AND EXISTS (SELECT 1 FROM teams t \
             WHERE t.team_id = l.scope_id)) \
             OR (l.scope_kind = 'user' AND EXISTS (SELECT 1 FROM users u \
             WHERE u.user_id = l.scope_id)))"
        };
    }
    pub const SELECT_LIVE_LINKS_TO: &str = concat!(
        "SELECT l.scope_kind, l.scope_id",
        live_links!(),
        " AND l.budget_id = $1 ORDER BY l.scope_kind, l.scope_id"
    );
    pub const SELECT_LIVE_LINKS: &str = concat!(
        "SELECT l.scope_kind, l.scope_id, ",
        columns!(),
        live_links!()
    );
}

pub(super) fn kind_from_column(s: &str) -> StoreResult<ScopeKind> {
    ScopeKind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| super::StoreError::Corrupt(format!("budget link kind {s:?}")))
}

/// Implements [`NamedBudgetStore`] for `$store`, and `budgeted_scopes_on`, which
/// `load_policy` uses to resolve attached budgets into the scopes' limits.
macro_rules! impl_named_budget_store {
    ($store:ty) => {
        use $crate::named_budget::{NamedBudget, NamedBudgetInput};
        use $crate::store::named_budget::{self as budget_sql, NamedBudgetStore};

        fn named_budget_at(row: &DbRow, first: usize) -> StoreResult<NamedBudget> {
            let count = |i: usize, name: &str| -> StoreResult<Option<u64>> {
                row.try_get::<Option<i64>, _>(first + i)?
                    .map(|v| sql::to_u64(v, name))
                    .transpose()
            };
            Ok(NamedBudget {
                id: row.try_get(first)?,
                max_budget: row.try_get(first + 1)?,
                soft_budget: row.try_get(first + 2)?,
                budget_duration: row.try_get(first + 3)?,
                rpm: count(4, "rpm_limit")?,
                tpm: count(5, "tpm_limit")?,
                max_parallel: count(6, "max_parallel_requests")?
                    .map(u32::try_from)
                    .transpose()
                    .map_err(|_| StoreError::Corrupt("max_parallel_requests".into()))?,
                created_at: Timestamp::from_millis(row.try_get(first + 7)?),
                updated_at: Timestamp::from_millis(row.try_get(first + 8)?),
            })
        }

        async fn write_budget_on(
            conn: &mut DbConnection,
            query: &'static str,
            b: &NamedBudget,
        ) -> StoreResult<u64> {
            // The rate-limit columns as every scope's are written, and the duration as
            // scopes store theirs (`effective_budgets!` reads it).
            let rates = sql::LimitColumns::of(&b.under(&Limits::default()))?;
            let (duration_ms, _) = b
                .period()
                .map_err($crate::domain::ValidationError::from)?
                .to_columns();
            Ok(sqlx::query(query)
                .bind(&b.id)
                .bind(b.max_budget)
                .bind(b.soft_budget)
                .bind(&b.budget_duration)
                .bind(rates.rpm)
                .bind(rates.tpm)
                .bind(rates.max_parallel)
                .bind(b.created_at.as_millis())
                .bind(b.updated_at.as_millis())
                .bind(duration_ms)
                .execute(&mut *conn)
                .await?
                .rows_affected())
        }

        async fn find_budget_on(
            conn: &mut DbConnection,
            id: &str,
        ) -> StoreResult<Option<NamedBudget>> {
            sqlx::query(budget_sql::sql::SELECT_ONE)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| named_budget_at(&row, 0))
                .transpose()
        }

        /// `kind id` of every live scope that names the budget.
        async fn live_links_to_on(conn: &mut DbConnection, id: &str) -> StoreResult<Vec<String>> {
            sqlx::query(budget_sql::sql::SELECT_LIVE_LINKS_TO)
                .bind(id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| {
                    Ok(format!(
                        "{} {}",
                        row.try_get::<String, _>(0)?,
                        row.try_get::<String, _>(1)?
                    ))
                })
                .collect()
        }

        /// Every live scope that names a budget, with that budget.
        async fn budgeted_scopes_on(
            conn: &mut DbConnection,
        ) -> StoreResult<Vec<(ScopeKind, String, NamedBudget)>> {
            sqlx::query(budget_sql::sql::SELECT_LIVE_LINKS)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        budget_sql::kind_from_column(row.try_get(0)?)?,
                        row.try_get(1)?,
                        named_budget_at(row, 2)?,
                    ))
                })
                .collect()
        }

        impl NamedBudgetStore for $store {
            async fn create_budget(&self, budget: &NamedBudget) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                if write_budget_on(&mut tx, budget_sql::sql::INSERT, budget).await? == 0 {
                    return Err(StoreError::BudgetExists(budget.id.clone()));
                }
                tx.commit().await?;
                Ok(())
            }

            async fn find_budget(&self, id: &str) -> StoreResult<Option<NamedBudget>> {
                let mut conn = self.pool.acquire().await?;
                find_budget_on(&mut conn, id).await
            }

            async fn list_budgets(&self) -> StoreResult<Vec<NamedBudget>> {
                sqlx::query(budget_sql::sql::SELECT_ALL)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| named_budget_at(row, 0))
                    .collect()
            }

            async fn update_budget(
                &self,
                id: &str,
                input: &NamedBudgetInput,
                now: Timestamp,
            ) -> StoreResult<(NamedBudget, NamedBudget)> {
                let mut tx = self.begin_write().await?;
                let before = find_budget_on(&mut tx, id)
                    .await?
                    .ok_or_else(|| StoreError::BudgetNotFound(id.to_owned()))?;
                let after = input.clone().apply_to(id, Some(&before), now)?;
                let linked = !live_links_to_on(&mut tx, id).await?.is_empty();
                write_budget_on(&mut tx, budget_sql::sql::UPDATE, &after).await?;
                if linked {
                    bump_version(&mut tx).await?;
                }
                tx.commit().await?;
                Ok((before, after))
            }

            async fn delete_budget(&self, id: &str) -> StoreResult<NamedBudget> {
                let mut tx = self.begin_write().await?;
                let found = find_budget_on(&mut tx, id)
                    .await?
                    .ok_or_else(|| StoreError::BudgetNotFound(id.to_owned()))?;
                let attached = live_links_to_on(&mut tx, id).await?;
                if !attached.is_empty() {
                    return Err(StoreError::BudgetInUse {
                        budget: id.to_owned(),
                        attached: attached.join(", "),
                    });
                }
                // Only stale links (to deleted scopes) are left.
                sqlx::query(budget_sql::sql::DELETE_LINKS_TO)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(budget_sql::sql::DELETE)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(found)
            }

            async fn link_budget(
                &self,
                kind: ScopeKind,
                scope_id: &str,
                budget: Option<&str>,
            ) -> StoreResult<Option<String>> {
                let mut tx = self.begin_write().await?;
                let before: Option<String> = sqlx::query_scalar(budget_sql::sql::SELECT_LINK)
                    .bind(kind.as_str())
                    .bind(scope_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if before.as_deref() == budget {
                    return Ok(before);
                }
                match budget {
                    Some(id) => {
                        find_budget_on(&mut tx, id)
                            .await?
                            .ok_or_else(|| StoreError::BudgetNotFound(id.to_owned()))?;
                        sqlx::query(budget_sql::sql::UPSERT_LINK)
                            .bind(kind.as_str())
                            .bind(scope_id)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    None => {
                        sqlx::query(budget_sql::sql::DELETE_LINK)
                            .bind(kind.as_str())
                            .bind(scope_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                bump_version(&mut tx).await?;
                tx.commit().await?;
                Ok(before)
            }

            async fn budget_link(
                &self,
                kind: ScopeKind,
                scope_id: &str,
            ) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar(budget_sql::sql::SELECT_LINK)
                    .bind(kind.as_str())
                    .bind(scope_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn budget_links(
                &self,
                kind: ScopeKind,
            ) -> StoreResult<std::collections::HashMap<String, String>> {
                Ok(
                    sqlx::query_as::<_, (String, String)>(budget_sql::sql::SELECT_LINKS_OF_KIND)
                        .bind(kind.as_str())
                        .fetch_all(&self.pool)
                        .await?
                        .into_iter()
                        .collect(),
                )
            }
        }
    };
}
pub(super) use impl_named_budget_store;
