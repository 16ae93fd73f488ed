//! A LiteLLM-compatible admin REST API on the HTTP port, for scripts that already speak it.
//!
//! Every route needs `Authorization: Bearer <master key>` and maps its JSON onto the same
//! [`Admin`] service as the gRPC API. Field names are LiteLLM's (`team_alias`, `rpm_limit`,
//! `tpm_limit`, `max_parallel_requests`, `max_budget`, `budget_duration`, `duration`,
//! `metadata`, …) plus Modelgate's own (`budget_reset`, `redaction_policy`, `high_trust`,
//! `keep_redacted_prompt`, `upstream_model`, `cluster`). In updates a field left out keeps
//! its value and `null` unsets it. Fields Modelgate does not know are ignored. Errors are
//! `{"error": {"message", "type", "param", "code"}}` with the HTTP status in `code`.
//!
//! Differences from LiteLLM: keys are referenced by the whole key or by their public id
//! (`token` in responses); `/key/delete` revokes (the key stays listed as revoked, so filters
//! answer "key revoked"); team ids are assigned by Modelgate; a key needs a team.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use crate::admin::{
    Admin, AdminError, KeyInput, KeyQuery, KeyUpdate, KeyView, ModelInput, ModelUpdate,
    SpendReport, SpendScope, TeamInput, TeamUpdate, TeamView, UserView,
};
use crate::clock::Timestamp;
use crate::domain::ModelRoute;
use crate::keys::KeySecret;
use crate::limits::{Limits, LimitsInput};
use crate::spend::SpendState;
use crate::store::{Store, StoreError};

/// The REST routes, all behind the master key.
pub fn router<S: Store>(admin: Arc<Admin<S>>) -> Router {
    Router::new()
        .route("/key/generate", post(key_generate::<S>))
        .route("/key/update", post(key_update::<S>))
        .route("/key/delete", post(key_delete::<S>))
        .route("/key/block", post(key_block::<S>))
        .route("/key/unblock", post(key_unblock::<S>))
        .route("/key/info", get(key_info::<S>))
        .route("/key/list", get(key_list::<S>))
        .route("/team/new", post(team_new::<S>))
        .route("/team/update", post(team_update::<S>))
        .route("/team/block", post(team_block::<S>))
        .route("/team/unblock", post(team_unblock::<S>))
        .route("/team/info", get(team_info::<S>))
        .route("/team/list", get(team_list::<S>))
        .route("/user/new", post(user_new::<S>))
        .route("/user/update", post(user_update::<S>))
        .route("/user/info", get(user_info::<S>))
        .route("/user/list", get(user_list::<S>))
        .route("/model/new", post(model_new::<S>))
        .route("/model/update", post(model_update::<S>))
        .route("/model/delete", post(model_delete::<S>))
        .route("/model/info", get(model_info::<S>))
        .route("/spend/key", get(spend_key::<S>))
        .route("/spend/team", get(spend_team::<S>))
        .route("/spend/user", get(spend_user::<S>))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&admin),
            require_master_key::<S>,
        ))
        .with_state(admin)
}

type Shared<S> = State<Arc<Admin<S>>>;
type Answer = Result<Json<Value>, RestError>;
/// A query string, with its failures answered as JSON errors too.
type Params<T> = Result<Query<T>, QueryRejection>;

fn params<T>(q: Params<T>) -> Result<T, RestError> {
    q.map(|Query(v)| v)
        .map_err(|e| RestError::bad_request(format!("invalid query string: {}", e.body_text())))
}

async fn require_master_key<S: Store>(
    State(admin): Shared<S>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.to_string());
    let authorization = match request.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(v) => Some(v),
            Err(_) => {
                return RestError::from(AdminError::Unauthenticated(
                    "malformed authorization: expected 'Bearer <master key>'",
                ))
                .into_response()
            }
        },
    };
    match admin.authorize(authorization, &peer).await {
        Ok(()) => next.run(request).await,
        Err(e) => RestError::from(e).into_response(),
    }
}

/// An error as LiteLLM shapes it.
#[derive(Debug)]
pub struct RestError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<&'static str>,
}

impl RestError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: None,
        }
    }

    fn missing(param: &'static str) -> Self {
        Self {
            param: Some(param),
            ..Self::bad_request(format!("{param} is required"))
        }
    }
}

impl From<AdminError> for RestError {
    fn from(e: AdminError) -> Self {
        let (status, kind) = match &e {
            AdminError::Invalid(_) | AdminError::Store(StoreError::Invalid(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_request_error")
            }
            AdminError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "auth_error"),
            AdminError::PermissionDenied => (StatusCode::FORBIDDEN, "permission_error"),
            AdminError::Store(
                StoreError::TeamNotFound(_)
                | StoreError::KeyNotFound(_)
                | StoreError::UserNotFound(_)
                | StoreError::ModelNotFound(_),
            ) => (StatusCode::NOT_FOUND, "not_found_error"),
            AdminError::Store(
                StoreError::TeamAliasTaken(_)
                | StoreError::UserExists(_)
                | StoreError::ModelExists(_)
                | StoreError::KeyRevoked(_),
            ) => (StatusCode::CONFLICT, "conflict_error"),
            AdminError::Store(StoreError::KeyIdTaken) => {
                (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
            }
            AdminError::Store(s) if s.is_transient() => {
                tracing::warn!(error = %s, "store unavailable");
                return Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    kind: "service_unavailable",
                    message: "the database is unavailable, retry later".into(),
                    param: None,
                };
            }
            AdminError::Store(_) | AdminError::Random(_) => {
                tracing::error!(error = %e, "admin request failed");
                return Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    kind: "internal_error",
                    message: "internal error (see the control plane's log)".into(),
                    param: None,
                };
            }
        };
        Self {
            status,
            kind,
            message: e.to_string(),
            param: None,
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.status.as_u16().to_string(),
        }});
        (self.status, Json(body)).into_response()
    }
}

/// The request body as `T`, with serde's message (it names the field) on failure.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, RestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RestError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| RestError::bad_request(format!("invalid request body: {e}")))
}

/// Tells "absent" (`None`) from `null` (`Some(None)`) in updates.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn required(value: Option<String>, param: &'static str) -> Result<String, RestError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or(RestError::missing(param))
}

/// JSON given as an object, or as a string holding one.
fn json_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LimitFields {
    #[serde(deserialize_with = "present")]
    rpm_limit: Option<Option<u64>>,
    #[serde(deserialize_with = "present")]
    tpm_limit: Option<Option<u64>>,
    #[serde(deserialize_with = "present")]
    max_parallel_requests: Option<Option<u32>>,
    #[serde(deserialize_with = "present")]
    max_budget: Option<Option<f64>>,
    #[serde(deserialize_with = "present")]
    budget_duration: Option<Option<String>>,
    budget_reset: Option<String>,
}

impl LimitFields {
    fn input(&self) -> LimitsInput {
        LimitsInput {
            rpm: self.rpm_limit.flatten(),
            tpm: self.tpm_limit.flatten(),
            max_parallel: self.max_parallel_requests.flatten(),
            max_budget: self.max_budget.flatten(),
            budget_duration: self.budget_duration.clone().flatten(),
            budget_reset: self.budget_reset.clone(),
        }
    }

    /// The limits set to `null`, by the names the admin service clears.
    fn nulls(&self) -> Vec<String> {
        [
            ("rpm_limit", self.rpm_limit.is_some_and(|v| v.is_none())),
            ("tpm_limit", self.tpm_limit.is_some_and(|v| v.is_none())),
            (
                "max_parallel_requests",
                self.max_parallel_requests.is_some_and(|v| v.is_none()),
            ),
            ("max_budget", self.max_budget.is_some_and(|v| v.is_none())),
            (
                "budget_duration",
                self.budget_duration.as_ref().is_some_and(Option::is_none),
            ),
        ]
        .into_iter()
        .filter(|(_, null)| *null)
        .map(|(name, _)| name.to_owned())
        .collect()
    }
}

fn limits_json(l: &Limits, out: &mut Map<String, Value>) {
    out.insert("rpm_limit".into(), json!(l.rpm));
    out.insert("tpm_limit".into(), json!(l.tpm));
    out.insert("max_parallel_requests".into(), json!(l.max_parallel));
    out.insert("max_budget".into(), json!(l.budget.map(|b| b.max_budget)));
    out.insert(
        "budget_duration".into(),
        json!(l.budget.and_then(|b| b.period.duration_text())),
    );
    out.insert(
        "budget_reset".into(),
        json!(l.budget.map(|b| b.period.reset_text())),
    );
}

fn time(t: Option<Timestamp>) -> Value {
    json!(t.map(Timestamp::to_rfc3339))
}

/// LiteLLM's `spend` and `budget_reset_at`, plus the window and whether it is exhausted.
fn spend_json(s: Option<SpendState>, out: &mut Map<String, Value>) {
    out.insert("spend".into(), json!(s.map_or(0.0, |s| s.spend)));
    out.insert(
        "budget_window_start".into(),
        time(s.map(|s| s.window.start)),
    );
    out.insert(
        "budget_reset_at".into(),
        time(s.and_then(|s| s.window.reset_at)),
    );
    out.insert(
        "budget_exhausted".into(),
        json!(s.is_some_and(|s| s.exhausted)),
    );
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn team_json(v: &TeamView) -> Value {
    let t = &v.team;
    let mut out = object(json!({
        "team_id": t.id,
        "team_alias": t.alias,
        "models": t.models,
        "blocked": t.blocked,
        "created_at": t.created_at.to_rfc3339(),
        "metadata": Value::Object(t.metadata.as_map().clone()),
        "redaction_policy": t.redaction_policy.as_deref().map(|p| serde_json::from_str::<Value>(p).unwrap_or(Value::Null)),
        "high_trust": t.high_trust,
        "keep_redacted_prompt": t.keep_redacted_prompt,
        "idp_groups": t.idp_groups,
    }));
    limits_json(&t.limits, &mut out);
    spend_json(v.spend, &mut out);
    Value::Object(out)
}

fn key_json(v: &KeyView) -> Value {
    let k = &v.key;
    let mut out = object(json!({
        "token": k.public_id,
        "public_id": k.public_id,
        "key_name": format!("sk-mg-...{}", k.last4),
        "key_alias": k.alias,
        "team_id": k.team_id,
        "user_id": k.user_id,
        "models": k.models,
        "expires": time(k.expires_at),
        "created_at": k.created_at.to_rfc3339(),
        "last_used_at": time(v.last_used_at),
        "blocked": k.blocked,
        "revoked": k.status == crate::domain::KeyStatus::Revoked,
        "revoked_at": time(k.revoked_at),
        "metadata": Value::Object(k.metadata.as_map().clone()),
        "can_assert_user": k.user_assertion.can_assert_user(),
        "has_assert_user_secret": k.user_assertion.secret().is_some(),
    }));
    limits_json(&k.limits, &mut out);
    spend_json(v.spend, &mut out);
    Value::Object(out)
}

fn user_json(v: &UserView) -> Value {
    let mut out = object(json!({
        "user_id": v.user.id,
        "user_email": v.user.id,
        "team_id": v.user.team_id,
        "created_at": v.user.created_at.to_rfc3339(),
    }));
    limits_json(&v.user.limits, &mut out);
    spend_json(v.spend, &mut out);
    Value::Object(out)
}

fn model_json(m: &ModelRoute) -> Value {
    json!({
        "model_name": m.name,
        "upstream_model": m.upstream_model.as_deref().unwrap_or(&m.name),
        "cluster": m.cluster,
        "input_cost_per_mtok": m.input_cost_per_mtok,
        "output_cost_per_mtok": m.output_cost_per_mtok,
        "default_max_tokens": m.default_max_tokens,
        "created_at": m.created_at.to_rfc3339(),
    })
}

fn spend_report_json(r: &SpendReport) -> Value {
    let mut out = object(json!({
        "scope": r.scope.as_str(),
        "id": r.id,
        "spend": r.spend,
        "budget_window_start": r.window.start.to_rfc3339(),
        "budget_reset_at": time(r.window.reset_at),
        "budget_exhausted": r.exhausted,
        "total_spend": r.total_spend,
        "history": r.history.iter().map(|d| json!({
            "day": d.day.to_rfc3339().get(..10).unwrap_or_default(),
            "spend": d.spend,
            "requests": d.requests,
            "tokens_in": d.tokens_in,
            "tokens_out": d.tokens_out,
        })).collect::<Vec<_>>(),
    }));
    limits_json(&r.limits, &mut out);
    Value::Object(out)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyRequest {
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
    /// A service key (Open WebUI): it may name the end user it calls for.
    can_assert_user: Option<bool>,
    /// HS256 secret of Open WebUI's signed form; `null` on update = back to plain headers.
    #[serde(deserialize_with = "present")]
    assert_user_secret: Option<Option<String>>,
}

async fn key_generate<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
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
        can_assert_user: r.can_assert_user.unwrap_or(false),
        assert_user_secret: r.assert_user_secret.flatten().map(KeySecret::new),
    };
    let created = admin.create_key(input).await?;
    let mut out = object(key_json(&created.view));
    out.insert("key".into(), json!(created.secret.expose()));
    Ok(Json(Value::Object(out)))
}

async fn key_update<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
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
        metadata: r.metadata.flatten().map(json_text),
        blocked: r.blocked,
        can_assert_user: r.can_assert_user,
        assert_user_secret: r.assert_user_secret.flatten().map(KeySecret::new),
        clear,
    };
    Ok(Json(key_json(&admin.update_key(&key, update).await?)))
}

#[derive(Deserialize)]
struct KeyList {
    keys: Vec<String>,
}

async fn key_delete<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
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
struct KeyRef {
    key: Option<String>,
}

async fn key_block<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let key = required(body::<KeyRef>(&bytes)?.key, "key")?;
    Ok(Json(key_json(&admin.set_key_blocked(&key, true).await?)))
}

async fn key_unblock<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let key = required(body::<KeyRef>(&bytes)?.key, "key")?;
    Ok(Json(key_json(&admin.set_key_blocked(&key, false).await?)))
}

async fn key_info<S: Store>(State(admin): Shared<S>, q: Params<KeyRef>) -> Answer {
    let q = params(q)?;
    let view = admin.get_key(&required(q.key, "key")?).await?;
    Ok(Json(
        json!({"key": view.key.public_id, "info": key_json(&view)}),
    ))
}

/// `team_id`, `user_id`, `tag=name=value` (repeatable), `expired`, `unused_days`,
/// `include_revoked`, `return_full_object` (LiteLLM lists key ids unless asked for objects).
async fn key_list<S: Store>(State(admin): Shared<S>, q: Params<Vec<(String, String)>>) -> Answer {
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

#[derive(Deserialize, Default)]
#[serde(default)]
struct TeamRequest {
    /// Updates, block, unblock: the team (id or alias).
    team_id: Option<String>,
    team_alias: Option<String>,
    models: Option<Vec<String>>,
    #[serde(flatten)]
    limits: LimitFields,
    #[serde(deserialize_with = "present")]
    metadata: Option<Option<Value>>,
    #[serde(deserialize_with = "present")]
    redaction_policy: Option<Option<Value>>,
    high_trust: Option<bool>,
    keep_redacted_prompt: Option<bool>,
    blocked: Option<bool>,
    /// Replaces the team's IdP groups when present.
    idp_groups: Option<Vec<String>>,
}

async fn team_new<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: TeamRequest = body(&bytes)?;
    if r.team_id.is_some() {
        return Err(RestError::bad_request(
            "team_id is assigned by Modelgate; name the team with team_alias",
        ));
    }
    let input = TeamInput {
        alias: required(r.team_alias, "team_alias")?,
        models: r.models.unwrap_or_default(),
        limits: r.limits.input(),
        metadata: r.metadata.flatten().map(json_text),
        redaction_policy: r.redaction_policy.flatten().map(json_text),
        high_trust: r.high_trust.unwrap_or(false),
        keep_redacted_prompt: r.keep_redacted_prompt.unwrap_or(false),
        blocked: r.blocked.unwrap_or(false),
        idp_groups: r.idp_groups.unwrap_or_default(),
    };
    Ok(Json(team_json(&admin.create_team(input).await?)))
}

async fn team_update<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: TeamRequest = body(&bytes)?;
    let team = required(r.team_id, "team_id")?;
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
        metadata: r.metadata.flatten().map(json_text),
        redaction_policy: r.redaction_policy.flatten().map(json_text),
        high_trust: r.high_trust,
        keep_redacted_prompt: r.keep_redacted_prompt,
        blocked: r.blocked,
        clear,
        idp_groups: r.idp_groups,
    };
    Ok(Json(team_json(&admin.update_team(&team, update).await?)))
}

#[derive(Deserialize)]
struct TeamRef {
    team_id: Option<String>,
}

async fn team_block<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let team = required(body::<TeamRef>(&bytes)?.team_id, "team_id")?;
    Ok(Json(team_json(&admin.set_team_blocked(&team, true).await?)))
}

async fn team_unblock<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let team = required(body::<TeamRef>(&bytes)?.team_id, "team_id")?;
    Ok(Json(team_json(
        &admin.set_team_blocked(&team, false).await?,
    )))
}

async fn team_info<S: Store>(State(admin): Shared<S>, q: Params<TeamRef>) -> Answer {
    let q = params(q)?;
    let view = admin.get_team(&required(q.team_id, "team_id")?).await?;
    let keys = admin
        .list_keys(KeyQuery {
            team: Some(view.team.id.clone()),
            ..KeyQuery::default()
        })
        .await?;
    Ok(Json(json!({
        "team_id": view.team.id,
        "team_info": team_json(&view),
        "keys": keys.iter().map(key_json).collect::<Vec<_>>(),
    })))
}

async fn team_list<S: Store>(State(admin): Shared<S>) -> Answer {
    let teams = admin.list_teams().await?;
    Ok(Json(json!(teams.iter().map(team_json).collect::<Vec<_>>())))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserRequest {
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

async fn user_new<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let mut r: UserRequest = body(&bytes)?;
    let id = r.id()?;
    Ok(Json(user_json(
        &admin.create_user(&id, r.limits.input()).await?,
    )))
}

async fn user_update<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let mut r: UserRequest = body(&bytes)?;
    let id = r.id()?;
    let user = admin
        .update_user(&id, r.limits.input(), None, &r.limits.nulls())
        .await?;
    Ok(Json(user_json(&user)))
}

#[derive(Deserialize)]
struct UserRef {
    user_id: Option<String>,
}

async fn user_info<S: Store>(State(admin): Shared<S>, q: Params<UserRef>) -> Answer {
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

async fn user_list<S: Store>(State(admin): Shared<S>) -> Answer {
    let users = admin.list_users().await?;
    Ok(Json(
        json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}),
    ))
}

/// LiteLLM's `litellm_params`: the upstream name and per-token prices.
#[derive(Deserialize, Default)]
#[serde(default)]
struct LitellmParams {
    model: Option<String>,
    input_cost_per_token: Option<f64>,
    output_cost_per_token: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ModelRequest {
    model_name: Option<String>,
    upstream_model: Option<String>,
    cluster: Option<String>,
    input_cost_per_mtok: Option<f64>,
    output_cost_per_mtok: Option<f64>,
    default_max_tokens: Option<u64>,
    litellm_params: LitellmParams,
}

impl ModelRequest {
    /// Prices per million tokens, from either form.
    fn prices(&self) -> (Option<f64>, Option<f64>) {
        // Rounded to a billionth, so 1e-7 per token reads 0.1 rather than 0.09999….
        let per_mtok = |t: Option<f64>| t.map(|t| (t * 1e15).round() / 1e9);
        (
            self.input_cost_per_mtok
                .or(per_mtok(self.litellm_params.input_cost_per_token)),
            self.output_cost_per_mtok
                .or(per_mtok(self.litellm_params.output_cost_per_token)),
        )
    }

    fn upstream(&self) -> Option<String> {
        self.upstream_model
            .clone()
            .or_else(|| self.litellm_params.model.clone())
    }
}

async fn model_new<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: ModelRequest = body(&bytes)?;
    let (input, output) = r.prices();
    let model = ModelInput {
        upstream_model: r.upstream().unwrap_or_default(),
        cluster: r.cluster.clone().unwrap_or_default(),
        input_cost_per_mtok: input.unwrap_or(0.0),
        output_cost_per_mtok: output.unwrap_or(0.0),
        default_max_tokens: r.default_max_tokens.unwrap_or(0),
        name: required(r.model_name, "model_name")?,
    };
    Ok(Json(model_json(&admin.create_model(model).await?)))
}

async fn model_update<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: ModelRequest = body(&bytes)?;
    let (input, output) = r.prices();
    let update = ModelUpdate {
        upstream_model: r.upstream(),
        cluster: r.cluster.clone(),
        input_cost_per_mtok: input,
        output_cost_per_mtok: output,
        default_max_tokens: r.default_max_tokens,
    };
    let name = required(r.model_name, "model_name")?;
    Ok(Json(model_json(&admin.update_model(&name, update).await?)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ModelRef {
    model_name: Option<String>,
    /// LiteLLM deletes by `id`; a route's id is its name.
    id: Option<String>,
}

async fn model_delete<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: ModelRef = body(&bytes)?;
    let name = required(r.model_name.or(r.id), "model_name")?;
    Ok(Json(model_json(&admin.delete_model(&name).await?)))
}

async fn model_info<S: Store>(State(admin): Shared<S>) -> Answer {
    let models = admin.list_models().await?;
    Ok(Json(
        json!({"data": models.iter().map(model_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SpendQuery {
    key: Option<String>,
    team_id: Option<String>,
    user_id: Option<String>,
    /// Days of daily history, today included (default 30).
    days: Option<u32>,
}

const DEFAULT_HISTORY_DAYS: u32 = 30;

async fn spend<S: Store>(admin: &Admin<S>, scope: SpendScope, days: Option<u32>) -> Answer {
    let report = admin
        .spend(scope, days.unwrap_or(DEFAULT_HISTORY_DAYS))
        .await?;
    Ok(Json(spend_report_json(&report)))
}

async fn spend_key<S: Store>(State(admin): Shared<S>, q: Params<SpendQuery>) -> Answer {
    let q = params(q)?;
    let key = required(q.key, "key")?;
    spend(&admin, SpendScope::Key(key), q.days).await
}

async fn spend_team<S: Store>(State(admin): Shared<S>, q: Params<SpendQuery>) -> Answer {
    let q = params(q)?;
    let team = required(q.team_id, "team_id")?;
    spend(&admin, SpendScope::Team(team), q.days).await
}

async fn spend_user<S: Store>(State(admin): Shared<S>, q: Params<SpendQuery>) -> Answer {
    let q = params(q)?;
    let user = required(q.user_id, "user_id")?;
    spend(&admin, SpendScope::User(user), q.days).await
}
