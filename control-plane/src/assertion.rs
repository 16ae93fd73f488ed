//! Service keys: whether a key may name the end user it calls for (Open WebUI's forwarded-user
//! headers), and the HS256 secret of the signed form, which is stored for the filters and
//! never shown back or logged.

use std::fmt;

use crate::domain::{Change, ValidationError};

/// Shortest secret accepted: HS256 with fewer bytes is guessable offline from one token.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest secret accepted (Open WebUI takes any string; this only bounds the snapshot).
pub const MAX_SECRET_BYTES: usize = 1024;

/// The HS256 secret a service key's end users are signed with. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct AssertionSecret(String);

impl AssertionSecret {
    /// The secret as an admin gives it (e.g. a file's content): surrounding whitespace, such
    /// as a file's last newline, is not part of it.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let secret = raw.trim();
        if secret.len() < MIN_SECRET_BYTES || secret.len() > MAX_SECRET_BYTES {
            return Err(ValidationError::AssertionSecret);
        }
        Ok(Self(secret.to_owned()))
    }

    /// Wraps a secret read back from the store (checked when it was set).
    pub fn stored(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AssertionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AssertionSecret(<redacted>)")
    }
}

/// Whether a key may name its end user, and in which form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UserAssertion {
    /// An ordinary key: forwarded-user headers are stripped and ignored.
    #[default]
    Off,
    /// Open WebUI's plain `X-OpenWebUI-User-*` headers name the end user.
    Headers,
    /// Only Open WebUI's signed user JWT, verified with this secret, names the end user.
    Signed(AssertionSecret),
}

impl UserAssertion {
    /// From a key's stored columns.
    pub fn from_columns(can_assert_user: bool, secret: Option<String>) -> Self {
        match (can_assert_user, secret) {
            (false, _) => Self::Off,
            (true, None) => Self::Headers,
            (true, Some(secret)) => Self::Signed(AssertionSecret::stored(secret)),
        }
    }

    /// A new key's: a secret implies the flag.
    pub fn new(can_assert_user: bool, secret: Option<AssertionSecret>) -> Self {
        match secret {
            Some(secret) => Self::Signed(secret),
            None if can_assert_user => Self::Headers,
            None => Self::Off,
        }
    }

    pub fn can_assert_user(&self) -> bool {
        !matches!(self, Self::Off)
    }

    pub fn secret(&self) -> Option<&AssertionSecret> {
        match self {
            Self::Signed(secret) => Some(secret),
            Self::Off | Self::Headers => None,
        }
    }
}

/// A change to a key's assertion: the flag and the secret, as `key update` gives them.
#[derive(Debug, Clone, Default)]
pub struct AssertionPatch {
    pub can_assert_user: Option<bool>,
    pub secret: Change<AssertionSecret>,
}

impl AssertionPatch {
    /// The key's assertion after this change. Turning the flag off drops the secret; setting
    /// a secret turns the flag on; clearing the secret leaves a flagged key on plain headers.
    pub fn apply(&self, current: &UserAssertion) -> Result<UserAssertion, ValidationError> {
        Ok(match (self.can_assert_user, &self.secret) {
            (Some(false), Change::Set(_)) => {
                return Err(ValidationError::SetAndCleared("assert_user_secret"))
            }
            (Some(false), _) => UserAssertion::Off,
            (_, Change::Set(secret)) => UserAssertion::Signed(secret.clone()),
            (Some(true), Change::Clear) => UserAssertion::Headers,
            (None, Change::Clear) => match current {
                UserAssertion::Off => UserAssertion::Off,
                UserAssertion::Headers | UserAssertion::Signed(_) => UserAssertion::Headers,
            },
            (Some(true), Change::Keep) => match current {
                UserAssertion::Off => UserAssertion::Headers,
                kept => kept.clone(),
            },
            (None, Change::Keep) => current.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn signed() -> UserAssertion {
        UserAssertion::Signed(AssertionSecret::parse(SECRET).unwrap())
    }

    #[test]
    fn secrets_are_trimmed_bounded_and_never_printed() {
        let secret = AssertionSecret::parse(&format!("  {SECRET}\n")).unwrap();
        assert_eq!(secret.expose(), SECRET);
        assert!(!format!("{:?}", UserAssertion::Signed(secret)).contains(SECRET));
        for bad in ["", "short", &"x".repeat(MAX_SECRET_BYTES + 1)] {
            assert_eq!(
                AssertionSecret::parse(bad),
                Err(ValidationError::AssertionSecret)
            );
        }
    }

    #[test]
    fn a_secret_implies_the_flag() {
        let secret = AssertionSecret::parse(SECRET).ok();
        assert_eq!(UserAssertion::new(false, secret), signed());
        assert_eq!(UserAssertion::new(true, None), UserAssertion::Headers);
        assert_eq!(UserAssertion::new(false, None), UserAssertion::Off);
    }

    #[test]
    fn updates_move_between_the_three_states() {
        let set = |flag| AssertionPatch {
            can_assert_user: flag,
            secret: Change::Set(AssertionSecret::parse(SECRET).unwrap()),
        };
        let flag = |flag, secret| AssertionPatch {
            can_assert_user: flag,
            secret,
        };
        let off = UserAssertion::Off;
        let headers = UserAssertion::Headers;
        assert_eq!(set(None).apply(&off), Ok(signed()));
        assert_eq!(set(Some(true)).apply(&headers), Ok(signed()));
        assert_eq!(
            set(Some(false)).apply(&headers),
            Err(ValidationError::SetAndCleared("assert_user_secret"))
        );
        assert_eq!(
            flag(Some(false), Change::Keep).apply(&signed()),
            Ok(off.clone())
        );
        assert_eq!(
            flag(None, Change::Clear).apply(&signed()),
            Ok(headers.clone())
        );
        assert_eq!(flag(None, Change::Clear).apply(&off), Ok(off.clone()));
        assert_eq!(
            flag(Some(true), Change::Keep).apply(&off),
            Ok(headers.clone())
        );
        assert_eq!(
            flag(Some(true), Change::Keep).apply(&signed()),
            Ok(signed())
        );
        assert_eq!(flag(None, Change::Keep).apply(&signed()), Ok(signed()));
    }
}
