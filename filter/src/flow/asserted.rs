//! A request from a service key (`can_assert_user`) that names its end user: the user checked
//! (plain headers, or only the signed form when the key has a secret), their limits found in
//! the snapshot or taken from the service key's own (a user first seen), their team the one
//! the snapshot gives them or else the key's, and the audit record told who they are. The
//! key's allowlist still narrows, and its team's caps bound every user it names.

use std::borrow::Cow;

use modelgate_proto::v1::{TeamPolicy, UserPolicy};

use super::admission::Access;
use crate::audit::{AuthMethod, RecordDraft};
use crate::errors::Rejection;
use crate::identity::asserted::{self, ForwardedUser, ServiceKeyTrust};
use crate::policy::{PolicyIndex, Principal};

/// What a key may do, for itself or, when it is a service key naming one, for its end user.
pub(super) fn access(
    draft: &mut RecordDraft,
    policy: &PolicyIndex,
    principal: Principal<'_>,
    forwarded: ForwardedUser<'_>,
    max_token_bytes: usize,
    now_ms: i64,
) -> Result<Access, Rejection> {
    let key = &principal.key;
    if !key.can_assert_user {
        return Ok(Access::new(policy, principal));
    }
    let trust = ServiceKeyTrust {
        secret: (!key.assert_user_secret.is_empty()).then_some(key.assert_user_secret.as_slice()),
        max_token_bytes,
        now_ms,
    };
    let Some(user_id) = asserted::asserted_user(forwarded, trust).map_err(|why| {
        draft.auth_method = AuthMethod::Asserted;
        Rejection::Assertion(why)
    })?
    else {
        return Ok(Access::new(policy, principal));
    };
    draft.auth_method = AuthMethod::Asserted;
    draft.user_id.clone_from(&user_id);
    // A user the admins never listed gets the service key's limits as their own: the key is
    // sized for one person, and each end user is now one.
    let user = match policy.user(&user_id) {
        Some(user) => Cow::Borrowed(user),
        None => Cow::Owned(UserPolicy {
            limits: key.limits.clone(),
            user_id,
            ..UserPolicy::default()
        }),
    };
    let team = member_team(policy, &user, principal.team)?;
    draft.team_id = team.map(|team| team.team_id.clone()).unwrap_or_default();
    Ok(Access::for_end_user(policy, &principal, team, &user))
}

/// The user's own team when the policy gives them one (`user update --team`), else the
/// service key's (none for a personal service key).
fn member_team<'p>(
    policy: &'p PolicyIndex,
    user: &UserPolicy,
    key_team: Option<&'p TeamPolicy>,
) -> Result<Option<&'p TeamPolicy>, Rejection> {
    if user.team_id.is_empty() || key_team.is_some_and(|team| team.team_id == user.team_id) {
        return Ok(key_team);
    }
    match policy.team(&user.team_id) {
        Some(team) if team.blocked => Err(Rejection::TeamBlocked),
        Some(team) => Ok(Some(team)),
        None => {
            log::warn!(
                "user {:?} names team {:?}, absent from the snapshot; refused",
                user.user_id,
                user.team_id
            );
            Err(Rejection::Misconfigured)
        }
    }
}

#[cfg(test)]
mod tests;
