//! Who is calling and whether they may: the one authentication of every admin call (gRPC,
//! REST, the CLI through gRPC) from its bearer credential into a [`Caller`], the check each
//! operation makes through [`authz::authorize`], and the admin records (writes, denials) it
//! appends to the audit chain that holds the request records.

use modelgate_proto::v1 as pb;

use super::{Admin, AdminError, AdminResult};
use crate::admin_key::{self, LAST_USED_RESOLUTION_MS};
use crate::audit::entry_from_record;
use crate::authz::{self, Action, Caller, Object, Principal};
use crate::clock::Timestamp;
use crate::domain::{ApiKey, ModelRoute, Team, UsageBatch, User};
use crate::identity::admin_token::{self, AdminTokenError};
use crate::keys;
use crate::store::Store;

/// Where admin records say they come from (`node_id` and data plane of their batch).
pub const ADMIN_RECORD_SOURCE: &str = "control-plane";
/// Admin records are `UsageRecord`s whose path is this prefix and the action.
pub const ADMIN_RECORD_PATH: &str = "admin/";
const RECORD_ID_LEN: usize = 20;

/// The object an audit record names: a kind (`team`, `key`, …) and its id.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub kind: &'static str,
    pub id: &'a str,
}

impl<'a> Target<'a> {
    pub const NONE: Target<'static> = Target { kind: "", id: "" };

    pub fn new(kind: &'static str, id: &'a str) -> Self {
        Self { kind, id }
    }
}

/// One field an admin write changed, as audit records show it (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub before: String,
    pub after: String,
}

/// The fields that differ between `before` (empty for a creation) and `after` (empty for a
/// deletion).
pub fn changes(
    before: &[(&'static str, String)],
    after: &[(&'static str, String)],
) -> Vec<FieldChange> {
    let value = |fields: &[(&'static str, String)], field: &str| {
        fields
            .iter()
            .find(|(f, _)| *f == field)
            .map_or(String::new(), |(_, v)| v.clone())
    };
    let mut fields: Vec<&'static str> = after.iter().map(|(f, _)| *f).collect();
    for (field, _) in before {
        if !fields.contains(field) {
            fields.push(field);
        }
    }
    fields
        .into_iter()
        .filter_map(|field| {
            let (old, new) = (value(before, field), value(after, field));
            (old != new).then_some(FieldChange {
                field,
                before: old,
                after: new,
            })
        })
        .collect()
}

fn shown<T: std::fmt::Debug>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(String::new, |v| format!("{v:?}"))
}

pub fn team_fields(t: &Team) -> Vec<(&'static str, String)> {
    vec![
        ("alias", t.alias.clone()),
        ("models", t.models.join(",")),
        ("limits", format!("{:?}", t.limits)),
        (
            "metadata",
            serde_json::Value::Object(t.metadata.as_map().clone()).to_string(),
        ),
        ("blocked", t.blocked.to_string()),
        (
            "redaction_policy",
            t.redaction_policy.clone().unwrap_or_default(),
        ),
        ("high_trust", t.high_trust.to_string()),
        ("keep_redacted_prompt", t.keep_redacted_prompt.to_string()),
        ("idp_groups", t.idp_groups.join(",")),
    ]
}

pub fn key_fields(k: &ApiKey) -> Vec<(&'static str, String)> {
    vec![
        ("team_id", k.team_id.clone().unwrap_or_default()),
        ("user_id", k.user_id.clone().unwrap_or_default()),
        ("key_alias", k.alias.clone().unwrap_or_default()),
        ("models", k.models.join(",")),
        ("limits", format!("{:?}", k.limits)),
        (
            "metadata",
            serde_json::Value::Object(k.metadata.as_map().clone()).to_string(),
        ),
        ("blocked", k.blocked.to_string()),
        (
            "can_assert_user",
            k.user_assertion.can_assert_user().to_string(),
        ),
        // Whether a secret is set, never the secret.
        (
            "assert_user_secret",
            if k.user_assertion.secret().is_some() {
                "set"
            } else {
                ""
            }
            .to_owned(),
        ),
        ("status", format!("{:?}", k.status)),
        (
            "expires",
            k.expires_at.map(Timestamp::to_rfc3339).unwrap_or_default(),
        ),
    ]
}

pub fn user_fields(u: &User) -> Vec<(&'static str, String)> {
    vec![
        ("team_id", u.team_id.clone().unwrap_or_default()),
        ("limits", format!("{:?}", u.limits)),
    ]
}

pub fn model_fields(m: &ModelRoute) -> Vec<(&'static str, String)> {
    vec![
        (
            "upstream_model",
            m.upstream_model.clone().unwrap_or_default(),
        ),
        ("cluster", m.cluster.clone().unwrap_or_default()),
        ("input_cost_per_mtok", m.input_cost_per_mtok.to_string()),
        ("output_cost_per_mtok", m.output_cost_per_mtok.to_string()),
        ("default_max_tokens", shown(&m.default_max_tokens)),
        ("max_output_tokens", shown(&m.max_output_tokens)),
    ]
}

impl<S: Store> Admin<S> {
    /// The caller behind an `authorization` header value: the master key (break-glass), a
    /// live admin key, or an IdP token whose groups give a role. Virtual keys, data-plane
    /// tokens and unknown or revoked admin keys are unauthenticated; the presented credential
    /// is never logged.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        peer: &str,
    ) -> AdminResult<Caller> {
        let Some(value) = authorization else {
            tracing::warn!(%peer, "admin call without authorization");
            return Err(AdminError::Unauthenticated(
                "missing authorization: send 'Authorization: Bearer <admin key>'".into(),
            ));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                AdminError::Unauthenticated(
                    "malformed authorization: expected 'Bearer <admin key>'".into(),
                )
            })?;
        if self.master_key.matches(token) {
            tracing::info!(%peer, "admin call with the master key (break-glass)");
            return Ok(Caller::master_key(peer));
        }
        if modelgate_filter::identity::jwt::looks_like_jwt(token) {
            return self.authenticate_token(token, peer).await;
        }
        if admin_key::public_id_of(token).is_none() {
            tracing::warn!(%peer, "admin call with a credential that is not an admin key");
            let why = if keys::public_id_of(token).is_some() {
                "virtual keys cannot call the admin API; use an admin key (mgak-…)"
            } else {
                "invalid admin credential: expected an admin key (mgak-…) or the master key"
            };
            return Err(AdminError::Unauthenticated(why.into()));
        }
        let found = self
            .store
            .find_admin_key_by_hash(&keys::hash_key(token))
            .await?;
        let Some(key) = found else {
            tracing::warn!(%peer, "admin call with an unknown admin key");
            return Err(AdminError::Unauthenticated("unknown admin key".into()));
        };
        if key.revoked_at.is_some() {
            tracing::warn!(%peer, public_id = %key.public_id, "admin call with a revoked admin key");
            return Err(AdminError::Unauthenticated(format!(
                "admin key {} is revoked",
                key.public_id
            )));
        }
        let now = Timestamp::now();
        let stale = key.last_used_at.is_none_or(|at| {
            now.as_millis().saturating_sub(at.as_millis()) >= LAST_USED_RESOLUTION_MS
        });
        if stale {
            // Bookkeeping only: a failed write does not refuse a valid caller.
            if let Err(e) = self.store.touch_admin_key(&key.public_id, now).await {
                tracing::warn!(public_id = %key.public_id, error = %e, "cannot record an admin key's last use");
            }
        }
        Ok(Caller {
            principal: Principal::AdminKey(key.public_id),
            user_id: key.user_id,
            role: key.role,
            teams: key.teams,
            remote: peer.to_owned(),
        })
    }

    /// An IdP token against the issuers that give admin roles. Team-bound roles act for the
    /// teams the token's groups map to (`idp_groups`), as the filter maps them for requests;
    /// a team role without such a team is refused rather than left with nothing to act on.
    async fn authenticate_token(&self, token: &str, peer: &str) -> AdminResult<Caller> {
        let providers = self.store.list_identity_providers().await?;
        let admin =
            admin_token::verify(token, &providers, Timestamp::now().as_millis()).map_err(|e| {
                tracing::warn!(%peer, error = %e, "admin call with a refused IdP token");
                let why = match &e {
                    AdminTokenError::Token(_) => format!("IdP token refused: {e}"),
                    AdminTokenError::NoRole { .. } => e.to_string(),
                };
                AdminError::Unauthenticated(why)
            })?;
        let groups = &admin.token.groups;
        let teams: Vec<String> = if admin.role.has_teams() {
            self.store
                .list_teams()
                .await?
                .into_iter()
                .filter(|t| t.idp_groups.iter().any(|g| groups.contains(g)))
                .map(|t| t.id)
                .collect()
        } else {
            Vec::new()
        };
        if admin.role.has_teams() && teams.is_empty() {
            tracing::warn!(%peer, user = %admin.token.user_id, "admin token for a team role without a mapped team");
            return Err(AdminError::Unauthenticated(format!(
                "role {} needs a team, and none of the token's groups maps to one",
                admin.role
            )));
        }
        tracing::info!(%peer, user = %admin.token.user_id, role = %admin.role, issuer = %admin.token.issuer, "admin call with an IdP token");
        Ok(Caller {
            principal: Principal::IdpToken {
                issuer: admin.token.issuer,
            },
            user_id: admin.token.user_id,
            role: admin.role,
            teams,
            remote: peer.to_owned(),
        })
    }

    /// Asks [`authz::authorize`]; a denial is appended to the audit chain and returned as
    /// [`AdminError::Denied`].
    pub async fn permit(
        &self,
        caller: &Caller,
        action: Action,
        object: Object<'_>,
        target: Target<'_>,
    ) -> AdminResult<()> {
        match authz::authorize(caller, action, &object) {
            Ok(()) => Ok(()),
            Err(denied) => {
                tracing::warn!(user = %caller.user_id, role = %caller.role, action = action.as_str(), "admin call denied");
                self.append_record(
                    caller,
                    action,
                    target,
                    Some(&denied.to_string()),
                    Vec::new(),
                )
                .await;
                Err(denied.into())
            }
        }
    }

    /// Appends a write that succeeded to the audit chain.
    pub async fn record_write(
        &self,
        caller: &Caller,
        action: Action,
        target: Target<'_>,
        changes: Vec<FieldChange>,
    ) {
        self.append_record(caller, action, target, None, changes)
            .await;
    }

    /// The write already happened, so a failed append is logged loudly rather than reported
    /// to the caller as a failure of the write.
    async fn append_record(
        &self,
        caller: &Caller,
        action: Action,
        target: Target<'_>,
        denied: Option<&str>,
        changes: Vec<FieldChange>,
    ) {
        let Some(log) = &self.audit else {
            return;
        };
        let id = match keys::random_id(RECORD_ID_LEN) {
            Ok(id) => format!("admin-{id}"),
            Err(e) => {
                tracing::error!(error = %e, action = action.as_str(), "cannot append an admin record to the audit log");
                return;
            }
        };
        let now = Timestamp::now();
        let record = admin_record(&id, now, caller, action, target, denied, changes);
        let batch = UsageBatch {
            batch_id: id,
            node_id: ADMIN_RECORD_SOURCE.to_owned(),
            data_plane: ADMIN_RECORD_SOURCE.to_owned(),
            received_at: now,
            entries: vec![entry_from_record(&record)],
        };
        if let Err(e) = log.append(&batch).await {
            tracing::error!(error = %e, action = action.as_str(), "cannot append an admin record to the audit log");
        }
    }
}

/// An admin call as a record of the chain. The scope columns (key, team, user, model) stay
/// empty so admin records never count as a key's, team's or user's requests or spend.
fn admin_record(
    id: &str,
    at: Timestamp,
    caller: &Caller,
    action: Action,
    target: Target<'_>,
    denied: Option<&str>,
    changes: Vec<FieldChange>,
) -> pb::UsageRecord {
    let (principal, admin_key_id, issuer) = match &caller.principal {
        Principal::MasterKey => ("master_key", String::new(), String::new()),
        Principal::AdminKey(id) => ("admin_key", id.clone(), String::new()),
        Principal::IdpToken { issuer } => ("idp_token", String::new(), issuer.clone()),
    };
    pb::UsageRecord {
        request_id: id.to_owned(),
        timestamp_ms: at.as_millis(),
        client_ip: caller.remote.clone(),
        status: if denied.is_some() {
            pb::RequestStatus::Blocked
        } else {
            pb::RequestStatus::Success
        }
        .into(),
        reason: denied.unwrap_or_default().to_owned(),
        http_status: if denied.is_some() { 403 } else { 200 },
        path: format!("{ADMIN_RECORD_PATH}{}", action.as_str()),
        auth_method: principal.to_owned(),
        issuer,
        admin: Some(pb::AdminAction {
            principal: principal.to_owned(),
            admin_key_id,
            actor: caller.user_id.clone(),
            role: caller.role.as_str().to_owned(),
            action: action.as_str().to_owned(),
            object_kind: target.kind.to_owned(),
            object_id: target.id.to_owned(),
            allowed: denied.is_none(),
            changes: changes
                .into_iter()
                .map(|c| pb::FieldChange {
                    field: c.field.to_owned(),
                    before: c.before,
                    after: c.after,
                })
                .collect(),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_list_only_what_differs() {
        let before = [("a", "1".to_owned()), ("b", "2".to_owned())];
        let after = [("a", "1".to_owned()), ("b", "3".to_owned())];
        assert_eq!(
            changes(&before, &after),
            vec![FieldChange {
                field: "b",
                before: "2".into(),
                after: "3".into()
            }]
        );
        let created = changes(&[], &[("a", "1".to_owned()), ("b", String::new())]);
        assert_eq!(created.len(), 1, "{created:?}");
        let deleted = changes(&before, &[]);
        assert_eq!(deleted.len(), 2, "{deleted:?}");
        assert_eq!(deleted[1].after, "");
    }

    #[test]
    fn admin_records_name_the_caller_and_leave_scopes_empty() {
        let caller = Caller::master_key("10.0.0.9:4000");
        let r = admin_record(
            "admin-x",
            Timestamp::from_millis(5),
            &caller,
            Action::CreateTeam,
            Target::new("team", "team_1"),
            Some("role auditor may not create_team"),
            Vec::new(),
        );
        assert!(r.key_id.is_empty() && r.team_id.is_empty() && r.user_id.is_empty());
        assert_eq!(r.status(), pb::RequestStatus::Blocked);
        assert_eq!(r.path, "admin/create_team");
        let a = r.admin.unwrap();
        assert_eq!((a.principal.as_str(), a.allowed), ("master_key", false));
        assert_eq!(
            (a.object_kind.as_str(), a.object_id.as_str()),
            ("team", "team_1")
        );
    }
}
