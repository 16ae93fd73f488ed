//! `/key/*`: generate, update, delete, block, info and list virtual keys.

use crate::authz::Caller;
use axum::extract::Extension;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::RestError;
use super::input::{metadata_with_tags, required, Body, LimitFields};
use super::views::{key_json, object};
use super::{params, Answer, Params, Shared};
use crate::admin::{Admin, AdminError, KeyInput, KeyQuery, KeyUpdate};
use crate::domain;
use crate::keys::KeySecret;
use crate::store::Store;

/// The fields of `/key/generate` and `/key/update`.
pub(super) struct KeyRequest {
    /// The key to change (whole key or public id); updates only.
    key: Option<String>,
    team_id: Option<String>,
    user_id: Option<Option<String>>,
    key_alias: Option<Option<String>>,
    models: Option<Option<Vec<String>>>,
    /// Expiry: a duration from now (`30d`) or an RFC 3339 time; `null` = never.
    duration: Option<Option<String>>,
    limits: LimitFields,
    metadata: Option<Option<Value>>,
    tags: Option<Vec<String>>,
    blocked: Option<bool>,
    /// A service key (Open WebUI): it may name the end user it calls for.
    can_assert_user: Option<bool>,
    /// HS256 secret of Open WebUI's signed form; `null` on update = back to plain headers.
    assert_user_secret: Option<Option<String>>,
}

impl KeyRequest {
    fn read(mut body: Body) -> Result<Self, RestError> {
        let request = Self {
            key: body.take("key")?,
            team_id: body.take("team_id")?,
            user_id: body.change("user_id")?,
            key_alias: body.change("key_alias")?,
            models: body.change("models")?,
            duration: body.change("duration")?,
            limits: LimitFields::take(&mut body)?,
            metadata: body.change("metadata")?,
            tags: body.take("tags")?,
            blocked: body.take("blocked")?,
            can_assert_user: body.take("can_assert_user")?,
            assert_user_secret: body.change("assert_user_secret")?,
        };
        body.finish()?;
        Ok(request)
    }
}

pub(super) async fn key_generate<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let r = KeyRequest::read(body)?;
    let input = KeyInput {
        team: required(r.team_id, "team_id")?,
        user_id: r.user_id.flatten(),
        alias: r.key_alias.flatten(),
        expires: r.duration.flatten(),
        models: r.models.flatten().unwrap_or_default(),
        limits: r.limits.input(),
        metadata: metadata_with_tags(r.metadata.flatten(), r.tags)?,
        blocked: r.blocked.unwrap_or(false),
        can_assert_user: r.can_assert_user.unwrap_or(false),
        assert_user_secret: r.assert_user_secret.flatten().map(KeySecret::new),
    };
    let created = admin
        .with_budget(
            &caller,
            r.limits.budget_change(),
            admin.create_key(&caller, input),
        )
        .await?;
    let mut out = object(key_json(&created.view));
    out.insert("key".into(), json!(created.secret.expose()));
    Ok(Json(Value::Object(out)))
}

pub(super) async fn key_update<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let mut r = KeyRequest::read(body)?;
    // Addressed by key (then `key_alias` renames it), or by alias alone, as declarative
    // clients send their spec entries.
    let key = match (r.key.take(), r.key_alias.take()) {
        (Some(key), alias) => {
            r.key_alias = alias;
            required(Some(key), "key")?
        }
        (None, Some(Some(alias))) => admin.key_by_alias(&alias).await?,
        (None, _) => return Err(RestError::missing("key")),
    };
    // Declarative clients send the key's whole spec, team included: naming the team the key
    // is in already is no change.
    if let Some(team) = &r.team_id {
        let current = admin.get_key(&caller, &key).await?.key.team_id;
        if admin.get_team(&caller, team).await?.team.id != current {
            return Err(RestError::invalid(
                "team_id",
                "team_id cannot change: a key stays in its team",
            ));
        }
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
        (
            "assert_user_secret",
            r.assert_user_secret.as_ref().is_some_and(Option::is_none),
        ),
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
        metadata: match (r.metadata, r.tags) {
            // Tags alone are added to the key's current metadata, as LiteLLM does.
            (None, Some(tags)) => {
                let current = admin.get_key(&caller, &key).await?.key.metadata;
                metadata_with_tags(Some(Value::Object(current.as_map().clone())), Some(tags))?
            }
            (metadata, tags) => metadata_with_tags(metadata.flatten(), tags)?,
        },
        blocked: r.blocked,
        can_assert_user: r.can_assert_user,
        assert_user_secret: r.assert_user_secret.flatten().map(KeySecret::new),
        clear,
    };
    let updated = admin
        .with_budget(
            &caller,
            r.limits.budget_change(),
            admin.update_key(&caller, &key, update),
        )
        .await?;
    Ok(Json(key_json(&updated)))
}

pub(super) async fn key_delete<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let keys: Vec<String> = body.take("keys")?.unwrap_or_default();
    body.finish()?;
    if keys.is_empty() {
        return Err(RestError::missing("keys"));
    }
    // Every key must exist before any is revoked, so a typo revokes nothing.
    for key in &keys {
        admin.get_key(&caller, key).await?;
    }
    let mut revoked = Vec::with_capacity(keys.len());
    for key in &keys {
        revoked.push(admin.revoke_key(&caller, key).await?.key.public_id);
    }
    Ok(Json(json!({ "deleted_keys": revoked })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyRef {
    key: Option<String>,
}

/// A new secret for a key named by `key` (or `key_alias`), answered like `key/generate`.
/// `grace_period` (LiteLLM's, e.g. `"24h"`) keeps the old secret valid that long; absent or
/// `"0"`, it stops working with the next snapshot.
async fn regenerate<S: Store>(
    admin: &Admin<S>,
    caller: &Caller,
    key: Option<String>,
    mut body: Body,
) -> Answer {
    let key = match key.or(body.take("key")?) {
        Some(key) => key,
        None => match body.take::<String>("key_alias")? {
            Some(alias) => admin.key_by_alias(&alias).await?,
            None => return Err(RestError::missing("key")),
        },
    };
    let grace: Option<String> = body.take("grace_period")?;
    body.finish()?;
    let grace = domain::parse_grace_period(grace.as_deref().unwrap_or_default())
        .map_err(AdminError::from)?;
    let created = admin.regenerate_key(caller, &key, grace).await?;
    let mut out = object(key_json(&created.view));
    out.insert("key".into(), json!(created.secret.expose()));
    Ok(Json(Value::Object(out)))
}

pub(super) async fn key_regenerate<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    regenerate(&admin, &caller, None, body).await
}

/// LiteLLM's `/key/{key}/regenerate` form (with a JSON body, `{}` when there is nothing more).
pub(super) async fn key_regenerate_path<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Body,
) -> Answer {
    regenerate(&admin, &caller, Some(key), body).await
}

/// The `key` of a block or unblock body.
fn key_ref(mut body: Body) -> Result<String, RestError> {
    let key = body.required("key")?;
    body.finish()?;
    Ok(key)
}

pub(super) async fn key_block<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let key = key_ref(body)?;
    Ok(Json(key_json(
        &admin.set_key_blocked(&caller, &key, true).await?,
    )))
}

pub(super) async fn key_unblock<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let key = key_ref(body)?;
    Ok(Json(key_json(
        &admin.set_key_blocked(&caller, &key, false).await?,
    )))
}

pub(super) async fn key_info<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    q: Params<KeyRef>,
) -> Answer {
    let q = params(q)?;
    let view = admin.get_key(&caller, &required(q.key, "key")?).await?;
    Ok(Json(
        json!({"key": view.key.public_id, "info": key_json(&view)}),
    ))
}

/// `team_id`, `user_id`, `tag=name=value` (repeatable), `expired`, `unused_days`,
/// `include_revoked`, `return_full_object` (LiteLLM lists key ids unless asked for objects).
pub(super) async fn key_list<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
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
                return Err(RestError::invalid(
                    other,
                    format!("unknown query parameter {other:?}"),
                ))
            }
        }
    }
    let keys = admin.list_keys(&caller, query).await?;
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
