//! A LiteLLM-compatible admin REST API on the HTTP port, for scripts that already speak it.
//!
//! Every route needs `Authorization: Bearer <admin key>` (or the master key, break-glass):
//! the middleware turns it into the [`Caller`](crate::authz::Caller) each handler passes to
//! the same [`Admin`] service as the gRPC API, which asks whether the caller's role allows
//! the call. Field names are LiteLLM's (`team_alias`, `rpm_limit`,
//! `tpm_limit`, `max_parallel_requests`, `max_budget`, `budget_duration`, `duration`,
//! `metadata`, …) plus Modelgate's own (`budget_reset`, `redaction_policy`, `high_trust`,
//! `keep_redacted_prompt`, `upstream_model`, `cluster`). In updates a field left out keeps
//! its value and `null` unsets it. Input is strict: a field Modelgate does not implement, a
//! value of the wrong type, a malformed body or one over 1 MB is refused (400, or 413 for the
//! size) naming the field, so nothing is half-applied or silently dropped; LiteLLM's `tags`
//! go into `metadata` as LiteLLM keeps them. Errors are
//! `{"error": {"message", "type", "param", "code"}}` with the HTTP status in `code`.
//!
//! Teams are named by id or alias wherever a `team_id` is accepted (one namespace: an id
//! cannot equal another team's alias); `team/new` takes a caller-chosen `team_id`. Updates
//! address a team by `team_id` or `team_alias`, a key by `key` or `key_alias`.
//!
//! Team members (`/team/member_*`, `members_with_roles`) are users whose team is the team
//! (see `members`).
//!
//! Budget objects (`/budget/*`) carry limits that keys, teams and users take on through
//! `budget_id` on their create and update calls (see [`crate::named_budget`]). The list
//! routes of features Modelgate does not have answer empty lists (see `lists`).
//!
//! Differences from LiteLLM: keys are referenced by the whole key or by their public id
//! (`token` in responses); `/key/delete` revokes (the key stays listed as revoked, so filters
//! answer "key revoked"); a key needs a team.

mod budgets;
mod error;
mod idp;
mod input;
mod keys;
mod lists;
mod members;
mod models;
mod spend;
mod teams;
mod users;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use budgets::{
    budget_delete, budget_info, budget_info_one, budget_list, budget_new, budget_update,
};
use error::RestError;
use keys::{
    key_block, key_delete, key_generate, key_info, key_list, key_regenerate, key_regenerate_path,
    key_unblock, key_update,
};
use lists::{credential_list, guardrail_list, organization_list, policy_list};
use members::{team_member_add, team_member_delete, team_member_update};
use models::{model_delete, model_info, model_new, model_update};
use spend::{spend_key, spend_logs, spend_team, spend_user};
use teams::{
    team_block, team_delete, team_info, team_list, team_list_v2, team_new, team_unblock,
    team_update,
};
use users::{user_delete, user_info, user_list, user_new, user_update};

use crate::admin::{Admin, AdminError};
use crate::identity::admin::IdentityAdmin;
use crate::store::Store;

/// The REST routes, all behind an admin credential.
pub fn router<S: Store>(admin: Arc<Admin<S>>, identity: Arc<IdentityAdmin<S>>) -> Router {
    Router::new()
        .route("/key/generate", post(key_generate::<S>))
        .route("/key/update", post(key_update::<S>))
        .route("/key/delete", post(key_delete::<S>))
        .route("/key/regenerate", post(key_regenerate::<S>))
        .route("/key/{key}/regenerate", post(key_regenerate_path::<S>))
        .route("/key/block", post(key_block::<S>))
        .route("/key/unblock", post(key_unblock::<S>))
        .route("/key/info", get(key_info::<S>))
        .route("/key/list", get(key_list::<S>))
        .route("/team/new", post(team_new::<S>))
        .route("/team/update", post(team_update::<S>))
        .route("/team/delete", post(team_delete::<S>))
        .route("/team/block", post(team_block::<S>))
        .route("/team/unblock", post(team_unblock::<S>))
        .route("/team/info", get(team_info::<S>))
        .route("/team/list", get(team_list::<S>))
        .route("/v2/team/list", get(team_list_v2::<S>))
        .route("/team/member_add", post(team_member_add::<S>))
        .route("/team/member_delete", post(team_member_delete::<S>))
        .route("/team/member_update", post(team_member_update::<S>))
        .route("/user/new", post(user_new::<S>))
        .route("/user/update", post(user_update::<S>))
        .route("/user/delete", post(user_delete::<S>))
        .route("/user/info", get(user_info::<S>))
        .route("/user/list", get(user_list::<S>))
        .route("/model/new", post(model_new::<S>))
        .route("/model/update", post(model_update::<S>))
        .route("/model/delete", post(model_delete::<S>))
        .route("/model/info", get(model_info::<S>))
        .route("/spend/key", get(spend_key::<S>))
        .route("/spend/team", get(spend_team::<S>))
        .route("/spend/user", get(spend_user::<S>))
        .route("/spend/logs", get(spend_logs::<S>))
        .route("/budget/new", post(budget_new::<S>))
        .route("/budget/update", post(budget_update::<S>))
        .route("/budget/delete", post(budget_delete::<S>))
        .route(
            "/budget/info",
            post(budget_info::<S>).get(budget_info_one::<S>),
        )
        .route("/budget/list", get(budget_list::<S>))
        .route("/organization/list", get(organization_list))
        .route("/credentials", get(credential_list))
        .route("/v2/guardrails/list", get(guardrail_list))
        .route("/policies/list", get(policy_list))
        .merge(idp::routes(Arc::clone(&admin), identity))
        .layer(DefaultBodyLimit::max(input::MAX_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&admin),
            authenticate::<S>,
        ))
        .with_state(admin)
}

pub(super) type Shared<S> = State<Arc<Admin<S>>>;
pub(super) type Answer = Result<Json<Value>, RestError>;
/// A query string, with its failures answered as JSON errors too.
pub(super) type Params<T> = Result<Query<T>, QueryRejection>;

pub(super) fn params<T>(q: Params<T>) -> Result<T, RestError> {
    q.map(|Query(v)| v)
        .map_err(|e| RestError::bad_request(format!("invalid query string: {}", e.body_text())))
}

/// Establishes the [`Caller`](crate::authz::Caller) once per request and hands it to the
/// handler.
async fn authenticate<S: Store>(
    State(admin): Shared<S>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.to_string());
    let authorization = match request.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(v) => Some(v.to_owned()),
            Err(_) => {
                return RestError::from(AdminError::Unauthenticated(
                    "malformed authorization: expected 'Bearer <admin key>'".into(),
                ))
                .into_response()
            }
        },
    };
    match admin.authenticate(authorization.as_deref(), &peer).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => RestError::from(e).into_response(),
    }
}
