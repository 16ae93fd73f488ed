//! One audit record in its three shapes: the protobuf the filter sent (what the chain hashes),
//! the columns reports filter on (derived from it, never edited on their own), and the JSON
//! line people and SIEMs read.

use std::collections::BTreeMap;

use modelgate_proto::v1 as pb;
use prost::Message;
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::UsageEntry;

/// How a request ended, as stored in the `status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordStatus {
    Unspecified,
    Success,
    Blocked,
    Errored,
    Cancelled,
}

impl RecordStatus {
    pub const ALL: [Self; 5] = [
        Self::Success,
        Self::Blocked,
        Self::Errored,
        Self::Cancelled,
        Self::Unspecified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Success => "success",
            Self::Blocked => "blocked",
            Self::Errored => "errored",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn from_proto(s: pb::RequestStatus) -> Self {
        match s {
            pb::RequestStatus::Unspecified => Self::Unspecified,
            pb::RequestStatus::Success => Self::Success,
            pb::RequestStatus::Blocked => Self::Blocked,
            pb::RequestStatus::Errored => Self::Errored,
            pb::RequestStatus::Cancelled => Self::Cancelled,
        }
    }

    pub fn to_proto(self) -> pb::RequestStatus {
        match self {
            Self::Unspecified => pb::RequestStatus::Unspecified,
            Self::Success => pb::RequestStatus::Success,
            Self::Blocked => pb::RequestStatus::Blocked,
            Self::Errored => pb::RequestStatus::Errored,
            Self::Cancelled => pb::RequestStatus::Cancelled,
        }
    }
}

/// What a record of the chain is about, as stored in the `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A request a filter reported.
    Request,
    /// An admin call (a write or a denial) the control plane appended.
    Admin,
}

impl RecordKind {
    pub const ALL: [Self; 2] = [Self::Request, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn of(record: &pb::UsageRecord) -> Self {
        if record.admin.is_some() {
            Self::Admin
        } else {
            Self::Request
        }
    }
}

/// The stored form of a record: its canonical protobuf bytes plus the columns derived from
/// it. Verification recomputes the columns the same way, so an edited column shows.
pub fn entry_from_record(record: &pb::UsageRecord) -> UsageEntry {
    UsageEntry {
        request_id: record.request_id.clone(),
        timestamp: Timestamp::from_millis(record.timestamp_ms),
        key_id: record.key_id.clone(),
        team_id: record.team_id.clone(),
        user_id: record.user_id.clone(),
        model: if record.model_resolved.is_empty() {
            record.model_requested.clone()
        } else {
            record.model_resolved.clone()
        },
        tokens_in: i64::try_from(record.tokens_in).unwrap_or(i64::MAX),
        tokens_out: i64::try_from(record.tokens_out).unwrap_or(i64::MAX),
        spend: record.spend,
        status: RecordStatus::from_proto(record.status()),
        kind: RecordKind::of(record),
        encoded: record.encode_to_vec(),
    }
}

/// The first column of `stored` that differs from what its own record bytes say, if any.
/// `Err` when the bytes are not a record at all.
pub fn mismatched_column(stored: &UsageEntry) -> Result<Option<&'static str>, prost::DecodeError> {
    let derived = entry_from_record(&pb::UsageRecord::decode(stored.encoded.as_slice())?);
    let checks: [(&'static str, bool); 11] = [
        ("request_id", derived.request_id == stored.request_id),
        ("timestamp_ms", derived.timestamp == stored.timestamp),
        ("key_id", derived.key_id == stored.key_id),
        ("team_id", derived.team_id == stored.team_id),
        ("user_id", derived.user_id == stored.user_id),
        ("model", derived.model == stored.model),
        ("tokens_in", derived.tokens_in == stored.tokens_in),
        ("tokens_out", derived.tokens_out == stored.tokens_out),
        // Bit equality: both databases store an f64 exactly.
        ("spend", derived.spend.to_bits() == stored.spend.to_bits()),
        ("status", derived.status == stored.status),
        ("kind", derived.kind == stored.kind),
    ];
    Ok(checks.into_iter().find(|(_, ok)| !ok).map(|(name, _)| name))
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// A record as JSON (query `--json`, export, the JSONL sink): the field names of the audit
/// record in DESIGN.md, plus `seq`, its place in the chain. Empty strings become `null`.
#[derive(Debug, Serialize)]
pub struct RecordJson<'a> {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    pub request_id: &'a str,
    pub user_id: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub model_resolved: Option<&'a str>,
    pub prompt_sha256: Option<&'a str>,
    /// The prompt as the team's policy redacted it, or `null`: never the raw prompt.
    pub prompt_redacted: Option<&'a str>,
    pub response_sha256: Option<&'a str>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub tokens_estimated: bool,
    pub spend: f64,
    pub latency_ms: u32,
    pub ttft_ms: Option<u32>,
    pub client_ip: Option<&'a str>,
    pub status: &'static str,
    pub reason: Option<&'a str>,
    /// Entity type -> how many values were redacted (never the values).
    pub redactions: BTreeMap<&'a str, u64>,
    pub redaction_bypassed: bool,
    pub http_status: u32,
    pub path: Option<&'a str>,
    pub stream: bool,
    /// "key", "jwt" or "asserted"; `null` in records from filters that predate it.
    pub auth_method: Option<&'a str>,
    /// The JWT's issuer when `auth_method` is "jwt".
    pub issuer: Option<&'a str>,
    /// Which request text redaction covered: "full" or the kinds ("messages,tool_calls");
    /// `null` when no policy applied, or in records from filters that predate it.
    pub redaction_scope: Option<&'a str>,
    /// "request" or "admin".
    pub kind: &'static str,
    /// What an admin record is about; `null` on requests.
    pub admin: Option<AdminJson<'a>>,
}

/// An admin call in a record's JSON.
#[derive(Debug, Serialize)]
pub struct AdminJson<'a> {
    /// "master_key" (break-glass), "admin_key" or "idp_token".
    pub principal: &'a str,
    pub admin_key_id: Option<&'a str>,
    pub actor: &'a str,
    pub role: &'a str,
    pub action: &'a str,
    pub object_kind: Option<&'a str>,
    pub object_id: Option<&'a str>,
    pub allowed: bool,
    pub changes: Vec<ChangeJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ChangeJson<'a> {
    pub field: &'a str,
    pub before: &'a str,
    pub after: &'a str,
}

impl<'a> AdminJson<'a> {
    fn new(a: &'a pb::AdminAction) -> Self {
        Self {
            principal: &a.principal,
            admin_key_id: non_empty(&a.admin_key_id),
            actor: &a.actor,
            role: &a.role,
            action: &a.action,
            object_kind: non_empty(&a.object_kind),
            object_id: non_empty(&a.object_id),
            allowed: a.allowed,
            changes: a
                .changes
                .iter()
                .map(|c| ChangeJson {
                    field: &c.field,
                    before: &c.before,
                    after: &c.after,
                })
                .collect(),
        }
    }
}

impl<'a> RecordJson<'a> {
    pub fn new(seq: u64, r: &'a pb::UsageRecord) -> Self {
        let mut redactions = BTreeMap::new();
        for e in &r.redactions {
            *redactions.entry(e.entity_type.as_str()).or_insert(0) += u64::from(e.count);
        }
        Self {
            seq,
            timestamp: Timestamp::from_millis(r.timestamp_ms).to_rfc3339(),
            request_id: &r.request_id,
            user_id: non_empty(&r.user_id),
            key_id: non_empty(&r.key_id),
            team_id: non_empty(&r.team_id),
            model: non_empty(&r.model_requested),
            model_resolved: non_empty(&r.model_resolved),
            prompt_sha256: non_empty(&r.prompt_sha256),
            prompt_redacted: non_empty(&r.prompt_redacted),
            response_sha256: non_empty(&r.response_sha256),
            tokens_in: r.tokens_in,
            tokens_out: r.tokens_out,
            tokens_estimated: r.tokens_estimated,
            spend: r.spend,
            latency_ms: r.latency_ms,
            ttft_ms: (r.ttft_ms != 0).then_some(r.ttft_ms),
            client_ip: non_empty(&r.client_ip),
            status: RecordStatus::from_proto(r.status()).as_str(),
            reason: non_empty(&r.reason),
            redactions,
            redaction_bypassed: r.redaction_bypassed,
            http_status: r.http_status,
            path: non_empty(&r.path),
            stream: r.stream,
            auth_method: non_empty(&r.auth_method),
            issuer: non_empty(&r.issuer),
            redaction_scope: non_empty(&r.redaction_scope),
            kind: RecordKind::of(r).as_str(),
            admin: r.admin.as_ref().map(AdminJson::new),
        }
    }

    /// One line of JSONL, newline included.
    pub fn to_line(&self) -> Result<String, serde_json::Error> {
        let mut line = serde_json::to_string(self)?;
        line.push('\n');
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> pb::UsageRecord {
        pb::UsageRecord {
            request_id: "req-1".into(),
            timestamp_ms: 1_767_323_045_678,
            key_id: "abcdefghijkl".into(),
            team_id: "team_x".into(),
            user_id: "ana@example.com".into(),
            model_requested: "llama3".into(),
            model_resolved: "llama3.1:8b".into(),
            prompt_sha256: "ab".repeat(32),
            tokens_in: 12,
            tokens_out: 34,
            spend: 0.25,
            latency_ms: 120,
            status: pb::RequestStatus::Blocked.into(),
            reason: "rpm_limit".into(),
            http_status: 429,
            redactions: vec![
                pb::EntityCount {
                    entity_type: "email".into(),
                    count: 2,
                },
                pb::EntityCount {
                    entity_type: "email".into(),
                    count: 1,
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn columns_come_from_the_record() {
        let r = record();
        let e = entry_from_record(&r);
        assert_eq!(e.model, "llama3.1:8b");
        assert_eq!(e.status, RecordStatus::Blocked);
        assert_eq!(e.encoded, r.encode_to_vec());
        assert_eq!(mismatched_column(&e).unwrap(), None);

        let unresolved = pb::UsageRecord {
            model_resolved: String::new(),
            ..record()
        };
        assert_eq!(entry_from_record(&unresolved).model, "llama3");

        let mut edited = e.clone();
        edited.spend = 0.0;
        assert_eq!(mismatched_column(&edited).unwrap(), Some("spend"));
        let mut edited = e;
        edited.encoded = vec![0xff, 0xff];
        assert!(mismatched_column(&edited).is_err());
    }

    #[test]
    fn json_uses_the_design_field_names() {
        let r = record();
        let v: serde_json::Value =
            serde_json::from_str(RecordJson::new(7, &r).to_line().unwrap().trim_end()).unwrap();
        assert_eq!(v["seq"], 7);
        assert_eq!(v["timestamp"], "2026-01-02T03:04:05.678Z");
        assert_eq!(v["model"], "llama3");
        assert_eq!(v["model_resolved"], "llama3.1:8b");
        assert_eq!(v["status"], "blocked");
        assert_eq!(v["reason"], "rpm_limit");
        assert_eq!(v["redactions"], serde_json::json!({"email": 3}));
        assert!(v["prompt_redacted"].is_null());
        assert!(v["ttft_ms"].is_null());
        for field in [
            "request_id",
            "user_id",
            "key_id",
            "team_id",
            "prompt_sha256",
            "response_sha256",
            "tokens_in",
            "tokens_out",
            "tokens_estimated",
            "spend",
            "latency_ms",
            "client_ip",
            "redaction_bypassed",
            "http_status",
            "path",
            "stream",
            "auth_method",
            "issuer",
            "redaction_scope",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in RecordStatus::ALL {
            assert_eq!(RecordStatus::parse(s.as_str()), Some(s));
            assert_eq!(RecordStatus::from_proto(s.to_proto()), s);
        }
        assert_eq!(RecordStatus::parse("ok"), None);
    }
}
