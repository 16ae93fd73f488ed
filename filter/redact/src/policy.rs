//! A team's redaction policy: the JSON stored as `redaction_policy_json` in the snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::entity::EntityType;
use crate::scope::Scope;

/// What happens to a detected value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Not detected at all.
    Off,
    /// Replaced by `<TYPE>`.
    Mask,
    /// Replaced by `<TYPE_N>`; the response gets the value back.
    Reversible,
    /// The request is refused; the verdict names the entity types, never the values.
    Block,
}

/// Which traffic a rule covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Prompts only (pre-call).
    #[default]
    Request,
    /// Model answers only (post-call).
    Response,
    Both,
}

/// The side of the exchange a text belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Request,
    Response,
}

impl Direction {
    pub fn covers(self, phase: Phase) -> bool {
        matches!(
            (self, phase),
            (Direction::Both, _)
                | (Direction::Request, Phase::Request)
                | (Direction::Response, Phase::Response)
        )
    }
}

/// An entity's rule: either a bare action or an action with its own direction.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum EntityRule {
    Action(Action),
    Detailed {
        action: Action,
        #[serde(default)]
        direction: Option<Direction>,
    },
}

/// A team's own regular expression, reported under its own entity name.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    pub name: String,
    /// `regex` crate syntax (linear time, no look-around or back-references).
    pub pattern: String,
    #[serde(default = "default_action")]
    pub action: Action,
    #[serde(default)]
    pub direction: Option<Direction>,
}

/// Literal terms (e.g. project code names), matched on word boundaries.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DenyTerms {
    #[serde(default = "default_deny_name")]
    pub name: String,
    pub terms: Vec<String>,
    #[serde(default = "default_action")]
    pub action: Action,
    #[serde(default)]
    pub direction: Option<Direction>,
    #[serde(default)]
    pub case_sensitive: bool,
}

/// The whole policy. Every field has a default, so `{}` is a valid policy (mask every built-in
/// type in requests).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionPolicy {
    /// Action for built-in types not listed in `entities`.
    #[serde(default = "default_action")]
    pub default_action: Action,
    /// Direction for rules that do not name their own.
    #[serde(default)]
    pub direction: Direction,
    /// Per built-in type (`"PERSON"`, `"CREDIT_CARD"`, …).
    #[serde(default)]
    pub entities: BTreeMap<String, EntityRule>,
    #[serde(default)]
    pub custom_patterns: Vec<CustomPattern>,
    #[serde(default)]
    pub deny_terms: Vec<DenyTerms>,
    /// Bypass redaction entirely (the caller marks the request as bypassed).
    #[serde(default)]
    pub high_trust: bool,
    /// Which kinds of request text are redacted (default: all of them).
    #[serde(default)]
    pub scope: Scope,
}

impl Default for RedactionPolicy {
    fn default() -> Self {
        RedactionPolicy {
            default_action: Action::Mask,
            direction: Direction::Request,
            entities: BTreeMap::new(),
            custom_patterns: Vec::new(),
            deny_terms: Vec::new(),
            high_trust: false,
            scope: Scope::FULL,
        }
    }
}

fn default_action() -> Action {
    Action::Mask
}

fn default_deny_name() -> String {
    "DENY_LIST".to_owned()
}

/// Why a policy cannot be compiled.
#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("redaction policy is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON, but not a JSON object.
    #[error("redaction policy is invalid: {0}")]
    Invalid(#[source] serde_json::Error),
    /// Valid JSON, but a field has the wrong type or value; `field` is its path
    /// (`entities.PERSON`, `custom_patterns[0].action`).
    #[error("redaction policy field `{field}` is invalid: {source}")]
    Field {
        field: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("unknown entity type {0:?} in redaction policy")]
    UnknownEntity(String),
    #[error(
        "custom entity name {0:?} must match [A-Z][A-Z0-9_]{{0,31}} and not be a built-in type"
    )]
    InvalidName(String),
    #[error("custom pattern {name:?} does not compile: {source}")]
    Pattern {
        name: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("custom pattern {0:?} matches the empty string")]
    EmptyMatch(String),
    #[error("redaction policy has too many {what} (at most {max})")]
    TooMany { what: &'static str, max: usize },
    #[error("deny-list {0:?} has an empty term")]
    EmptyTerm(String),
    /// `scope` is not `"full"`, a field kind or a list of them.
    #[error("{0}")]
    Scope(String),
    #[error("built-in detector failed to compile: {0}")]
    Builtin(String),
}

/// The most custom patterns a policy may carry: each one is a pass over the text.
pub const MAX_CUSTOM_PATTERNS: usize = 32;
/// The most deny terms across all lists.
pub const MAX_DENY_TERMS: usize = 10_000;
/// Compiled size limit per custom pattern, so one policy cannot exhaust the filter's memory.
pub const MAX_PATTERN_BYTES: usize = 1 << 20;

impl RedactionPolicy {
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: serde_json::Value = serde_json::from_str(json)?;
        serde_path_to_error::deserialize(&value).map_err(|err| {
            if let Some(scope) = scope_error(&value) {
                return scope;
            }
            let field = err.path().to_string();
            let source = err.into_inner();
            // Only a body that is not an object fails at the root.
            if field == "." {
                PolicyError::Invalid(source)
            } else {
                PolicyError::Field { field, source }
            }
        })
    }

    /// The rule for a built-in type, with the policy defaults filled in.
    /// An ITIN is SSN-shaped and as personal: a policy that names `US_SSN` but not `US_ITIN`
    /// treats both alike.
    pub fn builtin_rule(&self, entity: &EntityType) -> (Action, Direction) {
        let rule = self.entities.get(entity.as_str()).or_else(|| {
            (*entity == EntityType::UsItin)
                .then(|| self.entities.get(EntityType::UsSsn.as_str()))
                .flatten()
        });
        match rule {
            None => (self.default_action, self.direction),
            Some(EntityRule::Action(a)) => (*a, self.direction),
            Some(EntityRule::Detailed { action, direction }) => {
                (*action, direction.unwrap_or(self.direction))
            }
        }
    }

    pub(crate) fn validate_names(&self) -> Result<(), PolicyError> {
        if let Some(unknown) = self
            .entities
            .keys()
            .find(|k| EntityType::builtin(k).is_none())
        {
            return Err(PolicyError::UnknownEntity(unknown.clone()));
        }
        let custom = self
            .custom_patterns
            .iter()
            .map(|p| &p.name)
            .chain(self.deny_terms.iter().map(|d| &d.name));
        for name in custom {
            if !valid_custom_name(name) {
                return Err(PolicyError::InvalidName(name.clone()));
            }
        }
        if self.custom_patterns.len() > MAX_CUSTOM_PATTERNS {
            return Err(PolicyError::TooMany {
                what: "custom patterns",
                max: MAX_CUSTOM_PATTERNS,
            });
        }
        let terms: usize = self.deny_terms.iter().map(|d| d.terms.len()).sum();
        if terms > MAX_DENY_TERMS {
            return Err(PolicyError::TooMany {
                what: "deny terms",
                max: MAX_DENY_TERMS,
            });
        }
        Ok(())
    }
}

/// The scope's own complaint when `scope` is what made the policy fail to parse (it lists
/// the kinds a scope may name).
fn scope_error(value: &serde_json::Value) -> Option<PolicyError> {
    let scope = value.as_object()?.get("scope")?.clone();
    Scope::try_from(scope).err().map(PolicyError::Scope)
}

fn valid_custom_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('A'..='Z'))
        && name.len() <= 32
        && chars.all(|c| matches!(c, 'A'..='Z' | '0'..='9' | '_'))
        && EntityType::builtin(name).is_none()
}
