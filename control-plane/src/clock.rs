//! Wall-clock instants as stored and sent (milliseconds since the Unix epoch, UTC) and the
//! human durations admins type (`30d`, `12h`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, UTC. Integer milliseconds keep SQLite and PostgreSQL
/// columns identical (`BIGINT`) and match the protocol's `*_ms` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        // A clock before 1970 is a broken host; clamping keeps the arithmetic total.
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self(ms)
    }

    /// `None` when the result would not fit (the caller asked for an absurd duration).
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let ms = i64::try_from(d.as_millis()).ok()?;
        self.0.checked_add(ms).map(Self)
    }

    pub fn parse_rfc3339(s: &str) -> Result<Self, DurationError> {
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| DurationError::Invalid)?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms)
            .map(Self)
            .map_err(|_| DurationError::TooLarge)
    }

    /// RFC 3339 in UTC with exactly three fractional digits, e.g. `2026-01-02T03:04:05.670Z`
    /// (fixed width, so listings line up and strings sort by time).
    pub fn to_rfc3339(self) -> String {
        self.format(true)
    }

    /// RFC 3339 in UTC to the second, for tables people read.
    pub fn to_rfc3339_seconds(self) -> String {
        self.format(false)
    }

    fn format(self, millis: bool) -> String {
        let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
        else {
            return format!("{}ms", self.0);
        };
        let date = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        if millis {
            format!("{date}.{:03}Z", t.millisecond())
        } else {
            format!("{date}Z")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a duration like 15m, 12h, 30d, 1y or an RFC 3339 timestamp")]
    Invalid,
    #[error("a duration must be greater than zero")]
    Zero,
    #[error("the duration is too large")]
    TooLarge,
}

/// Parses `<n><unit>` with unit `s`, `m` (minutes), `h`, `d`, `w` or `y` (365 days).
/// Months are not offered: `1m` already means one minute and a calendar month has no fixed length.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(DurationError::Invalid)?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(DurationError::Invalid);
    }
    let n: u64 = digits.parse().map_err(|_| DurationError::TooLarge)?;
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(DurationError::Invalid),
    };
    if n == 0 {
        return Err(DurationError::Zero);
    }
    let secs = n.checked_mul(unit_secs).ok_or(DurationError::TooLarge)?;
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(1_209_600)));
        assert_eq!(parse_duration("1y"), Ok(Duration::from_secs(31_536_000)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration(" 1d "), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["", "d", "30", "30x", "-1d", "1.5h", "1 d", "1mo", "1D"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Invalid), "{bad:?}");
        }
        assert_eq!(parse_duration("0d"), Err(DurationError::Zero));
        assert_eq!(
            parse_duration("99999999999999999999y"),
            Err(DurationError::TooLarge)
        );
        assert_eq!(
            parse_duration("999999999999999y"),
            Err(DurationError::TooLarge)
        );
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-01-02T03:04:05.678Z").unwrap();
        assert_eq!(t.as_millis(), 1_767_323_045_678);
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05.678Z");
        assert_eq!(t.to_rfc3339_seconds(), "2026-01-02T03:04:05Z");
        let whole = Timestamp::parse_rfc3339("2026-01-02T03:04:05.6Z").unwrap();
        assert_eq!(whole.to_rfc3339(), "2026-01-02T03:04:05.600Z");
        let offset = Timestamp::parse_rfc3339("2026-01-02T05:04:05.678+02:00").unwrap();
        assert_eq!(offset, t);
        assert!(Timestamp::parse_rfc3339("2026-01-02").is_err());
    }

    #[test]
    fn checked_add_detects_overflow() {
        let t = Timestamp::from_millis(1_000);
        assert_eq!(
            t.checked_add(Duration::from_secs(1)),
            Some(Timestamp::from_millis(2_000))
        );
        assert_eq!(
            Timestamp::from_millis(i64::MAX).checked_add(Duration::from_millis(1)),
            None
        );
    }
}
