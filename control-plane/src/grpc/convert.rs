//! Domain types to their `modelgate.v1` admin messages.

use modelgate_proto::v1 as pb;

use crate::clock::Timestamp;
use crate::domain::{ApiKey, KeyStatus, Team};

pub(super) fn team(t: &Team) -> pb::Team {
    pb::Team {
        team_id: t.id.clone(),
        alias: t.alias.clone(),
        models: t.models.clone(),
        created_at_ms: t.created_at.as_millis(),
        blocked: t.blocked,
        ..Default::default()
    }
}

/// A key as admins see it: the last four characters, never the secret or its hash.
pub(super) fn key(k: &ApiKey) -> pb::Key {
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
        ..Default::default()
    }
}
