//! The credential of configuration (b-jwt): an IdP issuer registered with the control plane
//! from a JWKS document (what `idp add --jwks-file` uploads; no provider runs in the bench),
//! a team its group maps to, and one ES256 token for a user of that group, signed here.

use jwt_simple::prelude::{Claims, Duration, ECDSAP256KeyPairLike, ES256KeyPair};
use modelgate_e2e::control_plane::AdminClient;
use modelgate_proto::v1::{CreateIdentityProviderRequest, CreateTeamRequest, LimitSettings};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.bench.modelgate.test";
const AUDIENCE: &str = "modelgate";
const GROUP: &str = "bench-jwt-users";
const KID: &str = "bench-es256";
const USER: &str = "bench-user@example.com";
/// Longer than any run, so the token never expires mid-measurement.
const VALID_FOR_HOURS: u64 = 24;

#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    #[error("control plane: {0}")]
    ControlPlane(#[from] tonic::Status),
    #[error("cannot build the JWKS: {0}")]
    Jwks(#[from] serde_json::Error),
    // jwt-simple's errors are `anyhow` values; only their text is kept.
    #[error("cannot sign the bench token: {0}")]
    Sign(String),
}

/// Registers the issuer and its team (both with `limits`, the issuer's as new users'
/// defaults) and returns a token for the bench user that may use `models`.
pub async fn issue_token(
    admin: &mut AdminClient,
    models: &[String],
    limits: &LimitSettings,
) -> Result<String, JwtSetupError> {
    let key = ES256KeyPair::generate().with_key_id(KID);
    let mut jwk: Value = serde_json::from_str(&key.public_key().to_jwk())?;
    jwk["kid"] = json!(KID);
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    admin
        .create_identity_provider(CreateIdentityProviderRequest {
            issuer: ISSUER.to_string(),
            audiences: vec![AUDIENCE.to_string()],
            jwks_json: json!({ "keys": [jwk] }).to_string(),
            default_user_limits: Some(limits.clone()),
            ..CreateIdentityProviderRequest::default()
        })
        .await?;
    admin
        .create_team(CreateTeamRequest {
            alias: "bench-jwt".to_string(),
            models: models.to_vec(),
            limits: Some(limits.clone()),
            idp_groups: vec![GROUP.to_string()],
            ..CreateTeamRequest::default()
        })
        .await?;
    let claims = Claims::with_custom_claims(
        json!({ "groups": [GROUP] }),
        Duration::from_hours(VALID_FOR_HOURS),
    )
    .with_issuer(ISSUER)
    .with_audience(AUDIENCE)
    .with_subject(USER);
    key.sign(claims)
        .map_err(|e| JwtSetupError::Sign(e.to_string()))
}
