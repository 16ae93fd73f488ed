//! Who may do what in the admin API: the caller every admin call is made by ([`Caller`]), the
//! roles, and the one pure rule ([`authorize`]) every admin operation asks with its action and
//! the object it resolved (a key's team and owner, a team's id, a user).
//!
//! Roles, after LiteLLM's: `admin` (proxy_admin) everything; `team_admin` (a team's admin)
//! keys of their own teams, reading those teams, users and models; `auditor`
//! (proxy_admin_viewer) reading everything but admin keys, no writes; `member`
//! (internal_user) their own keys in their teams and their own spend.

use std::fmt;

/// An admin role, as stored with an admin key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    TeamAdmin,
    Auditor,
    Member,
}

impl Role {
    pub const ALL: [Self; 4] = [Self::Admin, Self::TeamAdmin, Self::Auditor, Self::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::TeamAdmin => "team_admin",
            Self::Auditor => "auditor",
            Self::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }

    /// Whether the role is bound to teams (and so needs at least one).
    pub fn has_teams(self) -> bool {
        matches!(self, Self::TeamAdmin | Self::Member)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The credential a caller proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Bootstrap and break-glass: every use is audited as such.
    MasterKey,
    /// An admin key, by public id.
    AdminKey(String),
    /// An IdP access token of this issuer whose groups map to a role.
    IdpToken { issuer: String },
}

/// Who is calling: established once per call from the bearer credential (see
/// [`crate::admin::Admin::authenticate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub user_id: String,
    pub role: Role,
    /// Team ids the role applies to (team_admin and member).
    pub teams: Vec<String>,
    /// The peer's address, for the audit record.
    pub remote: String,
}

/// The user id the master key acts as in audit records.
pub const MASTER_KEY_USER: &str = "master-key";

impl Caller {
    pub fn master_key(remote: &str) -> Self {
        Self {
            principal: Principal::MasterKey,
            user_id: MASTER_KEY_USER.to_owned(),
            role: Role::Admin,
            teams: Vec::new(),
            remote: remote.to_owned(),
        }
    }

    fn in_team(&self, team_id: &str) -> bool {
        self.teams.iter().any(|t| t == team_id)
    }
}

/// What an admin operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateTeam,
    ReadTeam,
    /// Settings, limits, blocking.
    UpdateTeam,
    /// A team with all its keys.
    DeleteTeam,
    CreateKey,
    ReadKey,
    /// Settings, limits, blocking.
    UpdateKey,
    RevokeKey,
    /// Letting a key name the end user it calls for (a service key such as Open WebUI's):
    /// such a key can act as anyone, so only admins grant it.
    GrantUserAssertion,
    CreateUser,
    ReadUser,
    UpdateUser,
    /// A user with the keys they own.
    DeleteUser,
    ReadModels,
    ManageModels,
    ReadSpend,
    ReadAudit,
    PruneAudit,
    ManageDataPlanes,
    ManageIdentityProviders,
    ManageAdminKeys,
    /// LiteLLM budget objects (`/budget/list`, `/budget/info`).
    ReadBudgets,
    /// Creating, changing and deleting budget objects, and attaching them to keys, teams and
    /// users: an attached budget sets limits, so only admins.
    ManageBudgets,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateTeam => "create_team",
            Self::ReadTeam => "read_team",
            Self::UpdateTeam => "update_team",
            Self::DeleteTeam => "delete_team",
            Self::CreateKey => "create_key",
            Self::ReadKey => "read_key",
            Self::UpdateKey => "update_key",
            Self::RevokeKey => "revoke_key",
            Self::GrantUserAssertion => "grant_user_assertion",
            Self::CreateUser => "create_user",
            Self::ReadUser => "read_user",
            Self::UpdateUser => "update_user",
            Self::DeleteUser => "delete_user",
            Self::ReadModels => "read_models",
            Self::ManageModels => "manage_models",
            Self::ReadSpend => "read_spend",
            Self::ReadAudit => "read_audit",
            Self::PruneAudit => "prune_audit",
            Self::ManageDataPlanes => "manage_data_planes",
            Self::ManageIdentityProviders => "manage_identity_providers",
            Self::ManageAdminKeys => "manage_admin_keys",
            Self::ReadBudgets => "read_budgets",
            Self::ManageBudgets => "manage_budgets",
        }
    }

    fn is_read(self) -> bool {
        matches!(
            self,
            Self::ReadTeam
                | Self::ReadKey
                | Self::ReadUser
                | Self::ReadModels
                | Self::ReadSpend
                | Self::ReadAudit
                | Self::ReadBudgets
        )
    }
}

/// What an action is applied to, resolved from the store before asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object<'a> {
    /// Nothing in particular: a new team, the model routes, the audit log, data planes.
    Global,
    Team(&'a str),
    Key {
        /// `None` for a personal key, which only admins manage.
        team_id: Option<&'a str>,
        /// The key's `user_id`, its owner.
        user_id: Option<&'a str>,
    },
    User(&'a str),
}

/// A refused call. The message names the role and the action, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role {role} may not {action}{scope}")]
pub struct Denied {
    pub role: Role,
    pub action: &'static str,
    scope: &'static str,
}

const PERSONAL_KEYS: &str = " on keys without a team (only admins make and change personal keys)";

/// The one authorization rule of the admin API.
pub fn authorize(caller: &Caller, action: Action, object: &Object<'_>) -> Result<(), Denied> {
    let deny = |scope: &'static str| {
        Err(Denied {
            role: caller.role,
            action: action.as_str(),
            scope,
        })
    };
    match caller.role {
        Role::Admin => Ok(()),
        Role::Auditor => match action {
            a if a.is_read() => Ok(()),
            _ => deny(" (auditors are read-only)"),
        },
        Role::TeamAdmin => match (action, object) {
            (Action::ReadTeam | Action::ReadSpend, Object::Team(team_id))
            | (
                Action::ReadTeam
                | Action::ReadSpend
                | Action::CreateKey
                | Action::ReadKey
                | Action::UpdateKey
                | Action::RevokeKey,
                Object::Key {
                    team_id: Some(team_id),
                    ..
                },
            ) => {
                if caller.in_team(team_id) {
                    Ok(())
                } else {
                    deny(" outside their teams")
                }
            }
            (_, Object::Key { team_id: None, .. }) => deny(PERSONAL_KEYS),
            (Action::ReadUser, Object::User(_)) | (Action::ReadModels, _) => Ok(()),
            (Action::ReadSpend, Object::User(_)) => deny(" for users (only their teams' keys)"),
            _ => deny(""),
        },
        Role::Member => match (action, object) {
            (
                Action::CreateKey
                | Action::ReadKey
                | Action::UpdateKey
                | Action::RevokeKey
                | Action::ReadSpend,
                Object::Key { team_id, user_id },
            ) => {
                // A personal key has no team caps to stay within: a member may read, revoke
                // and see the spend of their own, never make or change one.
                let personal_write =
                    team_id.is_none() && matches!(action, Action::CreateKey | Action::UpdateKey);
                if personal_write {
                    deny(PERSONAL_KEYS)
                } else if team_id.is_some_and(|team_id| !caller.in_team(team_id)) {
                    deny(" outside their teams")
                } else if *user_id != Some(caller.user_id.as_str()) {
                    deny(" on keys of other users (set user_id to their own)")
                } else {
                    Ok(())
                }
            }
            (Action::ReadSpend | Action::ReadUser, Object::User(user_id)) => {
                if *user_id == caller.user_id {
                    Ok(())
                } else {
                    deny(" for other users")
                }
            }
            _ => deny(""),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, teams: &[&str]) -> Caller {
        Caller {
            principal: Principal::AdminKey("aaaaaaaaaaaa".into()),
            user_id: "ana@corp".into(),
            role,
            teams: teams.iter().map(|t| (*t).to_owned()).collect(),
            remote: "127.0.0.1:1".into(),
        }
    }

    const OWN_TEAM: Object<'static> = Object::Team("team_own");
    const OTHER_TEAM: Object<'static> = Object::Team("team_other");
    const OWN_KEY: Object<'static> = Object::Key {
        team_id: Some("team_own"),
        user_id: Some("ana@corp"),
    };
    const COLLEAGUE_KEY: Object<'static> = Object::Key {
        team_id: Some("team_own"),
        user_id: Some("bo@corp"),
    };
    const OTHER_TEAM_KEY: Object<'static> = Object::Key {
        team_id: Some("team_other"),
        user_id: Some("ana@corp"),
    };
    const OWN_PERSONAL_KEY: Object<'static> = Object::Key {
        team_id: None,
        user_id: Some("ana@corp"),
    };
    const PERSONAL_KEY: Object<'static> = Object::Key {
        team_id: None,
        user_id: Some("bo@corp"),
    };

    /// `(action, object, [admin, team_admin, auditor, member])`: allowed or not.
    #[test]
    fn the_role_matrix() {
        let matrix: &[(Action, Object<'_>, [bool; 4])] = &[
            (
                Action::CreateTeam,
                Object::Global,
                [true, false, false, false],
            ),
            (Action::ReadTeam, OWN_TEAM, [true, true, true, false]),
            (Action::ReadTeam, OTHER_TEAM, [true, false, true, false]),
            (Action::UpdateTeam, OWN_TEAM, [true, false, false, false]),
            (Action::CreateKey, OWN_KEY, [true, true, false, true]),
            (Action::CreateKey, COLLEAGUE_KEY, [true, true, false, false]),
            (
                Action::CreateKey,
                OTHER_TEAM_KEY,
                [true, false, false, false],
            ),
            (Action::UpdateKey, OWN_KEY, [true, true, false, true]),
            (Action::RevokeKey, OWN_KEY, [true, true, false, true]),
            (Action::RevokeKey, COLLEAGUE_KEY, [true, true, false, false]),
            (
                Action::RevokeKey,
                OTHER_TEAM_KEY,
                [true, false, false, false],
            ),
            (Action::ReadKey, OTHER_TEAM_KEY, [true, false, true, false]),
            (
                Action::CreateKey,
                OWN_PERSONAL_KEY,
                [true, false, false, false],
            ),
            (
                Action::UpdateKey,
                OWN_PERSONAL_KEY,
                [true, false, false, false],
            ),
            (Action::ReadKey, OWN_PERSONAL_KEY, [true, false, true, true]),
            (
                Action::RevokeKey,
                OWN_PERSONAL_KEY,
                [true, false, false, true],
            ),
            (
                Action::ReadSpend,
                OWN_PERSONAL_KEY,
                [true, false, true, true],
            ),
            (Action::ReadKey, PERSONAL_KEY, [true, false, true, false]),
            (Action::RevokeKey, PERSONAL_KEY, [true, false, false, false]),
            (Action::ReadSpend, OWN_KEY, [true, true, true, true]),
            (Action::ReadSpend, OWN_TEAM, [true, true, true, false]),
            (Action::ReadSpend, OTHER_TEAM, [true, false, true, false]),
            (
                Action::ReadSpend,
                Object::User("ana@corp"),
                [true, false, true, true],
            ),
            (
                Action::ReadSpend,
                Object::User("bo@corp"),
                [true, false, true, false],
            ),
            (
                Action::CreateUser,
                Object::User("bo@corp"),
                [true, false, false, false],
            ),
            (
                Action::ReadUser,
                Object::User("bo@corp"),
                [true, true, true, false],
            ),
            (
                Action::ReadModels,
                Object::Global,
                [true, true, true, false],
            ),
            (
                Action::ManageModels,
                Object::Global,
                [true, false, false, false],
            ),
            (
                Action::ReadAudit,
                Object::Global,
                [true, false, true, false],
            ),
            (
                Action::PruneAudit,
                Object::Global,
                [true, false, false, false],
            ),
            (
                Action::ManageDataPlanes,
                Object::Global,
                [true, false, false, false],
            ),
            (
                Action::ManageIdentityProviders,
                Object::Global,
                [true, false, false, false],
            ),
            (
                Action::ManageAdminKeys,
                Object::Global,
                [true, false, false, false],
            ),
            (
                Action::ReadBudgets,
                Object::Global,
                [true, false, true, false],
            ),
            (
                Action::ManageBudgets,
                Object::Global,
                [true, false, false, false],
            ),
        ];
        for (action, object, expected) in matrix {
            for (role, allowed) in Role::ALL.into_iter().zip(expected) {
                let c = caller(role, if role.has_teams() { &["team_own"] } else { &[] });
                assert_eq!(
                    authorize(&c, *action, object).is_ok(),
                    *allowed,
                    "{role} {action:?} {object:?}"
                );
            }
        }
    }

    #[test]
    fn denials_name_the_role_and_the_action() {
        let c = caller(Role::Member, &["team_own"]);
        let err = authorize(&c, Action::RevokeKey, &OTHER_TEAM_KEY).unwrap_err();
        assert_eq!(
            err.to_string(),
            "role member may not revoke_key outside their teams"
        );
        let auditor = caller(Role::Auditor, &[]);
        let err = authorize(&auditor, Action::CreateTeam, &Object::Global).unwrap_err();
        assert_eq!(
            err.to_string(),
            "role auditor may not create_team (auditors are read-only)"
        );
    }

    #[test]
    fn the_master_key_is_an_admin() {
        let c = Caller::master_key("10.0.0.1:5");
        assert_eq!(c.role, Role::Admin);
        assert!(authorize(&c, Action::ManageAdminKeys, &Object::Global).is_ok());
    }

    #[test]
    fn roles_parse() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
