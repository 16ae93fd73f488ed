//! Teams, keys, users, model routes and usage as the control plane reasons about them, with
//! the rules for valid input and for applying admins' changes. No storage or wire types here.

use std::fmt;

use serde_json::{Map, Value};

use crate::allowlist::ModelPattern;
use crate::assertion::{AssertionPatch, UserAssertion};
use crate::budget::BudgetError;
use crate::clock::Timestamp;
use crate::limits::{self, Limits, LimitsClear, LimitsInput};

/// `team_` + 12 × `[a-z0-9]`. The underscore cannot appear in an alias, so a team reference
/// (`--team`) is never ambiguous between an id and an alias.
pub const TEAM_ID_PREFIX: &str = "team_";
const TEAM_ID_RANDOM_LEN: usize = 12;
const MAX_TEAM_ID_LEN: usize = 64;
const MAX_ALIAS_LEN: usize = 63;
const MAX_MODEL_LEN: usize = 128;
const MAX_USER_ID_LEN: usize = 254;
const MAX_KEY_ALIAS_LEN: usize = 64;
const MAX_CLUSTER_LEN: usize = 255;
/// Metadata is for labels (owner, environment, ticket), not documents.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_REDACTION_POLICY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("team alias {0:?} is invalid: use 1-63 characters from a-z, 0-9, '.' and '-', starting with a letter or digit")]
    TeamAlias(String),
    #[error("model name {0:?} is invalid: use 1-128 characters without spaces or commas")]
    ModelName(String),
    #[error("model pattern {0:?} is invalid: a wildcard is \"*\" (every model) or a name prefix followed by \"*\" at the end, e.g. \"qwen2.5-*\"")]
    ModelWildcard(String),
    #[error("model route name {0:?} is invalid: a route names one model, without wildcards")]
    RouteWildcard(String),
    #[error("team_id {0:?} is invalid: use 1-64 characters from A-Z, a-z, 0-9, '_', '.' and '-', starting with a letter or digit")]
    TeamId(String),
    #[error("user id is invalid: use 1-254 printable characters")]
    UserId,
    #[error("key alias is invalid: use at most 64 printable characters")]
    KeyAlias,
    #[error("grace_period {0:?} is invalid: use 0 or a duration up to 30d such as 30m, 24h, 7d")]
    GracePeriod(String),
    #[error("key_alias {0:?} names several live keys: address the key by its token instead")]
    AmbiguousKeyAlias(String),
    #[error("assert_user_secret is invalid: use {min} to {max} bytes (e.g. `openssl rand -hex 32`)", min = crate::assertion::MIN_SECRET_BYTES, max = crate::assertion::MAX_SECRET_BYTES)]
    AssertionSecret,
    #[error("a team is required (its id or alias)")]
    MissingTeam,
    #[error("{0:?} is not a key id: expected 12 characters a-z, 0-9 (the public id shown by `key list`)")]
    PublicId(String),
    #[error("that looks like a whole key; pass only its public id (the part after sk-mg-)")]
    WholeKeyGiven,
    #[error("batch_id is required")]
    MissingBatchId,
    #[error("{0} must be at least 1 (leave it unset for no limit)")]
    LimitZero(&'static str),
    #[error("{0} is too large")]
    LimitTooLarge(&'static str),
    #[error(transparent)]
    Budget(#[from] BudgetError),
    #[error("budget_duration and budget_reset need a max_budget")]
    BudgetWithoutMax,
    #[error("{0} is both set and cleared")]
    SetAndCleared(&'static str),
    #[error("cannot clear {field:?}: fields that can be cleared are {allowed}")]
    UnknownClear {
        field: String,
        allowed: &'static str,
    },
    #[error("metadata is invalid: {0}")]
    Metadata(String),
    #[error("tag {0:?} is invalid: expected name=value")]
    Tag(String),
    #[error("redaction_policy is invalid: {0}")]
    RedactionPolicy(String),
    #[error("models: {model:?} is not within team {team}'s models ({allowed}): a key can only narrow its team's allowlist")]
    ModelOutsideTeam {
        model: String,
        team: String,
        allowed: String,
    },
    #[error("{field} {key} is above team {team}'s {field} {team_value}: a key can only narrow its team's limits")]
    AboveTeam {
        field: &'static str,
        key: String,
        team: String,
        team_value: String,
    },
    #[error("cluster {0:?} is invalid: use 1-255 characters without spaces or control characters")]
    Cluster(String),
    #[error("{0} must be a number >= 0")]
    Price(&'static str),
    #[error(transparent)]
    Expiry(#[from] crate::keys::ExpiryError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error("budget_id {0:?} is invalid: use 1-128 printable characters without spaces")]
    BudgetId(String),
    #[error("role {0:?} is invalid: team members have role \"user\"")]
    TeamRole(String),
    #[error("role \"admin\" is not a team membership here: team admins are admin keys or IdP groups with role team_admin (modelgate admin-key create --role team_admin --team T); members have role \"user\"")]
    TeamAdminMember,
    #[error("user {user:?} is already a member of team {team:?}")]
    AlreadyMember { user: String, team: String },
    #[error("user {user:?} is a member of team {other:?}: a user belongs to one team (remove them there first)")]
    MemberOfAnotherTeam { user: String, other: String },
    #[error("user {user:?} is not a member of team {team:?}")]
    NotAMember { user: String, team: String },
}

impl ValidationError {
    /// The admin-facing field the error is about, when there is one, so REST errors can name
    /// it in `param`.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            Self::TeamAlias(_) => Some("team_alias"),
            Self::ModelName(_) | Self::ModelWildcard(_) | Self::ModelOutsideTeam { .. } => {
                Some("models")
            }
            Self::TeamId(_) | Self::MissingTeam => Some("team_id"),
            Self::UserId => Some("user_id"),
            Self::KeyAlias | Self::AmbiguousKeyAlias(_) => Some("key_alias"),
            Self::GracePeriod(_) => Some("grace_period"),
            Self::LimitZero(f)
            | Self::LimitTooLarge(f)
            | Self::SetAndCleared(f)
            | Self::Price(f)
            | Self::AboveTeam { field: f, .. } => Some(f),
            Self::Budget(BudgetError::MaxBudget(_)) | Self::BudgetWithoutMax => Some("max_budget"),
            Self::Budget(BudgetError::Reset(_)) => Some("budget_reset"),
            Self::Budget(_) => Some("budget_duration"),
            Self::Metadata(_) | Self::Tag(_) => Some("metadata"),
            Self::RedactionPolicy(_) => Some("redaction_policy"),
            Self::Cluster(_) => Some("cluster"),
            Self::Expiry(_) => Some("duration"),
            Self::AssertionSecret => Some("assert_user_secret"),
            Self::BudgetId(_) => Some("budget_id"),
            Self::TeamRole(_) | Self::TeamAdminMember => Some("role"),
            Self::AlreadyMember { .. }
            | Self::MemberOfAnotherTeam { .. }
            | Self::NotAMember { .. } => Some("user_id"),
            Self::RouteWildcard(_)
            | Self::PublicId(_)
            | Self::WholeKeyGiven
            | Self::MissingBatchId
            | Self::UnknownClear { .. }
            | Self::Identity(_) => None,
        }
    }
}

/// A validated team alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamAlias(String);

impl TeamAlias {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim();
        let valid = !s.is_empty()
            && s.len() <= MAX_ALIAS_LEN
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::TeamAlias(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for TeamAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a regenerated key's old secret keeps working: `""` or `0` (with or without a
/// unit) for not at all, else a duration up to 30 days, so old secrets do not linger.
pub fn parse_grace_period(s: &str) -> Result<Option<std::time::Duration>, ValidationError> {
    const MAX_GRACE: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);
    let s = s.trim();
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if s.is_empty() || (!digits.is_empty() && digits.bytes().all(|b| b == b'0')) {
        return Ok(None);
    }
    match crate::clock::parse_duration(s) {
        Ok(grace) if grace <= MAX_GRACE => Ok(Some(grace)),
        _ => Err(ValidationError::GracePeriod(s.chars().take(32).collect())),
    }
}

/// A team id chosen by the caller (LiteLLM lets `team/new` set it): ids end up in URLs,
/// logs and audit records, so they stay short and plain.
pub fn parse_team_id(s: &str) -> Result<String, ValidationError> {
    let valid = !s.is_empty()
        && s.len() <= MAX_TEAM_ID_LEN
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if valid {
        Ok(s.to_owned())
    } else {
        Err(ValidationError::TeamId(s.chars().take(64).collect()))
    }
}

pub fn new_team_id() -> Result<String, crate::keys::RandomnessError> {
    Ok(format!(
        "{TEAM_ID_PREFIX}{}",
        crate::keys::random_id(TEAM_ID_RANDOM_LEN)?
    ))
}

fn parse_model_name(m: &str) -> Result<&str, ValidationError> {
    let m = m.trim();
    let valid = !m.is_empty()
        && m.len() <= MAX_MODEL_LEN
        && m.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != ',');
    if valid {
        Ok(m)
    } else {
        Err(ValidationError::ModelName(m.to_owned()))
    }
}

/// Validates a model allowlist: trimmed names or explicit wildcards (see [`crate::allowlist`]),
/// first occurrence kept.
pub fn parse_models<I, S>(models: I) -> Result<Vec<String>, ValidationError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for m in models {
        let m = parse_model_name(m.as_ref())?;
        if ModelPattern::parse(m).is_none() {
            return Err(ValidationError::ModelWildcard(m.to_owned()));
        }
        if !out.iter().any(|seen| seen == m) {
            out.push(m.to_owned());
        }
    }
    Ok(out)
}

/// The public name of a model route: one model, no wildcard.
pub fn parse_route_name(s: &str) -> Result<String, ValidationError> {
    let m = parse_model_name(s)?;
    if m.contains('*') {
        return Err(ValidationError::RouteWildcard(m.to_owned()));
    }
    Ok(m.to_owned())
}

/// An upstream model name: empty means "the same as the public name".
pub fn parse_upstream_model(s: &str) -> Result<Option<String>, ValidationError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    parse_model_name(s).map(|m| Some(m.to_owned()))
}

/// An Envoy cluster name (it travels in a request header): empty means the filter's default.
pub fn parse_cluster(s: &str) -> Result<Option<String>, ValidationError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > MAX_CLUSTER_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValidationError::Cluster(s.chars().take(64).collect()));
    }
    Ok(Some(s.to_owned()))
}

pub fn parse_price(field: &'static str, v: f64) -> Result<f64, ValidationError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ValidationError::Price(field))
    }
}

/// The largest output cap a route may set: far above any model's context window, and small
/// enough to fit the store's signed columns and a JSON number every client parses exactly.
pub const MAX_OUTPUT_TOKENS_CAP: u64 = 1 << 31;

/// A route's output cap: 0 means none.
pub fn parse_max_output_tokens(v: u64) -> Result<Option<u64>, ValidationError> {
    if v > MAX_OUTPUT_TOKENS_CAP {
        return Err(ValidationError::LimitTooLarge("max_output_tokens"));
    }
    Ok((v > 0).then_some(v))
}

/// Empty input means "no value"; otherwise trimmed and checked for length and control characters.
fn optional_text(
    s: &str,
    max: usize,
    err: ValidationError,
) -> Result<Option<String>, ValidationError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(err);
    }
    Ok(Some(s.to_owned()))
}

/// The owner named on a key: free text (usually an email), optional.
pub fn parse_user_id(s: &str) -> Result<Option<String>, ValidationError> {
    optional_text(s, MAX_USER_ID_LEN, ValidationError::UserId)
}

/// A user record's id: any stable string a key's `user_id` can name (an email, an IdP
/// subject, a UUID), as LiteLLM allows.
pub fn parse_user_record_id(s: &str) -> Result<String, ValidationError> {
    parse_user_id(s)?.ok_or(ValidationError::UserId)
}

pub fn parse_key_alias(s: &str) -> Result<Option<String>, ValidationError> {
    optional_text(s, MAX_KEY_ALIAS_LEN, ValidationError::KeyAlias)
}

/// Checks a public id given by an admin. A whole key is refused without echoing it back.
pub fn parse_public_id(s: &str) -> Result<String, ValidationError> {
    let s = s.trim();
    if s.starts_with(crate::keys::KEY_PREFIX) {
        return Err(ValidationError::WholeKeyGiven);
    }
    if crate::keys::is_public_id(s) {
        Ok(s.to_owned())
    } else {
        Err(ValidationError::PublicId(s.chars().take(40).collect()))
    }
}

/// Validates a team's redaction policy with the filter's own engine, so a policy the filter
/// would refuse never reaches a snapshot. Empty means the filter's default policy.
pub fn parse_redaction_policy(json: &str) -> Result<Option<String>, ValidationError> {
    let json = json.trim();
    if json.is_empty() {
        return Ok(None);
    }
    if json.len() > MAX_REDACTION_POLICY_BYTES {
        return Err(ValidationError::RedactionPolicy("larger than 1 MiB".into()));
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(_)) => {}
        Ok(_) => {
            return Err(ValidationError::RedactionPolicy(
                "expected a JSON object".into(),
            ))
        }
        Err(e) => return Err(ValidationError::RedactionPolicy(e.to_string())),
    }
    modelgate_redact::Redactor::from_json(json)
        .map_err(|e| ValidationError::RedactionPolicy(e.to_string()))?;
    Ok(Some(json.to_owned()))
}

/// Free-form labels on a team or key: a JSON object. Its top-level strings, numbers and
/// booleans are the tags `key list --tag name=value` filters on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// Empty text means no metadata.
    pub fn parse(json: &str) -> Result<Self, ValidationError> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: Value =
            serde_json::from_str(json).map_err(|e| ValidationError::Metadata(e.to_string()))?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Self, ValidationError> {
        match value {
            Value::Object(map) => {
                let m = Self(map);
                if m.to_json().len() > MAX_METADATA_BYTES {
                    return Err(ValidationError::Metadata("larger than 16 KiB".into()));
                }
                Ok(m)
            }
            Value::Null => Ok(Self::default()),
            _ => Err(ValidationError::Metadata("expected a JSON object".into())),
        }
    }

    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// `(name, value)` for each top-level scalar entry; strings without quotes.
    pub fn tags(&self) -> impl Iterator<Item = (&str, String)> {
        self.0.iter().filter_map(|(name, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null | Value::Array(_) | Value::Object(_) => return None,
            };
            Some((name.as_str(), text))
        })
    }

    pub fn has_tag(&self, name: &str, value: &str) -> bool {
        self.tags().any(|(n, v)| n == name && v == value)
    }
}

/// `name=value` as typed after `--tag`.
pub fn parse_tag(s: &str) -> Result<(String, String), ValidationError> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(ValidationError::Tag(s.chars().take(64).collect())),
    }
}

/// How an update treats one optional field.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Set(T),
    Clear,
}

impl<T: Clone> Change<T> {
    pub fn apply(&self, current: Option<&T>) -> Option<T> {
        match self {
            Self::Keep => current.cloned(),
            Self::Set(v) => Some(v.clone()),
            Self::Clear => None,
        }
    }

    /// `Set`, or `Clear` when the field is also in the clear list.
    pub fn set_or_clear(
        value: Option<T>,
        cleared: bool,
        field: &'static str,
    ) -> Result<Self, ValidationError> {
        match (value, cleared) {
            (Some(_), true) => Err(ValidationError::SetAndCleared(field)),
            (Some(v), false) => Ok(Self::Set(v)),
            (None, true) => Ok(Self::Clear),
            (None, false) => Ok(Self::Keep),
        }
    }
}

/// Splits an update's `clear` list (`max-budget` and `max_budget` alike) into the limit flags
/// and the entity's own fields, refusing names the entity does not have.
pub fn parse_clear_list<'a>(
    fields: impl IntoIterator<Item = &'a str>,
    own: &[&'static str],
    allowed: &'static str,
) -> Result<(LimitsClear, Vec<&'static str>), ValidationError> {
    let mut limits = LimitsClear::default();
    let mut others = Vec::new();
    for raw in fields {
        let field = raw.trim().replace('-', "_");
        if field.is_empty() || limits.take(&field) {
            continue;
        }
        match own.iter().find(|f| **f == field) {
            Some(f) => others.push(*f),
            None => {
                return Err(ValidationError::UnknownClear {
                    field: raw.trim().to_owned(),
                    allowed,
                })
            }
        }
    }
    Ok((limits, others))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: String,
    pub alias: String,
    pub models: Vec<String>,
    /// The team's own limits and budget; its rpm/tpm/parallel values are also the defaults
    /// of its keys.
    pub limits: Limits,
    pub metadata: Metadata,
    pub blocked: bool,
    /// Validated JSON; `None` = the filter's default policy.
    pub redaction_policy: Option<String>,
    pub high_trust: bool,
    pub keep_redacted_prompt: bool,
    /// IdP groups whose members belong to the team.
    pub idp_groups: Vec<String>,
    pub created_at: Timestamp,
}

impl Team {
    /// A team with no limits, metadata or redaction settings.
    pub fn new(id: String, alias: String, models: Vec<String>, created_at: Timestamp) -> Self {
        Self {
            id,
            alias,
            models,
            limits: Limits::default(),
            metadata: Metadata::default(),
            blocked: false,
            redaction_policy: None,
            high_trust: false,
            keep_redacted_prompt: false,
            idp_groups: Vec::new(),
            created_at,
        }
    }
}

/// A change to a team, validated except for the limits (which depend on the current ones).
#[derive(Debug, Clone, Default)]
pub struct TeamPatch {
    pub alias: Option<TeamAlias>,
    pub models: Option<Vec<String>>,
    pub limits: LimitsInput,
    pub limits_clear: LimitsClear,
    pub metadata: Change<Metadata>,
    pub redaction_policy: Change<String>,
    pub high_trust: Option<bool>,
    pub keep_redacted_prompt: Option<bool>,
    pub blocked: Option<bool>,
    /// Replaces the team's IdP groups.
    pub idp_groups: Option<Vec<String>>,
}

impl TeamPatch {
    pub const CLEARABLE: &'static str = "rpm_limit, tpm_limit, max_parallel_requests, \
                                          max_budget, budget_duration, metadata, redaction_policy";

    pub fn blocked(blocked: bool) -> Self {
        Self {
            blocked: Some(blocked),
            ..Self::default()
        }
    }

    /// The team after this change. Narrowing a team below its keys' own values is allowed:
    /// the filter always enforces the smaller of key and team.
    pub fn apply(&self, team: &Team, now: Timestamp) -> Result<Team, ValidationError> {
        Ok(Team {
            id: team.id.clone(),
            alias: self
                .alias
                .as_ref()
                .map_or_else(|| team.alias.clone(), |a| a.as_str().to_owned()),
            models: self.models.clone().unwrap_or_else(|| team.models.clone()),
            limits: self.limits.apply(self.limits_clear, &team.limits, now)?,
            metadata: self
                .metadata
                .apply(Some(&team.metadata))
                .unwrap_or_default(),
            blocked: self.blocked.unwrap_or(team.blocked),
            redaction_policy: self.redaction_policy.apply(team.redaction_policy.as_ref()),
            high_trust: self.high_trust.unwrap_or(team.high_trust),
            keep_redacted_prompt: self
                .keep_redacted_prompt
                .unwrap_or(team.keep_redacted_prompt),
            idp_groups: self
                .idp_groups
                .clone()
                .unwrap_or_else(|| team.idp_groups.clone()),
            created_at: team.created_at,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    /// Kept (not deleted) so the snapshot can tell the filter to answer "key revoked".
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// A stored key: never the secret, only its hash and last four characters.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub public_id: String,
    pub key_sha256: [u8; 32],
    pub last4: String,
    /// `None`: a personal key (LiteLLM's key without a team), with only its own allowlist
    /// (empty = every model) and limits.
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub alias: Option<String>,
    /// The key's own allowlist; empty = its team's.
    pub models: Vec<String>,
    /// The key's own limits (within its team's).
    pub limits: Limits,
    pub metadata: Metadata,
    /// Blocked keys are refused but can be unblocked; revocation is final.
    pub blocked: bool,
    /// A service key may name the end user it calls for.
    pub user_assertion: UserAssertion,
    pub status: KeyStatus,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// A key to insert; `team` is an id or alias, resolved by the store in the same transaction
/// that checks the key against the team's models and limits (`None`: a personal key).
#[derive(Debug, Clone)]
pub struct NewKey {
    pub team: Option<String>,
    pub public_id: String,
    pub key_sha256: [u8; 32],
    pub last4: String,
    pub user_id: Option<String>,
    pub alias: Option<String>,
    pub models: Vec<String>,
    pub limits: Limits,
    pub metadata: Metadata,
    pub blocked: bool,
    pub user_assertion: UserAssertion,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// A change to a key, validated except for the limits (which depend on the current ones).
#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub alias: Change<String>,
    pub user_id: Change<String>,
    pub expires_at: Change<Timestamp>,
    /// `Some(vec![])` makes the key use its team's allowlist.
    pub models: Option<Vec<String>>,
    pub limits: LimitsInput,
    pub limits_clear: LimitsClear,
    pub metadata: Change<Metadata>,
    pub blocked: Option<bool>,
    pub user_assertion: AssertionPatch,
}

impl KeyPatch {
    pub const CLEARABLE: &'static str = "rpm_limit, tpm_limit, max_parallel_requests, \
         max_budget, budget_duration, metadata, expires, key_alias, user_id, models, \
         assert_user_secret";

    pub fn blocked(blocked: bool) -> Self {
        Self {
            blocked: Some(blocked),
            ..Self::default()
        }
    }

    /// The key after this change, checked against its team (a personal key has none).
    pub fn apply(
        &self,
        key: &ApiKey,
        team: Option<&Team>,
        now: Timestamp,
    ) -> Result<ApiKey, ValidationError> {
        let updated = ApiKey {
            alias: self.alias.apply(key.alias.as_ref()),
            user_id: self.user_id.apply(key.user_id.as_ref()),
            expires_at: self.expires_at.apply(key.expires_at.as_ref()),
            models: self.models.clone().unwrap_or_else(|| key.models.clone()),
            limits: self.limits.apply(self.limits_clear, &key.limits, now)?,
            metadata: self.metadata.apply(Some(&key.metadata)).unwrap_or_default(),
            blocked: self.blocked.unwrap_or(key.blocked),
            user_assertion: self.user_assertion.apply(&key.user_assertion)?,
            ..key.clone()
        };
        if let Some(team) = team {
            limits::check_key_within_team(&updated.models, &updated.limits, team)?;
        }
        Ok(updated)
    }
}

/// Which keys `list_keys` returns.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Team id or alias; `None` for all teams.
    pub team: Option<String>,
    pub include_revoked: bool,
    pub user_id: Option<String>,
    /// `(name, value)` metadata tags that must all be present.
    pub tags: Vec<(String, String)>,
    /// Only keys whose expiry is at or before this instant.
    pub expired_at: Option<Timestamp>,
    /// Only keys whose latest request (or creation, if never used) is before this instant.
    pub unused_since: Option<Timestamp>,
}

/// A key as listed for admins, with when it was last used.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedKey {
    pub key: ApiKey,
    pub last_used_at: Option<Timestamp>,
}

/// Someone who owns keys (by `user_id`), with optional limits across all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Any stable string (an email, an IdP subject, a UUID).
    pub id: String,
    /// The team the user belongs to when a service key names them (`None`: the key's).
    pub team_id: Option<String>,
    pub limits: Limits,
    pub created_at: Timestamp,
}

/// A team member's role, as LiteLLM names it. A member is a user whose team is the team
/// (`User::team_id`). Administering a team is an admin role (`team_admin`, from admin keys or
/// IdP groups), so LiteLLM's member role `admin` is refused rather than stored meaning
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamRole {
    User,
}

impl TeamRole {
    /// `None` is LiteLLM's default, `user`.
    pub fn parse(role: Option<&str>) -> Result<Self, ValidationError> {
        match role.map(str::trim) {
            None | Some("user") => Ok(Self::User),
            Some("admin") => Err(ValidationError::TeamAdminMember),
            Some(other) => Err(ValidationError::TeamRole(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub limits: LimitsInput,
    pub limits_clear: LimitsClear,
    /// A team id or alias; the store resolves it to the id in the update's transaction.
    pub team: Change<String>,
}

impl UserPatch {
    pub const CLEARABLE: &'static str =
        "rpm_limit, tpm_limit, max_parallel_requests, max_budget, budget_duration, team";

    /// The user after this change, `team` being a team id by now.
    pub fn apply(&self, user: &User, now: Timestamp) -> Result<User, ValidationError> {
        Ok(User {
            limits: self.limits.apply(self.limits_clear, &user.limits, now)?,
            team_id: self.team.apply(user.team_id.as_ref()),
            ..user.clone()
        })
    }
}

/// A model clients may name, where it is served and what it costs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRoute {
    /// The public name clients send.
    pub name: String,
    /// The upstream's own name; `None` = the public name.
    pub upstream_model: Option<String>,
    /// Envoy cluster; `None` = the filter's default cluster.
    pub cluster: Option<String>,
    pub input_cost_per_mtok: f64,
    pub output_cost_per_mtok: f64,
    /// Completion tokens reserved at admission when a request sets no `max_tokens`;
    /// `None` = the filter's default.
    pub default_max_tokens: Option<u64>,
    /// Most completion tokens a request may ask for (the filter sets or lowers `max_tokens`
    /// to it); `None` = no cap.
    pub max_output_tokens: Option<u64>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct ModelPatch {
    pub upstream_model: Change<String>,
    pub cluster: Change<String>,
    pub input_cost_per_mtok: Option<f64>,
    pub output_cost_per_mtok: Option<f64>,
    pub default_max_tokens: Change<u64>,
    pub max_output_tokens: Change<u64>,
}

impl ModelPatch {
    pub fn apply(&self, route: &ModelRoute) -> ModelRoute {
        ModelRoute {
            upstream_model: self.upstream_model.apply(route.upstream_model.as_ref()),
            cluster: self.cluster.apply(route.cluster.as_ref()),
            input_cost_per_mtok: self
                .input_cost_per_mtok
                .unwrap_or(route.input_cost_per_mtok),
            output_cost_per_mtok: self
                .output_cost_per_mtok
                .unwrap_or(route.output_cost_per_mtok),
            default_max_tokens: self
                .default_max_tokens
                .apply(route.default_max_tokens.as_ref()),
            max_output_tokens: self
                .max_output_tokens
                .apply(route.max_output_tokens.as_ref()),
            ..route.clone()
        }
    }
}

/// A key as a policy snapshot sees it: the [`ApiKey`] fields a filter enforces. The
/// admin-only ones (metadata, last4, creation and revocation times) are left out because a
/// snapshot reads every key: at 100k keys decoding them was most of a rebuild.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyKey {
    pub public_id: String,
    pub key_sha256: [u8; 32],
    /// As [`ApiKey::team_id`]: `None` for a personal key.
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub alias: Option<String>,
    /// As [`ApiKey::models`]: empty = the team's.
    pub models: Vec<String>,
    pub limits: Limits,
    pub blocked: bool,
    pub status: KeyStatus,
    pub expires_at: Option<Timestamp>,
    pub user_assertion: UserAssertion,
    /// A regenerated key's previous secret, while its grace period lasts.
    pub previous_secret: Option<PreviousSecret>,
}

/// The secret a key had before `key/regenerate`, accepted until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousSecret {
    pub sha256: [u8; 32],
    pub expires_at: Timestamp,
}

/// Everything a policy snapshot is built from, read at one consistent point.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyState {
    pub version: u64,
    pub teams: Vec<Team>,
    pub keys: Vec<PolicyKey>,
    pub users: Vec<User>,
    pub models: Vec<ModelRoute>,
    pub identity_providers: Vec<crate::identity::IdentityProvider>,
}

/// Whose spend: usage records carry the key's public id, the team id and the user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    Key,
    Team,
    User,
}

impl ScopeKind {
    pub const ALL: [Self; 3] = [Self::Key, Self::Team, Self::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Team => "team",
            Self::User => "user",
        }
    }
}

/// The part of a stored usage record that spend tracking reads.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// Increasing in insertion order (not necessarily in commit order on PostgreSQL).
    pub id: i64,
    pub key_id: String,
    pub team_id: String,
    pub user_id: String,
    pub spend: f64,
    pub timestamp: Timestamp,
}

/// Spend of one scope on one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct DailySpend {
    /// Midnight UTC of the day.
    pub day: Timestamp,
    pub spend: f64,
    pub requests: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

/// One finished request as stored: the columns reports filter on, plus the whole record.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEntry {
    pub request_id: String,
    pub timestamp: Timestamp,
    pub key_id: String,
    pub team_id: String,
    pub user_id: String,
    pub model: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub spend: f64,
    pub status: crate::audit::RecordStatus,
    /// A filter's request, or an admin call the control plane appended.
    pub kind: crate::audit::RecordKind,
    /// The record exactly as the filter sent it (protobuf).
    pub encoded: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsageBatch {
    pub batch_id: String,
    pub node_id: String,
    /// The name of the authenticated data plane that delivered the batch.
    pub data_plane: String,
    pub received_at: Timestamp,
    pub entries: Vec<UsageEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageReceipt {
    Stored {
        records: u32,
    },
    /// The batch id was already stored; `records` is how many that first delivery held.
    Duplicate {
        records: u32,
    },
}

#[cfg(test)]
mod tests;
