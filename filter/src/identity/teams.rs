//! Which team a token's bearer acts for: the teams whose `idp_groups` name one of the token's
//! groups, narrowed by the `x-modelgate-team` header when the bearer is in several. Without
//! the header the choice is deterministic: the mapped team whose id sorts first.

use std::collections::BTreeSet;
use std::rc::Rc;

use modelgate_proto::v1::TeamPolicy;

use crate::policy::PolicyIndex;

/// Request header naming the team (id or alias) a member of several teams acts for.
pub const TEAM_HEADER: &str = "x-modelgate-team";

/// Why no team could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamChoiceError {
    /// None of the token's groups maps to a team, or the issuer's `allowed_groups` holds
    /// none of them.
    NoTeam,
    /// The header names a team the bearer's groups do not map to.
    NotAMember,
}

/// The ids of the teams of `policy` a bearer of `groups` belongs to, in id order, when
/// vouched for by an issuer with `allowed_groups` (empty = any group): none when that list
/// holds none of their groups. The identity cache keeps the answer with the token for as
/// long as the snapshot version is the same, so a token listing many groups is mapped once.
pub fn mapped(policy: &PolicyIndex, groups: &[String], allowed_groups: &[String]) -> Rc<[String]> {
    let allowed = allowed_groups.is_empty()
        || groups
            .iter()
            .any(|group| allowed_groups.iter().any(|allowed| allowed == group));
    if !allowed {
        return Rc::from([]);
    }
    let ids: BTreeSet<&String> = groups
        .iter()
        .flat_map(|group| policy.teams_of_group(group))
        .collect();
    ids.into_iter().cloned().collect()
}

/// The team among `mapped` (see [`mapped`]) the bearer acts for, optionally asking for
/// `requested` (the header's raw value, a team id or alias).
pub fn choose<'p>(
    policy: &'p PolicyIndex,
    mapped: &[String],
    requested: Option<&[u8]>,
) -> Result<&'p TeamPolicy, TeamChoiceError> {
    let mut teams = mapped.iter().filter_map(|id| policy.team(id));
    match requested.map(<[u8]>::trim_ascii).filter(|v| !v.is_empty()) {
        None => teams.next().ok_or(TeamChoiceError::NoTeam),
        Some(wanted) => teams
            .find(|team| team.team_id.as_bytes() == wanted || team.alias.as_bytes() == wanted)
            .ok_or(TeamChoiceError::NotAMember),
    }
}
