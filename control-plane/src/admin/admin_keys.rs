//! Minting, listing and revoking admin keys: admins only, every write in the audit chain.

use super::access::{self, Target};
use super::{Admin, AdminResult, MINT_ATTEMPTS};
use crate::admin_key::{AdminKey, AdminKeyError, NewAdminKey, ADMIN_KEY_PREFIX};
use crate::authz::{Action, Caller, Object, Role};
use crate::clock::Timestamp;
use crate::domain;
use crate::keys::{KeySecret, MintedToken};
use crate::store::{Store, StoreError};

/// A new admin key as an admin typed it.
#[derive(Debug, Clone, Default)]
pub struct AdminKeyInput {
    pub user_id: String,
    pub role: String,
    /// Team ids or aliases.
    pub teams: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct CreatedAdminKey {
    pub key: AdminKey,
    /// The whole key, shown once.
    pub secret: KeySecret,
}

fn fields(k: &AdminKey) -> Vec<(&'static str, String)> {
    vec![
        ("user_id", k.user_id.clone()),
        ("role", k.role.as_str().to_owned()),
        ("teams", k.teams.join(",")),
        (
            "revoked_at",
            k.revoked_at.map(Timestamp::to_rfc3339).unwrap_or_default(),
        ),
    ]
}

impl<S: Store> Admin<S> {
    pub async fn create_admin_key(
        &self,
        caller: &Caller,
        input: AdminKeyInput,
    ) -> AdminResult<CreatedAdminKey> {
        self.permit(
            caller,
            Action::ManageAdminKeys,
            Object::Global,
            Target::NONE,
        )
        .await?;
        let user_id = domain::parse_user_id(&input.user_id)?.ok_or(AdminKeyError::MissingUser)?;
        let role = Role::parse(&input.role)
            .ok_or_else(|| AdminKeyError::UnknownRole(input.role.clone()))?;
        let mut teams = Vec::with_capacity(input.teams.len());
        for team in &input.teams {
            let id = self.find_team(team).await?.id;
            if !teams.contains(&id) {
                teams.push(id);
            }
        }
        match (role.has_teams(), teams.is_empty()) {
            (true, true) => return Err(AdminKeyError::TeamsRequired(role).into()),
            (false, false) => return Err(AdminKeyError::NoTeamsAllowed(role).into()),
            _ => {}
        }
        let mut attempts = 0;
        let key = loop {
            attempts += 1;
            let minted = MintedToken::generate(ADMIN_KEY_PREFIX)?;
            let new = NewAdminKey {
                public_id: minted.public_id,
                sha256: minted.sha256,
                user_id: user_id.clone(),
                role,
                teams: teams.clone(),
                created_at: Timestamp::now(),
            };
            match self.store.create_admin_key(&new).await {
                Ok(key) => {
                    break CreatedAdminKey {
                        key,
                        secret: minted.secret,
                    }
                }
                Err(StoreError::KeyIdTaken) if attempts < MINT_ATTEMPTS => {}
                Err(e) => return Err(e.into()),
            }
        };
        tracing::info!(public_id = %key.key.public_id, user = %key.key.user_id, role = %key.key.role, "admin key created");
        self.record_write(
            caller,
            Action::ManageAdminKeys,
            Target::new("admin_key", &key.key.public_id),
            access::changes(&[], &fields(&key.key)),
        )
        .await;
        Ok(key)
    }

    /// Keys ordered by creation; revoked ones only with `include_revoked`.
    pub async fn list_admin_keys(
        &self,
        caller: &Caller,
        include_revoked: bool,
    ) -> AdminResult<Vec<AdminKey>> {
        self.permit(
            caller,
            Action::ManageAdminKeys,
            Object::Global,
            Target::NONE,
        )
        .await?;
        Ok(self.store.list_admin_keys(include_revoked).await?)
    }

    /// Revokes an admin key by public id: its holder is refused from the next call.
    pub async fn revoke_admin_key(
        &self,
        caller: &Caller,
        public_id: &str,
    ) -> AdminResult<AdminKey> {
        let public_id = public_id.trim();
        let target = Target::new("admin_key", public_id);
        self.permit(caller, Action::ManageAdminKeys, Object::Global, target)
            .await?;
        if public_id.starts_with(ADMIN_KEY_PREFIX) {
            // A whole key on a command line ends up in shell history and process lists.
            return Err(AdminKeyError::WholeKeyGiven.into());
        }
        let listed = self.store.list_admin_keys(true).await?;
        let before = listed.iter().find(|k| k.public_id == public_id);
        let revoked = self
            .store
            .revoke_admin_key(public_id, Timestamp::now())
            .await?;
        tracing::info!(public_id = %revoked.public_id, "admin key revoked");
        let before = before.map(fields).unwrap_or_default();
        self.record_write(
            caller,
            Action::ManageAdminKeys,
            target,
            access::changes(&before, &fields(&revoked)),
        )
        .await;
        Ok(revoked)
    }
}
