//! What a JWKS document (RFC 7517) must look like before it reaches a snapshot: a `keys`
//! array of public keys, each with a `kty`. Private or symmetric key material is refused so
//! it is never stored nor shipped to every Envoy.

use serde_json::{Map, Value};

/// Larger than any real IdP's JWKS; also the cap on a fetched response.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// A JWKS with more keys than this is not a key rotation but a mistake or an attack.
pub const MAX_KEYS: usize = 200;
const MAX_KID_LEN: usize = 256;

/// Members that only private keys have (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JwksError {
    #[error("larger than 1 MiB")]
    TooLarge,
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JWKS: expected a JSON object with a \"keys\" array")]
    NoKeysArray,
    #[error("it has no keys")]
    Empty,
    #[error("more than {MAX_KEYS} keys")]
    TooManyKeys,
    #[error("key {0} is not a JSON object")]
    KeyNotObject(usize),
    #[error("key {0} has no \"kty\"")]
    NoKeyType(usize),
    #[error(
        "key {index} ({kid:?}) contains private key material ({member:?}); upload public keys only"
    )]
    PrivateKey {
        index: usize,
        kid: String,
        member: &'static str,
    },
    #[error("key {index} ({kid:?}) is a symmetric key (kty \"oct\"); IdP tokens are verified with public keys only")]
    SymmetricKey { index: usize, kid: String },
    #[error("key {0} has an invalid \"kid\" (expected a string of at most 256 characters)")]
    Kid(usize),
}

/// A validated JWKS: its normalised JSON (so a re-serialised but equal document does not look
/// like a change) and its keys' ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwks {
    pub json: String,
    pub kids: Vec<String>,
}

impl Jwks {
    pub fn parse(text: &str) -> Result<Self, JwksError> {
        if text.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| JwksError::NotJson(e.to_string()))?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysArray)?;
        if keys.is_empty() {
            return Err(JwksError::Empty);
        }
        if keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let kids = keys
            .iter()
            .enumerate()
            .map(|(index, key)| check_key(index, key))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            json: value.to_string(),
            kids,
        })
    }
}

/// The key's `kid` ("" without one) once it is known to be a public asymmetric key.
fn check_key(index: usize, key: &Value) -> Result<String, JwksError> {
    let key: &Map<String, Value> = key.as_object().ok_or(JwksError::KeyNotObject(index))?;
    let kid = match key.get("kid") {
        None => String::new(),
        Some(Value::String(kid)) if kid.len() <= MAX_KID_LEN => kid.clone(),
        Some(_) => return Err(JwksError::Kid(index)),
    };
    let kty = key
        .get("kty")
        .and_then(Value::as_str)
        .ok_or(JwksError::NoKeyType(index))?;
    if kty == "oct" || key.contains_key("k") {
        return Err(JwksError::SymmetricKey { index, kid });
    }
    if let Some(member) = PRIVATE_MEMBERS.into_iter().find(|m| key.contains_key(*m)) {
        return Err(JwksError::PrivateKey { index, kid, member });
    }
    Ok(kid)
}
