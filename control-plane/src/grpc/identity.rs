//! `modelgate.v1` identity-provider messages to [`crate::identity::admin`]'s inputs, and
//! issuers back as admins see them.

use modelgate_proto::v1 as pb;

use super::convert::{limit_settings, limits_input, non_empty};
use crate::clock::Timestamp;
use crate::identity::admin::{IdentityProviderInput, IdentityProviderUpdate};
use crate::identity::{AdminRoleGroup, IdentityProvider, JwksSource};

fn admin_role_pairs(groups: Vec<pb::AdminRoleGroup>) -> Vec<(String, String)> {
    groups.into_iter().map(|m| (m.group, m.role)).collect()
}

fn admin_role_groups(groups: &[AdminRoleGroup]) -> Vec<pb::AdminRoleGroup> {
    groups
        .iter()
        .map(|m| pb::AdminRoleGroup {
            group: m.group.clone(),
            role: m.role.as_str().to_owned(),
        })
        .collect()
}

pub(super) fn input(r: pb::CreateIdentityProviderRequest) -> IdentityProviderInput {
    IdentityProviderInput {
        issuer: r.issuer,
        audiences: r.audiences,
        jwks_url: non_empty(r.jwks_url),
        jwks_json: non_empty(r.jwks_json),
        user_claim: r.user_claim,
        groups_claim: r.groups_claim,
        allowed_groups: r.allowed_groups,
        clock_skew_s: r.clock_skew_s,
        default_user_limits: limits_input(r.default_user_limits),
        admin_roles: admin_role_pairs(r.admin_roles),
    }
}

pub(super) fn update(r: pb::UpdateIdentityProviderRequest) -> IdentityProviderUpdate {
    IdentityProviderUpdate {
        audiences: r.audiences.map(|a| a.names),
        jwks_url: r.jwks_url,
        jwks_json: r.jwks_json,
        use_discovery: r.use_discovery,
        user_claim: r.user_claim,
        groups_claim: r.groups_claim,
        allowed_groups: r.allowed_groups.map(|g| g.names),
        clock_skew_s: r.clock_skew_s,
        default_user_limits: limits_input(r.default_user_limits),
        clear: r.clear,
        admin_roles: r.admin_roles.map(|l| admin_role_pairs(l.groups)),
    }
}

/// An issuer with the state of its keys; never the JWKS itself (public, but long).
pub(super) fn info(p: &IdentityProvider) -> pb::IdentityProviderInfo {
    let millis = |t: Option<Timestamp>| t.map_or(0, Timestamp::as_millis);
    pb::IdentityProviderInfo {
        issuer: p.issuer.clone(),
        audiences: p.audiences.clone(),
        jwks_source: p.source.as_str().to_owned(),
        jwks_url: match &p.source {
            JwksSource::Url(url) => url.clone(),
            _ => p.keys.fetched_from.clone().unwrap_or_default(),
        },
        user_claim: p.user_claim.clone(),
        groups_claim: p.groups_claim.clone(),
        allowed_groups: p.allowed_groups.clone(),
        clock_skew_s: p.clock_skew_s,
        default_user_limits: limit_settings(&p.default_user_limits),
        key_ids: p.key_ids(),
        jwks_fetched_at_ms: millis(p.keys.fetched_at),
        next_refresh_at_ms: millis(p.keys.next_refresh_at),
        last_error: p.keys.last_error.clone().unwrap_or_default(),
        last_error_at_ms: millis(p.keys.last_error_at),
        created_at_ms: p.created_at.as_millis(),
        admin_roles: admin_role_groups(&p.admin_roles),
    }
}
