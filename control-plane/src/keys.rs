//! Virtual keys: `sk-mg-<public id>-<secret>`.
//!
//! The public id (12 × `[a-z0-9]`) names the key in listings, logs and audit records; the
//! secret (43 × base62, 256 bits) is shown once. Only the SHA-256 of the whole key string is
//! stored, which is also what the filter computes from the presented token.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::clock::{parse_duration, DurationError, Timestamp};

pub const KEY_PREFIX: &str = "sk-mg-";
pub const PUBLIC_ID_LEN: usize = 12;
/// 43 base62 characters carry 43 × log2(62) ≈ 256.03 bits.
pub const SECRET_LEN: usize = 43;

const BASE36: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const BASE62: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomnessError(getrandom::Error);

/// A whole key string. Its `Debug` never shows the secret, so it cannot leak through `{:?}`
/// in a log line or an error.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret(String);

impl KeySecret {
    /// Wraps a secret an admin typed (a service key's assertion secret), so it is kept out
    /// of `Debug` output like the ones drawn here.
    pub(crate) fn new(whole: String) -> Self {
        Self(whole)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(<redacted>)")
    }
}

/// A freshly minted key: everything the store needs plus the secret to show once.
#[derive(Debug, Clone)]
pub struct MintedKey {
    pub public_id: String,
    pub secret: KeySecret,
    pub sha256: [u8; 32],
    pub last4: String,
}

impl MintedKey {
    pub fn generate() -> Result<Self, RandomnessError> {
        Self::with_public_id(random_string(BASE36, PUBLIC_ID_LEN)?)
    }

    /// A new secret for an existing key: the key keeps its public id (and so its spend,
    /// audit trail and references), only the secret changes.
    pub fn with_public_id(public_id: String) -> Result<Self, RandomnessError> {
        let secret = random_string(BASE62, SECRET_LEN)?;
        let whole = format!("{KEY_PREFIX}{public_id}-{secret}");
        Ok(Self {
            sha256: hash_key(&whole),
            last4: last4(&whole),
            public_id,
            secret: KeySecret(whole),
        })
    }
}

/// A `<prefix><public id>-<secret>` credential just drawn (data-plane tokens, admin keys):
/// its public id, the whole string to show once, and the SHA-256 that is stored.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub public_id: String,
    pub secret: KeySecret,
    pub sha256: [u8; 32],
}

impl MintedToken {
    pub fn generate(prefix: &str) -> Result<Self, RandomnessError> {
        let public_id = random_id(PUBLIC_ID_LEN)?;
        let whole = format!("{prefix}{public_id}-{}", random_secret()?);
        Ok(Self {
            sha256: hash_key(&whole),
            public_id,
            secret: KeySecret(whole),
        })
    }
}

/// SHA-256 of the whole key string as the client sends it.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn last4(key: &str) -> String {
    let start = key.len().saturating_sub(4);
    key.get(start..).unwrap_or_default().to_owned()
}

/// `len` characters drawn uniformly from `alphabet` using OS randomness.
///
/// Rejection sampling (dropping bytes at or above the largest multiple of the alphabet size)
/// keeps every character equally likely; a plain modulo would favour the first characters.
fn random_string(alphabet: &[u8], len: usize) -> Result<String, RandomnessError> {
    let n = alphabet.len();
    debug_assert!((1..=256).contains(&n));
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(RandomnessError)?;
        for &b in &buf {
            if usize::from(b) < limit {
                out.push(char::from(alphabet[usize::from(b) % n]));
                if out.len() == len {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// A random base62 string of [`SECRET_LEN`] characters (256 bits), for other secrets such as the
/// master key.
pub fn random_secret() -> Result<String, RandomnessError> {
    random_string(BASE62, SECRET_LEN)
}

/// A random `[a-z0-9]` identifier of `len` characters, for ids that are not secrets.
pub fn random_id(len: usize) -> Result<String, RandomnessError> {
    random_string(BASE36, len)
}

pub fn is_public_id(s: &str) -> bool {
    s.len() == PUBLIC_ID_LEN && s.bytes().all(|b| BASE36.contains(&b))
}

/// Splits a presented token into its public id when it has the shape of a virtual key.
/// The shape says nothing about validity: only the hash lookup does.
pub fn public_id_of(token: &str) -> Option<&str> {
    public_id_after(KEY_PREFIX, token)
}

/// The public id of a `<prefix><public id>-<secret>` token (virtual keys, data-plane tokens),
/// when it has that shape.
pub fn public_id_after<'t>(prefix: &str, token: &'t str) -> Option<&'t str> {
    let rest = token.strip_prefix(prefix)?;
    let (id, secret) = rest.split_once('-')?;
    (is_public_id(id) && secret.len() == SECRET_LEN && secret.bytes().all(|b| BASE62.contains(&b)))
        .then_some(id)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryError {
    #[error("invalid expiry {input:?}: {source}")]
    Invalid {
        input: String,
        source: DurationError,
    },
    #[error("expiry {0} is in the past")]
    InThePast(String),
}

/// Parses `--expires`: empty means never; a duration (`30d`) counts from `now`; anything else
/// must be an RFC 3339 timestamp in the future.
pub fn parse_expiry(input: &str, now: Timestamp) -> Result<Option<Timestamp>, ExpiryError> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(None);
    }
    let invalid = |source| ExpiryError::Invalid {
        input: input.to_owned(),
        source,
    };
    let looks_like_duration = input
        .bytes()
        .last()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && !input.contains(':');
    let at = if looks_like_duration {
        let d = parse_duration(input).map_err(invalid)?;
        now.checked_add(d).ok_or(invalid(DurationError::TooLarge))?
    } else {
        Timestamp::parse_rfc3339(input).map_err(invalid)?
    };
    if at <= now {
        return Err(ExpiryError::InThePast(at.to_rfc3339()));
    }
    Ok(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_have_the_contract_format() {
        let k = MintedKey::generate().unwrap();
        let s = k.secret.expose();
        assert_eq!(s.len(), KEY_PREFIX.len() + PUBLIC_ID_LEN + 1 + SECRET_LEN);
        assert!(s.starts_with("sk-mg-"));
        assert_eq!(public_id_of(s), Some(k.public_id.as_str()));
        assert!(!k.public_id.contains('-'));
        assert_eq!(k.last4, s[s.len() - 4..]);
        assert_eq!(k.sha256, hash_key(s));
        assert!(!format!("{k:?}").contains(s), "Debug must not show the key");
    }

    #[test]
    fn minted_keys_differ() {
        let a = MintedKey::generate().unwrap();
        let b = MintedKey::generate().unwrap();
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.public_id, b.public_id);
    }

    #[test]
    fn random_strings_use_the_whole_alphabet() {
        // 62 symbols over 20k draws: every one shows up unless sampling is broken.
        let s = random_string(BASE62, 20_000).unwrap();
        for &c in BASE62 {
            assert!(s.as_bytes().contains(&c), "{} never drawn", char::from(c));
        }
        assert!(s.bytes().all(|b| BASE62.contains(&b)));
    }

    #[test]
    fn hash_is_sha256_of_the_whole_string() {
        assert_eq!(
            hex::encode(hash_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn public_id_shape() {
        assert!(is_public_id("abc123def456"));
        assert!(!is_public_id("abc123def45"));
        assert!(!is_public_id("ABC123DEF456"));
        assert!(!is_public_id("abc123-ef456"));
        assert_eq!(public_id_of("sk-mg-abc123def456-short"), None);
        assert_eq!(public_id_of("Bearer x"), None);
    }

    #[test]
    fn expiry_durations_and_timestamps() {
        let now = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(parse_expiry("", now), Ok(None));
        assert_eq!(
            parse_expiry("30d", now).unwrap().unwrap().to_rfc3339(),
            "2026-01-31T00:00:00.000Z"
        );
        assert_eq!(
            parse_expiry("12h", now).unwrap().unwrap().to_rfc3339(),
            "2026-01-01T12:00:00.000Z"
        );
        assert_eq!(
            parse_expiry("2027-06-01T10:00:00+02:00", now)
                .unwrap()
                .unwrap()
                .to_rfc3339(),
            "2027-06-01T08:00:00.000Z"
        );
        assert!(matches!(
            parse_expiry("2025-01-01T00:00:00Z", now),
            Err(ExpiryError::InThePast(_))
        ));
        for bad in ["soon", "30x", "0d", "2026-13-01T00:00:00Z", "tomorrow"] {
            assert!(
                matches!(parse_expiry(bad, now), Err(ExpiryError::Invalid { .. })),
                "{bad}"
            );
        }
    }
}
