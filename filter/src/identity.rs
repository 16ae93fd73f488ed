//! IdP JWTs as credentials (and, in `asserted`, end users named by a service key): the snapshot's issuers (with their JWKS) turned into verifiers
//! once per change, tokens verified locally (never a network call), verified tokens cached
//! per worker, groups mapped to teams, and unknown `kid`s handed to the singleton so the
//! control plane refetches the issuer's keys.

pub mod asserted;
#[cfg(any(test, feature = "test-util"))]
pub mod fixture;
pub mod jwks;
pub mod jwt;
pub mod teams;
pub mod unknown_keys;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use modelgate_proto::v1::{IdentityProvider, Limits};
use sha2::{Digest, Sha256};

use crate::policy::{PolicyIndex, ProviderEntry};
use jwks::KeySet;

/// Verified tokens kept per worker; past this, expired ones are dropped, then all.
pub const MAX_CACHED_TOKENS: usize = 10_000;
/// Claim naming the user when the issuer names none.
const DEFAULT_USER_CLAIM: &str = "sub";
/// Claim holding the groups when the issuer names none.
const DEFAULT_GROUPS_CLAIM: &str = "groups";

/// Why a bearer JWT was refused; each has its own client-facing code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the token is malformed ({0})")]
    Malformed(&'static str),
    #[error("the token's signing algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("the token's issuer is not known to this gateway")]
    UnknownIssuer,
    #[error("the token is not meant for this gateway (audience)")]
    InvalidAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's signature does not verify")]
    InvalidSignature,
    /// `kid` is what the control plane is told to look for (absent when the token named
    /// none, or one too long to be real).
    #[error("the token is signed with a key this gateway does not know (yet)")]
    UnknownKey { issuer: String, kid: Option<String> },
}

impl TokenError {
    /// The `error.code` of the refusal, and the audit record's reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "token_too_large",
            Self::Malformed(_) => "token_malformed",
            Self::AlgorithmNotAllowed => "token_algorithm_not_allowed",
            Self::UnknownIssuer => "token_unknown_issuer",
            Self::InvalidAudience => "token_invalid_audience",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::InvalidSignature => "token_invalid_signature",
            Self::UnknownKey { .. } => "token_unknown_key",
        }
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub issuer: String,
    pub user_id: String,
    /// At most [`jwt::MAX_GROUPS`] groups, in token order.
    pub groups: Vec<String>,
    /// `exp`, in seconds since the Unix epoch.
    pub expires_at_s: u64,
}

/// One issuer, ready to verify its tokens.
#[derive(Debug)]
pub struct Issuer {
    pub name: String,
    pub audiences: Vec<String>,
    pub user_claim: String,
    pub groups_claim: String,
    pub allowed_groups: Vec<String>,
    pub clock_skew_s: u32,
    /// Limits of a user the snapshot does not list (first seen through this issuer).
    pub default_user_limits: Option<Limits>,
    keys: KeySet,
    /// SHA-256 of the issuer's snapshot entry: a cached token is good while it is unchanged.
    fingerprint: [u8; 32],
}

impl Issuer {
    fn new(entry: &ProviderEntry) -> Self {
        let provider: &IdentityProvider = &entry.provider;
        let keys = match KeySet::parse(&provider.jwks_json) {
            Ok((keys, skipped)) => {
                log::info!(
                    "issuer {:?}: {} usable keys, {skipped} JWKS entries skipped",
                    provider.issuer,
                    keys.len()
                );
                keys
            }
            Err(err) => {
                log::warn!(
                    "issuer {:?}: no usable keys, its tokens are refused: {err}",
                    provider.issuer
                );
                KeySet::default()
            }
        };
        let or_default = |claim: &str, default: &str| {
            if claim.is_empty() {
                default.to_owned()
            } else {
                claim.to_owned()
            }
        };
        Self {
            name: provider.issuer.clone(),
            audiences: provider.audiences.clone(),
            user_claim: or_default(&provider.user_claim, DEFAULT_USER_CLAIM),
            groups_claim: or_default(&provider.groups_claim, DEFAULT_GROUPS_CLAIM),
            allowed_groups: provider.allowed_groups.clone(),
            clock_skew_s: provider.clock_skew_s,
            default_user_limits: provider.default_user_limits.clone(),
            keys,
            fingerprint: entry.fingerprint,
        }
    }
}

/// The issuers of one snapshot, by exact `iss`.
#[derive(Debug, Default)]
pub struct Issuers {
    by_name: HashMap<String, Rc<Issuer>>,
}

impl Issuers {
    /// The issuers of `policy`, reusing the parsed keys of those that did not change in
    /// `previous` (`Issuers::default()` parses every JWKS).
    pub fn of(policy: &PolicyIndex, previous: &Issuers) -> Self {
        let by_name = policy
            .identity_providers()
            .iter()
            .map(|entry| {
                let issuer = match previous.by_name.get(&entry.provider.issuer) {
                    Some(same) if same.fingerprint == entry.fingerprint => Rc::clone(same),
                    _ => Rc::new(Issuer::new(entry)),
                };
                (entry.provider.issuer.clone(), issuer)
            })
            .collect();
        Self { by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Rc<Issuer>> {
        self.by_name.get(name)
    }

    /// Issuers built from snapshot entries as they are, for verifying tokens outside a worker
    /// (the control plane checks admin tokens with the rules requests get).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a ProviderEntry>) -> Self {
        let by_name = entries
            .into_iter()
            .map(|entry| (entry.provider.issuer.clone(), Rc::new(Issuer::new(entry))))
            .collect();
        Self { by_name }
    }
}

/// A caller proven by a token, with the issuer that vouches for them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: Rc<VerifiedToken>,
    pub issuer: Rc<Issuer>,
}

/// One worker's issuers and verified tokens.
#[derive(Debug, Default)]
pub struct IdentityCache {
    state: RefCell<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The snapshot version `issuers` were built from.
    version: Option<u64>,
    issuers: Issuers,
    /// Verified tokens by the SHA-256 of the whole token.
    tokens: HashMap<[u8; 32], Cached>,
}

#[derive(Debug)]
struct Cached {
    token: Rc<VerifiedToken>,
    /// The issuer entry that verified it: a new JWKS, audience or claim setting re-verifies.
    fingerprint: [u8; 32],
}

impl IdentityCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The caller `token` proves at `now_ms`, from the cache when this worker verified it
    /// before under the same issuer settings, else verified now.
    pub fn verify(
        &self,
        policy: &PolicyIndex,
        token: &str,
        now_ms: i64,
        max_bytes: usize,
    ) -> Result<Caller, TokenError> {
        // Before hashing: an oversized token costs nothing more than its length.
        if token.len() > max_bytes {
            return Err(TokenError::TooLarge(max_bytes));
        }
        let mut state = self.state.borrow_mut();
        if state.version != Some(policy.version()) {
            state.issuers = Issuers::of(policy, &state.issuers);
            state.version = Some(policy.version());
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now_s = u64::try_from(now_ms / 1000).unwrap_or_default();
        if let Some(cached) = state.tokens.get(&digest) {
            let issuer = state
                .issuers
                .get(&cached.token.issuer)
                .filter(|issuer| issuer.fingerprint == cached.fingerprint);
            if let Some(issuer) = issuer {
                let until = cached
                    .token
                    .expires_at_s
                    .saturating_add(u64::from(issuer.clock_skew_s));
                if now_s <= until {
                    return Ok(Caller {
                        token: Rc::clone(&cached.token),
                        issuer: Rc::clone(issuer),
                    });
                }
            }
            state.tokens.remove(&digest);
        }
        let verified = Rc::new(jwt::verify(token, &state.issuers, now_ms, max_bytes)?);
        let issuer = state
            .issuers
            .get(&verified.issuer)
            .cloned()
            .ok_or(TokenError::UnknownIssuer)?;
        if state.tokens.len() >= MAX_CACHED_TOKENS {
            state
                .tokens
                .retain(|_, cached| cached.token.expires_at_s >= now_s);
            if state.tokens.len() >= MAX_CACHED_TOKENS {
                state.tokens.clear();
            }
        }
        state.tokens.insert(
            digest,
            Cached {
                token: Rc::clone(&verified),
                fingerprint: issuer.fingerprint,
            },
        );
        Ok(Caller {
            token: verified,
            issuer,
        })
    }

    /// Tokens held, for tests and benches.
    pub fn cached_tokens(&self) -> usize {
        self.state.borrow().tokens.len()
    }
}

/// The fingerprint of an encoded issuer entry.
pub fn fingerprint(encoded: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded).into()
}

#[cfg(test)]
mod tests;
