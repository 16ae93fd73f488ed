//! Test and bench fixtures: a stand-in IdP with one key per accepted algorithm (RSA from a
//! checked-in test-only key, since generating one is slow unoptimised; EC and Ed25519
//! generated), its JWKS as the control plane would ship it, and tokens with any claims.

// Fixtures stop loudly: a key that does not load makes every test using it meaningless.
#![allow(clippy::expect_used, clippy::panic)]

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use jwt_simple::prelude::{
    ECDSAP256KeyPairLike, ECDSAP384KeyPairLike, ES256KeyPair, ES384KeyPair, Ed25519KeyPair,
    EdDSAKeyPairLike, JWTClaims, PS256KeyPair, RS256KeyPair, RS384KeyPair, RS512KeyPair,
    RSAKeyPairLike,
};
use modelgate_proto::v1::IdentityProvider;
use serde_json::{json, Map, Value};

use super::jwks::Algorithm;

/// The IdP's RSA key (test-only, never used anywhere else).
const IDP_RSA_PEM: &str = include_str!("../../tests/fixtures/identity/idp-rsa.pem");
/// Another RSA key, for signatures that must not verify.
const FORGER_RSA_PEM: &str = include_str!("../../tests/fixtures/identity/forger-rsa.pem");

pub const ISSUER: &str = "https://idp.example.com";
pub const AUDIENCE: &str = "modelgate";

/// Every algorithm the filter accepts.
pub const ALGORITHMS: [Algorithm; 7] = [
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::EdDsa,
];

/// One signing key per algorithm, `kid` = the algorithm's name in lowercase.
pub struct TestIdp {
    rs256: RS256KeyPair,
    rs384: RS384KeyPair,
    rs512: RS512KeyPair,
    ps256: PS256KeyPair,
    es256: ES256KeyPair,
    es384: ES384KeyPair,
    eddsa: Ed25519KeyPair,
}

pub fn kid(algorithm: Algorithm) -> String {
    algorithm.name().to_ascii_lowercase()
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).expect("base64url of a small buffer")
}

impl TestIdp {
    /// The IdP whose JWKS the tests publish.
    pub fn new() -> Self {
        Self::with_rsa(IDP_RSA_PEM)
    }

    /// A different IdP that uses the same `kid`s: its tokens do not verify against
    /// [`TestIdp::new`]'s JWKS.
    pub fn forger() -> Self {
        Self::with_rsa(FORGER_RSA_PEM)
    }

    fn with_rsa(pem: &str) -> Self {
        let id = |algorithm| kid(algorithm);
        Self {
            rs256: RS256KeyPair::from_pem(pem)
                .expect("test RSA key")
                .with_key_id(&id(Algorithm::Rs256)),
            rs384: RS384KeyPair::from_pem(pem)
                .expect("test RSA key")
                .with_key_id(&id(Algorithm::Rs384)),
            rs512: RS512KeyPair::from_pem(pem)
                .expect("test RSA key")
                .with_key_id(&id(Algorithm::Rs512)),
            ps256: PS256KeyPair::from_pem(pem)
                .expect("test RSA key")
                .with_key_id(&id(Algorithm::Ps256)),
            es256: ES256KeyPair::generate().with_key_id(&id(Algorithm::Es256)),
            es384: ES384KeyPair::generate().with_key_id(&id(Algorithm::Es384)),
            eddsa: Ed25519KeyPair::generate().with_key_id(&id(Algorithm::EdDsa)),
        }
    }

    /// The public JWK of one key, `kid` included.
    pub fn jwk(&self, algorithm: Algorithm) -> Value {
        let exported = match algorithm {
            Algorithm::Rs256 => self.rs256.public_key().to_jwk(),
            Algorithm::Rs384 => self.rs384.public_key().to_jwk(),
            Algorithm::Rs512 => self.rs512.public_key().to_jwk(),
            Algorithm::Ps256 => self.ps256.public_key().to_jwk(),
            Algorithm::Es256 => self.es256.public_key().to_jwk(),
            Algorithm::Es384 => self.es384.public_key().to_jwk(),
            Algorithm::EdDsa => self.eddsa.public_key().to_jwk(),
        };
        let mut jwk: Value = serde_json::from_str(&exported).expect("jwt-simple exports JSON");
        jwk["kid"] = json!(kid(algorithm));
        jwk
    }

    /// A JWKS of every key.
    pub fn jwks(&self) -> String {
        let keys: Vec<Value> = ALGORITHMS.iter().map(|&a| self.jwk(a)).collect();
        json!({ "keys": keys }).to_string()
    }

    /// The snapshot entry of this IdP: issuer [`ISSUER`], audience [`AUDIENCE`].
    pub fn provider(&self) -> IdentityProvider {
        IdentityProvider {
            issuer: ISSUER.to_owned(),
            audiences: vec![AUDIENCE.to_owned()],
            jwks_json: self.jwks(),
            clock_skew_s: 30,
            ..IdentityProvider::default()
        }
    }

    /// A token with exactly `claims` (any JSON object), signed with `algorithm`'s key.
    pub fn sign(&self, algorithm: Algorithm, claims: Value) -> String {
        let claims = exact(claims);
        match algorithm {
            Algorithm::Rs256 => self.rs256.sign(claims),
            Algorithm::Rs384 => self.rs384.sign(claims),
            Algorithm::Rs512 => self.rs512.sign(claims),
            Algorithm::Ps256 => self.ps256.sign(claims),
            Algorithm::Es256 => self.es256.sign(claims),
            Algorithm::Es384 => self.es384.sign(claims),
            Algorithm::EdDsa => self.eddsa.sign(claims),
        }
        .expect("signing a token")
    }
}

impl TestIdp {
    /// A token with `claims` whose header names no `kid`, signed with the Ed25519 key.
    pub fn sign_without_kid(&self, claims: Value) -> String {
        let anonymous = Ed25519KeyPair::from_bytes(&self.eddsa.to_bytes()).expect("same key");
        anonymous.sign(exact(claims)).expect("signing a token")
    }
}

impl Default for TestIdp {
    fn default() -> Self {
        Self::new()
    }
}

/// `claims` as jwt-simple signs them: all in the flattened custom part, so the token carries
/// exactly this JSON (wrong types and missing claims included).
fn exact(claims: Value) -> JWTClaims<Map<String, Value>> {
    let Value::Object(custom) = claims else {
        panic!("claims must be a JSON object");
    };
    JWTClaims {
        issued_at: None,
        expires_at: None,
        invalid_before: None,
        issuer: None,
        subject: None,
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom,
    }
}

/// Claims of a valid token at `now_ms` for `user` in `groups`, valid for an hour.
pub fn claims(now_ms: i64, user: &str, groups: &[&str]) -> Value {
    let now_s = now_ms / 1000;
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "groups": groups,
        "iat": now_s,
        "exp": now_s + 3600,
    })
}

/// A token with this header and claims and a made-up signature (for algorithms the filter
/// must refuse by name: `none`, `HS256`).
pub fn unsigned(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// A token whose claims segment is these raw bytes (non-UTF-8, not JSON, …), signed by nobody.
pub fn with_raw_claims(claims: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"ES256","kid":"es256"}"#),
        b64(claims),
        b64(&[0u8; 64])
    )
}
