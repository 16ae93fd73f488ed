//! Users (by email) and their limits, each asked of [`authz`] with the user.

use super::access::{self, Target};
use super::UserView;
use super::{Admin, AdminResult};
use crate::authz::{self, Action, Caller, Object};
use crate::clock::Timestamp;
use crate::domain::{self, User, UserPatch};
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
            id: domain::parse_email(user_id)?,
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
        Ok(self.user_view(user))
    }

    pub async fn update_user(
        &self,
        caller: &Caller,
        user_id: &str,
        limits: LimitsInput,
        clear: &[String],
    ) -> AdminResult<UserView> {
        let before = self
            .permitted_user(caller, Action::UpdateUser, user_id)
            .await?;
        let (limits_clear, _) =
            domain::parse_clear_list(clear.iter().map(String::as_str), &[], UserPatch::CLEARABLE)?;
        let patch = UserPatch {
            limits,
            limits_clear,
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
        Ok(self.user_view(user))
    }

    async fn permitted_user(
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
        Ok(self.user_view(user))
    }

    /// The users the caller may read.
    pub async fn list_users(&self, caller: &Caller) -> AdminResult<Vec<UserView>> {
        let users = self.store.list_users().await?;
        Ok(users
            .into_iter()
            .filter(|u| authz::authorize(caller, Action::ReadUser, &Object::User(&u.id)).is_ok())
            .map(|u| self.user_view(u))
            .collect())
    }
}
