//! Data-plane credentials: the tokens (`mgdp-<public id>-<secret>`) Envoys present to
//! `PolicyService`, how admins mint, list and revoke them, and the one check every policy call
//! goes through.
//!
//! Like virtual keys, only the SHA-256 of the whole token is stored and the secret is shown
//! once. Every call looks the token up in the store (an indexed read per poll): revocation takes
//! effect on the next call on every replica, with no cache to invalidate.

use std::fmt;

use crate::clock::Timestamp;
use crate::keys::{self, KeySecret, MintedToken, RandomnessError};
use crate::store::{DataPlaneStore, StoreError};

pub const TOKEN_PREFIX: &str = "mgdp-";
pub const MAX_NAME_LEN: usize = 64;
/// `last_used_at` is written at most this often per token, so polling every second does not
/// turn every poll into a write.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;
/// Drawing a taken public id twice in a row (62 bits each) means something else is wrong.
const MINT_ATTEMPTS: usize = 3;

/// A data-plane token as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPlaneToken {
    pub name: String,
    pub public_id: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

/// What the store needs to insert a token.
#[derive(Clone, PartialEq, Eq)]
pub struct NewDataPlaneToken {
    pub name: String,
    pub public_id: String,
    pub sha256: [u8; 32],
    pub created_at: Timestamp,
}

impl fmt::Debug for NewDataPlaneToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDataPlaneToken")
            .field("name", &self.name)
            .field("public_id", &self.public_id)
            .finish_non_exhaustive()
    }
}

/// A token just minted: the stored row and the whole token to show once.
#[derive(Debug, Clone)]
pub struct CreatedDataPlaneToken {
    pub token: DataPlaneToken,
    pub secret: KeySecret,
}

/// The data plane a policy call came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedDataPlane {
    pub name: String,
    pub public_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error(
        "invalid data-plane token name {0:?}: use 1 to 64 characters of letters, digits, \
         '.', '_' and '-'"
    )]
    InvalidName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot draw a token: {0}")]
    Random(#[from] RandomnessError),
}

/// Why a policy call was refused. The messages go back to the caller and never contain the
/// presented token.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneRefusal {
    #[error(
        "missing data-plane credential: send 'authorization: Bearer mgdp-…' (create a token \
         with `modelgate dataplane token create --name NAME`)"
    )]
    Missing,
    #[error(
        "malformed data-plane credential: expected 'authorization: Bearer mgdp-<public id>-<secret>' \
         (admin and virtual keys are not data-plane credentials)"
    )]
    Malformed,
    #[error("unknown data-plane token")]
    Unknown,
    #[error("data-plane token {0} is revoked")]
    Revoked(String),
    /// The store could not answer; the caller retries.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a token name before anything is stored.
pub fn validate_name(name: &str) -> Result<&str, DataPlaneError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(DataPlaneError::InvalidName(
            name.chars().take(MAX_NAME_LEN + 1).collect(),
        ))
    }
}

/// The public id of a presented token when it has the shape of a data-plane token.
pub fn public_id_of(token: &str) -> Option<&str> {
    keys::public_id_after(TOKEN_PREFIX, token)
}

/// Draws a token: public id and secret from OS randomness.
fn mint(name: &str, now: Timestamp) -> Result<(NewDataPlaneToken, KeySecret), RandomnessError> {
    let minted = MintedToken::generate(TOKEN_PREFIX)?;
    let new = NewDataPlaneToken {
        name: name.to_owned(),
        public_id: minted.public_id,
        sha256: minted.sha256,
        created_at: now,
    };
    Ok((new, minted.secret))
}

/// Data-plane tokens over a store: what the admin API and `PolicyService` call.
#[derive(Debug, Clone)]
pub struct DataPlanes<S> {
    store: S,
}

impl<S: DataPlaneStore> DataPlanes<S> {
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// Mints a token named `name` (unique among live tokens).
    pub async fn create(&self, name: &str) -> Result<CreatedDataPlaneToken, DataPlaneError> {
        let name = validate_name(name)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (new, secret) = mint(name, Timestamp::now())?;
            match self.store.create_dataplane_token(&new).await {
                Ok(token) => {
                    tracing::info!(name = %token.name, public_id = %token.public_id, "data-plane token created");
                    return Ok(CreatedDataPlaneToken { token, secret });
                }
                Err(StoreError::KeyIdTaken) if attempts < MINT_ATTEMPTS => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Tokens ordered by creation; revoked ones only with `include_revoked`.
    pub async fn list(&self, include_revoked: bool) -> Result<Vec<DataPlaneToken>, DataPlaneError> {
        Ok(self.store.list_dataplane_tokens(include_revoked).await?)
    }

    /// Revokes the live token named `token`, or the token with that public id.
    pub async fn revoke(&self, token: &str) -> Result<DataPlaneToken, DataPlaneError> {
        let token = token.trim();
        if token.starts_with(TOKEN_PREFIX) {
            // A whole token on a command line ends up in shell history and process lists.
            return Err(DataPlaneError::InvalidName(
                "a whole token; give its name or public id".to_owned(),
            ));
        }
        let revoked = self
            .store
            .revoke_dataplane_token(token, Timestamp::now())
            .await?;
        tracing::info!(name = %revoked.name, public_id = %revoked.public_id, "data-plane token revoked");
        Ok(revoked)
    }

    /// The one check of every `PolicyService` call: `authorization` is the header's value.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<AuthenticatedDataPlane, DataPlaneRefusal> {
        let value = authorization.ok_or(DataPlaneRefusal::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(DataPlaneRefusal::Malformed)?;
        let public_id = public_id_of(token).ok_or(DataPlaneRefusal::Malformed)?;
        let found = self
            .store
            .find_dataplane_token_by_hash(&keys::hash_key(token))
            .await?;
        let Some(found) = found else {
            return Err(DataPlaneRefusal::Unknown);
        };
        if found.revoked_at.is_some() {
            return Err(DataPlaneRefusal::Revoked(found.public_id));
        }
        let now = Timestamp::now();
        let stale = found.last_used_at.is_none_or(|at| {
            now.as_millis().saturating_sub(at.as_millis()) >= LAST_USED_RESOLUTION_MS
        });
        if stale {
            // Bookkeeping only: a failed write does not refuse a valid data plane.
            if let Err(e) = self.store.touch_dataplane_token(public_id, now).await {
                tracing::warn!(public_id, error = %e, "cannot record a data-plane token's last use");
            }
        }
        Ok(AuthenticatedDataPlane {
            name: found.name,
            public_id: found.public_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{PUBLIC_ID_LEN, SECRET_LEN};

    #[test]
    fn names_are_short_plain_words() {
        for good in [
            "edge-1",
            "a",
            "gw_eu.west-2",
            "n".repeat(MAX_NAME_LEN).as_str(),
        ] {
            assert_eq!(validate_name(good).unwrap(), good);
        }
        assert_eq!(validate_name("  edge-1 ").unwrap(), "edge-1");
        for bad in [
            "",
            "   ",
            "edge 1",
            "edge/1",
            "édge",
            "a\nb",
            "n".repeat(MAX_NAME_LEN + 1).as_str(),
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(
                err.to_string().contains("1 to 64 characters"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn minted_tokens_have_the_documented_shape() {
        let (new, secret) = mint("edge-1", Timestamp::from_millis(5)).unwrap();
        let whole = secret.expose();
        assert!(whole.starts_with("mgdp-"), "{whole}");
        assert_eq!(
            whole.len(),
            TOKEN_PREFIX.len() + PUBLIC_ID_LEN + 1 + SECRET_LEN
        );
        assert_eq!(public_id_of(whole), Some(new.public_id.as_str()));
        assert_eq!(new.sha256, keys::hash_key(whole));
        assert!(!format!("{new:?}").contains(&whole[TOKEN_PREFIX.len() + PUBLIC_ID_LEN + 1..]));
        let (other, _) = mint("edge-1", Timestamp::from_millis(5)).unwrap();
        assert_ne!(other.public_id, new.public_id);
    }

    #[test]
    fn virtual_keys_and_other_strings_are_not_data_plane_tokens() {
        let key = keys::MintedKey::generate().unwrap();
        assert_eq!(public_id_of(key.secret.expose()), None);
        assert_eq!(public_id_of("mgdp-short-secret"), None);
        assert_eq!(public_id_of("Bearer mgdp-"), None);
    }
}
