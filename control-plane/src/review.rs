//! Access reviews (`modelgate review`): every live key with its owner, tags, age, last use and
//! recent spend, and the findings a reviewer acts on. Pure: the CLI fetches keys, teams, users
//! and the audit log's spend per key, and this decides what is flagged.

use std::collections::{HashMap, HashSet};

use modelgate_proto::v1 as pb;

use crate::budget::DAY_MS;
use crate::domain::Metadata;

/// What a review looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewSettings {
    pub now_ms: i64,
    /// Keys without a request in this many days are `unused`; also the spend period.
    pub unused_days: u32,
    /// Keys made longer ago than this are due for rotation.
    pub rotation_days: u32,
}

impl ReviewSettings {
    /// Start of the period keys must have been used in, and their spend is summed over.
    pub fn period_start_ms(&self) -> i64 {
        self.now_ms - i64::from(self.unused_days) * DAY_MS
    }
}

/// One finding on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// No request in `unused_days` (never-used keys count from their creation).
    Unused,
    /// No expiry.
    NeverExpires,
    /// Made longer ago than the rotation period.
    RotationDue,
    /// Neither a `user_id` nor an `owner` tag.
    MissingOwner,
    /// Its `user_id` is not a user the control plane knows (deleted, or never registered).
    OwnerNotAUser,
    /// One of its own limits is above its team's (the filter enforces the team's anyway, but
    /// the key claims more than the team was given).
    LimitsAboveTeam,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unused => "unused",
            Self::NeverExpires => "never_expires",
            Self::RotationDue => "rotation_due",
            Self::MissingOwner => "missing_owner",
            Self::OwnerNotAUser => "owner_not_a_user",
            Self::LimitsAboveTeam => "limits_above_team",
        }
    }
}

/// One live key as the review shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyReview {
    pub public_id: String,
    /// The team's alias (its id when it has none); empty for a personal key.
    pub team: String,
    /// `user_id`, else the `owner` tag; empty when neither.
    pub owner: String,
    /// The key's top-level scalar metadata entries, `name=value`, sorted.
    pub tags: Vec<String>,
    pub created_at_ms: i64,
    /// 0 = never.
    pub expires_at_ms: i64,
    /// 0 = never used.
    pub last_used_at_ms: i64,
    pub blocked: bool,
    /// USD over the last `unused_days`, from the audit log.
    pub spend: f64,
    pub flags: Vec<Flag>,
}

/// Reviews `keys` (live ones; revoked keys need no review) against their teams and the known
/// users. `spend` is USD per key public id over the review period.
pub fn review(
    keys: &[pb::Key],
    teams: &[pb::Team],
    users: &[pb::User],
    spend: &HashMap<String, f64>,
    settings: ReviewSettings,
) -> Vec<KeyReview> {
    let teams: HashMap<&str, &pb::Team> = teams.iter().map(|t| (t.team_id.as_str(), t)).collect();
    let users: HashSet<&str> = users.iter().map(|u| u.user_id.as_str()).collect();
    let unused_since = settings.period_start_ms();
    let rotation_before = settings.now_ms - i64::from(settings.rotation_days) * DAY_MS;
    keys.iter()
        .filter(|k| !k.revoked)
        .map(|k| {
            let tags = tags(&k.metadata_json);
            let owner_tag = tags
                .iter()
                .find_map(|t| t.strip_prefix("owner="))
                .unwrap_or_default();
            let team = teams.get(k.team_id.as_str()).copied();
            let mut flags = Vec::new();
            let last_activity = if k.last_used_at_ms > 0 {
                k.last_used_at_ms
            } else {
                k.created_at_ms
            };
            if last_activity < unused_since {
                flags.push(Flag::Unused);
            }
            if k.expires_at_ms == 0 {
                flags.push(Flag::NeverExpires);
            }
            if k.created_at_ms < rotation_before {
                flags.push(Flag::RotationDue);
            }
            if k.user_id.is_empty() && owner_tag.is_empty() {
                flags.push(Flag::MissingOwner);
            }
            if !k.user_id.is_empty() && !users.contains(k.user_id.as_str()) {
                flags.push(Flag::OwnerNotAUser);
            }
            if team.is_some_and(|t| above(k.limits.as_ref(), t.limits.as_ref())) {
                flags.push(Flag::LimitsAboveTeam);
            }
            KeyReview {
                public_id: k.public_id.clone(),
                team: team.map_or_else(|| k.team_id.clone(), |t| t.alias.clone()),
                owner: if k.user_id.is_empty() {
                    owner_tag.to_owned()
                } else {
                    k.user_id.clone()
                },
                tags,
                created_at_ms: k.created_at_ms,
                expires_at_ms: k.expires_at_ms,
                last_used_at_ms: k.last_used_at_ms,
                blocked: k.blocked,
                spend: spend.get(&k.public_id).copied().unwrap_or(0.0),
                flags,
            }
        })
        .collect()
}

/// Whether any limit the key sets is above the one its team sets.
fn above(key: Option<&pb::LimitSettings>, team: Option<&pb::LimitSettings>) -> bool {
    let (Some(key), Some(team)) = (key, team) else {
        return false;
    };
    let over =
        |own: Option<f64>, cap: Option<f64>| matches!((own, cap), (Some(o), Some(c)) if o > c);
    over(
        key.rpm_limit.map(|v| v as f64),
        team.rpm_limit.map(|v| v as f64),
    ) || over(
        key.tpm_limit.map(|v| v as f64),
        team.tpm_limit.map(|v| v as f64),
    ) || over(
        key.max_parallel_requests.map(f64::from),
        team.max_parallel_requests.map(f64::from),
    ) || over(key.max_budget, team.max_budget)
}

/// `name=value` for each tag of a key's metadata (its top-level scalars, as `key list --tag`
/// matches them), sorted. Metadata the server could not have stored reads as none.
fn tags(metadata_json: &str) -> Vec<String> {
    let metadata = Metadata::parse(metadata_json).unwrap_or_default();
    let mut tags: Vec<String> = metadata
        .tags()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    tags.sort();
    tags
}

#[cfg(test)]
mod tests;
