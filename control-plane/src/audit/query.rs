//! Reading the log: which records (filters, time ranges as admins type them), pages, and
//! per-key/team/user/model reports.

use std::fmt;

use super::record::{RecordKind, RecordStatus};
use crate::clock::{parse_duration, DurationError, Timestamp};

/// `None` fields match everything. Times: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub user_id: Option<String>,
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    pub model: Option<String>,
    pub status: Option<RecordStatus>,
    pub kind: Option<RecordKind>,
}

/// Where a page ends: records are ordered by `(timestamp, seq)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryCursor {
    pub timestamp: Timestamp,
    pub seq: u64,
}

impl QueryCursor {
    /// The opaque page token handed to gRPC clients.
    pub fn to_token(self) -> String {
        format!("{}.{}", self.timestamp.as_millis(), self.seq)
    }

    pub fn parse_token(token: &str) -> Option<Self> {
        let (ts, seq) = token.split_once('.')?;
        Some(Self {
            timestamp: Timestamp::from_millis(ts.parse().ok()?),
            seq: seq.parse().ok()?,
        })
    }
}

/// One stored record: its position, time and protobuf bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub seq: u64,
    pub timestamp: Timestamp,
    pub record: Vec<u8>,
}

impl StoredRecord {
    pub fn cursor(&self) -> QueryCursor {
        QueryCursor {
            timestamp: self.timestamp,
            seq: self.seq,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Key,
    Team,
    User,
    Model,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Team => "team",
            Self::User => "user",
            Self::Model => "model",
        }
    }
}

/// Totals of one key, team, user or model over a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportRow {
    pub group: String,
    pub requests: u64,
    pub success: u64,
    pub blocked: u64,
    pub errored: u64,
    pub cancelled: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub spend: f64,
}

/// What `audit prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    pub records_deleted: u64,
    pub checkpoints_deleted: u64,
    /// The checkpoint (number, seq) the remaining chain starts from; `None` when nothing could
    /// be pruned (no checkpoint before the cutoff).
    pub anchor: Option<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeArgError {
    #[error("invalid time {input:?}: use RFC 3339 (2026-01-02T15:04:05Z), a time ago like 2h or 7d, or 'now'")]
    Invalid { input: String },
    #[error("invalid time {input:?}: {source}")]
    Duration {
        input: String,
        source: DurationError,
    },
}

/// `--from`/`--to`: an RFC 3339 time, `now`, or a duration meaning that long ago (`2h`).
pub fn parse_time_arg(input: &str, now: Timestamp) -> Result<Timestamp, TimeArgError> {
    let s = input.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Ok(t) = Timestamp::parse_rfc3339(s) {
        return Ok(t);
    }
    if !s.starts_with(|c: char| c.is_ascii_digit()) || s.contains(['-', ':']) {
        return Err(TimeArgError::Invalid {
            input: s.to_owned(),
        });
    }
    let ago = parse_duration(s).map_err(|source| TimeArgError::Duration {
        input: s.to_owned(),
        source,
    })?;
    let ms = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
    Ok(Timestamp::from_millis(now.as_millis().saturating_sub(ms)))
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arguments() {
        let now = Timestamp::from_millis(10_000_000);
        assert_eq!(parse_time_arg("now", now), Ok(now));
        assert_eq!(
            parse_time_arg("2h", now),
            Ok(Timestamp::from_millis(10_000_000 - 7_200_000))
        );
        assert_eq!(
            parse_time_arg("2026-01-02T03:04:05.678Z", now),
            Ok(Timestamp::from_millis(1_767_323_045_678))
        );
        assert!(matches!(
            parse_time_arg("yesterday", now),
            Err(TimeArgError::Invalid { .. })
        ));
        assert!(matches!(
            parse_time_arg("2026-01-02", now),
            Err(TimeArgError::Invalid { .. })
        ));
        assert!(matches!(
            parse_time_arg("0h", now),
            Err(TimeArgError::Duration { .. })
        ));
    }

    #[test]
    fn page_tokens_round_trip() {
        let c = QueryCursor {
            timestamp: Timestamp::from_millis(1_700_000_000_123),
            seq: 42,
        };
        assert_eq!(QueryCursor::parse_token(&c.to_token()), Some(c));
        assert_eq!(QueryCursor::parse_token("x"), None);
        assert_eq!(QueryCursor::parse_token("1.x"), None);
    }
}
