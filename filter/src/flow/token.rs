//! A request that presents an IdP JWT: the token verified (or found in the worker's cache),
//! the bearer's team chosen from their groups, their limits found in the snapshot or taken
//! from the issuer's defaults (a user first seen), and the audit record told who they are.

use super::admission::Access;
use crate::audit::{AuthMethod, RecordDraft};
use crate::credential::BearerJwt;
use crate::errors::Rejection;
use crate::host::Host;
use crate::identity::teams::{self, TeamChoiceError};
use crate::identity::{unknown_keys, IdentityCache, TokenError};
use crate::policy::PolicyIndex;

/// What the flow knows of a request that presents a JWT.
pub(super) struct TokenRequest<'a> {
    pub(super) token: BearerJwt<'a>,
    /// The raw `x-modelgate-team` value, if sent.
    pub(super) team_header: Option<&'a [u8]>,
    pub(super) max_token_bytes: usize,
    pub(super) now_ms: i64,
}

/// Identifies the bearer of a JWT and what they may do, filling the record as it learns.
pub(super) fn identify(
    draft: &mut RecordDraft,
    host: &impl Host,
    identities: &IdentityCache,
    policy: &PolicyIndex,
    request: TokenRequest<'_>,
) -> Result<Access, Rejection> {
    draft.auth_method = AuthMethod::Jwt;
    let caller = identities
        .verify(
            policy,
            request.token.as_str(),
            request.now_ms,
            request.max_token_bytes,
        )
        .map_err(|err| {
            if let TokenError::UnknownKey {
                issuer,
                kid: Some(kid),
            } = &err
            {
                if let Err(why) = unknown_keys::report(host, issuer, kid) {
                    log::warn!("unknown signing key of {issuer:?} not reported: {why}");
                }
            }
            Rejection::Token(err)
        })?;
    let token = &caller.token;
    draft.issuer.clone_from(&token.issuer);
    draft.user_id.clone_from(&token.user_id);
    let team =
        teams::choose(policy, &caller.teams, request.team_header).map_err(|why| match why {
            TeamChoiceError::NoTeam => Rejection::NoTeamForIdentity,
            TeamChoiceError::NotAMember => Rejection::TeamNotAllowed,
        })?;
    draft.team_id.clone_from(&team.team_id);
    if team.blocked {
        return Err(Rejection::TeamBlocked);
    }
    let user = policy.user(&token.user_id).unwrap_or(&caller.first_seen);
    Ok(Access::for_member(policy, team, user))
}

#[cfg(test)]
mod tests;
