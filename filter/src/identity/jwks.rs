//! An issuer's JWKS (RFC 7517 JSON from the snapshot) turned into ready verifiers, once per
//! change of the issuer: a request only picks a key by `kid` and algorithm.

use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, ES256PublicKey, ES384PublicKey,
    Ed25519PublicKey, EdDSAPublicKeyLike, NoCustomClaims, PS256PublicKey, RS256PublicKey,
    RS384PublicKey, RS512PublicKey, RSAPublicKeyLike, VerificationOptions,
};
use serde::Deserialize;
use serde_json::Value;

/// Keys kept per issuer: real IdPs publish a handful; this bounds what a broken or hostile
/// JWKS can make every worker hold.
pub const MAX_KEYS: usize = 256;

/// The signature algorithms accepted. Everything else (`none`, every `HS*`, which would turn
/// a public key into a shared secret) is refused before any key is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Es256,
    Es384,
    EdDsa,
}

impl Algorithm {
    /// The algorithm a JWT header names, if it is one of ours (exact, case-sensitive names).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithms a JWK of this type and curve can verify.
    fn for_key(kty: &str, crv: Option<&str>) -> &'static [Self] {
        match (kty, crv) {
            ("RSA", _) => &[Self::Rs256, Self::Rs384, Self::Rs512, Self::Ps256],
            ("EC", Some("P-256")) => &[Self::Es256],
            ("EC", Some("P-384")) => &[Self::Es384],
            ("OKP", Some("Ed25519")) => &[Self::EdDsa],
            _ => &[],
        }
    }
}

/// A public key ready to verify tokens of one algorithm.
enum Verifier {
    Rs256(RS256PublicKey),
    Rs384(RS384PublicKey),
    Rs512(RS512PublicKey),
    Ps256(PS256PublicKey),
    Es256(ES256PublicKey),
    Es384(ES384PublicKey),
    EdDsa(Ed25519PublicKey),
}

impl Verifier {
    fn from_jwk(algorithm: Algorithm, jwk: &str) -> Result<Self, jwt_simple::Error> {
        Ok(match algorithm {
            Algorithm::Rs256 => Self::Rs256(RS256PublicKey::from_jwk(jwk)?),
            Algorithm::Rs384 => Self::Rs384(RS384PublicKey::from_jwk(jwk)?),
            Algorithm::Rs512 => Self::Rs512(RS512PublicKey::from_jwk(jwk)?),
            Algorithm::Ps256 => Self::Ps256(PS256PublicKey::from_jwk(jwk)?),
            Algorithm::Es256 => Self::Es256(ES256PublicKey::from_jwk(jwk)?),
            Algorithm::Es384 => Self::Es384(ES384PublicKey::from_jwk(jwk)?),
            Algorithm::EdDsa => Self::EdDsa(Ed25519PublicKey::from_jwk(jwk)?),
        })
    }

    fn verify(&self, token: &str, options: VerificationOptions) -> Result<(), jwt_simple::Error> {
        let options = Some(options);
        match self {
            Self::Rs256(key) => key.verify_token::<NoCustomClaims>(token, options),
            Self::Rs384(key) => key.verify_token::<NoCustomClaims>(token, options),
            Self::Rs512(key) => key.verify_token::<NoCustomClaims>(token, options),
            Self::Ps256(key) => key.verify_token::<NoCustomClaims>(token, options),
            Self::Es256(key) => key.verify_token::<NoCustomClaims>(token, options),
            Self::Es384(key) => key.verify_token::<NoCustomClaims>(token, options),
            Self::EdDsa(key) => key.verify_token::<NoCustomClaims>(token, options),
        }
        .map(drop)
    }
}

/// One key of the set, for one algorithm (an RSA key without `alg` serves all four).
struct SigningKey {
    kid: Option<String>,
    algorithm: Algorithm,
    verifier: Verifier,
}

/// Why a token found no key to be checked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMiss {
    /// No key with this `kid` (or, without a `kid`, not exactly one key for the algorithm):
    /// the IdP may have rotated its keys since the control plane last fetched them.
    Unknown,
    /// The key exists but does not serve the token's algorithm.
    WrongAlgorithm,
}

/// The usable keys of one issuer.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self
            .keys
            .iter()
            .map(|key| (key.kid.as_deref(), key.algorithm.name()))
            .collect();
        f.debug_struct("KeySet").field("keys", &kids).finish()
    }
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<Value>,
}

/// Why a JWKS document gave no keys at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the JWKS is not a JSON object with a `keys` list: {0}")]
    NotJwks(String),
}

impl KeySet {
    /// The keys of a JWKS document. Keys this filter cannot use (other types and curves,
    /// encryption keys, broken material) are skipped and counted in `skipped`; past
    /// [`MAX_KEYS`] the rest are skipped too.
    pub fn parse(json: &str) -> Result<(Self, usize), JwksError> {
        let document: Document =
            serde_json::from_str(json).map_err(|err| JwksError::NotJwks(err.to_string()))?;
        let mut set = Self::default();
        let mut skipped = 0;
        for jwk in &document.keys {
            let text = |name: &str| jwk.get(name).and_then(Value::as_str);
            let kid = text("kid").map(str::to_owned);
            let declared = text("alg").map(Algorithm::parse);
            let algorithms = Algorithm::for_key(text("kty").unwrap_or_default(), text("crv"));
            let encoded = jwk.to_string();
            let mut usable = false;
            for &algorithm in algorithms {
                if declared.is_some_and(|declared| declared != Some(algorithm)) {
                    continue;
                }
                if set.keys.len() >= MAX_KEYS {
                    break;
                }
                if let Ok(verifier) = Verifier::from_jwk(algorithm, &encoded) {
                    set.keys.push(SigningKey {
                        kid: kid.clone(),
                        algorithm,
                        verifier,
                    });
                    usable = true;
                }
            }
            if !usable {
                skipped += 1;
            }
        }
        Ok((set, skipped))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the token's signature with the key its header names (by `kid`, or the only key
    /// for the algorithm when it names none) and its time claims with `options`.
    pub fn verify(
        &self,
        algorithm: Algorithm,
        kid: Option<&str>,
        token: &str,
        options: VerificationOptions,
    ) -> Result<Result<(), jwt_simple::Error>, KeyMiss> {
        let key = match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|key| key.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Err(KeyMiss::Unknown);
                }
                named
                    .find(|key| key.algorithm == algorithm)
                    .ok_or(KeyMiss::WrongAlgorithm)?
            }
            None => {
                let mut of_algorithm = self.keys.iter().filter(|key| key.algorithm == algorithm);
                match (of_algorithm.next(), of_algorithm.next()) {
                    (Some(only), None) => only,
                    _ => return Err(KeyMiss::Unknown),
                }
            }
        };
        Ok(key.verifier.verify(token, options))
    }
}
