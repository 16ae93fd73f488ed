//! `/idp/*`: the IdP issuers whose tokens the filters accept, as `modelgate idp` manages them
//! over gRPC (Modelgate's own routes: LiteLLM has no equivalent). Admin-only, like every
//! issuer change, and recorded in the audit chain.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::RestError;
use super::input::{json_text, Body, LimitFields};
use super::views::{limits_json, object, time};
use super::Answer;
use crate::admin::{Admin, AdminResult, Target};
use crate::authz::{Action, Caller, Object};
use crate::identity::admin::{IdentityAdmin, IdentityProviderInput, IdentityProviderUpdate};
use crate::identity::{IdentityProvider, JwksSource};
use crate::store::Store;

/// The admin service (for the caller's permission and the audit record) and the issuers.
pub(super) struct Issuers<S> {
    admin: Arc<Admin<S>>,
    identity: Arc<IdentityAdmin<S>>,
}

// Derived Clone would require `S: Clone`; only the two `Arc`s are cloned.
impl<S> Clone for Issuers<S> {
    fn clone(&self) -> Self {
        Self {
            admin: Arc::clone(&self.admin),
            identity: Arc::clone(&self.identity),
        }
    }
}

type Shared<S> = State<Issuers<S>>;

/// The `/idp/*` routes, to be merged before the authentication layer.
pub(super) fn routes<S: Store, T: Clone + Send + Sync + 'static>(
    admin: Arc<Admin<S>>,
    identity: Arc<IdentityAdmin<S>>,
) -> Router<T> {
    Router::new()
        .route("/idp/new", post(idp_new::<S>))
        .route("/idp/update", post(idp_update::<S>))
        .route("/idp/delete", post(idp_delete::<S>))
        .route("/idp/list", get(idp_list::<S>))
        .with_state(Issuers { admin, identity })
}

impl<S: Store> Issuers<S> {
    /// Runs `change` on `issuer` if the caller may manage issuers, and records it.
    async fn change(
        &self,
        caller: &Caller,
        issuer: &str,
        change: impl std::future::Future<Output = AdminResult<IdentityProvider>>,
    ) -> Answer {
        let action = Action::ManageIdentityProviders;
        let target = Target::new("identity_provider", issuer);
        self.admin
            .permit(caller, action, Object::Global, target)
            .await?;
        let provider = change.await?;
        self.admin
            .record_write(caller, action, target, Vec::new())
            .await;
        Ok(Json(idp_json(&provider)))
    }
}

/// `"admin_roles": {"group": "role", …}` as the pairs the admin operations parse.
fn admin_roles(body: &mut Body) -> Result<Option<Vec<(String, String)>>, RestError> {
    Ok(body
        .take::<BTreeMap<String, String>>("admin_roles")?
        .map(|roles| roles.into_iter().collect()))
}

/// The JWKS given inline: a JSON object (as the IdP publishes it) or its text.
fn jwks_text(body: &mut Body) -> Result<Option<String>, RestError> {
    Ok(body.take::<Value>("jwks")?.map(|v| match v {
        Value::String(text) => text,
        other => json_text(other),
    }))
}

async fn idp_new<S: Store>(
    State(issuers): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let issuer = body.required("issuer")?;
    let input = IdentityProviderInput {
        issuer: issuer.clone(),
        audiences: body.take("audiences")?.unwrap_or_default(),
        jwks_url: body.take("jwks_url")?,
        jwks_json: jwks_text(&mut body)?,
        user_claim: body.take("user_claim")?.unwrap_or_default(),
        groups_claim: body.take("groups_claim")?.unwrap_or_default(),
        allowed_groups: body.take("allowed_groups")?.unwrap_or_default(),
        clock_skew_s: body.take("clock_skew_s")?,
        default_user_limits: LimitFields::take(&mut body)?.input(),
        admin_roles: admin_roles(&mut body)?.unwrap_or_default(),
    };
    body.finish()?;
    issuers
        .change(&caller, &issuer, issuers.identity.create(input))
        .await
}

/// Fields left out keep their value; `null` on a default limit unsets it; `"use_discovery":
/// true` goes back to OIDC discovery; `admin_roles` replaces the mapping (`{}` removes it).
async fn idp_update<S: Store>(
    State(issuers): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let issuer = body.required("issuer")?;
    let limits = LimitFields::take(&mut body)?;
    let update = IdentityProviderUpdate {
        audiences: body.take("audiences")?,
        jwks_url: body.take("jwks_url")?,
        jwks_json: jwks_text(&mut body)?,
        use_discovery: body.take("use_discovery")?.unwrap_or(false),
        user_claim: body.take("user_claim")?,
        groups_claim: body.take("groups_claim")?,
        allowed_groups: body.take("allowed_groups")?,
        clock_skew_s: body.take("clock_skew_s")?,
        default_user_limits: limits.input(),
        clear: limits.nulls(),
        admin_roles: admin_roles(&mut body)?,
    };
    body.finish()?;
    issuers
        .change(&caller, &issuer, issuers.identity.update(&issuer, update))
        .await
}

async fn idp_delete<S: Store>(
    State(issuers): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let issuer = body.required("issuer")?;
    body.finish()?;
    issuers
        .change(&caller, &issuer, issuers.identity.delete(&issuer))
        .await
}

async fn idp_list<S: Store>(
    State(issuers): Shared<S>,
    Extension(caller): Extension<Caller>,
) -> Answer {
    let action = Action::ManageIdentityProviders;
    issuers
        .admin
        .permit(&caller, action, Object::Global, Target::NONE)
        .await?;
    let providers = issuers.identity.list().await?;
    Ok(Json(json!({
        "identity_providers": providers.iter().map(idp_json).collect::<Vec<_>>(),
    })))
}

/// An issuer with the state of its keys (their ids, age and last error), never the JWKS.
fn idp_json(p: &IdentityProvider) -> Value {
    let mut out = object(json!({
        "issuer": p.issuer,
        "audiences": p.audiences,
        "jwks_source": p.source.as_str(),
        "jwks_url": match &p.source {
            JwksSource::Url(url) => Some(url.clone()),
            _ => p.keys.fetched_from.clone(),
        },
        "user_claim": p.user_claim,
        "groups_claim": p.groups_claim,
        "allowed_groups": p.allowed_groups,
        "clock_skew_s": p.clock_skew_s,
        "key_ids": p.key_ids(),
        "jwks_fetched_at": time(p.keys.fetched_at),
        "next_refresh_at": time(p.keys.next_refresh_at),
        "last_error": p.keys.last_error,
        "last_error_at": time(p.keys.last_error_at),
        "created_at": p.created_at.to_rfc3339(),
        "admin_roles": p.admin_roles.iter()
            .map(|m| (m.group.clone(), Value::from(m.role.as_str())))
            .collect::<serde_json::Map<_, _>>(),
    }));
    limits_json(&p.default_user_limits, &mut out);
    Value::Object(out)
}
