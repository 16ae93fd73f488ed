//! Users (any stable id: emails, IdP subjects, …) and their limits, each asked of [`authz`] with the user.

use super::access::{self, Target};
use super::{team_ref, text, UserView};
use super::{Admin, AdminResult};
use crate::authz::{self, Action, Caller, Object};
use crate::clock::Timestamp;
use crate::domain::{self, Change, ScopeKind, User, UserPatch};
use crate::limits::LimitsInput;
use crate::store::{Store, StoreError};

impl<S: Store> Admin<S> {
    pub async fn create_user(
        &self,
        caller: &Caller,
        user_id: &str,
        limits: LimitsInput,
    ) -> AdminResult<UserView> {
        let now = Timestamp::now();
        let user = User {
            id: domain::parse_user_record_id(user_id)?,
            team_id: None,
            limits: limits.to_limits(now)?,
            created_at: now,
        };
        let target = Target::new("user", &user.id);
        self.permit(caller, Action::CreateUser, Object::User(&user.id), target)
            .await?;
        self.store.create_user(&user).await?;
        tracing::info!(user_id = %user.id, "user created");
        let changes = access::changes(&[], &access::user_fields(&user));
        self.record_write(caller, Action::CreateUser, target, changes)
            .await;
        self.user_view_of(user).await
    }

    pub async fn update_user(
        &self,
        caller: &Caller,
        user_id: &str,
        limits: LimitsInput,
        team: Option<&str>,
        clear: &[String],
    ) -> AdminResult<UserView> {
        let before = self
            .permitted_user(caller, Action::UpdateUser, user_id)
            .await?;
        let (limits_clear, own) = domain::parse_clear_list(
            clear.iter().map(String::as_str),
            &["team"],
            UserPatch::CLEARABLE,
        )?;
        let team = text(team).map(team_ref).transpose()?.map(str::to_owned);
        let patch = UserPatch {
            limits,
            limits_clear,
            team: Change::set_or_clear(team, own.contains(&"team"), "team")?,
        };
        let user = self
            .store
            .update_user(&before.id, &patch, Timestamp::now())
            .await?;
        tracing::info!(user_id = %user.id, "user updated");
        let changes = access::changes(&access::user_fields(&before), &access::user_fields(&user));
        self.record_write(
            caller,
            Action::UpdateUser,
            Target::new("user", &user.id),
            changes,
        )
        .await;
        self.user_view_of(user).await
    }

    pub(super) async fn permitted_user(
        &self,
        caller: &Caller,
        action: Action,
        user_id: &str,
    ) -> AdminResult<User> {
        let user_id = user_id.trim();
        let user = self
            .store
            .find_user(user_id)
            .await?
            .ok_or_else(|| StoreError::UserNotFound(user_id.to_owned()))?;
        self.permit(
            caller,
            action,
            Object::User(&user.id),
            Target::new("user", &user.id),
        )
        .await?;
        Ok(user)
    }

    pub async fn get_user(&self, caller: &Caller, user_id: &str) -> AdminResult<UserView> {
        let user = self
            .permitted_user(caller, Action::ReadUser, user_id)
            .await?;
        self.user_view_of(user).await
    }

    /// The users the caller may read.
    pub async fn list_users(&self, caller: &Caller) -> AdminResult<Vec<UserView>> {
        let users = self.store.list_users().await?;
        let mut budget_ids = self.budget_ids(ScopeKind::User).await?;
        Ok(users
            .into_iter()
            .filter(|u| authz::authorize(caller, Action::ReadUser, &Object::User(&u.id)).is_ok())
            .map(|u| {
                let budget_id = budget_ids.remove(&u.id);
                self.user_view(u, budget_id)
            })
            .collect())
    }

    /// Deletes users with the keys they own, all or nothing; returns the users' ids and how
    /// many keys went.
    pub async fn delete_users(
        &self,
        caller: &Caller,
        users: &[String],
    ) -> AdminResult<(Vec<String>, u64)> {
        let mut found = Vec::with_capacity(users.len());
        for user in users {
            let user = domain::parse_user_record_id(user)?;
            found.push(
                self.permitted_user(caller, Action::DeleteUser, &user)
                    .await?,
            );
        }
        let ids: Vec<String> = found.iter().map(|u| u.id.clone()).collect();
        let (_, keys) = self.store.delete_users(&ids).await?;
        tracing::info!(users = ?ids, keys, "users deleted");
        for user in &found {
            let changes = access::changes(&access::user_fields(user), &[]);
            self.record_write(
                caller,
                Action::DeleteUser,
                Target::new("user", &user.id),
                changes,
            )
            .await;
        }
        Ok((ids, keys))
    }
}
