//! The usage/audit record: one per request that reached the filter, refused ones included.
//! Fields fill in as the request goes (`RecordDraft`); `finish` classifies the outcome. The
//! record never holds a raw key or prompt: keys appear as their public id or as an
//! `unknown:<hash prefix>` fingerprint.

use modelgate_proto::v1::{RequestStatus, UsageRecord};

/// Shared queue from the workers (producers) to the singleton service (shipper).
pub const USAGE_QUEUE: &str = "modelgate.usage.v1";

/// What is known about a request before it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    },
}

impl RecordDraft {
    pub fn finish(self, outcome: Outcome<'_>, now_ms: i64) -> UsageRecord {
        let latency = now_ms.saturating_sub(self.started_ms).max(0);
        let (status, reason, http_status) = classify(outcome);
        UsageRecord {
            request_id: self.request_id,
            timestamp_ms: self.started_ms,
            key_id: self.key_id,
            team_id: self.team_id,
            user_id: self.user_id,
            model_requested: self.model_requested,
            model_resolved: self.model_resolved,
            latency_ms: u32::try_from(latency).unwrap_or(u32::MAX),
            client_ip: self.client_ip,
            status: status as i32,
            reason,
            http_status,
            path: self.path,
            ..UsageRecord::default()
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
        } => {
            let details = code_details.filter(|d| !d.is_empty() && *d != "via_upstream");
            match http_status.unwrap_or(0) {
                0 => (
                    RequestStatus::Cancelled,
                    details.unwrap_or("no_response").to_owned(),
                    0,
                ),
                code @ 100..=399 => (RequestStatus::Success, String::new(), code),
                code => (
                    RequestStatus::Errored,
                    details.map_or_else(|| format!("upstream_http_{code}"), str::to_owned),
                    code,
                ),
            }
        }
    }
}

/// The IP of Envoy's `source.address` (`1.2.3.4:5678`, `[::1]:5678`, or a bare address).
pub fn client_ip(source_address: &str) -> String {
    if let Some(rest) = source_address.strip_prefix('[') {
        if let Some((ip, _)) = rest.split_once(']') {
            return ip.to_owned();
        }
    }
    match source_address.rsplit_once(':') {
        // One colon: IPv4 with a port. More: a bare IPv6 address.
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            ip.to_owned()
        }
        _ => source_address.to_owned(),
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
    fn latency_saturates_and_never_goes_negative() {
        let outcome = Outcome::Finished {
            http_status: Some(200),
            code_details: None,
        };
        assert_eq!(draft().finish(outcome, i64::MAX).latency_ms, u32::MAX);
        assert_eq!(draft().finish(outcome, 0).latency_ms, 0);
    }

    #[test]
    fn client_ip_drops_the_port() {
        assert_eq!(client_ip("10.1.2.3:51234"), "10.1.2.3");
        assert_eq!(client_ip("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(client_ip("2001:db8::1"), "2001:db8::1");
        assert_eq!(client_ip("10.1.2.3"), "10.1.2.3");
        assert_eq!(client_ip(""), "");
    }

    #[test]
    fn path_only_drops_the_query() {
        assert_eq!(path_only("/v1/models?key=secret"), "/v1/models");
        assert_eq!(path_only("/v1/models"), "/v1/models");
    }
}
