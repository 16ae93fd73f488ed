//! Admin keys (`mgak-<public id>-<secret>`): per-person admin credentials with a role, minted
//! and revoked by admins. Like virtual keys, only the SHA-256 of the whole key is stored and
//! the secret is shown once; listings, logs and audit records name a key by its public id.

use std::fmt;

use crate::authz::Role;
use crate::clock::Timestamp;
use crate::keys;

pub const ADMIN_KEY_PREFIX: &str = "mgak-";
/// `last_used_at` is written at most this often per key, so a script's burst of calls does not
/// turn each into a write.
pub const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// An admin key as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKey {
    pub public_id: String,
    pub user_id: String,
    pub role: Role,
    /// Team ids the role applies to.
    pub teams: Vec<String>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

/// What the store needs to insert an admin key.
#[derive(Clone, PartialEq, Eq)]
pub struct NewAdminKey {
    pub public_id: String,
    pub sha256: [u8; 32],
    pub user_id: String,
    pub role: Role,
    pub teams: Vec<String>,
    pub created_at: Timestamp,
}

impl fmt::Debug for NewAdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAdminKey")
            .field("public_id", &self.public_id)
            .field("user_id", &self.user_id)
            .field("role", &self.role)
            .field("teams", &self.teams)
            .finish_non_exhaustive()
    }
}

/// An admin key request that cannot be honoured, found before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminKeyError {
    #[error("user_id is required: the person the admin key is for (e.g. alice@corp)")]
    MissingUser,
    #[error("unknown role {0:?}: use admin, team_admin, auditor or member")]
    UnknownRole(String),
    #[error("role {0} needs at least one team (--team)")]
    TeamsRequired(Role),
    #[error("role {0} applies to every team: give no team")]
    NoTeamsAllowed(Role),
    #[error("give the admin key's public id, not the whole key")]
    WholeKeyGiven,
}

/// The public id of a presented token when it has the shape of an admin key.
pub fn public_id_of(token: &str) -> Option<&str> {
    keys::public_id_after(ADMIN_KEY_PREFIX, token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{MintedKey, MintedToken, PUBLIC_ID_LEN, SECRET_LEN};

    #[test]
    fn minted_admin_keys_have_the_documented_shape() {
        let minted = MintedToken::generate(ADMIN_KEY_PREFIX).unwrap();
        let whole = minted.secret.expose();
        assert!(whole.starts_with("mgak-"), "{whole}");
        assert_eq!(
            whole.len(),
            ADMIN_KEY_PREFIX.len() + PUBLIC_ID_LEN + 1 + SECRET_LEN
        );
        assert_eq!(public_id_of(whole), Some(minted.public_id.as_str()));
        assert_eq!(minted.sha256, keys::hash_key(whole));
        assert!(!format!("{minted:?}").contains(whole));
    }

    #[test]
    fn virtual_keys_and_data_plane_tokens_are_not_admin_keys() {
        let key = MintedKey::generate().unwrap();
        assert_eq!(public_id_of(key.secret.expose()), None);
        let token = MintedToken::generate("mgdp-").unwrap();
        assert_eq!(public_id_of(token.secret.expose()), None);
    }
}
