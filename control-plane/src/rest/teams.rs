//! `/team/*`: create, update, block, show and list teams.

use crate::authz::Caller;
use axum::extract::Extension;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::RestError;
use super::input::{json_text, metadata_with_tags, required, Body, LimitFields};
use super::members::{members_with_roles, team_with_members};
use super::views::{key_json, team_json};
use super::{params, Answer, Params, Shared};
use crate::admin::{Admin, KeyQuery, TeamInput, TeamUpdate, TeamView};
use crate::store::Store;

/// The fields of `/team/new` and `/team/update`.
pub(super) struct TeamRequest {
    /// Updates, block, unblock: the team (id or alias).
    team_id: Option<String>,
    team_alias: Option<String>,
    models: Option<Vec<String>>,
    limits: LimitFields,
    metadata: Option<Option<Value>>,
    tags: Option<Vec<String>>,
    redaction_policy: Option<Option<Value>>,
    high_trust: Option<bool>,
    keep_redacted_prompt: Option<bool>,
    blocked: Option<bool>,
    /// Replaces the team's IdP groups when present.
    idp_groups: Option<Vec<String>>,
    /// Makes these users exactly the team's members when present.
    members: Option<Vec<String>>,
}

impl TeamRequest {
    fn read(mut body: Body) -> Result<Self, RestError> {
        let request = Self {
            team_id: body.take("team_id")?,
            team_alias: body.take("team_alias")?,
            models: body.take("models")?,
            limits: LimitFields::take(&mut body)?,
            metadata: body.change("metadata")?,
            tags: body.take("tags")?,
            redaction_policy: body.change("redaction_policy")?,
            high_trust: body.take("high_trust")?,
            keep_redacted_prompt: body.take("keep_redacted_prompt")?,
            blocked: body.take("blocked")?,
            idp_groups: body.take("idp_groups")?,
            members: members_with_roles(body.take("members_with_roles")?)?,
        };
        body.finish()?;
        Ok(request)
    }
}

pub(super) async fn team_new<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let r = TeamRequest::read(body)?;
    let input = TeamInput {
        id: r.team_id,
        alias: required(r.team_alias, "team_alias")?,
        models: r.models.unwrap_or_default(),
        limits: r.limits.input(),
        metadata: metadata_with_tags(r.metadata.flatten(), r.tags)?,
        redaction_policy: r.redaction_policy.flatten().map(json_text),
        high_trust: r.high_trust.unwrap_or(false),
        keep_redacted_prompt: r.keep_redacted_prompt.unwrap_or(false),
        blocked: r.blocked.unwrap_or(false),
        idp_groups: r.idp_groups.unwrap_or_default(),
    };
    if let Some(members) = &r.members {
        admin.joining_members(&caller, None, members).await?;
    }
    let created = admin
        .with_budget(
            &caller,
            r.limits.budget_change(),
            admin.create_team(&caller, input),
        )
        .await?;
    with_members(&admin, &caller, r.members, &created).await
}

pub(super) async fn team_update<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let mut r = TeamRequest::read(body)?;
    // Addressed by id (then `team_alias` renames), or by alias alone, as declarative
    // clients send their spec entries.
    let team = match r.team_id.take() {
        Some(id) => required(Some(id), "team_id")?,
        None => required(r.team_alias.take(), "team_id")?,
    };
    let mut clear = r.limits.nulls();
    if r.metadata.as_ref().is_some_and(Option::is_none) {
        clear.push("metadata".into());
    }
    if r.redaction_policy.as_ref().is_some_and(Option::is_none) {
        clear.push("redaction_policy".into());
    }
    let update = TeamUpdate {
        alias: r.team_alias,
        models: r.models,
        limits: r.limits.input(),
        metadata: match (r.metadata, r.tags) {
            // Tags alone are added to the team's current metadata, as LiteLLM does.
            (None, Some(tags)) => {
                let current = admin.get_team(&caller, &team).await?.team.metadata;
                metadata_with_tags(Some(Value::Object(current.as_map().clone())), Some(tags))?
            }
            (metadata, tags) => metadata_with_tags(metadata.flatten(), tags)?,
        },
        redaction_policy: r.redaction_policy.flatten().map(json_text),
        high_trust: r.high_trust,
        keep_redacted_prompt: r.keep_redacted_prompt,
        blocked: r.blocked,
        clear,
        idp_groups: r.idp_groups,
    };
    if let Some(members) = &r.members {
        let id = admin.get_team(&caller, &team).await?.team.id;
        admin.joining_members(&caller, Some(&id), members).await?;
    }
    let updated = admin
        .with_budget(
            &caller,
            r.limits.budget_change(),
            admin.update_team(&caller, &team, update),
        )
        .await?;
    with_members(&admin, &caller, r.members, &updated).await
}

/// Makes `members` (when given) the written team's members, and answers with the team and
/// its members.
async fn with_members<S: Store>(
    admin: &Admin<S>,
    caller: &Caller,
    members: Option<Vec<String>>,
    team: &TeamView,
) -> Answer {
    if let Some(members) = members {
        admin
            .set_team_members(caller, &team.team.id, &members)
            .await?;
    }
    Ok(Json(Value::Object(
        team_with_members(admin, caller, team).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TeamRef {
    team_id: Option<String>,
}

/// LiteLLM's `{"team_ids": [...]}`; like LiteLLM, the teams' keys are deleted with them.
pub(super) async fn team_delete<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let team_ids: Vec<String> = body.take("team_ids")?.unwrap_or_default();
    body.finish()?;
    if team_ids.is_empty() {
        return Err(RestError::missing("team_ids"));
    }
    let (deleted, keys) = admin.delete_teams(&caller, &team_ids).await?;
    Ok(Json(
        json!({"deleted_teams": deleted, "deleted_keys": keys}),
    ))
}

/// The `team_id` of a block or unblock body.
fn team_ref(mut body: Body) -> Result<String, RestError> {
    let team = body.required("team_id")?;
    body.finish()?;
    Ok(team)
}

pub(super) async fn team_block<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let team = team_ref(body)?;
    Ok(Json(team_json(
        &admin.set_team_blocked(&caller, &team, true).await?,
    )))
}

pub(super) async fn team_unblock<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let team = team_ref(body)?;
    Ok(Json(team_json(
        &admin.set_team_blocked(&caller, &team, false).await?,
    )))
}

pub(super) async fn team_info<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    q: Params<TeamRef>,
) -> Answer {
    let q = params(q)?;
    let view = admin
        .get_team(&caller, &required(q.team_id, "team_id")?)
        .await?;
    let keys = admin
        .list_keys(
            &caller,
            KeyQuery {
                team: Some(view.team.id.clone()),
                ..KeyQuery::default()
            },
        )
        .await?;
    let info = team_with_members(&admin, &caller, &view).await?;
    Ok(Json(json!({
        "team_id": view.team.id,
        "team_info": info,
        "keys": keys.iter().map(key_json).collect::<Vec<_>>(),
    })))
}

/// LiteLLM's paged `{"teams": [...]}`; every team fits on the one page.
pub(super) async fn team_list_v2<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    q: Params<Vec<(String, String)>>,
) -> Answer {
    for (name, _) in params(q)? {
        // Paging parameters only: filters LiteLLM has here are not implemented.
        if !matches!(name.as_str(), "page" | "page_size") {
            return Err(RestError::invalid(
                &name,
                format!("unknown query parameter {name:?}"),
            ));
        }
    }
    let teams = admin.list_teams(&caller).await?;
    Ok(Json(json!({
        "teams": teams.iter().map(team_json).collect::<Vec<_>>(),
        "total": teams.len(),
        "page": 1,
        "page_size": teams.len(),
        "total_pages": 1,
    })))
}

pub(super) async fn team_list<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
) -> Answer {
    let teams = admin.list_teams(&caller).await?;
    Ok(Json(json!(teams.iter().map(team_json).collect::<Vec<_>>())))
}
