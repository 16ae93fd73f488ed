//! The SQL both backends run, written once.
//!
//! SQLite and PostgreSQL accept the same `$n` placeholders, `RETURNING` and
//! `ON CONFLICT … DO NOTHING`, so the queries are shared constants and [`impl_sql_store!`]
//! stamps the trait implementations for each backend's concrete sqlx types (statically typed,
//! no `Any` driver). A backend provides `pool`, `begin_write` and `begin_read`: that is where
//! the dialects differ (SQLite takes the write lock up front; PostgreSQL reads snapshots at
//! REPEATABLE READ).
//!
//! Teams, keys and users share the limit columns (`limit_columns!`), so one window expression
//! (`window_start!`) sums the spend of every budget in a single query per kind, over each
//! scope's effective budget (`effective_budgets!`: its own, or its budget object's).

use super::{StoreError, StoreResult};
use crate::domain::{ScopeKind, ValidationError};
use crate::limits::Limits;

pub(super) const SELECT_VERSION: &str = "SELECT version FROM policy_version WHERE id = 1";
pub(super) const BUMP_VERSION: &str =
    "UPDATE policy_version SET version = version + 1 WHERE id = 1 RETURNING version";

/// The limit columns, always last in inserts and updates (see `bind_limits!`).
macro_rules! limit_columns {
    () => {
        "rpm_limit, tpm_limit, max_parallel_requests, max_budget, budget_duration_ms, \
         budget_calendar, budget_anchor_ms"
    };
}
pub(super) use limit_columns;

macro_rules! team_columns {
    () => {
        concat!(
            "team_id, alias, models, blocked, created_at_ms, metadata, redaction_policy_json, \
             high_trust, keep_redacted_prompt, idp_groups, ",
            limit_columns!()
        )
    };
}
pub(super) const INSERT_TEAM: &str = concat!(
    "INSERT INTO teams (",
    team_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
);
pub(super) const UPDATE_TEAM: &str = "UPDATE teams SET alias = $2, models = $3, blocked = $4, \
     metadata = $5, redaction_policy_json = $6, high_trust = $7, keep_redacted_prompt = $8, \
     rpm_limit = $9, tpm_limit = $10, max_parallel_requests = $11, max_budget = $12, \
     budget_duration_ms = $13, budget_calendar = $14, budget_anchor_ms = $15, idp_groups = $16 \
     WHERE team_id = $1";
pub(super) const SELECT_TEAMS: &str =
    concat!("SELECT ", team_columns!(), " FROM teams ORDER BY alias");
// Ids (`team_…`) and aliases (no `_`) never overlap, so this matches at most one row.
pub(super) const SELECT_TEAM: &str = concat!(
    "SELECT ",
    team_columns!(),
    " FROM teams WHERE team_id = $1 OR alias = $1"
);
/// Teams are named by id or alias in one namespace, so a name is taken by either.
pub(super) const SELECT_TEAMS_NAMED: &str =
    "SELECT team_id FROM teams WHERE alias = $1 OR team_id = $1";

macro_rules! key_columns {
    () => {
        concat!(
            "public_id, key_sha256, last4, team_id, user_id, key_alias, models, status, \
             created_at_ms, expires_at_ms, revoked_at_ms, metadata, blocked, can_assert_user, \
             assert_user_secret, ",
            limit_columns!()
        )
    };
}
/// When the key was last used, from the usage records (index on `key_id, timestamp_ms`).
macro_rules! last_used {
    () => {
        "(SELECT MAX(u.timestamp_ms) FROM usage_records u WHERE u.key_id = k.public_id)"
    };
}
pub(super) const INSERT_KEY: &str = concat!(
    "INSERT INTO api_keys (public_id, key_sha256, last4, team_id, user_id, key_alias, models, \
     status, created_at_ms, expires_at_ms, metadata, blocked, can_assert_user, \
     assert_user_secret, ",
    limit_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $10, $11, $12, $13, \
     $14, $15, $16, $17, $18, $19, $20)"
);
pub(super) const UPDATE_KEY: &str = "UPDATE api_keys SET user_id = $2, key_alias = $3, \
     models = $4, expires_at_ms = $5, metadata = $6, blocked = $7, rpm_limit = $8, \
     tpm_limit = $9, max_parallel_requests = $10, max_budget = $11, budget_duration_ms = $12, \
     budget_calendar = $13, budget_anchor_ms = $14, can_assert_user = $15, \
     assert_user_secret = $16 WHERE public_id = $1";
pub(super) const SELECT_KEY_ID_TAKEN: &str = "SELECT 1 FROM api_keys WHERE public_id = $1";
pub(super) const REVOKE_KEY: &str = "UPDATE api_keys SET status = 'revoked', revoked_at_ms = $2 \
                                     WHERE public_id = $1 AND status = 'active'";
/// `$1` team id, `$2` include revoked, `$3` user id, `$4` expired at, `$5` unused since,
/// `$6`/`$7` one tag (the others are checked on the decoded metadata); NULL = no filter.
pub(super) const SELECT_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    ", ",
    last_used!(),
    " AS last_used_ms FROM api_keys k \
     WHERE ($1 IS NULL OR team_id = $1) AND ($2 OR status = 'active') \
     AND ($3 IS NULL OR user_id = $3) AND ($4 IS NULL OR expires_at_ms <= $4) \
     AND ($5 IS NULL OR COALESCE(",
    last_used!(),
    ", created_at_ms) < $5) \
     AND ($6 IS NULL OR EXISTS (SELECT 1 FROM key_tags t WHERE t.public_id = k.public_id \
     AND t.tag_name = $6 AND t.tag_value = $7)) \
     ORDER BY created_at_ms, public_id"
);
/// For snapshots: only a `PolicyKey`'s columns, decoded by position (`policy_key_from_row`),
/// with the limit columns last as everywhere. Unsorted: a snapshot's key order means nothing and
/// sorting 100k rows costs more than reading them.
pub(super) const SELECT_POLICY_KEYS: &str = concat!(
    "SELECT public_id, key_sha256, team_id, user_id, key_alias, models, status, expires_at_ms, \
     blocked, can_assert_user, assert_user_secret, previous_key_sha256, \
     previous_key_expires_at_ms, ",
    limit_columns!(),
    " FROM api_keys"
);
pub(super) const SELECT_KEY_BY_ID: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE public_id = $1"
);
pub(super) const SELECT_LISTED_KEY_BY_ID: &str = concat!(
    "SELECT ",
    key_columns!(),
    ", ",
    last_used!(),
    " AS last_used_ms FROM api_keys k WHERE public_id = $1"
);
pub(super) const SELECT_KEY_BY_HASH: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE key_sha256 = $1"
);
pub(super) const DELETE_KEY_TAGS: &str = "DELETE FROM key_tags WHERE public_id = $1";
pub(super) const UPDATE_KEY_SECRET: &str = "UPDATE api_keys SET key_sha256 = $2, last4 = $3, \
     previous_key_sha256 = $4, previous_key_expires_at_ms = $5 WHERE public_id = $1";
pub(super) const INSERT_KEY_TAG: &str =
    "INSERT INTO key_tags (public_id, tag_name, tag_value) VALUES ($1, $2, $3)";

macro_rules! user_columns {
    () => {
        concat!("user_id, created_at_ms, team_id, ", limit_columns!())
    };
}
pub(super) const INSERT_USER: &str = concat!(
    "INSERT INTO users (",
    user_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
pub(super) const UPDATE_USER: &str = "UPDATE users SET rpm_limit = $2, tpm_limit = $3, \
     max_parallel_requests = $4, max_budget = $5, budget_duration_ms = $6, budget_calendar = $7, \
     budget_anchor_ms = $8, team_id = $9 WHERE user_id = $1";
pub(super) const SELECT_USER: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE user_id = $1");
pub(super) const SELECT_USERS: &str =
    concat!("SELECT ", user_columns!(), " FROM users ORDER BY user_id");

macro_rules! model_columns {
    () => {
        "name, upstream_model, cluster, input_cost_per_mtok, output_cost_per_mtok, \
         default_max_tokens, created_at_ms, max_output_tokens"
    };
}
pub(super) const INSERT_MODEL: &str = concat!(
    "INSERT INTO models (",
    model_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
);
pub(super) const UPDATE_MODEL: &str = "UPDATE models SET upstream_model = $2, cluster = $3, \
     input_cost_per_mtok = $4, output_cost_per_mtok = $5, default_max_tokens = $6, \
     max_output_tokens = $7 WHERE name = $1";
pub(super) const DELETE_MODEL: &str = "DELETE FROM models WHERE name = $1";
pub(super) const DELETE_TEAM_KEY_TAGS: &str =
    "DELETE FROM key_tags WHERE public_id IN (SELECT public_id FROM api_keys WHERE team_id = $1)";
pub(super) const DELETE_TEAM_KEYS: &str = "DELETE FROM api_keys WHERE team_id = $1";
/// Team and user ids are the caller's, so a new team or user of a deleted one's id must not
/// find its budget object attached (key ids are never reused).
pub(super) const DELETE_TEAM_BUDGET_LINK: &str =
    "DELETE FROM budget_links WHERE scope_kind = 'team' AND scope_id = $1";
pub(super) const DELETE_TEAM: &str = "DELETE FROM teams WHERE team_id = $1";
pub(super) const DELETE_USER_KEY_TAGS: &str =
    "DELETE FROM key_tags WHERE public_id IN (SELECT public_id FROM api_keys WHERE user_id = $1)";
pub(super) const DELETE_USER_KEYS: &str = "DELETE FROM api_keys WHERE user_id = $1";
pub(super) const DELETE_USER_BUDGET_LINK: &str =
    "DELETE FROM budget_links WHERE scope_kind = 'user' AND scope_id = $1";
pub(super) const DELETE_USER: &str = "DELETE FROM users WHERE user_id = $1";
pub(super) const SELECT_MODEL: &str =
    concat!("SELECT ", model_columns!(), " FROM models WHERE name = $1");
pub(super) const SELECT_MODELS: &str =
    concat!("SELECT ", model_columns!(), " FROM models ORDER BY name");

macro_rules! budget_columns {
    () => {
        "max_budget, budget_duration_ms, budget_calendar, budget_anchor_ms"
    };
}

/// The budget each row of `$table` is held to, as `scope_id` and the `budget_columns!`: its
/// own, or else the `max_budget` of the budget object it names (`budget_links`), whose
/// windows of its `budget_duration` run from the scope's creation (LiteLLM's budget objects
/// are templates: each scope spends against the cap on its own). A scope's own cap wins, as
/// its own rate limits do. The one definition the spend tracker and the snapshot both read.
macro_rules! effective_budgets {
    ($table:literal, $id:literal, $kind:literal, $filter:literal) => {
        concat!(
            "(SELECT s.",
            $id,
            " AS scope_id, COALESCE(s.max_budget, b.max_budget) AS max_budget, \
             CASE WHEN s.max_budget IS NULL THEN b.budget_duration_ms \
             ELSE s.budget_duration_ms END AS budget_duration_ms, \
             CASE WHEN s.max_budget IS NULL THEN NULL ELSE s.budget_calendar END \
             AS budget_calendar, \
             CASE WHEN s.max_budget IS NULL THEN s.created_at_ms ELSE s.budget_anchor_ms END \
             AS budget_anchor_ms FROM ",
            $table,
            " s LEFT JOIN budget_links l ON l.scope_kind = '",
            $kind,
            "' AND l.scope_id = s.",
            $id,
            " LEFT JOIN budgets b ON b.budget_id = l.budget_id",
            $filter,
            ")"
        )
    };
}

/// The effective budget of every team, key and user, per kind.
macro_rules! effective_budgets_of {
    (Team) => {
        effective_budgets!("teams", "team_id", "team", "")
    };
    // Revoked keys never spend again.
    (Key) => {
        effective_budgets!("api_keys", "public_id", "key", " WHERE s.status = 'active'")
    };
    (User) => {
        effective_budgets!("users", "user_id", "user", "")
    };
}

macro_rules! select_budgets {
    ($kind:ident) => {
        (
            ScopeKind::$kind,
            concat!(
                "SELECT scope_id, ",
                budget_columns!(),
                " FROM ",
                effective_budgets_of!($kind),
                " e WHERE max_budget IS NOT NULL"
            ),
        )
    };
}

/// `(kind, query)` for every scope kind's effective budgets.
pub(super) const SELECT_BUDGETS: [(ScopeKind, &str); 3] = [
    select_budgets!(Team),
    select_budgets!(Key),
    select_budgets!(User),
];

pub(super) const USAGE_AFTER: &str = "SELECT seq, key_id, team_id, user_id, spend, timestamp_ms \
     FROM usage_records WHERE seq > $1 ORDER BY seq LIMIT $2";
pub(super) const MAX_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM usage_records";

/// Where the current budget window of scope row `s` starts at `$1` (now), given the calendar
/// starts `$2` (day), `$3` (week), `$4` (month): the same arithmetic as
/// `BudgetPeriod::window_at` (integer division truncates, and `$1 > anchor` keeps it a floor).
macro_rules! window_start {
    () => {
        "(CASE s.budget_calendar WHEN 'day' THEN $2 WHEN 'week' THEN $3 WHEN 'month' THEN $4 \
         ELSE CASE WHEN s.budget_duration_ms IS NULL OR $1 <= s.budget_anchor_ms \
         THEN s.budget_anchor_ms \
         ELSE s.budget_anchor_ms + (($1 - s.budget_anchor_ms) / s.budget_duration_ms) \
         * s.budget_duration_ms END END)"
    };
}

/// The queries that read one kind of scope's spend: `(budgets, one scope, history)`.
macro_rules! spend_queries {
    ($kind:ident, $usage_column:literal) => {
        (
            concat!(
                "SELECT s.scope_id, SUM(u.spend) AS spend FROM ",
                effective_budgets_of!($kind),
                " s JOIN usage_records u ON u.",
                $usage_column,
                " = s.scope_id",
                // `+u.seq` hides the column from SQLite's planner, so each budget's window is
                // read as a range of the (scope, timestamp) index instead of walking every
                // record through the `seq` index.
                " WHERE s.max_budget IS NOT NULL AND +u.seq <= $5 AND u.timestamp_ms >= ",
                window_start!(),
                " GROUP BY s.scope_id"
            ),
            concat!(
                "SELECT COALESCE(SUM(spend), 0.0) FROM usage_records WHERE ",
                $usage_column,
                " = $1 AND timestamp_ms >= $2 AND seq <= $3"
            ),
            concat!(
                "SELECT timestamp_ms / 86400000 AS day, SUM(spend) AS spend, \
                 COUNT(*) AS requests, CAST(SUM(tokens_in) AS BIGINT) AS tokens_in, \
                 CAST(SUM(tokens_out) AS BIGINT) AS tokens_out FROM usage_records WHERE ",
                $usage_column,
                " = $1 AND timestamp_ms >= $2 GROUP BY timestamp_ms / 86400000 ORDER BY day"
            ),
        )
    };
}

pub(super) struct SpendQueries {
    pub budgets: &'static str,
    pub scope: &'static str,
    pub history: &'static str,
}

pub(super) fn spend_queries(kind: ScopeKind) -> SpendQueries {
    let (budgets, scope, history) = match kind {
        ScopeKind::Key => spend_queries!(Key, "key_id"),
        ScopeKind::Team => spend_queries!(Team, "team_id"),
        ScopeKind::User => spend_queries!(User, "user_id"),
    };
    SpendQueries {
        budgets,
        scope,
        history,
    }
}

/// Limits as stored (see `limit_columns!`).
pub(super) struct LimitColumns {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub max_parallel: Option<i64>,
    pub max_budget: Option<f64>,
    pub duration_ms: Option<i64>,
    pub calendar: Option<&'static str>,
    pub anchor_ms: Option<i64>,
}

impl LimitColumns {
    pub fn of(limits: &Limits) -> StoreResult<Self> {
        let int = |field: &'static str, v: Option<u64>| {
            v.map(i64::try_from)
                .transpose()
                .map_err(|_| StoreError::Invalid(ValidationError::LimitTooLarge(field)))
        };
        let (duration_ms, calendar) = limits
            .budget
            .map_or((None, None), |b| b.period.to_columns());
        Ok(Self {
            rpm: int("rpm_limit", limits.rpm)?,
            tpm: int("tpm_limit", limits.tpm)?,
            max_parallel: limits.max_parallel.map(i64::from),
            max_budget: limits.budget.map(|b| b.max_budget),
            duration_ms,
            calendar,
            anchor_ms: limits.budget.map(|b| b.anchor.as_millis()),
        })
    }
}

/// Appends the seven limit binds, in `limit_columns!` order.
macro_rules! bind_limits {
    ($query:expr, $columns:expr) => {{
        let c = &$columns;
        $query
            .bind(c.rpm)
            .bind(c.tpm)
            .bind(c.max_parallel)
            .bind(c.max_budget)
            .bind(c.duration_ms)
            .bind(c.calendar)
            .bind(c.anchor_ms)
    }};
}
pub(super) use bind_limits;

pub(super) fn encode_models(models: &[String]) -> StoreResult<String> {
    serde_json::to_string(models).map_err(|e| StoreError::Corrupt(format!("model list: {e}")))
}

pub(super) fn decode_models(json: &str) -> StoreResult<Vec<String>> {
    // Most keys use their team's allowlist; a snapshot decodes every key's.
    if json == "[]" {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("model list: {e}")))
}

pub(super) fn decode_metadata(json: &str) -> StoreResult<crate::domain::Metadata> {
    crate::domain::Metadata::parse(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn decode_sha256(hex_digest: &str) -> StoreResult<[u8; 32]> {
    let mut digest = [0; 32];
    hex::decode_to_slice(hex_digest, &mut digest)
        .map_err(|_| StoreError::Corrupt("key hash is not 32 bytes of hex".into()))?;
    Ok(digest)
}

pub(super) fn to_u64(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {what}")))
}

/// Implements the policy, key, team, user, model and spend traits for `$store`, whose sqlx
/// database is `$db`.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        use sqlx::{Column as _, Row as _};
        use $crate::assertion::{AssertionSecret, UserAssertion};
        use $crate::budget::{Budget, BudgetPeriod, CalendarStarts, DAY_MS};
        use $crate::clock::Timestamp;
        use $crate::domain::{
            ApiKey, Change, DailySpend, KeyFilter, KeyPatch, KeyStatus, ListedKey, Metadata,
            ModelPatch, ModelRoute, NewKey, PolicyKey, PolicyState, PreviousSecret, ScopeKind,
            Team, TeamPatch, UsageRow, User, UserPatch,
        };
        use $crate::limits::{check_key_within_team, Limits};
        use $crate::store::sql::{self, bind_limits, LimitColumns};
        use $crate::store::{
            BudgetSpend, BudgetState, KeyStore, ModelStore, PolicyStore, SpendStore, Store,
            StoreError, StoreResult, TeamStore, UserStore,
        };

        type DbRow = <$db as sqlx::Database>::Row;
        type DbConnection = <$db as sqlx::Database>::Connection;

        /// The budget from the `budget_columns!` starting at column `first`.
        fn budget_at(row: &DbRow, first: usize) -> StoreResult<Option<Budget>> {
            let Some(max_budget) = row.try_get::<Option<f64>, _>(first)? else {
                return Ok(None);
            };
            let period = BudgetPeriod::from_columns(
                row.try_get(first + 1)?,
                row.try_get::<Option<&str>, _>(first + 2)?,
            )
            .ok_or_else(|| StoreError::Corrupt("budget period".into()))?;
            let anchor = row
                .try_get::<Option<i64>, _>(first + 3)?
                .ok_or_else(|| StoreError::Corrupt("budget without anchor".into()))?;
            Ok(Some(Budget {
                max_budget,
                period,
                anchor: Timestamp::from_millis(anchor),
            }))
        }

        /// Limits from the `limit_columns!`, found by name once per row.
        fn limits_from_row(row: &DbRow) -> StoreResult<Limits> {
            limits_at(row, row.try_column("rpm_limit")?.ordinal())
        }

        /// Limits from the `limit_columns!` starting at column `first`.
        fn limits_at(row: &DbRow, first: usize) -> StoreResult<Limits> {
            let count = |offset: usize, column: &str| -> StoreResult<Option<u64>> {
                row.try_get::<Option<i64>, _>(first + offset)?
                    .map(|v| sql::to_u64(v, column))
                    .transpose()
            };
            let budget = budget_at(row, first + 3)?;
            Ok(Limits {
                rpm: count(0, "rpm_limit")?,
                tpm: count(1, "tpm_limit")?,
                max_parallel: count(2, "max_parallel_requests")?
                    .map(u32::try_from)
                    .transpose()
                    .map_err(|_| StoreError::Corrupt("max_parallel_requests".into()))?,
                budget,
            })
        }

        fn team_from_row(row: &DbRow) -> StoreResult<Team> {
            Ok(Team {
                id: row.try_get("team_id")?,
                alias: row.try_get("alias")?,
                models: sql::decode_models(row.try_get("models")?)?,
                limits: limits_from_row(row)?,
                metadata: sql::decode_metadata(row.try_get("metadata")?)?,
                blocked: row.try_get("blocked")?,
                redaction_policy: row.try_get("redaction_policy_json")?,
                high_trust: row.try_get("high_trust")?,
                keep_redacted_prompt: row.try_get("keep_redacted_prompt")?,
                idp_groups: sql::decode_models(row.try_get("idp_groups")?)?,
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
                limits: limits_from_row(row)?,
                metadata: sql::decode_metadata(row.try_get("metadata")?)?,
                blocked: row.try_get("blocked")?,
                user_assertion: UserAssertion::from_columns(
                    row.try_get("can_assert_user")?,
                    row.try_get("assert_user_secret")?,
                ),
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

        /// Decodes a `SELECT_POLICY_KEYS` row by position: a snapshot decodes every key.
        fn policy_key_from_row(row: &DbRow) -> StoreResult<PolicyKey> {
            let status: &str = row.try_get(6)?;
            Ok(PolicyKey {
                public_id: row.try_get(0)?,
                key_sha256: sql::decode_sha256(row.try_get(1)?)?,
                team_id: row.try_get(2)?,
                user_id: row.try_get(3)?,
                alias: row.try_get(4)?,
                models: sql::decode_models(row.try_get(5)?)?,
                status: KeyStatus::parse(status)
                    .ok_or_else(|| StoreError::Corrupt(format!("key status {status:?}")))?,
                expires_at: row
                    .try_get::<Option<i64>, _>(7)?
                    .map(Timestamp::from_millis),
                blocked: row.try_get(8)?,
                user_assertion: UserAssertion::from_columns(row.try_get(9)?, row.try_get(10)?),
                previous_secret: match (
                    row.try_get::<Option<&str>, _>(11)?,
                    row.try_get::<Option<i64>, _>(12)?,
                ) {
                    (Some(hash), Some(until)) => Some(PreviousSecret {
                        sha256: sql::decode_sha256(hash)?,
                        expires_at: Timestamp::from_millis(until),
                    }),
                    _ => None,
                },
                limits: limits_at(row, 13)?,
            })
        }

        fn listed_key_from_row(row: &DbRow) -> StoreResult<ListedKey> {
            Ok(ListedKey {
                key: key_from_row(row)?,
                last_used_at: row
                    .try_get::<Option<i64>, _>("last_used_ms")?
                    .map(Timestamp::from_millis),
            })
        }

        fn user_from_row(row: &DbRow) -> StoreResult<User> {
            Ok(User {
                id: row.try_get("user_id")?,
                team_id: row.try_get("team_id")?,
                limits: limits_from_row(row)?,
                created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
            })
        }

        fn model_from_row(row: &DbRow) -> StoreResult<ModelRoute> {
            Ok(ModelRoute {
                name: row.try_get("name")?,
                upstream_model: row.try_get("upstream_model")?,
                cluster: row.try_get("cluster")?,
                input_cost_per_mtok: row.try_get("input_cost_per_mtok")?,
                output_cost_per_mtok: row.try_get("output_cost_per_mtok")?,
                default_max_tokens: row
                    .try_get::<Option<i64>, _>("default_max_tokens")?
                    .map(|v| sql::to_u64(v, "default_max_tokens"))
                    .transpose()?,
                max_output_tokens: row
                    .try_get::<Option<i64>, _>("max_output_tokens")?
                    .map(|v| sql::to_u64(v, "max_output_tokens"))
                    .transpose()?,
                created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
            })
        }

        /// Every scope's effective budget (`sql::SELECT_BUDGETS`).
        async fn budgets_on(
            conn: &mut DbConnection,
        ) -> StoreResult<Vec<(ScopeKind, String, Budget)>> {
            let mut budgets = Vec::new();
            for (kind, query) in sql::SELECT_BUDGETS {
                for row in sqlx::query(query).fetch_all(&mut *conn).await? {
                    // Columns: scope_id, then the budget_columns!.
                    if let Some(budget) = budget_at(&row, 1)? {
                        budgets.push((kind, row.try_get("scope_id")?, budget));
                    }
                }
            }
            Ok(budgets)
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

        /// Whether a team other than `except` has `name` as its id or alias.
        async fn name_taken(
            conn: &mut DbConnection,
            name: &str,
            except: Option<&str>,
        ) -> StoreResult<bool> {
            let rows = sqlx::query(sql::SELECT_TEAMS_NAMED)
                .bind(name)
                .fetch_all(&mut *conn)
                .await?;
            for row in &rows {
                let id: String = row.try_get(0)?;
                if Some(id.as_str()) != except {
                    return Ok(true);
                }
            }
            Ok(false)
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

        /// Inserts one key on `conn` (inside the caller's transaction, which bumps the version);
        /// the checks are [`KeyStore::create_key`]'s.
        async fn insert_key_on(conn: &mut DbConnection, key: &NewKey) -> StoreResult<ApiKey> {
            let limits = LimitColumns::of(&key.limits)?;
            let team = match &key.team {
                Some(team) => {
                    let found = find_team_on(&mut *conn, team)
                        .await?
                        .ok_or_else(|| StoreError::TeamNotFound(team.clone()))?;
                    check_key_within_team(&key.models, &key.limits, &found)?;
                    Some(found.id)
                }
                None => None,
            };
            let id_taken = sqlx::query(sql::SELECT_KEY_ID_TAKEN)
                .bind(&key.public_id)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
            if id_taken {
                return Err(StoreError::KeyIdTaken);
            }
            let insert = sqlx::query(sql::INSERT_KEY)
                .bind(&key.public_id)
                .bind(hex::encode(key.key_sha256))
                .bind(&key.last4)
                .bind(&team)
                .bind(&key.user_id)
                .bind(&key.alias)
                .bind(sql::encode_models(&key.models)?)
                .bind(key.created_at.as_millis())
                .bind(key.expires_at.map(Timestamp::as_millis))
                .bind(key.metadata.to_json())
                .bind(key.blocked)
                .bind(key.user_assertion.can_assert_user())
                .bind(key.user_assertion.secret().map(AssertionSecret::expose));
            bind_limits!(insert, limits).execute(&mut *conn).await?;
            write_key_tags(&mut *conn, &key.public_id, &key.metadata).await?;
            Ok(ApiKey {
                public_id: key.public_id.clone(),
                key_sha256: key.key_sha256,
                last4: key.last4.clone(),
                team_id: team,
                user_id: key.user_id.clone(),
                alias: key.alias.clone(),
                models: key.models.clone(),
                limits: key.limits,
                metadata: key.metadata.clone(),
                blocked: key.blocked,
                user_assertion: key.user_assertion.clone(),
                status: KeyStatus::Active,
                created_at: key.created_at,
                expires_at: key.expires_at,
                revoked_at: None,
            })
        }

        async fn write_key_tags(
            conn: &mut DbConnection,
            public_id: &str,
            metadata: &Metadata,
        ) -> StoreResult<()> {
            sqlx::query(sql::DELETE_KEY_TAGS)
                .bind(public_id)
                .execute(&mut *conn)
                .await?;
            for (name, value) in metadata.tags() {
                sqlx::query(sql::INSERT_KEY_TAG)
                    .bind(public_id)
                    .bind(name)
                    .bind(value)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        async fn find_user_on(conn: &mut DbConnection, user_id: &str) -> StoreResult<Option<User>> {
            sqlx::query(sql::SELECT_USER)
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await?
                .as_ref()
                .map(user_from_row)
                .transpose()
        }

        async fn find_model_on(
            conn: &mut DbConnection,
            name: &str,
        ) -> StoreResult<Option<ModelRoute>> {
            sqlx::query(sql::SELECT_MODEL)
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
                .as_ref()
                .map(model_from_row)
                .transpose()
        }

        impl TeamStore for $store {
            async fn create_team(&self, team: &Team) -> StoreResult<()> {
                let limits = LimitColumns::of(&team.limits)?;
                let mut tx = self.begin_write().await?;
                // Bumping first takes the version row lock: policy writers run one at a time,
                // so the alias check below cannot race another insert.
                bump_version(&mut tx).await?;
                if name_taken(&mut tx, &team.alias, None).await? {
                    return Err(StoreError::TeamAliasTaken(team.alias.clone()));
                }
                if team.id != team.alias && name_taken(&mut tx, &team.id, None).await? {
                    return Err(StoreError::TeamIdTaken(team.id.clone()));
                }
                let insert = sqlx::query(sql::INSERT_TEAM)
                    .bind(&team.id)
                    .bind(&team.alias)
                    .bind(sql::encode_models(&team.models)?)
                    .bind(team.blocked)
                    .bind(team.created_at.as_millis())
                    .bind(team.metadata.to_json())
                    .bind(&team.redaction_policy)
                    .bind(team.high_trust)
                    .bind(team.keep_redacted_prompt)
                    .bind(sql::encode_models(&team.idp_groups)?);
                bind_limits!(insert, limits).execute(&mut *tx).await?;
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

            async fn update_team(
                &self,
                id_or_alias: &str,
                patch: &TeamPatch,
                now: Timestamp,
            ) -> StoreResult<Team> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let team = find_team_on(&mut tx, id_or_alias)
                    .await?
                    .ok_or_else(|| StoreError::TeamNotFound(id_or_alias.to_owned()))?;
                let updated = patch.apply(&team, now)?;
                if updated == team {
                    // Dropping `tx` rolls the version bump back.
                    return Ok(team);
                }
                if updated.alias != team.alias
                    && name_taken(&mut tx, &updated.alias, Some(&team.id)).await?
                {
                    return Err(StoreError::TeamAliasTaken(updated.alias));
                }
                let limits = LimitColumns::of(&updated.limits)?;
                let update = sqlx::query(sql::UPDATE_TEAM)
                    .bind(&updated.id)
                    .bind(&updated.alias)
                    .bind(sql::encode_models(&updated.models)?)
                    .bind(updated.blocked)
                    .bind(updated.metadata.to_json())
                    .bind(&updated.redaction_policy)
                    .bind(updated.high_trust)
                    .bind(updated.keep_redacted_prompt);
                bind_limits!(update, limits)
                    .bind(sql::encode_models(&updated.idp_groups)?)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(updated)
            }

            async fn delete_teams(
                &self,
                ids_or_aliases: &[String],
            ) -> StoreResult<(Vec<Team>, u64)> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let (mut teams, mut keys) = (Vec::new(), 0);
                for name in ids_or_aliases {
                    let team = find_team_on(&mut tx, name)
                        .await?
                        .ok_or_else(|| StoreError::TeamNotFound(name.clone()))?;
                    let statements = [
                        sql::DELETE_TEAM_KEY_TAGS,
                        sql::DELETE_TEAM_KEYS,
                        sql::DELETE_TEAM_BUDGET_LINK,
                        sql::DELETE_TEAM,
                    ];
                    keys += delete_cascade(&mut tx, statements, &team.id).await?;
                    teams.push(team);
                }
                tx.commit().await?;
                Ok((teams, keys))
            }
        }

        /// Deletes an owner's key tags, keys and then the owner itself (three statements
        /// binding `id`); returns how many keys went.
        async fn delete_cascade(
            conn: &mut DbConnection,
            [tags, keys, link, owner]: [&str; 4],
            id: &str,
        ) -> StoreResult<u64> {
            sqlx::query(tags).bind(id).execute(&mut *conn).await?;
            let deleted = sqlx::query(keys).bind(id).execute(&mut *conn).await?;
            sqlx::query(link).bind(id).execute(&mut *conn).await?;
            sqlx::query(owner).bind(id).execute(&mut *conn).await?;
            Ok(deleted.rows_affected())
        }

        impl KeyStore for $store {
            async fn create_key(&self, key: &NewKey) -> StoreResult<ApiKey> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let created = insert_key_on(&mut tx, key).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn create_keys(&self, keys: &[NewKey]) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let version = bump_version(&mut tx).await?;
                for key in keys {
                    insert_key_on(&mut tx, key).await?;
                }
                tx.commit().await?;
                Ok(version)
            }

            async fn list_keys(&self, filter: &KeyFilter) -> StoreResult<Vec<ListedKey>> {
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
                // The first tag narrows in SQL (indexed); the rest are checked on the rows.
                let (first_tag, other_tags) = match filter.tags.split_first() {
                    Some((first, rest)) => (Some(first), rest),
                    None => (None, &[][..]),
                };
                let keys = sqlx::query(sql::SELECT_KEYS)
                    .bind(team_id)
                    .bind(filter.include_revoked)
                    .bind(&filter.user_id)
                    .bind(filter.expired_at.map(Timestamp::as_millis))
                    .bind(filter.unused_since.map(Timestamp::as_millis))
                    .bind(first_tag.map(|(name, _)| name))
                    .bind(first_tag.map(|(_, value)| value))
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(listed_key_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(keys
                    .into_iter()
                    .filter(|k| {
                        other_tags
                            .iter()
                            .all(|(name, value)| k.key.metadata.has_tag(name, value))
                    })
                    .collect())
            }

            async fn find_key(&self, public_id: &str) -> StoreResult<Option<ListedKey>> {
                sqlx::query(sql::SELECT_LISTED_KEY_BY_ID)
                    .bind(public_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(listed_key_from_row)
                    .transpose()
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

            async fn replace_key_secret(
                &self,
                public_id: &str,
                sha256: &[u8; 32],
                last4: &str,
                grace_until: Option<Timestamp>,
            ) -> StoreResult<ApiKey> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let key = find_key_on(&mut tx, public_id)
                    .await?
                    .ok_or_else(|| StoreError::KeyNotFound(public_id.to_owned()))?;
                if key.status == KeyStatus::Revoked {
                    return Err(StoreError::KeyRevoked(public_id.to_owned()));
                }
                sqlx::query(sql::UPDATE_KEY_SECRET)
                    .bind(public_id)
                    .bind(hex::encode(sha256))
                    .bind(last4)
                    .bind(grace_until.map(|_| hex::encode(key.key_sha256)))
                    .bind(grace_until.map(Timestamp::as_millis))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(ApiKey {
                    key_sha256: *sha256,
                    last4: last4.to_owned(),
                    ..key
                })
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

            async fn update_key(
                &self,
                public_id: &str,
                patch: &KeyPatch,
                now: Timestamp,
            ) -> StoreResult<ApiKey> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let key = find_key_on(&mut tx, public_id)
                    .await?
                    .ok_or_else(|| StoreError::KeyNotFound(public_id.to_owned()))?;
                if key.status == KeyStatus::Revoked {
                    return Err(StoreError::KeyRevoked(public_id.to_owned()));
                }
                let team = match &key.team_id {
                    Some(team) => {
                        Some(find_team_on(&mut tx, team).await?.ok_or_else(|| {
                            StoreError::Corrupt(format!("team of key {public_id}"))
                        })?)
                    }
                    None => None,
                };
                let updated = patch.apply(&key, team.as_ref(), now)?;
                if updated == key {
                    return Ok(key);
                }
                let limits = LimitColumns::of(&updated.limits)?;
                let update = sqlx::query(sql::UPDATE_KEY)
                    .bind(&updated.public_id)
                    .bind(&updated.user_id)
                    .bind(&updated.alias)
                    .bind(sql::encode_models(&updated.models)?)
                    .bind(updated.expires_at.map(Timestamp::as_millis))
                    .bind(updated.metadata.to_json())
                    .bind(updated.blocked);
                bind_limits!(update, limits)
                    .bind(updated.user_assertion.can_assert_user())
                    .bind(updated.user_assertion.secret().map(AssertionSecret::expose))
                    .execute(&mut *tx)
                    .await?;
                if updated.metadata != key.metadata {
                    write_key_tags(&mut tx, public_id, &updated.metadata).await?;
                }
                tx.commit().await?;
                Ok(updated)
            }
        }

        impl UserStore for $store {
            async fn create_user(&self, user: &User) -> StoreResult<()> {
                let limits = LimitColumns::of(&user.limits)?;
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                if find_user_on(&mut tx, &user.id).await?.is_some() {
                    return Err(StoreError::UserExists(user.id.clone()));
                }
                let insert = sqlx::query(sql::INSERT_USER)
                    .bind(&user.id)
                    .bind(user.created_at.as_millis())
                    .bind(&user.team_id);
                bind_limits!(insert, limits).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn update_user(
                &self,
                user_id: &str,
                patch: &UserPatch,
                now: Timestamp,
            ) -> StoreResult<User> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let user = find_user_on(&mut tx, user_id)
                    .await?
                    .ok_or_else(|| StoreError::UserNotFound(user_id.to_owned()))?;
                let team = match &patch.team {
                    Change::Set(team) => Change::Set(
                        find_team_on(&mut tx, team)
                            .await?
                            .ok_or_else(|| StoreError::TeamNotFound(team.clone()))?
                            .id,
                    ),
                    Change::Clear => Change::Clear,
                    Change::Keep => Change::Keep,
                };
                let resolved = UserPatch {
                    team,
                    ..patch.clone()
                };
                let updated = resolved.apply(&user, now)?;
                if updated == user {
                    return Ok(user);
                }
                let limits = LimitColumns::of(&updated.limits)?;
                let update = sqlx::query(sql::UPDATE_USER).bind(&updated.id);
                bind_limits!(update, limits)
                    .bind(&updated.team_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(updated)
            }

            async fn find_user(&self, user_id: &str) -> StoreResult<Option<User>> {
                let mut conn = self.pool.acquire().await?;
                find_user_on(&mut conn, user_id).await
            }

            async fn list_users(&self) -> StoreResult<Vec<User>> {
                sqlx::query(sql::SELECT_USERS)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(user_from_row)
                    .collect()
            }

            async fn delete_users(&self, user_ids: &[String]) -> StoreResult<(Vec<User>, u64)> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let (mut users, mut keys) = (Vec::new(), 0);
                for id in user_ids {
                    let user = find_user_on(&mut tx, id)
                        .await?
                        .ok_or_else(|| StoreError::UserNotFound(id.clone()))?;
                    let statements = [
                        sql::DELETE_USER_KEY_TAGS,
                        sql::DELETE_USER_KEYS,
                        sql::DELETE_USER_BUDGET_LINK,
                        sql::DELETE_USER,
                    ];
                    keys += delete_cascade(&mut tx, statements, &user.id).await?;
                    users.push(user);
                }
                tx.commit().await?;
                Ok((users, keys))
            }
        }

        impl ModelStore for $store {
            async fn create_model(&self, model: &ModelRoute) -> StoreResult<()> {
                let default_max_tokens =
                    tokens_column(model.default_max_tokens, "default_max_tokens")?;
                let max_output_tokens =
                    tokens_column(model.max_output_tokens, "max_output_tokens")?;
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                if find_model_on(&mut tx, &model.name).await?.is_some() {
                    return Err(StoreError::ModelExists(model.name.clone()));
                }
                sqlx::query(sql::INSERT_MODEL)
                    .bind(&model.name)
                    .bind(&model.upstream_model)
                    .bind(&model.cluster)
                    .bind(model.input_cost_per_mtok)
                    .bind(model.output_cost_per_mtok)
                    .bind(default_max_tokens)
                    .bind(model.created_at.as_millis())
                    .bind(max_output_tokens)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn update_model(
                &self,
                name: &str,
                patch: &ModelPatch,
            ) -> StoreResult<ModelRoute> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let model = find_model_on(&mut tx, name)
                    .await?
                    .ok_or_else(|| StoreError::ModelNotFound(name.to_owned()))?;
                let updated = patch.apply(&model);
                if updated == model {
                    return Ok(model);
                }
                sqlx::query(sql::UPDATE_MODEL)
                    .bind(&updated.name)
                    .bind(&updated.upstream_model)
                    .bind(&updated.cluster)
                    .bind(updated.input_cost_per_mtok)
                    .bind(updated.output_cost_per_mtok)
                    .bind(tokens_column(
                        updated.default_max_tokens,
                        "default_max_tokens",
                    )?)
                    .bind(tokens_column(
                        updated.max_output_tokens,
                        "max_output_tokens",
                    )?)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(updated)
            }

            async fn delete_model(&self, name: &str) -> StoreResult<ModelRoute> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx).await?;
                let model = find_model_on(&mut tx, name)
                    .await?
                    .ok_or_else(|| StoreError::ModelNotFound(name.to_owned()))?;
                sqlx::query(sql::DELETE_MODEL)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(model)
            }

            async fn list_models(&self) -> StoreResult<Vec<ModelRoute>> {
                sqlx::query(sql::SELECT_MODELS)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(model_from_row)
                    .collect()
            }
        }

        fn tokens_column(tokens: Option<u64>, column: &str) -> StoreResult<Option<i64>> {
            tokens
                .map(i64::try_from)
                .transpose()
                .map_err(|_| StoreError::Corrupt(format!("{column} out of range")))
        }

        impl SpendStore for $store {
            async fn load_budgets(&self) -> StoreResult<BudgetState> {
                let mut tx = self.begin_read().await?;
                let version: i64 = sqlx::query_scalar(sql::SELECT_VERSION)
                    .fetch_one(&mut *tx)
                    .await?;
                let budgets = budgets_on(&mut tx).await?;
                tx.commit().await?;
                Ok(BudgetState {
                    version: sql::to_u64(version, "policy version")?,
                    budgets,
                })
            }

            async fn usage_after(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<UsageRow>> {
                sqlx::query(sql::USAGE_AFTER)
                    .bind(after_seq)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| {
                        Ok(UsageRow {
                            id: row.try_get("seq")?,
                            key_id: row.try_get("key_id")?,
                            team_id: row.try_get("team_id")?,
                            user_id: row.try_get("user_id")?,
                            spend: row.try_get("spend")?,
                            timestamp: Timestamp::from_millis(row.try_get("timestamp_ms")?),
                        })
                    })
                    .collect()
            }

            async fn budget_spend(
                &self,
                now: Timestamp,
                upto_seq: Option<i64>,
            ) -> StoreResult<BudgetSpend> {
                let starts = CalendarStarts::at(now);
                let mut tx = self.begin_read().await?;
                let upto_seq = match upto_seq {
                    Some(seq) => seq,
                    None => sqlx::query_scalar(sql::MAX_SEQ).fetch_one(&mut *tx).await?,
                };
                let mut spend = Vec::new();
                for kind in ScopeKind::ALL {
                    let rows = sqlx::query(sql::spend_queries(kind).budgets)
                        .bind(now.as_millis())
                        .bind(starts.day.as_millis())
                        .bind(starts.week.as_millis())
                        .bind(starts.month.as_millis())
                        .bind(upto_seq)
                        .fetch_all(&mut *tx)
                        .await?;
                    for row in &rows {
                        spend.push((kind, row.try_get("scope_id")?, row.try_get("spend")?));
                    }
                }
                tx.commit().await?;
                Ok(BudgetSpend { upto_seq, spend })
            }

            async fn scope_spend(
                &self,
                kind: ScopeKind,
                id: &str,
                since: Timestamp,
                upto_seq: i64,
            ) -> StoreResult<f64> {
                Ok(sqlx::query_scalar(sql::spend_queries(kind).scope)
                    .bind(id)
                    .bind(since.as_millis())
                    .bind(upto_seq)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn spend_history(
                &self,
                kind: ScopeKind,
                id: &str,
                since: Timestamp,
            ) -> StoreResult<Vec<DailySpend>> {
                sqlx::query(sql::spend_queries(kind).history)
                    .bind(id)
                    .bind(since.as_millis())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| {
                        let day: i64 = row.try_get("day")?;
                        Ok(DailySpend {
                            day: Timestamp::from_millis(day.saturating_mul(DAY_MS)),
                            spend: row.try_get("spend")?,
                            requests: sql::to_u64(row.try_get("requests")?, "request count")?,
                            tokens_in: sql::to_u64(row.try_get("tokens_in")?, "tokens")?,
                            tokens_out: sql::to_u64(row.try_get("tokens_out")?, "tokens")?,
                        })
                    })
                    .collect()
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
                let keys = sqlx::query(sql::SELECT_POLICY_KEYS)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(policy_key_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                let users = sqlx::query(sql::SELECT_USERS)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(user_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                let models = sqlx::query(sql::SELECT_MODELS)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(model_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                let identity_providers = load_identity_providers_on(&mut tx).await?;
                let named = budgeted_scopes_on(&mut tx).await?;
                let budgets = budgets_on(&mut tx).await?;
                tx.commit().await?;
                let mut state = PolicyState {
                    version: sql::to_u64(version, "policy version")?,
                    teams,
                    keys,
                    users,
                    models,
                    identity_providers,
                };
                $crate::named_budget::resolve_into(&mut state, named, budgets);
                Ok(state)
            }

            async fn bump_policy_version(&self) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let version = bump_version(&mut tx).await?;
                tx.commit().await?;
                Ok(version)
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
