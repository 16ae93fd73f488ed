//! Client-facing refusals and their OpenAI-style JSON bodies:
//! `{"error":{"message":…,"type":…,"param":null,"code":…}}`.

use std::borrow::Cow;

use serde::Serialize;

use crate::credential::{CredentialError, Malformed};
use crate::identity::asserted::AssertionError;
use crate::identity::TokenError;
use crate::limits::LimitHit;
use crate::models::request::BodyError;
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
    /// The team's redaction policy blocks these entity types (names only, never values).
    PiiBlocked(Vec<String>),
    /// The body is larger than `max_body_bytes`; `redacting` when the team's policy would
    /// have had to check it.
    BodyTooLarge {
        limit: u64,
        redacting: bool,
    },
    /// The team's policy must check the body, and it is not a JSON object.
    BodyUnreadable,
    /// The team's redaction policy does not compile in this filter: fail closed.
    RedactionUnavailable,
    /// A pass-through path with a body, for a team whose policy must check every body.
    RedactionUnsupported,
    /// A request body admission cannot check (none, not JSON, no `model`, …).
    BadRequestBody(BodyError),
    /// No model of this public name in the snapshot.
    ModelNotFound(String),
    /// The model exists, but not in this key's allowlist.
    ModelNotAllowed(String),
    /// A rate limit, parallel-request cap or budget of the key, team or user.
    Limited(Box<LimitHit>),
    /// The shared limit counters could not be read or updated: refused, not let through
    /// unchecked.
    LimitsUnavailable,
    /// A bearer JWT that does not verify (each cause has its own code).
    Token(TokenError),
    /// A verified token whose groups map to no team (or none the issuer allows).
    NoTeamForIdentity,
    /// `x-modelgate-team` names a team the token's groups do not map to.
    TeamNotAllowed,
    /// A service key's forwarded user that cannot be trusted (each cause has its own code).
    Assertion(AssertionError),
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
            | Self::KeyUnusable(_)
            | Self::Token(_)
            | Self::Assertion(_) => 401,
            Self::KeyBlocked
            | Self::TeamBlocked
            | Self::ModelNotAllowed(_)
            | Self::NoTeamForIdentity
            | Self::TeamNotAllowed => 403,
            Self::BadRequestBody(_) => 400,
            Self::ModelNotFound(_) => 404,
            Self::Limited(_) => 429,
            Self::LimitsUnavailable => 503,
            Self::PathNotFound => 404,
            Self::PolicyUnavailable(_) | Self::Misconfigured | Self::RedactionUnavailable => 503,
            Self::PiiBlocked(_) | Self::BodyUnreadable | Self::RedactionUnsupported => 400,
            Self::BodyTooLarge { .. } => 413,
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
            Self::BadRequestBody(why) => why.code(),
            Self::ModelNotFound(_) => "model_not_found",
            Self::ModelNotAllowed(_) => "model_not_allowed",
            Self::Limited(hit) => hit.code(),
            Self::LimitsUnavailable => "limits_unavailable",
            Self::PolicyUnavailable(_) => "policy_unavailable",
            Self::PathNotFound => "not_found",
            Self::Misconfigured | Self::RedactionUnavailable => "gateway_misconfigured",
            Self::PiiBlocked(_) => "pii_blocked",
            Self::BodyTooLarge { .. } => "request_too_large",
            Self::BodyUnreadable => "invalid_request_body",
            Self::RedactionUnsupported => "redaction_unsupported_endpoint",
            Self::Token(why) => why.code(),
            Self::NoTeamForIdentity => "no_team_for_identity",
            Self::TeamNotAllowed => "team_not_allowed",
            Self::Assertion(why) => why.code(),
        }
    }

    /// The audit record's `reason`: the code, made finer where the code alone hides the cause.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::KeyUnusable(why) => why,
            Self::Limited(hit) => hit.reason(),
            Self::PolicyUnavailable(Unavailable::NeverLoaded) => "policy_not_loaded",
            Self::PolicyUnavailable(Unavailable::Stale { .. }) => "policy_stale",
            Self::PolicyUnavailable(Unavailable::Unreadable(_)) => "policy_unreadable",
            Self::RedactionUnavailable => "redaction_policy_invalid",
            Self::BodyTooLarge {
                redacting: true, ..
            } => "redaction_body_too_large",
            Self::BodyUnreadable => "redaction_body_unreadable",
            other => other.code(),
        }
    }

    fn error_type(&self) -> &'static str {
        if let Self::Limited(hit) = self {
            return hit.error_type();
        }
        match self.status() {
            401 => "authentication_error",
            403 => "permission_error",
            400 | 404 | 413 => "invalid_request_error",
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
            Self::BadRequestBody(why) => format!("{why}."),
            Self::ModelNotFound(model) => format!("The model `{}` does not exist on this gateway.", shown(model)),
            Self::ModelNotAllowed(model) => format!("This API key may not use the model `{}`.", shown(model)),
            Self::Limited(hit) => hit.message(),
            Self::LimitsUnavailable => "The gateway cannot check this key's limits right now; try again shortly.".to_owned(),
            Self::Misconfigured => "The gateway is misconfigured; its operator has been told in Envoy's log.".to_owned(),
            Self::PiiBlocked(types) => format!("The request contains data this team may not send to the model: {}.", types.join(", ")),
            Self::BodyTooLarge { limit, redacting: false } => format!("The request body exceeds this gateway's limit of {limit} bytes."),
            Self::BodyTooLarge { limit, redacting: true } => format!("The request body exceeds the {limit} bytes this gateway can check for this team's redaction policy; it was not forwarded."),
            Self::BodyUnreadable => "The request body is not a JSON object, so this team's redaction policy cannot check it; it was not forwarded.".to_owned(),
            Self::RedactionUnavailable => "This team's redaction policy cannot be applied, so its requests are refused; its operator has been told in Envoy's log.".to_owned(),
            Self::RedactionUnsupported => "This endpoint is forwarded without inspection, and this team's redaction policy must check every request body.".to_owned(),
            Self::Token(why) => format!("Invalid bearer token: {why}."),
            Self::NoTeamForIdentity => "None of your identity provider groups belongs to a team on this gateway.".to_owned(),
            Self::TeamNotAllowed => "Your identity provider groups do not include the team named in x-modelgate-team.".to_owned(),
            Self::Assertion(why) => format!("The end user forwarded with this service key is refused: {why}."),
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
            param: Option<Cow<'a, str>>,
            code: &'a str,
            /// Which scope's limit (`key`, `team`, `user`) and which limit (`rpm`, …).
            #[serde(skip_serializing_if = "Option::is_none")]
            scope: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            limit: Option<&'a str>,
        }
        let (param, scope, limit) = match self {
            Self::ModelNotFound(_) | Self::ModelNotAllowed(_) => {
                (Some(Cow::Borrowed("model")), None, None)
            }
            Self::BadRequestBody(why) => (why.param(), None, None),
            Self::Limited(hit) => (
                None,
                Some(hit.scope.kind.as_str()),
                Some(hit.exceeded.kind.field()),
            ),
            _ => (None, None, None),
        };
        let envelope = Envelope {
            error: Body {
                message: self.message(),
                kind: self.error_type(),
                param,
                code: self.code(),
                scope,
                limit,
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
    pub fn extra_headers(&self) -> Vec<(&'static str, String)> {
        if let Self::Limited(hit) = self {
            return hit.headers();
        }
        let value = match self.status() {
            401 => ("www-authenticate", "Bearer realm=\"modelgate\""),
            503 => ("retry-after", "1"),
            _ => return vec![],
        };
        vec![(value.0, value.1.to_owned())]
    }
}

/// A client-sent model name as repeated in an answer: bounded, so a huge name is not echoed.
fn shown(model: &str) -> String {
    const MAX_CHARS: usize = 128;
    match model.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &model[..cut]),
        None => model.to_owned(),
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
            (
                Rejection::PiiBlocked(vec!["US_SSN".to_owned()]),
                400,
                "pii_blocked",
            ),
            (
                Rejection::BodyTooLarge {
                    limit: 10,
                    redacting: true,
                },
                413,
                "request_too_large",
            ),
            (Rejection::BodyUnreadable, 400, "invalid_request_body"),
            (
                Rejection::RedactionUnavailable,
                503,
                "gateway_misconfigured",
            ),
            (
                Rejection::RedactionUnsupported,
                400,
                "redaction_unsupported_endpoint",
            ),
            (Rejection::Token(TokenError::Expired), 401, "token_expired"),
            (
                Rejection::Token(TokenError::TooLarge(16_384)),
                401,
                "token_too_large",
            ),
            (Rejection::NoTeamForIdentity, 403, "no_team_for_identity"),
            (Rejection::TeamNotAllowed, 403, "team_not_allowed"),
            (
                Rejection::Assertion(AssertionError::InvalidSignature),
                401,
                "asserted_user_invalid_signature",
            ),
            (
                Rejection::Assertion(AssertionError::SignatureRequired),
                401,
                "asserted_user_signature_required",
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
    fn pii_refusals_name_types_and_say_why_nothing_was_forwarded() {
        let blocked = Rejection::PiiBlocked(vec!["CREDIT_CARD".to_owned(), "US_SSN".to_owned()]);
        assert_eq!(
            body(&blocked)["error"]["message"],
            "The request contains data this team may not send to the model: CREDIT_CARD, US_SSN."
        );
        assert_eq!(body(&blocked)["error"]["type"], "invalid_request_error");
        let too_large = Rejection::BodyTooLarge {
            limit: 1000,
            redacting: true,
        };
        assert_eq!(too_large.reason(), "redaction_body_too_large");
        assert!(too_large.message().contains("1000 bytes"));
        let plain = Rejection::BodyTooLarge {
            limit: 1000,
            redacting: false,
        };
        assert_eq!(plain.reason(), "request_too_large");
    }

    fn team_rpm_hit() -> Rejection {
        use crate::limits::record::{Exceeded, Quota, Quotas};
        use crate::limits::{LimitKind, Scope, ScopeKind};
        let quotas = Quotas {
            requests: Some(Quota {
                limit: 3,
                remaining: 0,
                reset_ms: 42_500,
            }),
            tokens: None,
        };
        Rejection::Limited(Box::new(LimitHit {
            scope: Scope {
                kind: ScopeKind::Team,
                id: "team-7".to_owned(),
            },
            exceeded: Exceeded {
                kind: LimitKind::Requests,
                limit: 3,
                used: 3,
                requested: 1,
                retry_after_ms: Some(40_200),
                quotas,
            },
            quotas,
        }))
    }

    #[test]
    fn admission_refusals_name_the_model_or_the_limit() {
        let cases = [
            (
                Rejection::BadRequestBody(BodyError::NotJson),
                400,
                "invalid_json",
                Value::Null,
            ),
            (
                Rejection::BadRequestBody(BodyError::MissingModel),
                400,
                "missing_model",
                json!("model"),
            ),
            (
                Rejection::BadRequestBody(BodyError::ContentInvalid(2)),
                400,
                "invalid_type",
                json!("messages[2].content"),
            ),
            (
                Rejection::ModelNotFound("mystery".to_owned()),
                404,
                "model_not_found",
                json!("model"),
            ),
            (
                Rejection::ModelNotAllowed("qwen2.5x".to_owned()),
                403,
                "model_not_allowed",
                json!("model"),
            ),
            (
                Rejection::LimitsUnavailable,
                503,
                "limits_unavailable",
                Value::Null,
            ),
        ];
        for (rejection, status, code, param) in cases {
            assert_eq!(rejection.status(), status, "{rejection:?}");
            let error = &body(&rejection)["error"];
            assert_eq!(error["code"], code);
            assert_eq!(error["param"], param, "{rejection:?}");
        }
        assert!(Rejection::ModelNotAllowed("qwen2.5x".to_owned())
            .message()
            .contains("`qwen2.5x`"));
        let huge = Rejection::ModelNotFound("m".repeat(10_000)).message();
        assert!(huge.len() < 300, "{} bytes", huge.len());
    }

    #[test]
    fn a_rate_limit_is_a_429_naming_scope_and_limit_with_openai_headers() {
        let rejection = team_rpm_hit();
        assert_eq!(rejection.status(), 429);
        assert_eq!(rejection.reason(), "team_rpm_exceeded");
        let error = &body(&rejection)["error"];
        assert_eq!(error["code"], "rate_limit_exceeded");
        assert_eq!(error["type"], "requests");
        assert_eq!(error["scope"], "team");
        assert_eq!(error["limit"], "rpm");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("team team-7"), "{message}");
        assert!(message.contains("limit 3, used 3"), "{message}");
        assert!(message.contains("try again in 41s"), "{message}");
        assert_eq!(
            rejection.extra_headers(),
            [
                ("retry-after", "41".to_owned()),
                ("x-ratelimit-limit-requests", "3".to_owned()),
                ("x-ratelimit-remaining-requests", "0".to_owned()),
                ("x-ratelimit-reset-requests", "43s".to_owned()),
            ]
        );
        assert!(
            !body(&Rejection::KeyRevoked)["error"]
                .as_object()
                .unwrap()
                .contains_key("scope"),
            "other errors keep OpenAI's four fields"
        );
    }

    #[test]
    fn refusals_carry_their_protocol_headers() {
        assert!(Rejection::InvalidApiKey
            .extra_headers()
            .iter()
            .any(|(n, _)| *n == "www-authenticate"));
        assert_eq!(
            Rejection::PolicyUnavailable(Unavailable::NeverLoaded).extra_headers(),
            vec![("retry-after", "1".to_owned())]
        );
        assert!(Rejection::KeyBlocked.extra_headers().is_empty());
    }
}
