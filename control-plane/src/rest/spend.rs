//! `/spend/*`: spend reports of a key, team or user.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::input::required;
use super::views::spend_report_json;
use super::{params, Answer, Params, Shared};
use crate::admin::{Admin, SpendScope};
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
    scope: SpendScope,
    days: Option<u32>,
) -> Answer {
    let report = admin
        .spend(scope, days.unwrap_or(DEFAULT_HISTORY_DAYS))
        .await?;
    Ok(Json(spend_report_json(&report)))
}

pub(super) async fn spend_key<S: Store>(State(admin): Shared<S>, q: Params<SpendQuery>) -> Answer {
    let q = params(q)?;
    let key = required(q.key, "key")?;
    spend(&admin, SpendScope::Key(key), q.days).await
}

pub(super) async fn spend_team<S: Store>(State(admin): Shared<S>, q: Params<SpendQuery>) -> Answer {
    let q = params(q)?;
    let team = required(q.team_id, "team_id")?;
    spend(&admin, SpendScope::Team(team), q.days).await
}

pub(super) async fn spend_user<S: Store>(State(admin): Shared<S>, q: Params<SpendQuery>) -> Answer {
    let q = params(q)?;
    let user = required(q.user_id, "user_id")?;
    spend(&admin, SpendScope::User(user), q.days).await
}
