//! `/user/*`: create, update, show and list users.

use crate::authz::Caller;
use axum::extract::Extension;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::RestError;
use super::input::{required, Body, LimitFields};
use super::views::{key_json, user_json};
use super::{params, Answer, Params, Shared};
use crate::admin::KeyQuery;
use crate::store::Store;

/// The user a `/user/new` or `/user/update` body names, and its limits. LiteLLM's separate
/// `user_email` is accepted as the id when `user_id` is absent: here the email is the id.
fn user_request(mut body: Body) -> Result<(String, LimitFields), RestError> {
    let user_id: Option<String> = body.take("user_id")?;
    let user_email: Option<String> = body.take("user_email")?;
    let limits = LimitFields::take(&mut body)?;
    body.finish()?;
    Ok((required(user_id.or(user_email), "user_id")?, limits))
}

pub(super) async fn user_new<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let (id, limits) = user_request(body)?;
    let write = admin.create_user(&caller, &id, limits.input());
    let user = admin
        .with_budget(&caller, limits.budget_change(), write)
        .await?;
    Ok(Json(user_json(&user)))
}

pub(super) async fn user_update<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let (id, limits) = user_request(body)?;
    let nulls = limits.nulls();
    let write = admin.update_user(&caller, &id, limits.input(), None, &nulls);
    let user = admin
        .with_budget(&caller, limits.budget_change(), write)
        .await?;
    Ok(Json(user_json(&user)))
}

/// LiteLLM's `{"user_ids": [...]}`; like LiteLLM, the keys they own are deleted with them.
pub(super) async fn user_delete<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let user_ids: Vec<String> = body.take("user_ids")?.unwrap_or_default();
    body.finish()?;
    if user_ids.is_empty() {
        return Err(RestError::missing("user_ids"));
    }
    let (deleted, keys) = admin.delete_users(&caller, &user_ids).await?;
    Ok(Json(
        json!({"deleted_users": deleted, "deleted_keys": keys}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserRef {
    user_id: Option<String>,
}

pub(super) async fn user_info<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    q: Params<UserRef>,
) -> Answer {
    let q = params(q)?;
    let view = admin
        .get_user(&caller, &required(q.user_id, "user_id")?)
        .await?;
    let keys = admin
        .list_keys(
            &caller,
            KeyQuery {
                user_id: Some(view.user.id.clone()),
                ..KeyQuery::default()
            },
        )
        .await?;
    Ok(Json(json!({
        "user_id": view.user.id,
        "user_info": user_json(&view),
        "keys": keys.iter().map(key_json).collect::<Vec<_>>(),
    })))
}

pub(super) async fn user_list<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
) -> Answer {
    let users = admin.list_users(&caller).await?;
    Ok(Json(
        json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}),
    ))
}
