//! An IdP access token presented to the admin API: verified with the filter's own rules (the
//! same algorithms, `iss`, `aud`, `exp`/`nbf`/`iat` with the issuer's skew, the same size
//! cap), against the issuers an admin allowed to administer (`admin_roles`), and turned into
//! the role its groups map to. Like the filter, the control plane never fetches keys for a
//! token here: it uses the last good JWKS the refresher stored.

use modelgate_filter::identity::{jwt, Issuers, TokenError, VerifiedToken};
use modelgate_filter::policy::ProviderEntry;
use prost::Message;

use super::IdentityProvider;
use crate::authz::Role;

/// The filter's default cap (its `max_token_bytes`): an admin token is the same kind of token.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    /// The filter's refusal, with its code (`token_expired`, `token_unknown_issuer`, …).
    #[error("{0} ({code})", code = .0.code())]
    Token(TokenError),
    #[error("none of the token's groups is given an admin role by issuer {issuer}")]
    NoRole { issuer: String },
}

/// A token's bearer as an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub token: VerifiedToken,
    pub role: Role,
}

/// Verifies `token` at `now_ms` against the `providers` that give admin roles; issuers
/// without any are unknown here, so their (data-plane) tokens cannot administer.
pub fn verify(
    token: &str,
    providers: &[IdentityProvider],
    now_ms: i64,
) -> Result<AdminToken, AdminTokenError> {
    let entries: Vec<ProviderEntry> = providers
        .iter()
        .filter(|p| !p.admin_roles.is_empty())
        .filter_map(|p| crate::snapshot::identity_provider(p.clone()))
        .map(|provider| ProviderEntry {
            fingerprint: modelgate_filter::identity::fingerprint(&provider.encode_to_vec()),
            provider,
        })
        .collect();
    let issuers = Issuers::from_entries(&entries);
    let verified =
        jwt::verify(token, &issuers, now_ms, MAX_TOKEN_BYTES).map_err(AdminTokenError::Token)?;
    let provider = providers
        .iter()
        .find(|p| p.issuer == verified.issuer)
        .ok_or(AdminTokenError::Token(TokenError::UnknownIssuer))?;
    let role = provider
        .admin_role(&verified.groups)
        .ok_or_else(|| AdminTokenError::NoRole {
            issuer: provider.issuer.clone(),
        })?;
    Ok(AdminToken {
        token: verified,
        role,
    })
}

#[cfg(test)]
mod tests {
    use modelgate_filter::identity::fixture::{self, TestIdp, ISSUER};
    use modelgate_filter::identity::jwks::Algorithm;

    use super::*;
    use crate::clock::Timestamp;
    use crate::identity::{parse_admin_roles, JwksSource, JwksState};
    use crate::limits::Limits;

    const NOW_MS: i64 = 1_900_000_000_000;

    fn provider(idp: &TestIdp, admin_roles: &[(&str, &str)]) -> IdentityProvider {
        IdentityProvider {
            issuer: ISSUER.into(),
            audiences: vec![fixture::AUDIENCE.into()],
            allowed_groups: vec![],
            source: JwksSource::File,
            user_claim: String::new(),
            groups_claim: String::new(),
            clock_skew_s: 60,
            default_user_limits: Limits::default(),
            admin_roles: parse_admin_roles(admin_roles.iter().copied()).unwrap(),
            created_at: Timestamp::from_millis(1),
            keys: JwksState {
                jwks_json: Some(idp.jwks()),
                ..JwksState::default()
            },
        }
    }

    fn token(idp: &TestIdp, user: &str, groups: &[&str]) -> String {
        idp.sign(Algorithm::Es256, fixture::claims(NOW_MS, user, groups))
    }

    #[test]
    fn a_group_with_a_role_administers_as_that_role() {
        let idp = TestIdp::new();
        let providers = [provider(
            &idp,
            &[("mg-admins", "admin"), ("audit", "auditor")],
        )];
        let admin = verify(
            &token(&idp, "ana@corp", &["staff", "audit"]),
            &providers,
            NOW_MS,
        )
        .unwrap();
        assert_eq!(admin.role, Role::Auditor);
        assert_eq!(admin.token.user_id, "ana@corp");
        assert_eq!(admin.token.issuer, ISSUER);
    }

    #[test]
    fn tokens_without_a_mapped_group_or_of_a_data_plane_issuer_are_refused() {
        let idp = TestIdp::new();
        let token = token(&idp, "bo@corp", &["staff"]);
        let providers = [provider(&idp, &[("mg-admins", "admin")])];
        assert!(matches!(
            verify(&token, &providers, NOW_MS),
            Err(AdminTokenError::NoRole { .. })
        ));
        // An issuer registered for requests only is unknown to the admin API.
        let data_plane_only = [provider(&idp, &[])];
        assert_eq!(
            verify(&token, &data_plane_only, NOW_MS),
            Err(AdminTokenError::Token(TokenError::UnknownIssuer))
        );
    }

    #[test]
    fn the_filters_refusals_apply() {
        let idp = TestIdp::new();
        let providers = [provider(&idp, &[("staff", "member")])];
        let token = token(&idp, "bo@corp", &["staff"]);
        let later = NOW_MS + 48 * 3600 * 1000;
        assert_eq!(
            verify(&token, &providers, later),
            Err(AdminTokenError::Token(TokenError::Expired))
        );
        let forged = TestIdp::forger().sign(
            Algorithm::Es256,
            fixture::claims(NOW_MS, "bo@corp", &["staff"]),
        );
        assert_eq!(
            verify(&forged, &providers, NOW_MS),
            Err(AdminTokenError::Token(TokenError::InvalidSignature))
        );
        let too_large = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(
            verify(&too_large, &providers, NOW_MS),
            Err(AdminTokenError::Token(TokenError::TooLarge(_)))
        ));
    }
}
