//! `/spend/*`: spend reports of a key, team or user.

use crate::authz::Caller;
use axum::extract::Extension;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::error::RestError;
use super::input::required;
use super::views::{spend_log_json, spend_report_json};
use super::{params, Answer, Params, Shared};
use crate::admin::{Admin, SpendScope};
use crate::audit::AuditFilter;
use crate::budget::DAY_MS;
use crate::clock::Timestamp;
use crate::store::Store;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SpendQuery {
    key: Option<String>,
    team_id: Option<String>,
    user_id: Option<String>,
    /// Days of daily history, today included (default 30).
    days: Option<u32>,
}

pub(super) const DEFAULT_HISTORY_DAYS: u32 = 30;

pub(super) async fn spend<S: Store>(
    admin: &Admin<S>,
    caller: &Caller,
    scope: SpendScope,
    days: Option<u32>,
) -> Answer {
    let report = admin
        .spend(caller, scope, days.unwrap_or(DEFAULT_HISTORY_DAYS))
        .await?;
    Ok(Json(spend_report_json(&report)))
}

pub(super) async fn spend_key<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    q: Params<SpendQuery>,
) -> Answer {
    let q = params(q)?;
    let key = required(q.key, "key")?;
    spend(&admin, &caller, SpendScope::Key(key), q.days).await
}

pub(super) async fn spend_team<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    q: Params<SpendQuery>,
) -> Answer {
    let q = params(q)?;
    let team = required(q.team_id, "team_id")?;
    spend(&admin, &caller, SpendScope::Team(team), q.days).await
}

pub(super) async fn spend_user<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    q: Params<SpendQuery>,
) -> Answer {
    let q = params(q)?;
    let user = required(q.user_id, "user_id")?;
    spend(&admin, &caller, SpendScope::User(user), q.days).await
}

/// LiteLLM's `/spend/logs` filters. Dates are `YYYY-MM-DD` (UTC; `end_date` inclusive) or
/// RFC 3339 times.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SpendLogsQuery {
    /// The whole key or its public id.
    api_key: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
}

/// At most this many rows per answer, oldest first; narrow the dates for more.
const MAX_SPEND_LOGS: u32 = 10_000;

/// A date as LiteLLM's UI sends it, or an RFC 3339 time; `end` moves a bare date to the end
/// of that day.
fn date(
    value: Option<String>,
    param: &'static str,
    end: bool,
) -> Result<Option<Timestamp>, RestError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let bad = || {
        RestError::invalid(
            param,
            format!("{param} {value:?} is invalid: expected YYYY-MM-DD or an RFC 3339 time"),
        )
    };
    if let Ok(t) = Timestamp::parse_rfc3339(&value) {
        return Ok(Some(t));
    }
    let day = Timestamp::parse_rfc3339(&format!("{value}T00:00:00Z")).map_err(|_| bad())?;
    Ok(Some(if end {
        Timestamp::from_millis(day.as_millis() + DAY_MS)
    } else {
        day
    }))
}

/// Spend log rows in LiteLLM's shape (`LiteLLM_SpendLogs`), read from the audit log's
/// request records.
pub(super) async fn spend_logs<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    q: Params<SpendLogsQuery>,
) -> Answer {
    let q = params(q)?;
    let key_id = match q.api_key {
        Some(key) => Some(admin.key_id(&key).await?),
        None => None,
    };
    let filter = AuditFilter {
        from: date(q.start_date, "start_date", false)?,
        to: date(q.end_date, "end_date", true)?,
        user_id: q.user_id,
        key_id,
        team_id: match q.team_id {
            Some(team) => Some(admin.get_team(&caller, &team).await?.team.id),
            None => None,
        },
        ..AuditFilter::default()
    };
    let records = admin
        .usage_records(&caller, &filter, MAX_SPEND_LOGS)
        .await?;
    Ok(Json(Value::Array(
        records.iter().map(spend_log_json).collect(),
    )))
}
