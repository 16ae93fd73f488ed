//! Client-facing refusals and their OpenAI-style JSON bodies:
//! `{"error":{"message":…,"type":…,"param":null,"code":…}}`.

use serde::Serialize;

use crate::credential::{CredentialError, Malformed};
use crate::snapshot::Unavailable;

/// Why the filter answered a request itself instead of forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    MissingApiKey,
    MalformedAuthorization(Malformed),
    InvalidApiKey,
    KeyRevoked,
    KeyExpired,
    KeyBlocked,
    /// The snapshot names a status or team this filter cannot vouch for.
    KeyUnusable(&'static str),
    TeamBlocked,
    PolicyUnavailable(Unavailable),
    PathNotFound,
    /// The plugin runs with a configuration that cannot serve requests (e.g. the service role
    /// installed as an HTTP filter): fail closed.
    Misconfigured,
}

impl From<CredentialError> for Rejection {
    fn from(err: CredentialError) -> Self {
        match err {
            CredentialError::Missing => Self::MissingApiKey,
            CredentialError::Malformed(why) => Self::MalformedAuthorization(why),
        }
    }
}

impl Rejection {
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingApiKey
            | Self::MalformedAuthorization(_)
            | Self::InvalidApiKey
            | Self::KeyRevoked
            | Self::KeyExpired
            | Self::KeyUnusable(_) => 401,
            Self::KeyBlocked | Self::TeamBlocked => 403,
            Self::PathNotFound => 404,
            Self::PolicyUnavailable(_) | Self::Misconfigured => 503,
        }
    }

    /// The `error.code` clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingApiKey => "missing_api_key",
            Self::MalformedAuthorization(_) => "malformed_authorization",
            Self::InvalidApiKey | Self::KeyUnusable(_) => "invalid_api_key",
            Self::KeyRevoked => "key_revoked",
            Self::KeyExpired => "key_expired",
            Self::KeyBlocked => "key_blocked",
            Self::TeamBlocked => "team_blocked",
            Self::PolicyUnavailable(_) => "policy_unavailable",
            Self::PathNotFound => "not_found",
            Self::Misconfigured => "gateway_misconfigured",
        }
    }

    /// The audit record's `reason`: the code, made finer where the code alone hides the cause.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::KeyUnusable(why) => why,
            Self::PolicyUnavailable(Unavailable::NeverLoaded) => "policy_not_loaded",
            Self::PolicyUnavailable(Unavailable::Stale { .. }) => "policy_stale",
            Self::PolicyUnavailable(Unavailable::Unreadable(_)) => "policy_unreadable",
            other => other.code(),
        }
    }

    fn error_type(&self) -> &'static str {
        match self.status() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "invalid_request_error",
            _ => "service_unavailable",
        }
    }

    /// Human-readable; never contains key material.
    pub fn message(&self) -> String {
        match self {
            Self::MissingApiKey => "No API key provided. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.".to_owned(),
            Self::MalformedAuthorization(why) => format!("Malformed credential: {why}."),
            Self::InvalidApiKey | Self::KeyUnusable(_) => "Invalid API key.".to_owned(),
            Self::KeyRevoked => "This API key has been revoked.".to_owned(),
            Self::KeyExpired => "This API key has expired.".to_owned(),
            Self::KeyBlocked => "This API key is blocked.".to_owned(),
            Self::TeamBlocked => "The team of this API key is blocked.".to_owned(),
            Self::PolicyUnavailable(why) => format!("The gateway cannot authorize requests right now: {why}."),
            Self::PathNotFound => "No such endpoint on this gateway.".to_owned(),
            Self::Misconfigured => "The gateway is misconfigured; its operator has been told in Envoy's log.".to_owned(),
        }
    }

    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: Body<'a>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            message: String,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: &'a str,
        }
        let envelope = Envelope {
            error: Body {
                message: self.message(),
                kind: self.error_type(),
                param: None,
                code: self.code(),
            },
        };
        // Serializing plain strings cannot fail; the fallback keeps the reply valid JSON anyway.
        serde_json::to_vec(&envelope).unwrap_or_else(|_| {
            format!(
                r#"{{"error":{{"message":"error","type":"error","param":null,"code":"{}"}}}}"#,
                self.code()
            )
            .into_bytes()
        })
    }

    /// Headers that belong to this kind of refusal, besides content type and request id.
    pub fn extra_headers(&self) -> Vec<(&'static str, &'static str)> {
        match self.status() {
            401 => vec![("www-authenticate", "Bearer realm=\"modelgate\"")],
            503 => vec![("retry-after", "1")],
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn body(rejection: &Rejection) -> Value {
        serde_json::from_slice(&rejection.body()).unwrap()
    }

    #[test]
    fn codes_and_statuses_follow_the_contract() {
        let cases = [
            (Rejection::MissingApiKey, 401, "missing_api_key"),
            (Rejection::InvalidApiKey, 401, "invalid_api_key"),
            (
                Rejection::MalformedAuthorization(Malformed::NotBearer),
                401,
                "malformed_authorization",
            ),
            (Rejection::KeyRevoked, 401, "key_revoked"),
            (Rejection::KeyExpired, 401, "key_expired"),
            (
                Rejection::KeyUnusable("key_status_unrecognised"),
                401,
                "invalid_api_key",
            ),
            (Rejection::KeyBlocked, 403, "key_blocked"),
            (Rejection::TeamBlocked, 403, "team_blocked"),
            (Rejection::PathNotFound, 404, "not_found"),
            (
                Rejection::PolicyUnavailable(Unavailable::NeverLoaded),
                503,
                "policy_unavailable",
            ),
        ];
        for (rejection, status, code) in cases {
            assert_eq!(rejection.status(), status, "{rejection:?}");
            assert_eq!(body(&rejection)["error"]["code"], code, "{rejection:?}");
            assert!(!body(&rejection)["error"]["message"]
                .as_str()
                .unwrap()
                .is_empty());
        }
    }

    #[test]
    fn body_is_openai_shaped() {
        assert_eq!(
            body(&Rejection::KeyRevoked),
            json!({"error": {"message": "This API key has been revoked.", "type": "authentication_error", "param": null, "code": "key_revoked"}})
        );
    }

    #[test]
    fn audit_reason_is_finer_than_the_code() {
        let stale = Rejection::PolicyUnavailable(Unavailable::Stale { age_ms: 31_000 });
        assert_eq!(stale.code(), "policy_unavailable");
        assert_eq!(stale.reason(), "policy_stale");
        assert!(stale.message().contains("31000 ms"));
        assert_eq!(
            Rejection::KeyUnusable("team_not_in_snapshot").reason(),
            "team_not_in_snapshot"
        );
        assert_eq!(Rejection::KeyRevoked.reason(), "key_revoked");
    }

    #[test]
    fn refusals_carry_their_protocol_headers() {
        assert!(Rejection::InvalidApiKey
            .extra_headers()
            .iter()
            .any(|(n, _)| *n == "www-authenticate"));
        assert_eq!(
            Rejection::PolicyUnavailable(Unavailable::NeverLoaded).extra_headers(),
            vec![("retry-after", "1")]
        );
        assert!(Rejection::KeyBlocked.extra_headers().is_empty());
    }
}
