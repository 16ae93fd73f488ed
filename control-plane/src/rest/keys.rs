//! `/key/*`: generate, update, delete, block, info and list virtual keys.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::RestError;
use super::input::{body, json_text, present, required, LimitFields};
use super::views::{key_json, object};
use super::{params, Answer, Params, Shared};
use crate::admin::{KeyInput, KeyQuery, KeyUpdate};
use crate::store::Store;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct KeyRequest {
    /// The key to change (whole key or public id); updates only.
    key: Option<String>,
    team_id: Option<String>,
    #[serde(deserialize_with = "present")]
    user_id: Option<Option<String>>,
    #[serde(deserialize_with = "present")]
    key_alias: Option<Option<String>>,
    #[serde(deserialize_with = "present")]
    models: Option<Option<Vec<String>>>,
    /// Expiry: a duration from now (`30d`) or an RFC 3339 time; `null` = never.
    #[serde(deserialize_with = "present")]
    duration: Option<Option<String>>,
    #[serde(flatten)]
    limits: LimitFields,
    #[serde(deserialize_with = "present")]
    metadata: Option<Option<Value>>,
    blocked: Option<bool>,
}

pub(super) async fn key_generate<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: KeyRequest = body(&bytes)?;
    let input = KeyInput {
        team: required(r.team_id, "team_id")?,
        user_id: r.user_id.flatten(),
        alias: r.key_alias.flatten(),
        expires: r.duration.flatten(),
        models: r.models.flatten().unwrap_or_default(),
        limits: r.limits.input(),
        metadata: r.metadata.flatten().map(json_text),
        blocked: r.blocked.unwrap_or(false),
    };
    let created = admin.create_key(input).await?;
    let mut out = object(key_json(&created.view));
    out.insert("key".into(), json!(created.secret.expose()));
    Ok(Json(Value::Object(out)))
}

pub(super) async fn key_update<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: KeyRequest = body(&bytes)?;
    let key = required(r.key, "key")?;
    if r.team_id.is_some() {
        return Err(RestError::bad_request(
            "team_id cannot change: a key stays in its team",
        ));
    }
    let mut clear = r.limits.nulls();
    for (name, null) in [
        ("user_id", r.user_id.as_ref().is_some_and(Option::is_none)),
        (
            "key_alias",
            r.key_alias.as_ref().is_some_and(Option::is_none),
        ),
        ("models", r.models.as_ref().is_some_and(Option::is_none)),
        ("expires", r.duration.as_ref().is_some_and(Option::is_none)),
        ("metadata", r.metadata.as_ref().is_some_and(Option::is_none)),
    ] {
        if null {
            clear.push(name.to_owned());
        }
    }
    let update = KeyUpdate {
        alias: r.key_alias.flatten(),
        user_id: r.user_id.flatten(),
        expires: r.duration.flatten(),
        models: r.models.flatten(),
        limits: r.limits.input(),
        metadata: r.metadata.flatten().map(json_text),
        blocked: r.blocked,
        clear,
    };
    Ok(Json(key_json(&admin.update_key(&key, update).await?)))
}

#[derive(Deserialize)]
pub(super) struct KeyList {
    keys: Vec<String>,
}

pub(super) async fn key_delete<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: KeyList = body(&bytes)?;
    if r.keys.is_empty() {
        return Err(RestError::missing("keys"));
    }
    let mut revoked = Vec::with_capacity(r.keys.len());
    for key in &r.keys {
        revoked.push(admin.revoke_key(key).await?.key.public_id);
    }
    Ok(Json(json!({ "deleted_keys": revoked })))
}

#[derive(Deserialize)]
pub(super) struct KeyRef {
    key: Option<String>,
}

pub(super) async fn key_block<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let key = required(body::<KeyRef>(&bytes)?.key, "key")?;
    Ok(Json(key_json(&admin.set_key_blocked(&key, true).await?)))
}

pub(super) async fn key_unblock<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let key = required(body::<KeyRef>(&bytes)?.key, "key")?;
    Ok(Json(key_json(&admin.set_key_blocked(&key, false).await?)))
}

pub(super) async fn key_info<S: Store>(State(admin): Shared<S>, q: Params<KeyRef>) -> Answer {
    let q = params(q)?;
    let view = admin.get_key(&required(q.key, "key")?).await?;
    Ok(Json(
        json!({"key": view.key.public_id, "info": key_json(&view)}),
    ))
}

/// `team_id`, `user_id`, `tag=name=value` (repeatable), `expired`, `unused_days`,
/// `include_revoked`, `return_full_object` (LiteLLM lists key ids unless asked for objects).
pub(super) async fn key_list<S: Store>(
    State(admin): Shared<S>,
    q: Params<Vec<(String, String)>>,
) -> Answer {
    let pairs = params(q)?;
    let mut query = KeyQuery::default();
    let mut full = false;
    let flag = |name: &str, v: &str| match v {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(RestError::bad_request(format!(
            "{name} must be true or false"
        ))),
    };
    for (name, value) in pairs {
        match name.as_str() {
            "team_id" => query.team = Some(value),
            "user_id" => query.user_id = Some(value),
            "tag" => query.tags.push(value),
            "expired" => query.expired = flag("expired", &value)?,
            "include_revoked" => query.include_revoked = flag("include_revoked", &value)?,
            "return_full_object" => full = flag("return_full_object", &value)?,
            "unused_days" => {
                query.unused_days = Some(value.parse().map_err(|_| {
                    RestError::bad_request("unused_days must be a whole number of days")
                })?);
            }
            // LiteLLM's paging parameters: everything fits on one page here.
            "page" | "size" => {}
            other => {
                return Err(RestError::bad_request(format!(
                    "unknown query parameter {other:?}"
                )))
            }
        }
    }
    let keys = admin.list_keys(query).await?;
    let items: Vec<Value> = keys
        .iter()
        .map(|k| {
            if full {
                key_json(k)
            } else {
                json!(k.key.public_id)
            }
        })
        .collect();
    Ok(Json(json!({
        "keys": items,
        "total_count": keys.len(),
        "current_page": 1,
        "total_pages": 1,
    })))
}
