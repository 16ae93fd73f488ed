//! A request from a service key (`can_assert_user`) that names its end user: the user checked
//! (plain headers, or only the signed form when the key has a secret), their limits found in
//! the snapshot or taken from the service key's own (a user first seen), and the audit record
//! told who they are. The key's team and allowlist still apply, and its team caps bound all.

use std::borrow::Cow;

use modelgate_proto::v1::UserPolicy;

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
    Ok(Access::for_end_user(policy, &principal, &user))
}

#[cfg(test)]
mod tests;
