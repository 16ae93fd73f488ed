//! Teams, keys and usage as the control plane reasons about them, with the rules for valid
//! input. No storage or wire types here.

use std::fmt;

use crate::clock::Timestamp;

/// `team_` + 12 × `[a-z0-9]`. The underscore cannot appear in an alias, so a team reference
/// (`--team`) is never ambiguous between an id and an alias.
pub const TEAM_ID_PREFIX: &str = "team_";
const TEAM_ID_RANDOM_LEN: usize = 12;
const MAX_ALIAS_LEN: usize = 63;
const MAX_MODEL_LEN: usize = 128;
const MAX_USER_ID_LEN: usize = 254;
const MAX_KEY_ALIAS_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("team alias {0:?} is invalid: use 1-63 characters from a-z, 0-9, '.' and '-', starting with a letter or digit")]
    TeamAlias(String),
    #[error("model name {0:?} is invalid: use 1-128 characters without spaces or commas")]
    ModelName(String),
    #[error("user id is invalid: use at most 254 printable characters")]
    UserId,
    #[error("key alias is invalid: use at most 64 printable characters")]
    KeyAlias,
    #[error("a team is required (its id or alias)")]
    MissingTeam,
    #[error("{0:?} is not a key id: expected 12 characters a-z, 0-9 (the public id shown by `key list`)")]
    PublicId(String),
    #[error("that looks like a whole key; pass only its public id (the part after sk-mg-)")]
    WholeKeyGiven,
    #[error("batch_id is required")]
    MissingBatchId,
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
}

impl fmt::Display for TeamAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn new_team_id() -> Result<String, crate::keys::RandomnessError> {
    Ok(format!(
        "{TEAM_ID_PREFIX}{}",
        crate::keys::random_id(TEAM_ID_RANDOM_LEN)?
    ))
}

/// Validates a model allowlist: trimmed, non-empty names, first occurrence kept.
/// Wildcards are stored as written; their meaning belongs to the filter's allowlist check.
pub fn parse_models<I, S>(models: I) -> Result<Vec<String>, ValidationError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for m in models {
        let m = m.as_ref().trim();
        let valid = !m.is_empty()
            && m.len() <= MAX_MODEL_LEN
            && m.chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != ',');
        if !valid {
            return Err(ValidationError::ModelName(m.to_owned()));
        }
        if !out.iter().any(|seen| seen == m) {
            out.push(m.to_owned());
        }
    }
    Ok(out)
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

pub fn parse_user_id(s: &str) -> Result<Option<String>, ValidationError> {
    optional_text(s, MAX_USER_ID_LEN, ValidationError::UserId)
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

#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: String,
    pub alias: String,
    pub models: Vec<String>,
    pub blocked: bool,
    pub created_at: Timestamp,
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
    pub team_id: String,
    pub user_id: Option<String>,
    pub alias: Option<String>,
    pub models: Vec<String>,
    pub status: KeyStatus,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// A key to insert; `team` is an id or alias, resolved by the store in the same transaction.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub team: String,
    pub public_id: String,
    pub key_sha256: [u8; 32],
    pub last4: String,
    pub user_id: Option<String>,
    pub alias: Option<String>,
    pub models: Vec<String>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Team id or alias; `None` for all teams.
    pub team: Option<String>,
    pub include_revoked: bool,
}

/// Everything a policy snapshot is built from, read at one consistent point.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyState {
    pub version: u64,
    pub teams: Vec<Team>,
    pub keys: Vec<ApiKey>,
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
    /// The record exactly as the filter sent it (protobuf).
    pub encoded: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsageBatch {
    pub batch_id: String,
    pub node_id: String,
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
mod tests {
    use super::*;

    #[test]
    fn team_aliases() {
        for ok in ["ml", "ml-team", "team.a", "0day", "a"] {
            assert_eq!(TeamAlias::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(TeamAlias::parse("  ml ").unwrap().as_str(), "ml");
        let long = "a".repeat(64);
        for bad in ["", "-ml", "ML", "ml team", "team_1", "ml/x", long.as_str()] {
            assert!(TeamAlias::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn team_ids_never_parse_as_aliases() {
        let id = new_team_id().unwrap();
        assert!(id.starts_with(TEAM_ID_PREFIX));
        assert!(TeamAlias::parse(&id).is_err());
    }

    #[test]
    fn models_are_trimmed_and_deduplicated() {
        assert_eq!(
            parse_models([" llama3 ", "qwen2.5-*", "llama3"]).unwrap(),
            vec!["llama3", "qwen2.5-*"]
        );
        assert!(parse_models(Vec::<String>::new()).unwrap().is_empty());
        assert!(parse_models([""]).is_err());
        assert!(parse_models(["a b"]).is_err());
    }

    #[test]
    fn optional_fields() {
        assert_eq!(parse_user_id("  "), Ok(None));
        assert_eq!(
            parse_user_id("ana@example.com"),
            Ok(Some("ana@example.com".into()))
        );
        assert!(parse_user_id("a\nb").is_err());
        assert!(parse_key_alias(&"x".repeat(65)).is_err());
    }

    #[test]
    fn public_ids() {
        assert_eq!(parse_public_id("abc123def456"), Ok("abc123def456".into()));
        assert_eq!(
            parse_public_id("sk-mg-abc123def456-SECRETSECRET"),
            Err(ValidationError::WholeKeyGiven)
        );
        assert!(matches!(
            parse_public_id("nope"),
            Err(ValidationError::PublicId(_))
        ));
    }
}
