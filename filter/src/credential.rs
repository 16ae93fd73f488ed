//! The client's credential: taken from `Authorization: Bearer <key>` or `x-api-key`. A
//! virtual key is hashed at once and from then on known only by its SHA-256 (the raw key
//! never leaves this module); a token shaped like a JWT goes to `identity` for verification,
//! wrapped so that no `{:?}` can print it.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::identity::jwt::looks_like_jwt;

/// SHA-256 of the whole presented key string, the form the snapshot indexes keys by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// What logs and audit records carry for a key the snapshot does not know:
    /// `unknown:` and the first 8 hex digits of its hash.
    pub fn fingerprint(&self) -> String {
        format!("unknown:{}", hex::encode(&self.0[..4]))
    }
}

impl From<[u8; 32]> for KeyDigest {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

// Only the fingerprint, so a stray `{:?}` can never print more than logs may carry.
impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

/// A bearer JWT as sent; its `Debug` shows only its length.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BearerJwt<'a>(&'a str);

impl<'a> BearerJwt<'a> {
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Debug for BearerJwt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "jwt({} bytes)", self.0.len())
    }
}

/// What the client presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    Key(KeyDigest),
    Jwt(BearerJwt<'a>),
}

/// Why no usable credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("no API key was provided")]
    Missing,
    #[error("malformed credential: {0}")]
    Malformed(Malformed),
}

/// How a credential header was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the Authorization header must be 'Bearer <api key>'")]
    NotBearer,
    #[error("the API key must be a single token of printable ASCII characters")]
    BadToken,
    #[error("Authorization and x-api-key carry different keys")]
    Conflicting,
}

/// Extracts the credential from the raw values of `authorization` and `x-api-key` (absent
/// or empty headers count as not sent): a JWT when it has a JWT's shape (three base64url
/// segments; virtual keys have no dots), else a virtual key, hashed.
pub fn extract<'a>(
    authorization: Option<&'a [u8]>,
    api_key: Option<&'a [u8]>,
) -> Result<Credential<'a>, CredentialError> {
    let token = presented(authorization, api_key)?;
    Ok(if looks_like_jwt(token) {
        Credential::Jwt(BearerJwt(token))
    } else {
        Credential::Key(KeyDigest::of(token))
    })
}

fn presented<'a>(
    authorization: Option<&'a [u8]>,
    api_key: Option<&'a [u8]>,
) -> Result<&'a str, CredentialError> {
    let bearer = authorization
        .map(<[u8]>::trim_ascii)
        .filter(|v| !v.is_empty())
        .map(bearer_token);
    let header_key = api_key
        .map(<[u8]>::trim_ascii)
        .filter(|v| !v.is_empty())
        .map(plain_token);
    match (bearer, header_key) {
        (None, None) => Err(CredentialError::Missing),
        (Some(token), None) | (None, Some(token)) => token,
        (Some(bearer), Some(header_key)) => {
            let (bearer, header_key) = (bearer?, header_key?);
            // One credential, sent twice by an SDK that sets both, is fine; two different ones
            // are ambiguous about who is calling.
            if bearer == header_key {
                Ok(bearer)
            } else {
                Err(CredentialError::Malformed(Malformed::Conflicting))
            }
        }
    }
}

fn bearer_token(value: &[u8]) -> Result<&str, CredentialError> {
    let split = value.iter().position(|b| *b == b' ' || *b == b'\t');
    let (scheme, rest) = match split {
        Some(at) => (&value[..at], value[at..].trim_ascii()),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(CredentialError::Malformed(Malformed::NotBearer));
    }
    // `Bearer ` with nothing after it is what SDKs send for an unset key.
    if rest.is_empty() {
        return Err(CredentialError::Missing);
    }
    plain_token(rest)
}

fn plain_token(value: &[u8]) -> Result<&str, CredentialError> {
    if !value.iter().all(u8::is_ascii_graphic) {
        return Err(CredentialError::Malformed(Malformed::BadToken));
    }
    std::str::from_utf8(value).map_err(|_| CredentialError::Malformed(Malformed::BadToken))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-mg-abcdefghij12-0123456789abcdefghijABCDEFGHIJklmnopqrstuvwxyzA";

    fn digest() -> Credential<'static> {
        Credential::Key(KeyDigest::of(KEY))
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_whitespace_tolerant() {
        for header in [
            format!("Bearer {KEY}"),
            format!("bearer {KEY}"),
            format!("BEARER\t{KEY}"),
            format!("  Bearer   {KEY}  "),
        ] {
            assert_eq!(
                extract(Some(header.as_bytes()), None),
                Ok(digest()),
                "{header:?}"
            );
        }
    }

    #[test]
    fn x_api_key_works_alone_and_agreeing_with_bearer() {
        assert_eq!(extract(None, Some(KEY.as_bytes())), Ok(digest()));
        let bearer = format!("Bearer {KEY}");
        assert_eq!(
            extract(Some(bearer.as_bytes()), Some(KEY.as_bytes())),
            Ok(digest())
        );
    }

    #[test]
    fn missing_when_nothing_usable_was_sent() {
        for (auth, api_key) in [
            (None, None),
            (Some(&b""[..]), None),
            (Some(&b"   "[..]), Some(&b""[..])),
            (Some(&b"Bearer"[..]), None),
            (Some(&b"Bearer   "[..]), None),
        ] {
            assert_eq!(
                extract(auth, api_key),
                Err(CredentialError::Missing),
                "{auth:?}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_told_apart() {
        let cases: &[(&[u8], Malformed)] = &[
            (KEY.as_bytes(), Malformed::NotBearer),
            (b"Basic dXNlcjpwYXNz", Malformed::NotBearer),
            (b"Bearer a b", Malformed::BadToken),
            (b"Bearer sk-mg-\xc3\xa9", Malformed::BadToken),
            (b"Bearer sk-mg-\x01", Malformed::BadToken),
        ];
        for (header, reason) in cases {
            assert_eq!(
                extract(Some(header), None),
                Err(CredentialError::Malformed(*reason)),
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }
        assert_eq!(
            extract(Some(b"Bearer one"), Some(b"two")),
            Err(CredentialError::Malformed(Malformed::Conflicting))
        );
        assert_eq!(
            extract(None, Some(b"a key")),
            Err(CredentialError::Malformed(Malformed::BadToken))
        );
    }

    #[test]
    fn jwt_shaped_tokens_are_told_from_keys_and_never_printed() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        let header = format!("Bearer {jwt}");
        let extracted = extract(Some(header.as_bytes()), None).unwrap();
        assert_eq!(extracted, Credential::Jwt(BearerJwt(jwt)));
        assert_eq!(format!("{extracted:?}"), "Jwt(jwt(41 bytes))");
        // `alg: none` has an empty signature segment: still a JWT, refused later by name.
        let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.";
        assert!(matches!(
            extract(Some(format!("Bearer {unsigned}").as_bytes()), None),
            Ok(Credential::Jwt(_))
        ));
        for not_jwt in ["a.b", "a.b.c.d", ".b.c", "a..c", "a.b+.c", KEY] {
            assert!(
                matches!(
                    extract(None, Some(not_jwt.as_bytes())),
                    Ok(Credential::Key(_))
                ),
                "{not_jwt}"
            );
        }
    }

    #[test]
    fn digest_is_sha256_of_the_whole_key_and_debug_shows_only_the_fingerprint() {
        // sha256("abc")
        let abc = KeyDigest::of("abc");
        assert_eq!(
            hex::encode(abc.as_bytes()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(abc.fingerprint(), "unknown:ba7816bf");
        assert_eq!(format!("{abc:?}"), "unknown:ba7816bf");
        assert!(!format!("{:?}", extract(Some(b"Bearer abc"), None)).contains("abc\""));
    }
}
