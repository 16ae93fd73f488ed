//! `/team/member_add`, `/team/member_delete` and `/team/member_update` in LiteLLM's shapes,
//! and the `members_with_roles` that `/team/info` shows: a member is a user whose team is the
//! team (see `admin::team_members`), with LiteLLM's role `user`.

use axum::extract::{Extension, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::RestError;
use super::input::{required, Body};
use super::views::{object, team_json, user_json};
use super::{Answer, Shared};
use crate::admin::{Admin, AdminError, TeamView};
use crate::authz::Caller;
use crate::domain::TeamRole;
use crate::store::Store;

/// The team as `team_json` shows it, with its `members_with_roles`.
pub(super) async fn team_with_members<S: Store>(
    admin: &Admin<S>,
    caller: &Caller,
    view: &TeamView,
) -> Result<Map<String, Value>, RestError> {
    let members = admin.team_members(caller, &view.team.id).await?;
    let mut out = object(team_json(view));
    out.insert(
        "members_with_roles".into(),
        members
            .iter()
            .map(|u| json!({"user_id": u.id, "user_email": u.id, "role": TeamRole::User.as_str()}))
            .collect(),
    );
    Ok(out)
}

/// The `team_id` and member user of `/team/member_delete` and `/team/member_update`.
fn member_ref(body: &mut Body) -> Result<(String, String), RestError> {
    Ok((body.required("team_id")?, member_user(body)?))
}

/// The user a member entry names: `user_id`, or LiteLLM's `user_email` (the same here).
fn member_user(body: &mut Body) -> Result<String, RestError> {
    let user_id: Option<String> = body.take("user_id")?;
    let user_email: Option<String> = body.take("user_email")?;
    required(user_id.or(user_email), "user_id")
}

fn member_role(body: &mut Body) -> Result<TeamRole, RestError> {
    let role: Option<String> = body.take("role")?;
    Ok(TeamRole::parse(role.as_deref()).map_err(AdminError::from)?)
}

/// LiteLLM's `member`: one member object or a non-empty list of them.
fn members(value: Option<Value>) -> Result<Vec<String>, RestError> {
    match value {
        None => Err(RestError::missing("member")),
        Some(Value::Array(list)) if !list.is_empty() => member_list("member", list),
        Some(one @ Value::Object(_)) => member_list("member", vec![one]),
        Some(_) => Err(not_members("member")),
    }
}

/// LiteLLM's `members_with_roles` of `/team/new` and `/team/update`: the team's members
/// (a list, maybe empty).
pub(super) fn members_with_roles(value: Option<Value>) -> Result<Option<Vec<String>>, RestError> {
    const FIELD: &str = "members_with_roles";
    match value {
        None => Ok(None),
        Some(Value::Array(list)) => member_list(FIELD, list).map(Some),
        Some(_) => Err(not_members(FIELD)),
    }
}

fn not_members(field: &'static str) -> RestError {
    RestError::invalid(
        field,
        format!("{field} is invalid: expected member objects {{\"user_id\", \"role\"}}"),
    )
}

/// The users of member entries, each `{user_id | user_email, role}`.
fn member_list(field: &'static str, entries: Vec<Value>) -> Result<Vec<String>, RestError> {
    entries
        .into_iter()
        .map(|entry| {
            let Value::Object(fields) = entry else {
                return Err(not_members(field));
            };
            let mut member = Body::of(fields);
            let user = member_user(&mut member)?;
            member_role(&mut member)?;
            member.finish()?;
            Ok(user)
        })
        .collect()
}

/// `{"team_id", "member": …}`: adds every member or none (each must be a user of no team).
pub(super) async fn team_member_add<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let team = body.required("team_id")?;
    let users = members(body.take("member")?)?;
    body.finish()?;
    let added = admin.add_team_members(&caller, &team, &users).await?;
    let view = admin.get_team(&caller, &team).await?;
    let mut out = team_with_members(&admin, &caller, &view).await?;
    out.insert(
        "updated_users".into(),
        added.iter().map(user_json).collect(),
    );
    Ok(Json(Value::Object(out)))
}

/// `{"team_id", "user_id" | "user_email"}`.
pub(super) async fn team_member_delete<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let (team, user) = member_ref(&mut body)?;
    body.finish()?;
    admin.remove_team_member(&caller, &team, &user).await?;
    let view = admin.get_team(&caller, &team).await?;
    Ok(Json(Value::Object(
        team_with_members(&admin, &caller, &view).await?,
    )))
}

/// `{"team_id", "user_id" | "user_email", "role"}`: members have role `user`, so this only
/// confirms one (LiteLLM's per-member budgets and limits are not implemented: 400).
pub(super) async fn team_member_update<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let (team, user) = member_ref(&mut body)?;
    let role = member_role(&mut body)?;
    body.finish()?;
    let member = admin.team_member(&caller, &team, &user).await?;
    let team = admin.get_team(&caller, &team).await?.team;
    Ok(Json(json!({
        "team_id": team.id,
        "user_id": member.id,
        "user_email": member.id,
        "role": role.as_str(),
    })))
}
