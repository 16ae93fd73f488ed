//! End users named by a service key: Open WebUI's forwarded user, either its plain headers or
//! its signed form (one HS256 JWT, `iss: "open-webui"`, signed with the secret the admin gave
//! the key). Read only for keys marked `can_assert_user`; errors never carry header values.

use std::collections::HashSet;

use jwt_simple::prelude::{
    Duration, HS256Key, JWTClaims, MACLike, UnixTimeStamp, VerificationOptions,
};
use jwt_simple::JWTError;
use serde::Deserialize;

use super::jwt::MAX_USER_ID_BYTES;

/// The `iss` Open WebUI stamps on every forwarded-user token.
pub const OPEN_WEBUI_ISSUER: &str = "open-webui";
/// Leeway on `exp`/`iat` for clock drift between Open WebUI's host and Envoy's.
const CLOCK_SKEW_S: u64 = 60;

/// Why a service key's forwarded user was refused; each has its own client-facing code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("the forwarded user id is empty, too long or not text")]
    InvalidUser,
    #[error("this service key accepts only the signed forwarded-user token, and none was sent")]
    SignatureRequired,
    #[error("the forwarded-user token is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the forwarded-user token is malformed or not Open WebUI's")]
    Malformed,
    #[error("the forwarded-user token's signature does not verify")]
    InvalidSignature,
    #[error("the forwarded-user token has expired")]
    Expired,
    /// Issued in the future: the clocks of Open WebUI's host and Envoy's disagree.
    #[error("the forwarded-user token is not valid yet")]
    NotYetValid,
}

impl AssertionError {
    /// The `error.code` of the refusal, and the audit record's reason.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidUser => "asserted_user_invalid",
            Self::SignatureRequired => "asserted_user_signature_required",
            Self::TooLarge(_) => "asserted_user_token_too_large",
            Self::Malformed => "asserted_user_token_malformed",
            Self::InvalidSignature => "asserted_user_invalid_signature",
            Self::Expired => "asserted_user_token_expired",
            Self::NotYetValid => "asserted_user_token_not_yet_valid",
        }
    }
}

/// The forwarded-user headers of one request, as sent (absent or empty = not sent). No
/// `Debug`: they carry a person's email and possibly a signed token.
#[derive(Clone, Copy, Default)]
pub struct ForwardedUser<'a> {
    pub user_id: Option<&'a [u8]>,
    pub user_email: Option<&'a [u8]>,
    pub user_jwt: Option<&'a [u8]>,
}

/// What the service key says about it. No `Debug`: it holds the key's secret.
#[derive(Clone, Copy)]
pub struct ServiceKeyTrust<'a> {
    /// The key's HS256 secret: only the signed form is accepted. `None`: the plain headers.
    pub secret: Option<&'a [u8]>,
    pub max_token_bytes: usize,
    pub now_ms: i64,
}

/// The end user a service key named. `None`: the request names nobody (e.g. Open WebUI
/// listing models for itself), so it is the key's own.
///
/// The user id is the email when there is one, else Open WebUI's user id (a UUID): an email
/// is what admins name users by (`modelgate user update alice@corp …`) and what an auditor
/// reads, and it is the same user whichever Open WebUI instance forwards it.
pub fn asserted_user(
    forwarded: ForwardedUser<'_>,
    trust: ServiceKeyTrust<'_>,
) -> Result<Option<String>, AssertionError> {
    let (id, email, jwt) = (
        sent(forwarded.user_id),
        sent(forwarded.user_email),
        sent(forwarded.user_jwt),
    );
    match (trust.secret, jwt) {
        (Some(secret), Some(token)) => verify(token, secret, &trust).map(Some),
        (Some(_), None) if id.is_some() || email.is_some() => {
            Err(AssertionError::SignatureRequired)
        }
        (Some(_), None) => Ok(None),
        // A token without a secret to check it proves nothing: the plain headers decide.
        (None, _) => match email.or(id) {
            Some(user) => std::str::from_utf8(user)
                .map_err(|_| AssertionError::InvalidUser)
                .and_then(usable_user_id)
                .map(Some),
            None => Ok(None),
        },
    }
}

/// A header's value as sent, when it says anything.
fn sent(value: Option<&[u8]>) -> Option<&[u8]> {
    value.map(<[u8]>::trim_ascii).filter(|v| !v.is_empty())
}

/// The claims of Open WebUI's token besides the registered ones (`sub`, `iss`, `iat`, `exp`).
#[derive(Deserialize)]
struct OpenWebUiClaims {
    #[serde(default)]
    email: Option<String>,
}

fn verify(
    token: &[u8],
    secret: &[u8],
    trust: &ServiceKeyTrust<'_>,
) -> Result<String, AssertionError> {
    if token.len() > trust.max_token_bytes {
        return Err(AssertionError::TooLarge(trust.max_token_bytes));
    }
    let token = std::str::from_utf8(token).map_err(|_| AssertionError::Malformed)?;
    let now_s = u64::try_from(trust.now_ms / 1000).unwrap_or_default();
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([OPEN_WEBUI_ISSUER.to_owned()])),
        artificial_time: Some(UnixTimeStamp::from_secs(now_s)),
        time_tolerance: Some(Duration::from_secs(CLOCK_SKEW_S)),
        accept_future: false,
        ..VerificationOptions::default()
    };
    let claims: JWTClaims<OpenWebUiClaims> = HS256Key::from_bytes(secret)
        .verify_token(token, Some(options))
        .map_err(|err| match err.downcast_ref::<JWTError>() {
            Some(JWTError::InvalidAuthenticationTag | JWTError::InvalidSignature) => {
                AssertionError::InvalidSignature
            }
            Some(JWTError::TokenHasExpired) => AssertionError::Expired,
            Some(JWTError::TokenNotValidYet | JWTError::ClockDrift) => AssertionError::NotYetValid,
            _ => AssertionError::Malformed,
        })?;
    // Open WebUI always sets `exp`; a token without one would be good forever.
    if claims.expires_at.is_none() {
        return Err(AssertionError::Malformed);
    }
    let email = claims.custom.email.filter(|email| !email.trim().is_empty());
    let user = email
        .or(claims.subject)
        .ok_or(AssertionError::InvalidUser)?;
    usable_user_id(&user)
}

/// A user id as the policy keys users: trimmed, non-empty, bounded, no control characters.
fn usable_user_id(user: &str) -> Result<String, AssertionError> {
    let user = user.trim();
    if user.is_empty() || user.len() > MAX_USER_ID_BYTES || user.chars().any(char::is_control) {
        return Err(AssertionError::InvalidUser);
    }
    Ok(user.to_owned())
}

#[cfg(test)]
mod tests;
