//! How teams, keys, users, models and spend look in responses (LiteLLM's field names).

use serde_json::{json, Map, Value};

use modelgate_proto::v1::{RequestStatus, UsageRecord};

use crate::admin::{KeyView, SpendReport, TeamView, UserView};
use crate::audit::RecordStatus;
use crate::clock::Timestamp;
use crate::domain::ModelRoute;
use crate::limits::Limits;
use crate::spend::SpendState;

pub(super) fn limits_json(l: &Limits, out: &mut Map<String, Value>) {
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

pub(super) fn time(t: Option<Timestamp>) -> Value {
    json!(t.map(Timestamp::to_rfc3339))
}

/// LiteLLM's `spend` and `budget_reset_at`, plus the window and whether it is exhausted
/// (under the scope's own budget, or else the one of the budget object it names).
pub(super) fn spend_json(s: Option<SpendState>, out: &mut Map<String, Value>) {
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

pub(super) fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(super) fn team_json(v: &TeamView) -> Value {
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
        "budget_id": v.budget_id,
    }));
    limits_json(&t.limits, &mut out);
    spend_json(v.spend, &mut out);
    Value::Object(out)
}

pub(super) fn key_json(v: &KeyView) -> Value {
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
        "budget_id": v.budget_id,
    }));
    limits_json(&k.limits, &mut out);
    spend_json(v.spend, &mut out);
    Value::Object(out)
}

pub(super) fn user_json(v: &UserView) -> Value {
    let mut out = object(json!({
        "user_id": v.user.id,
        "user_email": v.user.id,
        "team_id": v.user.team_id,
        "created_at": v.user.created_at.to_rfc3339(),
        "budget_id": v.budget_id,
    }));
    limits_json(&v.user.limits, &mut out);
    spend_json(v.spend, &mut out);
    Value::Object(out)
}

pub(super) fn model_json(m: &ModelRoute) -> Value {
    json!({
        "model_name": m.name,
        "upstream_model": m.upstream_model.as_deref().unwrap_or(&m.name),
        "cluster": m.cluster,
        "input_cost_per_mtok": m.input_cost_per_mtok,
        "output_cost_per_mtok": m.output_cost_per_mtok,
        "default_max_tokens": m.default_max_tokens,
        "max_output_tokens": m.max_output_tokens,
        "created_at": m.created_at.to_rfc3339(),
    })
}

pub(super) fn spend_report_json(r: &SpendReport) -> Value {
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

/// One request as a LiteLLM spend log row; `api_key` is the key's public id (never the key),
/// `metadata` carries Modelgate's outcome.
pub(super) fn spend_log_json(r: &UsageRecord) -> Value {
    let start = Timestamp::from_millis(r.timestamp_ms);
    let end = Timestamp::from_millis(r.timestamp_ms + i64::from(r.latency_ms));
    let status = RecordStatus::from_proto(
        RequestStatus::try_from(r.status).unwrap_or(RequestStatus::Unspecified),
    );
    json!({
        "request_id": r.request_id,
        "call_type": r.path,
        "api_key": r.key_id,
        "user": r.user_id,
        "team_id": r.team_id,
        "model": r.model_requested,
        "model_group": r.model_resolved,
        "spend": r.spend,
        "prompt_tokens": r.tokens_in,
        "completion_tokens": r.tokens_out,
        "total_tokens": r.tokens_in + r.tokens_out,
        "startTime": start.to_rfc3339(),
        "endTime": end.to_rfc3339(),
        "requester_ip_address": r.client_ip,
        "status": if status == RecordStatus::Success { "success" } else { "failure" },
        "metadata": {
            "status": status.as_str(),
            "reason": r.reason,
            "http_status": r.http_status,
            "auth_method": r.auth_method,
        },
    })
}
