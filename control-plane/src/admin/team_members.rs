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

    /// The users (ids) of `users` that would join `team` (`None`: a team about to be
    /// created): each must exist, be the caller's to change, and belong to no other team;
    /// members already are left out.
    pub async fn joining_members(
        &self,
        caller: &Caller,
        team: Option<&str>,
        users: &[String],
    ) -> AdminResult<Vec<String>> {
        let mut joining = Vec::with_capacity(users.len());
        for id in users {
            let user = self.permitted_user(caller, Action::UpdateUser, id).await?;
            match user.team_id {
                None => joining.push(user.id),
                Some(t) if Some(t.as_str()) == team => {}
                Some(other) => {
                    return Err(ValidationError::MemberOfAnotherTeam {
                        user: user.id,
                        other,
                    }
                    .into())
                }
            }
        }
        Ok(joining)
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
        let joining = self.joining_members(caller, Some(&team.id), users).await?;
        if let Some(member) = users
            .iter()
            .find(|id| !joining.iter().any(|j| j == id.trim()))
        {
            return Err(ValidationError::AlreadyMember {
                user: member.trim().to_owned(),
                team: team.id,
            }
            .into());
        }
        self.join(caller, &team.id, &joining).await
    }

    /// Makes `users` exactly the members of `team` (LiteLLM's `members_with_roles` on a
    /// team): the missing join and the others leave, everything checked before any change.
    pub async fn set_team_members(
        &self,
        caller: &Caller,
        team: &str,
        users: &[String],
    ) -> AdminResult<()> {
        let team = self.find_team(team).await?;
        let joining = self.joining_members(caller, Some(&team.id), users).await?;
        let leaving: Vec<String> = self
            .team_members(caller, &team.id)
            .await?
            .into_iter()
            .filter(|u| !users.iter().any(|id| id.trim() == u.id))
            .map(|u| u.id)
            .collect();
        for id in &leaving {
            self.permitted_user(caller, Action::UpdateUser, id).await?;
        }
        self.join(caller, &team.id, &joining).await?;
        let clear = ["team".to_owned()];
        for id in &leaving {
            self.update_user(caller, id, LimitsInput::default(), None, &clear)
                .await?;
        }
        Ok(())
    }

    async fn join(
        &self,
        caller: &Caller,
        team_id: &str,
        users: &[String],
    ) -> AdminResult<Vec<UserView>> {
        let mut joined = Vec::with_capacity(users.len());
        for id in users {
            joined.push(
                self.update_user(caller, id, LimitsInput::default(), Some(team_id), &[])
                    .await?,
            );
        }
        Ok(joined)
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
