//! The usage/audit record: one per request that reached the filter, refused ones included.
//! Fields fill in as the request goes (`RecordDraft`); `finish` classifies the outcome. The
//! record never holds a raw key or prompt: keys appear as their public id or as an
//! `unknown:<hash prefix>` fingerprint, prompts as their SHA-256 and, when the team asks for
//! it, as redacted text.

use std::net::IpAddr;

use modelgate_proto::v1::{EntityCount, RequestStatus, UsageRecord};

use crate::usage::TokenUsage;

/// Shared queue from the workers (producers) to the singleton service (shipper).
pub const USAGE_QUEUE: &str = "modelgate.usage.v1";

/// What is known about a request before it ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordDraft {
    pub request_id: String,
    pub started_ms: i64,
    pub path: String,
    pub client_ip: String,
    pub key_id: String,
    pub team_id: String,
    pub user_id: String,
    pub model_requested: String,
    pub model_resolved: String,
    /// Hex SHA-256 of the body as sent upstream; empty when none was.
    pub prompt_sha256: String,
    /// The prompt as redacted for the record, only for teams that keep it.
    pub prompt_redacted: String,
    /// Hex SHA-256 of the response body as the upstream sent it.
    pub response_sha256: String,
    pub tokens: Option<TokenUsage>,
    pub spend: f64,
    /// From the request's start to the first response body bytes, for streams.
    pub ttft_ms: u32,
    pub stream: bool,
    /// Entity types found in the prompt and the answer, with counts (never values).
    pub redactions: Vec<(String, u32)>,
    pub redaction_bypassed: bool,
    pub auth_method: AuthMethod,
    /// The JWT's issuer, for [`AuthMethod::Jwt`].
    pub issuer: String,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// A virtual key (also the record of a request that sent no usable credential).
    #[default]
    Key,
    /// An IdP JWT.
    Jwt,
    /// An end user named by a service key (Open WebUI's forwarded user); the record's key is
    /// the service key.
    Asserted,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Jwt => "jwt",
            Self::Asserted => "asserted",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The filter answered itself.
    Refused { status: u16, reason: &'a str },
    /// Envoy answered (upstream or a local reply downstream of the filter). `http_status` is
    /// `None` (or 0) when no response was sent, e.g. the client went away first.
    Finished {
        http_status: Option<u32>,
        code_details: Option<&'a str>,
        body: BodyEnd,
    },
}

/// How the response body ended, as the filter saw it pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyEnd {
    /// Ended normally, or there was no body to watch.
    #[default]
    Complete,
    /// The body's end never came: the client went away (`client_gone`) or the upstream
    /// connection broke.
    Interrupted { client_gone: bool },
    /// The stream ended without its end marker (`data: [DONE]`, Ollama's `done: true`).
    Truncated,
    /// The upstream reported an error inside a successful stream.
    StreamError,
}

impl RecordDraft {
    pub fn finish(self, outcome: Outcome<'_>, now_ms: i64) -> UsageRecord {
        let latency = now_ms.saturating_sub(self.started_ms).max(0);
        let (status, reason, http_status) = classify(outcome);
        let tokens = self.tokens;
        UsageRecord {
            request_id: self.request_id,
            timestamp_ms: self.started_ms,
            key_id: self.key_id,
            team_id: self.team_id,
            user_id: self.user_id,
            model_requested: self.model_requested,
            model_resolved: self.model_resolved,
            prompt_sha256: self.prompt_sha256,
            prompt_redacted: self.prompt_redacted,
            response_sha256: self.response_sha256,
            tokens_in: tokens.map_or(0, |t| t.prompt_tokens),
            tokens_out: tokens.map_or(0, |t| t.completion_tokens),
            tokens_estimated: tokens.is_some_and(|t| t.estimated),
            spend: self.spend,
            latency_ms: u32::try_from(latency).unwrap_or(u32::MAX),
            ttft_ms: self.ttft_ms,
            client_ip: self.client_ip,
            status: status as i32,
            reason,
            http_status,
            redactions: self
                .redactions
                .into_iter()
                .map(|(entity_type, count)| EntityCount { entity_type, count })
                .collect(),
            redaction_bypassed: self.redaction_bypassed,
            path: self.path,
            stream: self.stream,
            auth_method: self.auth_method.as_str().to_owned(),
            issuer: self.issuer,
        }
    }
}

fn classify(outcome: Outcome<'_>) -> (RequestStatus, String, u32) {
    match outcome {
        Outcome::Refused { status, reason } => {
            (RequestStatus::Blocked, reason.to_owned(), u32::from(status))
        }
        Outcome::Finished {
            http_status,
            code_details,
            body,
        } => {
            let details = code_details.filter(|d| !d.is_empty() && *d != "via_upstream");
            let reason = |fallback: &str| details.unwrap_or(fallback).to_owned();
            match (http_status.unwrap_or(0), body) {
                (0, _) => (RequestStatus::Cancelled, reason("no_response"), 0),
                (code @ 100..=399, BodyEnd::Complete) => {
                    (RequestStatus::Success, String::new(), code)
                }
                (code @ 100..=399, BodyEnd::Interrupted { client_gone: true }) => (
                    RequestStatus::Cancelled,
                    "client_disconnected".to_owned(),
                    code,
                ),
                (code @ 100..=399, BodyEnd::Interrupted { client_gone: false }) => (
                    RequestStatus::Errored,
                    reason("upstream_response_interrupted"),
                    code,
                ),
                (code @ 100..=399, BodyEnd::Truncated) => (
                    RequestStatus::Errored,
                    "upstream_stream_truncated".to_owned(),
                    code,
                ),
                (code @ 100..=399, BodyEnd::StreamError) => (
                    RequestStatus::Errored,
                    "upstream_stream_error".to_owned(),
                    code,
                ),
                (code, _) => (
                    RequestStatus::Errored,
                    details.map_or_else(|| format!("upstream_http_{code}"), str::to_owned),
                    code,
                ),
            }
        }
    }
}

/// The client's IP: the last `x-forwarded-for` entry when the deployment trusts that header
/// (`forwarded_for` is then passed) and it holds an IP address, else the IP of Envoy's
/// `source.address`. The last entry is the one the nearest proxy appended; earlier ones are
/// whatever the client claimed.
pub fn client_ip(source_address: Option<&str>, forwarded_for: Option<&[u8]>) -> String {
    let forwarded = forwarded_for
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| value.rsplit(',').next())
        .map(|entry| strip_port(entry.trim()))
        .filter(|ip| ip.parse::<IpAddr>().is_ok());
    forwarded
        .or_else(|| source_address.map(strip_port))
        .unwrap_or_default()
        .to_owned()
}

/// `1.2.3.4:5678` -> `1.2.3.4`, `[::1]:5678` -> `::1`; bare addresses stay as they are.
fn strip_port(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        if let Some((ip, _)) = rest.split_once(']') {
            return ip;
        }
    }
    match address.rsplit_once(':') {
        // One colon: IPv4 with a port. More: a bare IPv6 address.
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => ip,
        _ => address,
    }
}

/// The path without its query string: queries can carry tokens that must not be stored.
pub fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(path, _)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> RecordDraft {
        RecordDraft {
            request_id: "rid".to_owned(),
            started_ms: 1_000,
            path: "/v1/models".to_owned(),
            key_id: "alice0000001".to_owned(),
            ..RecordDraft::default()
        }
    }

    #[test]
    fn refused_requests_are_blocked_with_their_reason() {
        let record = draft().finish(
            Outcome::Refused {
                status: 401,
                reason: "key_revoked",
            },
            1_012,
        );
        assert_eq!(record.status, RequestStatus::Blocked as i32);
        assert_eq!(record.reason, "key_revoked");
        assert_eq!(record.http_status, 401);
        assert_eq!(record.latency_ms, 12);
        assert_eq!(record.timestamp_ms, 1_000);
        assert_eq!(record.key_id, "alice0000001");
    }

    #[test]
    fn finished_requests_are_classified_by_status() {
        let finish = |http_status, code_details| {
            let record = draft().finish(
                Outcome::Finished {
                    http_status,
                    code_details,
                    body: BodyEnd::Complete,
                },
                2_000,
            );
            (
                RequestStatus::try_from(record.status).unwrap(),
                record.reason,
                record.http_status,
            )
        };
        assert_eq!(
            finish(Some(200), Some("via_upstream")),
            (RequestStatus::Success, String::new(), 200)
        );
        assert_eq!(
            finish(Some(500), Some("via_upstream")),
            (RequestStatus::Errored, "upstream_http_500".to_owned(), 500)
        );
        assert_eq!(
            finish(Some(503), Some("no_healthy_upstream")),
            (
                RequestStatus::Errored,
                "no_healthy_upstream".to_owned(),
                503
            )
        );
        assert_eq!(
            finish(None, Some("downstream_remote_disconnect")),
            (
                RequestStatus::Cancelled,
                "downstream_remote_disconnect".to_owned(),
                0
            )
        );
        assert_eq!(
            finish(Some(0), None),
            (RequestStatus::Cancelled, "no_response".to_owned(), 0)
        );
    }

    #[test]
    fn a_body_that_did_not_end_well_is_cancelled_or_errored() {
        let finish = |body, code_details| {
            let record = draft().finish(
                Outcome::Finished {
                    http_status: Some(200),
                    code_details,
                    body,
                },
                2_000,
            );
            (
                RequestStatus::try_from(record.status).unwrap(),
                record.reason,
            )
        };
        assert_eq!(
            finish(
                BodyEnd::Interrupted { client_gone: true },
                Some("via_upstream")
            ),
            (RequestStatus::Cancelled, "client_disconnected".to_owned())
        );
        assert_eq!(
            finish(
                BodyEnd::Interrupted { client_gone: false },
                Some("upstream_reset_after_response_started{remote_reset}")
            ),
            (
                RequestStatus::Errored,
                "upstream_reset_after_response_started{remote_reset}".to_owned()
            )
        );
        assert_eq!(
            finish(BodyEnd::Interrupted { client_gone: false }, None),
            (
                RequestStatus::Errored,
                "upstream_response_interrupted".to_owned()
            )
        );
        assert_eq!(
            finish(BodyEnd::Truncated, None),
            (
                RequestStatus::Errored,
                "upstream_stream_truncated".to_owned()
            )
        );
        assert_eq!(
            finish(BodyEnd::StreamError, None),
            (RequestStatus::Errored, "upstream_stream_error".to_owned())
        );
    }

    #[test]
    fn exchange_fields_reach_the_record() {
        let mut draft = draft();
        draft.tokens = Some(TokenUsage {
            prompt_tokens: 12,
            completion_tokens: 7,
            estimated: true,
        });
        draft.spend = 0.5;
        draft.prompt_sha256 = "ab".repeat(32);
        draft.ttft_ms = 40;
        draft.stream = true;
        draft.redactions = vec![("PERSON".to_owned(), 2)];
        draft.redaction_bypassed = true;
        let record = draft.finish(
            Outcome::Finished {
                http_status: Some(200),
                code_details: None,
                body: BodyEnd::Complete,
            },
            1_100,
        );
        assert_eq!((record.tokens_in, record.tokens_out), (12, 7));
        assert!(record.tokens_estimated);
        assert_eq!(record.spend, 0.5);
        assert_eq!(record.prompt_sha256.len(), 64);
        assert_eq!(record.ttft_ms, 40);
        assert!(record.stream && record.redaction_bypassed);
        assert_eq!(
            record.redactions,
            [EntityCount {
                entity_type: "PERSON".to_owned(),
                count: 2
            }]
        );
    }

    #[test]
    fn latency_saturates_and_never_goes_negative() {
        let outcome = Outcome::Finished {
            http_status: Some(200),
            code_details: None,
            body: BodyEnd::Complete,
        };
        assert_eq!(draft().finish(outcome, i64::MAX).latency_ms, u32::MAX);
        assert_eq!(draft().finish(outcome, 0).latency_ms, 0);
    }

    #[test]
    fn client_ip_drops_the_port() {
        let ip = |source| client_ip(Some(source), None);
        assert_eq!(ip("10.1.2.3:51234"), "10.1.2.3");
        assert_eq!(ip("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(ip("2001:db8::1"), "2001:db8::1");
        assert_eq!(ip("10.1.2.3"), "10.1.2.3");
        assert_eq!(ip(""), "");
        assert_eq!(client_ip(None, None), "");
    }

    #[test]
    fn forwarded_for_gives_the_address_the_nearest_proxy_saw() {
        let peer = Some("10.0.0.1:4000");
        let ip = |xff: &str| client_ip(peer, Some(xff.as_bytes()));
        assert_eq!(ip("203.0.113.9"), "203.0.113.9");
        assert_eq!(ip("1.1.1.1, 203.0.113.9"), "203.0.113.9");
        assert_eq!(ip("1.1.1.1,[2001:db8::7]:443"), "2001:db8::7");
        assert_eq!(ip("1.1.1.1, not-an-ip"), "10.0.0.1", "garbage falls back");
        assert_eq!(ip(""), "10.0.0.1");
        assert_eq!(client_ip(peer, Some(b"\xff")), "10.0.0.1");
    }

    #[test]
    fn path_only_drops_the_query() {
        assert_eq!(path_only("/v1/models?key=secret"), "/v1/models");
        assert_eq!(path_only("/v1/models"), "/v1/models");
    }
}
