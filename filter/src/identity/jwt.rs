//! One JWT checked against the snapshot's issuers: its shape and algorithm first (cheap, and
//! before any key is touched), then the issuer and key it names, the signature and time
//! claims (jwt-simple), then audience, user and groups. Errors never carry the token.

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::prelude::{Duration, UnixTimeStamp, VerificationOptions};
use jwt_simple::JWTError;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::{Algorithm, KeyMiss};
use super::{Issuer, Issuers, TokenError, VerifiedToken};

/// Longest user id taken from a token (any stable id: email, IdP subject, employee number).
pub const MAX_USER_ID_BYTES: usize = 256;
/// Groups of one token considered for team mapping; the rest are ignored, so a token listing
/// every group of a large directory is still handled in bounded time.
pub const MAX_GROUPS: usize = 1_000;
/// Longest group name considered (longer entries cannot name a team and are ignored).
const MAX_GROUP_BYTES: usize = 256;
/// Longest `kid` reported to the control plane as unknown.
pub const MAX_KID_BYTES: usize = 256;

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Whether a bearer token has the shape of a compact JWS: three base64url segments, the
/// first two non-empty (the last is empty for `alg: none`, refused later by name).
pub fn looks_like_jwt(token: &str) -> bool {
    let mut segments = 0;
    for (i, segment) in token.split('.').enumerate() {
        let base64url = segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !base64url || (i < 2 && segment.is_empty()) {
            return false;
        }
        segments += 1;
    }
    segments == 3
}

fn decode_json<T: serde::de::DeserializeOwned>(segment: &str) -> Result<T, TokenError> {
    let bytes = Base64UrlSafeNoPadding::decode_to_vec(segment, None)
        .map_err(|_| TokenError::Malformed("a segment is not base64url"))?;
    // Non-UTF-8 bytes, duplicate-free JSON of the wrong shape: all malformed.
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed("a segment is not JSON"))
}

/// Verifies `token` at `now_ms` against `issuers`.
pub fn verify(
    token: &str,
    issuers: &Issuers,
    now_ms: i64,
    max_bytes: usize,
) -> Result<VerifiedToken, TokenError> {
    if token.len() > max_bytes {
        return Err(TokenError::TooLarge(max_bytes));
    }
    let mut segments = token.split('.');
    let (Some(header), Some(claims), Some(_), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(TokenError::Malformed("not three segments"));
    };
    let header: Header = decode_json(header)?;
    let algorithm = Algorithm::parse(&header.alg).ok_or(TokenError::AlgorithmNotAllowed)?;
    let claims: Map<String, Value> = decode_json(claims)?;
    let issuer_name = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed("no `iss` string"))?;
    let issuer = issuers.get(issuer_name).ok_or(TokenError::UnknownIssuer)?;
    let checked = issuer
        .keys
        .verify(
            algorithm,
            header.kid.as_deref(),
            token,
            options(issuer, now_ms),
        )
        .map_err(|miss| match miss {
            KeyMiss::Unknown => TokenError::UnknownKey {
                issuer: issuer.name.clone(),
                kid: header
                    .kid
                    .filter(|kid| kid.len() <= MAX_KID_BYTES && !kid.is_empty()),
            },
            KeyMiss::WrongAlgorithm => TokenError::AlgorithmNotAllowed,
        })?;
    checked.map_err(|err| match err.downcast_ref::<JWTError>() {
        Some(JWTError::InvalidSignature) => TokenError::InvalidSignature,
        Some(JWTError::TokenHasExpired) => TokenError::Expired,
        Some(JWTError::TokenNotValidYet | JWTError::ClockDrift) => TokenError::NotYetValid,
        _ => TokenError::Malformed("claims or signature do not decode"),
    })?;
    let expires_at_s = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(TokenError::Malformed("no `exp`"))?;
    if !audience_matches(claims.get("aud"), &issuer.audiences) {
        return Err(TokenError::InvalidAudience);
    }
    Ok(VerifiedToken {
        issuer: issuer.name.clone(),
        user_id: user_id(&claims, &issuer.user_claim)?,
        groups: groups(claims.get(&issuer.groups_claim)),
        expires_at_s,
    })
}

/// jwt-simple checks the signature, then `exp`, `nbf` and `iat` (not in the future) against
/// our clock with the issuer's leeway; issuer and audience are ours to check.
fn options(issuer: &Issuer, now_ms: i64) -> VerificationOptions {
    let now_s = u64::try_from(now_ms / 1000).unwrap_or_default();
    VerificationOptions {
        artificial_time: Some(UnixTimeStamp::from_secs(now_s)),
        time_tolerance: Some(Duration::from_secs(u64::from(issuer.clock_skew_s))),
        accept_future: false,
        max_token_length: None,
        ..VerificationOptions::default()
    }
}

/// `aud` (one string or a list) names one of the issuer's audiences. An issuer configured
/// without audiences accepts none: a token minted for another application must not pass.
fn audience_matches(aud: Option<&Value>, audiences: &[String]) -> bool {
    let named = |candidate: &Value| {
        candidate
            .as_str()
            .is_some_and(|aud| audiences.iter().any(|allowed| allowed == aud))
    };
    match aud {
        Some(Value::Array(list)) => list.iter().any(named),
        Some(single) => named(single),
        None => false,
    }
}

fn user_id(claims: &Map<String, Value>, claim: &str) -> Result<String, TokenError> {
    let user = claims
        .get(claim)
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed("no user claim string"))?;
    if user.is_empty() || user.len() > MAX_USER_ID_BYTES || user.chars().any(char::is_control) {
        return Err(TokenError::Malformed("unusable user id"));
    }
    Ok(user.to_owned())
}

/// The groups claim as a list of strings (or one string); other entries are ignored.
fn groups(claim: Option<&Value>) -> Vec<String> {
    let usable = |group: &&str| !group.is_empty() && group.len() <= MAX_GROUP_BYTES;
    match claim {
        Some(Value::String(one)) => Some(one.as_str())
            .filter(usable)
            .map(str::to_owned)
            .into_iter()
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .take(MAX_GROUPS)
            .filter_map(Value::as_str)
            .filter(usable)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}
