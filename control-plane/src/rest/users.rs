//! `/user/*`: create, update, show and list users.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::RestError;
use super::input::{body, required, LimitFields};
use super::views::{key_json, user_json};
use super::{params, Answer, Params, Shared};
use crate::admin::KeyQuery;
use crate::store::Store;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct UserRequest {
    user_id: Option<String>,
    /// LiteLLM's separate email field; here the email is the id.
    user_email: Option<String>,
    #[serde(flatten)]
    limits: LimitFields,
}

impl UserRequest {
    fn id(&mut self) -> Result<String, RestError> {
        required(self.user_id.take().or(self.user_email.take()), "user_id")
    }
}

pub(super) async fn user_new<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let mut r: UserRequest = body(&bytes)?;
    let id = r.id()?;
    Ok(Json(user_json(
        &admin.create_user(&id, r.limits.input()).await?,
    )))
}

pub(super) async fn user_update<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let mut r: UserRequest = body(&bytes)?;
    let id = r.id()?;
    let user = admin
        .update_user(&id, r.limits.input(), &r.limits.nulls())
        .await?;
    Ok(Json(user_json(&user)))
}

#[derive(Deserialize)]
pub(super) struct UserRef {
    user_id: Option<String>,
}

pub(super) async fn user_info<S: Store>(State(admin): Shared<S>, q: Params<UserRef>) -> Answer {
    let q = params(q)?;
    let view = admin.get_user(&required(q.user_id, "user_id")?).await?;
    let keys = admin
        .list_keys(KeyQuery {
            user_id: Some(view.user.id.clone()),
            ..KeyQuery::default()
        })
        .await?;
    Ok(Json(json!({
        "user_id": view.user.id,
        "user_info": user_json(&view),
        "keys": keys.iter().map(key_json).collect::<Vec<_>>(),
    })))
}

pub(super) async fn user_list<S: Store>(State(admin): Shared<S>) -> Answer {
    let users = admin.list_users().await?;
    Ok(Json(
        json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}),
    ))
}
