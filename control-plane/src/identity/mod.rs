//! IdP issuers whose JWTs filters verify: what an issuer is, the rules for valid settings,
//! and the control plane's side of their keys (JWKS documents fetched, validated and kept
//! fresh here, never by the filter).
//!
//! - [`jwks`]: what a JWKS document must look like before it reaches a snapshot.
//! - [`refresh`]: when keys are fetched again (Cache-Control, failures, unknown `kid`s).
//! - [`fetch`]: the HTTP side (OIDC discovery, size cap, timeouts).
//! - [`refresher`]: the task that keeps every issuer's keys fresh.
//! - [`admin`]: the admin operations (add, update, list, remove).
//! - [`admin_token`]: an issuer's tokens as admin credentials (groups → roles).

pub mod admin;
pub mod admin_token;
pub mod fetch;
pub mod jwks;
pub mod refresh;
pub mod refresher;

use reqwest::Url;

use crate::authz::Role;
use crate::clock::Timestamp;
use crate::domain::ValidationError;
use crate::limits::{Limits, LimitsClear, LimitsInput};

/// Leeway for `exp`, `nbf` and `iat` when an admin sets none.
pub const DEFAULT_CLOCK_SKEW_S: u32 = 60;
/// Beyond this a token's lifetime rules mean little.
const MAX_CLOCK_SKEW_S: u32 = 600;
const MAX_ISSUER_LEN: usize = 512;
const MAX_NAME_LEN: usize = 256;
/// Audiences or groups per list: enough for any real setup, small enough for every snapshot.
const MAX_NAMES: usize = 100;
const MAX_CLAIM_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdentityError {
    #[error("issuer {0:?} is invalid: use an https URL exactly as tokens carry it in \"iss\" (http only for localhost/127.0.0.1/[::1])")]
    Issuer(String),
    #[error(
        "{what} URL {url:?} is invalid: use an https URL (http only for localhost/127.0.0.1/[::1])"
    )]
    Url { what: &'static str, url: String },
    #[error(
        "at least one audience is required (the \"aud\" your IdP puts in tokens for Modelgate)"
    )]
    NoAudience,
    #[error("{what} {name:?} is invalid: use 1-256 printable characters without commas")]
    Name { what: &'static str, name: String },
    #[error("too many {0}: at most 100")]
    TooMany(&'static str),
    #[error("{what} claim {claim:?} is invalid: use 1-64 characters a-z, A-Z, 0-9, '_', '-', '.', ':' or '/'")]
    Claim { what: &'static str, claim: String },
    #[error("clock skew {0} s is too large: at most 600 s")]
    ClockSkew(u32),
    #[error("give either a JWKS URL or a JWKS document, not both")]
    TwoJwksSources,
    #[error("the JWKS is invalid: {0}")]
    Jwks(#[from] jwks::JwksError),
    #[error("admin role {0:?} is invalid: use GROUP=ROLE with ROLE one of admin, team_admin, auditor, member")]
    AdminRole(String),
    #[error("group {0:?} is given an admin role twice")]
    AdminRoleTwice(String),
}

/// Members of `group` may call the admin API with the issuer's tokens, as `role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRoleGroup {
    pub group: String,
    pub role: Role,
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Fetched from this URL.
    Url(String),
    /// Fetched from the `jwks_uri` of `<issuer>/.well-known/openid-configuration`.
    Discovery,
    /// A document an admin uploaded; never fetched.
    File,
}

impl JwksSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Url(_) => "url",
            Self::Discovery => "discovery",
            Self::File => "file",
        }
    }

    pub fn is_fetched(&self) -> bool {
        !matches!(self, Self::File)
    }
}

/// The current keys of an issuer and how fetching them went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JwksState {
    /// The last good JWKS (normalised JSON); `None` until a fetch succeeds.
    pub jwks_json: Option<String>,
    /// The URL the keys were last fetched from (the one discovery found, for discovery).
    pub fetched_from: Option<String>,
    pub fetched_at: Option<Timestamp>,
    /// When the refresher fetches again; `None` = never (uploaded keys).
    pub next_refresh_at: Option<Timestamp>,
    /// The last failed fetch, kept until one succeeds.
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
}

/// One registered issuer.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityProvider {
    /// Exact `iss` of its tokens.
    pub issuer: String,
    pub audiences: Vec<String>,
    /// When not empty, a token needs one of these groups.
    pub allowed_groups: Vec<String>,
    pub source: JwksSource,
    /// Empty = `sub`.
    pub user_claim: String,
    /// Empty = `groups`.
    pub groups_claim: String,
    pub clock_skew_s: u32,
    pub default_user_limits: Limits,
    /// Groups whose members administer with this issuer's tokens; empty = none do.
    pub admin_roles: Vec<AdminRoleGroup>,
    pub created_at: Timestamp,
    pub keys: JwksState,
}

impl IdentityProvider {
    /// The `kid` of every current key ("" for a key without one), for admins.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys
            .jwks_json
            .as_deref()
            .and_then(|json| jwks::Jwks::parse(json).ok())
            .map(|jwks| jwks.kids)
            .unwrap_or_default()
    }

    /// The role a token with `groups` administers as: the first its groups map to in the
    /// order admin, team_admin, auditor, member; `None` when no group maps to one.
    pub fn admin_role<S: AsRef<str>>(&self, groups: &[S]) -> Option<Role> {
        self.admin_roles
            .iter()
            .filter(|m| groups.iter().any(|g| g.as_ref() == m.group))
            .map(|m| m.role)
            .min_by_key(|role| role_rank(*role))
    }
}

/// Lower wins. One caller has one role, so a person in a team_admin group and an auditor
/// group keeps the writes their team needs rather than the read-everything view.
fn role_rank(role: Role) -> u8 {
    match role {
        Role::Admin => 0,
        Role::TeamAdmin => 1,
        Role::Auditor => 2,
        Role::Member => 3,
    }
}

/// A change to an issuer's settings, applied inside the store's transaction so it never
/// overwrites keys the refresher stored meanwhile. `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct IdentityProviderPatch {
    pub audiences: Option<Vec<String>>,
    pub allowed_groups: Option<Vec<String>>,
    /// A new source; with [`JwksSource::File`], the uploaded keys.
    pub source: Option<(JwksSource, Option<jwks::Jwks>)>,
    pub user_claim: Option<String>,
    pub groups_claim: Option<String>,
    pub clock_skew_s: Option<u32>,
    pub admin_roles: Option<Vec<AdminRoleGroup>>,
    pub limits: LimitsInput,
    pub limits_clear: LimitsClear,
}

impl IdentityProviderPatch {
    pub fn apply(
        &self,
        provider: &IdentityProvider,
        now: Timestamp,
    ) -> Result<IdentityProvider, ValidationError> {
        let mut updated = IdentityProvider {
            audiences: self
                .audiences
                .clone()
                .unwrap_or_else(|| provider.audiences.clone()),
            allowed_groups: self
                .allowed_groups
                .clone()
                .unwrap_or_else(|| provider.allowed_groups.clone()),
            user_claim: self
                .user_claim
                .clone()
                .unwrap_or_else(|| provider.user_claim.clone()),
            groups_claim: self
                .groups_claim
                .clone()
                .unwrap_or_else(|| provider.groups_claim.clone()),
            clock_skew_s: self.clock_skew_s.unwrap_or(provider.clock_skew_s),
            admin_roles: self
                .admin_roles
                .clone()
                .unwrap_or_else(|| provider.admin_roles.clone()),
            default_user_limits: self.limits.apply(
                self.limits_clear,
                &provider.default_user_limits,
                now,
            )?,
            ..provider.clone()
        };
        if let Some((source, uploaded)) = &self.source {
            updated.source = source.clone();
            updated.keys = JwksState::for_source(source, uploaded.as_ref(), &provider.keys, now);
        }
        Ok(updated)
    }
}

impl JwksState {
    /// The key state right after an admin picks `source`: uploaded keys are current at once;
    /// a fetched source keeps the last good keys (fail static) and is due now.
    pub fn for_source(
        source: &JwksSource,
        uploaded: Option<&jwks::Jwks>,
        previous: &JwksState,
        now: Timestamp,
    ) -> Self {
        match (source, uploaded) {
            (JwksSource::File, Some(jwks)) => Self {
                jwks_json: Some(jwks.json.clone()),
                fetched_at: Some(now),
                ..Self::default()
            },
            _ => Self {
                jwks_json: previous.jwks_json.clone(),
                fetched_at: previous.fetched_at,
                next_refresh_at: source.is_fetched().then_some(now),
                ..Self::default()
            },
        }
    }
}

/// What one fetch of an issuer's keys ended with, as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub enum JwksFetchOutcome {
    Fetched {
        jwks_json: String,
        url: String,
        at: Timestamp,
        next_refresh_at: Timestamp,
    },
    /// The last good keys stay (fail static).
    Failed {
        error: String,
        at: Timestamp,
        next_refresh_at: Timestamp,
    },
}

/// Whether `url` may be fetched from or named as an issuer: https, or http on loopback (for
/// tests and local IdPs; tokens and keys would otherwise cross the network in clear).
pub fn is_acceptable_url(url: &str) -> bool {
    let Ok(parsed) = Url::parse(url) else {
        return false;
    };
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.host().is_some()
        && (parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback))
}

/// A validated issuer (kept exactly as typed: tokens must match it byte for byte).
pub fn parse_issuer(issuer: &str) -> Result<String, IdentityError> {
    let issuer = issuer.trim();
    if issuer.len() <= MAX_ISSUER_LEN && is_acceptable_url(issuer) && !issuer.contains('#') {
        Ok(issuer.to_owned())
    } else {
        Err(IdentityError::Issuer(issuer.chars().take(80).collect()))
    }
}

pub fn parse_url(what: &'static str, url: &str) -> Result<String, IdentityError> {
    let url = url.trim();
    if url.len() <= MAX_ISSUER_LEN * 2 && is_acceptable_url(url) {
        Ok(url.to_owned())
    } else {
        Err(IdentityError::Url {
            what,
            url: url.chars().take(80).collect(),
        })
    }
}

/// Trimmed, de-duplicated names (first occurrence kept); empty entries dropped.
pub fn parse_names<I, S>(what: &'static str, names: I) -> Result<Vec<String>, IdentityError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let name = name.as_ref().trim();
        if name.is_empty() {
            continue;
        }
        let valid = name.len() <= MAX_NAME_LEN && name.chars().all(|c| !c.is_control() && c != ',');
        if !valid {
            return Err(IdentityError::Name {
                what,
                name: name.chars().take(80).collect(),
            });
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    if out.len() > MAX_NAMES {
        return Err(IdentityError::TooMany(what));
    }
    Ok(out)
}

pub fn parse_audiences<I, S>(audiences: I) -> Result<Vec<String>, IdentityError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let audiences = parse_names("audience", audiences)?;
    if audiences.is_empty() {
        return Err(IdentityError::NoAudience);
    }
    Ok(audiences)
}

/// A claim name; empty = the default (`sub` for users, `groups` for groups).
pub fn parse_claim(what: &'static str, claim: &str) -> Result<String, IdentityError> {
    let claim = claim.trim();
    let valid = claim.len() <= MAX_CLAIM_LEN
        && claim
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'));
    if valid {
        Ok(claim.to_owned())
    } else {
        Err(IdentityError::Claim {
            what,
            claim: claim.chars().take(80).collect(),
        })
    }
}

/// `GROUP=ROLE` pairs (or already split ones) as a mapping; a group may appear once.
pub fn parse_admin_roles<I, G, R>(pairs: I) -> Result<Vec<AdminRoleGroup>, IdentityError>
where
    I: IntoIterator<Item = (G, R)>,
    G: AsRef<str>,
    R: AsRef<str>,
{
    let mut out: Vec<AdminRoleGroup> = Vec::new();
    for (group, role) in pairs {
        let (group, role) = (group.as_ref().trim(), role.as_ref().trim());
        let pair = || {
            format!("{group}={role}")
                .chars()
                .take(80)
                .collect::<String>()
        };
        let group = parse_names("group", [group])?
            .pop()
            .ok_or_else(|| IdentityError::AdminRole(pair()))?;
        let role = Role::parse(role).ok_or_else(|| IdentityError::AdminRole(pair()))?;
        if out.iter().any(|m| m.group == group) {
            return Err(IdentityError::AdminRoleTwice(group));
        }
        out.push(AdminRoleGroup { group, role });
    }
    if out.len() > MAX_NAMES {
        return Err(IdentityError::TooMany("admin role groups"));
    }
    Ok(out)
}

/// One `GROUP=ROLE` argument split at its last `=` (group names may contain `=`).
pub fn split_admin_role(pair: &str) -> Result<(String, String), IdentityError> {
    pair.rsplit_once('=')
        .map(|(g, r)| (g.to_owned(), r.to_owned()))
        .ok_or_else(|| IdentityError::AdminRole(pair.chars().take(80).collect()))
}

pub fn parse_clock_skew(skew_s: Option<u32>) -> Result<u32, IdentityError> {
    match skew_s {
        None => Ok(DEFAULT_CLOCK_SKEW_S),
        Some(s) if s <= MAX_CLOCK_SKEW_S => Ok(s),
        Some(s) => Err(IdentityError::ClockSkew(s)),
    }
}

#[cfg(test)]
mod tests;
