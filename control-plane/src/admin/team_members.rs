//! Team members, as LiteLLM's `/team/member_*` routes manage them. A member is a user whose
//! team (`User::team_id`, as `modelgate user update --team` sets it) is the team, so a user
//! belongs to one team. Adding and removing members changes users: each is an `update_user`,
//! with its permission check and admin record.

use super::{Admin, AdminResult, UserView};
use crate::authz::{Action, Caller};
use crate::domain::{User, ValidationError};
use crate::limits::LimitsInput;
use crate::store::Store;

impl<S: Store> Admin<S> {
    /// The users whose team is `team` (id or alias), for a caller who may read the team.
    pub async fn team_members(&self, caller: &Caller, team: &str) -> AdminResult<Vec<User>> {
        let team = self.get_team(caller, team).await?.team;
        Ok(self
            .store
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.team_id.as_deref() == Some(team.id.as_str()))
            .collect())
    }

    /// Makes the users members of `team`, all or none: each must exist, and belong to no
    /// team yet, before any is changed.
    pub async fn add_team_members(
        &self,
        caller: &Caller,
        team: &str,
        users: &[String],
    ) -> AdminResult<Vec<UserView>> {
        let team = self.find_team(team).await?;
        for id in users {
            let user = self.permitted_user(caller, Action::UpdateUser, id).await?;
            match user.team_id {
                Some(t) if t == team.id => {
                    return Err(ValidationError::AlreadyMember {
                        user: user.id,
                        team: t,
                    }
                    .into())
                }
                Some(other) => {
                    return Err(ValidationError::MemberOfAnotherTeam {
                        user: user.id,
                        other,
                    }
                    .into())
                }
                None => {}
            }
        }
        let mut added = Vec::with_capacity(users.len());
        for id in users {
            let into = Some(team.id.as_str());
            added.push(
                self.update_user(caller, id, LimitsInput::default(), into, &[])
                    .await?,
            );
        }
        Ok(added)
    }

    /// The member `user` of `team`, for a caller who may change users.
    pub async fn team_member(&self, caller: &Caller, team: &str, user: &str) -> AdminResult<User> {
        let team = self.find_team(team).await?;
        let user = self
            .permitted_user(caller, Action::UpdateUser, user)
            .await?;
        if user.team_id.as_deref() != Some(team.id.as_str()) {
            return Err(ValidationError::NotAMember {
                user: user.id,
                team: team.id,
            }
            .into());
        }
        Ok(user)
    }

    /// Removes a member from `team`: keys that assert the user charge the key's team again.
    pub async fn remove_team_member(
        &self,
        caller: &Caller,
        team: &str,
        user: &str,
    ) -> AdminResult<UserView> {
        let member = self.team_member(caller, team, user).await?;
        let clear = ["team".to_owned()];
        self.update_user(caller, &member.id, LimitsInput::default(), None, &clear)
            .await
    }
}
