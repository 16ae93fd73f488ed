//! IdP JWTs as credentials (and, in `asserted`, end users named by a service key): the
//! snapshot's issuers (with their JWKS) turned into verifiers once per change, tokens
//! verified locally (never a network call), verified tokens cached per worker with what was
//! resolved from them (see `cache`), groups mapped to teams, and unknown `kid`s handed to the
//! singleton so the control plane refetches the issuer's keys.

pub mod asserted;
mod cache;
#[cfg(any(test, feature = "test-util"))]
pub mod fixture;
pub mod jwks;
pub mod jwt;
pub mod teams;
pub mod unknown_keys;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use modelgate_proto::v1::{IdentityProvider, Limits, UserPolicy};
use sha2::{Digest, Sha256};

use crate::policy::{PolicyIndex, ProviderEntry};
use cache::{Entry, TokenCache};
pub use cache::{MAX_CACHED_TOKENS, MAX_CACHED_TOKEN_BYTES};
use jwks::KeySet;

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
    /// The ids of the teams the token's groups map to in the snapshot it was checked
    /// against, in id order ([`teams::mapped`]); empty when the issuer allows none of them.
    pub teams: Rc<[String]>,
    /// The user's policy when the snapshot lists none (a user first seen): the issuer's
    /// default limits.
    pub first_seen: Rc<UserPolicy>,
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
    tokens: TokenCache,
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
        // Before anything else: an oversized token costs nothing more than its length.
        if token.len() > max_bytes {
            return Err(TokenError::TooLarge(max_bytes));
        }
        let mut state = self.state.borrow_mut();
        let State {
            version,
            issuers,
            tokens,
        } = &mut *state;
        let snapshot = policy.version();
        if *version != Some(snapshot) {
            *issuers = Issuers::of(policy, issuers);
            *version = Some(snapshot);
        }
        let now_s = u64::try_from(now_ms / 1000).unwrap_or_default();
        if let Some(cached) = tokens.get_mut(token) {
            let issuer = issuers
                .get(&cached.token.issuer)
                .filter(|issuer| issuer.fingerprint == cached.fingerprint)
                .filter(|issuer| {
                    now_s
                        <= cached
                            .token
                            .expires_at_s
                            .saturating_add(u64::from(issuer.clock_skew_s))
                });
            if let Some(issuer) = issuer {
                if cached.teams.0 != snapshot {
                    cached.teams = (
                        snapshot,
                        teams::mapped(policy, &cached.token.groups, &issuer.allowed_groups),
                    );
                }
                return Ok(Caller {
                    token: Rc::clone(&cached.token),
                    issuer: Rc::clone(issuer),
                    teams: Rc::clone(&cached.teams.1),
                    first_seen: Rc::clone(&cached.first_seen),
                });
            }
            tokens.remove(token);
        }
        let verified = Rc::new(jwt::verify(token, issuers, now_ms, max_bytes)?);
        let issuer = issuers
            .get(&verified.issuer)
            .cloned()
            .ok_or(TokenError::UnknownIssuer)?;
        let teams = teams::mapped(policy, &verified.groups, &issuer.allowed_groups);
        let first_seen = Rc::new(UserPolicy {
            user_id: verified.user_id.clone(),
            limits: issuer.default_user_limits.clone(),
            ..UserPolicy::default()
        });
        tokens.insert(
            Entry::new(
                token,
                Rc::clone(&verified),
                issuer.fingerprint,
                Rc::clone(&first_seen),
                (snapshot, Rc::clone(&teams)),
            ),
            now_s,
        );
        Ok(Caller {
            token: verified,
            issuer,
            teams,
            first_seen,
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
