//! The list routes declarative LiteLLM clients (e.g. `litellm-as-code`) read before they
//! reconcile, for LiteLLM features Modelgate does not have: organizations, stored provider
//! credentials, guardrails and guardrail policies. Each answers what LiteLLM answers when
//! there are none, in LiteLLM's shape, so such a client sees "nothing configured" rather
//! than a 404; there is no route to create any of them, so a spec that declares one fails
//! at its create call with a 404.

use axum::Json;
use serde_json::json;

use super::Answer;

/// LiteLLM answers a bare array.
pub(super) async fn organization_list() -> Answer {
    Ok(Json(json!([])))
}

pub(super) async fn credential_list() -> Answer {
    Ok(Json(json!({"success": true, "credentials": []})))
}

pub(super) async fn guardrail_list() -> Answer {
    Ok(Json(json!({"guardrails": []})))
}

pub(super) async fn policy_list() -> Answer {
    Ok(Json(json!({"policies": [], "total_count": 0})))
}
