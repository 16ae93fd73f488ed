//! `modelgate.v1` admin messages to the admin service's inputs, and its views back.

use modelgate_proto::v1 as pb;

use crate::admin::{
    KeyInput, KeyQuery, KeyUpdate, KeyView, ModelInput, ModelUpdate, SpendReport, TeamInput,
    TeamUpdate, TeamView, UserView,
};
use crate::clock::Timestamp;
use crate::domain::{KeyStatus, ModelRoute};
use crate::keys::KeySecret;
use crate::limits::{Limits, LimitsInput};
use crate::named_budget::{NamedBudget, NamedBudgetInput};
use crate::snapshot::spend_state;

pub(super) fn limits_input(l: Option<pb::LimitSettings>) -> LimitsInput {
    let l = l.unwrap_or_default();
    LimitsInput {
        rpm: l.rpm_limit,
        tpm: l.tpm_limit,
        max_parallel: l.max_parallel_requests,
        max_budget: l.max_budget,
        budget_duration: l.budget_duration,
        budget_reset: l.budget_reset,
    }
}

/// `None` when nothing is set.
pub(super) fn limit_settings(l: &Limits) -> Option<pb::LimitSettings> {
    (*l != Limits::default()).then(|| pb::LimitSettings {
        rpm_limit: l.rpm,
        tpm_limit: l.tpm,
        max_parallel_requests: l.max_parallel,
        max_budget: l.budget.map(|b| b.max_budget),
        budget_duration: l.budget.and_then(|b| b.period.duration_text()),
        budget_reset: l.budget.map(|b| b.period.reset_text().to_owned()),
    })
}

pub(super) fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

pub(super) fn team_input(r: pb::CreateTeamRequest) -> TeamInput {
    TeamInput {
        // Caller-chosen ids are a LiteLLM REST feature; gRPC and the CLI draw them.
        id: None,
        alias: r.alias,
        models: r.models,
        limits: limits_input(r.limits),
        metadata: non_empty(r.metadata_json),
        redaction_policy: non_empty(r.redaction_policy_json),
        high_trust: r.high_trust,
        keep_redacted_prompt: r.keep_redacted_prompt,
        blocked: r.blocked,
        idp_groups: r.idp_groups,
    }
}

pub(super) fn team_update(r: pb::UpdateTeamRequest) -> TeamUpdate {
    TeamUpdate {
        alias: r.alias,
        models: r.models.map(|m| m.models),
        limits: limits_input(r.limits),
        metadata: r.metadata_json,
        redaction_policy: r.redaction_policy_json,
        high_trust: r.high_trust,
        keep_redacted_prompt: r.keep_redacted_prompt,
        blocked: r.blocked,
        clear: r.clear,
        idp_groups: r.idp_groups.map(|g| g.names),
    }
}

pub(super) fn key_input(r: pb::CreateKeyRequest) -> KeyInput {
    KeyInput {
        team: r.team,
        user_id: non_empty(r.user_id),
        alias: non_empty(r.key_alias),
        expires: non_empty(r.expires),
        models: r.models,
        limits: limits_input(r.limits),
        metadata: non_empty(r.metadata_json),
        blocked: r.blocked,
        can_assert_user: r.can_assert_user,
        assert_user_secret: non_empty(r.assert_user_secret).map(KeySecret::new),
    }
}

pub(super) fn key_update(r: pb::UpdateKeyRequest) -> KeyUpdate {
    KeyUpdate {
        alias: r.key_alias,
        user_id: r.user_id,
        expires: r.expires,
        models: r.models.map(|m| m.models),
        limits: limits_input(r.limits),
        metadata: r.metadata_json,
        blocked: r.blocked,
        can_assert_user: r.can_assert_user,
        assert_user_secret: r.assert_user_secret.map(KeySecret::new),
        clear: r.clear,
    }
}

pub(super) fn key_query(r: pb::ListKeysRequest) -> KeyQuery {
    KeyQuery {
        team: non_empty(r.team),
        user_id: non_empty(r.user_id),
        tags: r.tags,
        expired: r.expired,
        unused_days: (r.unused_days > 0).then_some(r.unused_days),
        include_revoked: r.include_revoked,
    }
}

pub(super) fn model_input(r: pb::CreateModelRequest) -> ModelInput {
    ModelInput {
        name: r.name,
        upstream_model: r.upstream_model,
        cluster: r.cluster,
        input_cost_per_mtok: r.input_cost_per_mtok,
        output_cost_per_mtok: r.output_cost_per_mtok,
        default_max_tokens: r.default_max_tokens,
        max_output_tokens: r.max_output_tokens,
    }
}

pub(super) fn model_update(r: pb::UpdateModelRequest) -> ModelUpdate {
    ModelUpdate {
        upstream_model: r.upstream_model,
        cluster: r.cluster,
        input_cost_per_mtok: r.input_cost_per_mtok,
        output_cost_per_mtok: r.output_cost_per_mtok,
        default_max_tokens: r.default_max_tokens,
        max_output_tokens: r.max_output_tokens,
    }
}

pub(super) fn team(v: &TeamView) -> pb::Team {
    let t = &v.team;
    pb::Team {
        team_id: t.id.clone(),
        alias: t.alias.clone(),
        models: t.models.clone(),
        created_at_ms: t.created_at.as_millis(),
        blocked: t.blocked,
        limits: limit_settings(&t.limits),
        metadata_json: t.metadata.to_json(),
        redaction_policy_json: t.redaction_policy.clone().unwrap_or_default(),
        high_trust: t.high_trust,
        keep_redacted_prompt: t.keep_redacted_prompt,
        spend: v.spend.as_ref().map(spend_state),
        idp_groups: t.idp_groups.clone(),
        budget_id: v.budget_id.clone().unwrap_or_default(),
    }
}

/// A key as admins see it: the last four characters, never the secret or its hash.
pub(super) fn key(v: &KeyView) -> pb::Key {
    let k = &v.key;
    pb::Key {
        public_id: k.public_id.clone(),
        team_id: k.team_id.clone(),
        user_id: k.user_id.clone().unwrap_or_default(),
        key_alias: k.alias.clone().unwrap_or_default(),
        created_at_ms: k.created_at.as_millis(),
        expires_at_ms: k.expires_at.map_or(0, Timestamp::as_millis),
        last4: k.last4.clone(),
        revoked: k.status == KeyStatus::Revoked,
        revoked_at_ms: k.revoked_at.map_or(0, Timestamp::as_millis),
        models: k.models.clone(),
        limits: limit_settings(&k.limits),
        metadata_json: k.metadata.to_json(),
        blocked: k.blocked,
        spend: v.spend.as_ref().map(spend_state),
        last_used_at_ms: v.last_used_at.map_or(0, Timestamp::as_millis),
        can_assert_user: k.user_assertion.can_assert_user(),
        has_assert_user_secret: k.user_assertion.secret().is_some(),
        budget_id: v.budget_id.clone().unwrap_or_default(),
    }
}

pub(super) fn user(v: &UserView) -> pb::User {
    pb::User {
        user_id: v.user.id.clone(),
        limits: limit_settings(&v.user.limits),
        created_at_ms: v.user.created_at.as_millis(),
        spend: v.spend.as_ref().map(spend_state),
        team_id: v.user.team_id.clone().unwrap_or_default(),
        budget_id: v.budget_id.clone().unwrap_or_default(),
    }
}

pub(super) fn model(m: &ModelRoute) -> pb::Model {
    pb::Model {
        name: m.name.clone(),
        upstream_model: m.upstream_model.clone().unwrap_or_default(),
        cluster: m.cluster.clone().unwrap_or_default(),
        input_cost_per_mtok: m.input_cost_per_mtok,
        output_cost_per_mtok: m.output_cost_per_mtok,
        default_max_tokens: m.default_max_tokens.unwrap_or(0),
        created_at_ms: m.created_at.as_millis(),
        max_output_tokens: m.max_output_tokens.unwrap_or(0),
    }
}

pub(super) fn spend_report(r: &SpendReport) -> pb::SpendReport {
    pb::SpendReport {
        scope: r.scope.as_str().to_owned(),
        id: r.id.clone(),
        limits: limit_settings(&r.limits),
        current: Some(pb::SpendState {
            spend: r.spend,
            window_start_ms: r.window.start.as_millis(),
            window_reset_at_ms: r.window.reset_at.map_or(0, Timestamp::as_millis),
            exhausted: r.exhausted,
        }),
        total_spend: r.total_spend,
        history: r
            .history
            .iter()
            .map(|d| pb::DailySpend {
                day: d.day.to_rfc3339().get(..10).unwrap_or_default().to_owned(),
                spend: d.spend,
                requests: d.requests,
                tokens_in: d.tokens_in,
                tokens_out: d.tokens_out,
            })
            .collect(),
    }
}

pub fn budget(b: &NamedBudget) -> pb::BudgetObject {
    pb::BudgetObject {
        budget_id: b.id.clone(),
        max_budget: b.max_budget,
        soft_budget: b.soft_budget,
        budget_duration: b.budget_duration.clone().unwrap_or_default(),
        rpm_limit: b.rpm,
        tpm_limit: b.tpm,
        max_parallel_requests: b.max_parallel,
        created_at_ms: b.created_at.as_millis(),
        updated_at_ms: b.updated_at.as_millis(),
    }
}

/// The fields the settings set (`None`: none, or unchanged on update).
pub fn budget_input(settings: Option<pb::BudgetSettings>) -> NamedBudgetInput {
    let s = settings.unwrap_or_default();
    NamedBudgetInput {
        max_budget: s.max_budget.map(Some),
        soft_budget: s.soft_budget.map(Some),
        budget_duration: s.budget_duration.map(Some),
        rpm: s.rpm_limit.map(Some),
        tpm: s.tpm_limit.map(Some),
        max_parallel: s.max_parallel_requests.map(Some),
    }
}

/// A create or update request's `budget_id` as [`Admin::with_budget`] takes it: unset keeps
/// the scope's budget object, empty detaches it, an id attaches that one.
///
/// [`Admin::with_budget`]: crate::admin::Admin::with_budget
pub(super) fn budget_change(budget_id: Option<&str>) -> Option<Option<&str>> {
    budget_id.map(|id| Some(id.trim()).filter(|id| !id.is_empty()))
}
