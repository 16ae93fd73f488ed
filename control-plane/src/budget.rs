//! Budgets: how much a team, key or user may spend per window, and where each window starts
//! and ends.
//!
//! A rolling budget repeats windows of its duration from its anchor (the scope's creation, or
//! the last change of its budget period): with an anchor at 10:17 and `1h`, windows start at
//! 10:17, 11:17, … A calendar budget aligns windows to UTC days, ISO weeks (Monday) or months.
//! A budget without a period never resets. Windows include their start and exclude their end.
//!
//! The same arithmetic runs in SQL when the spend of every budgeted scope is summed at once
//! (`store/sql.rs`, `WINDOW_START`); `tests/store.rs` checks that both agree.

use std::fmt;
use std::time::Duration;

use time::{Date, Month, OffsetDateTime};

use crate::clock::{parse_duration, Timestamp};

pub const DAY_MS: i64 = 86_400_000;
/// `1m`: shorter windows would reset faster than the filters' snapshots refresh.
pub const MIN_BUDGET_DURATION: Duration = Duration::from_secs(60);
/// `1y` (365 days).
pub const MAX_BUDGET_DURATION: Duration = Duration::from_secs(365 * 86_400);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    #[error("budget_duration {0:?} is invalid: expected a duration from 1m to 1y such as 30m, 12h, 30d, 1y")]
    Duration(String),
    #[error("budget_duration {0:?} is out of range: use 1m to 1y")]
    DurationRange(String),
    #[error(
        "budget_reset {0:?} is invalid: use rolling, calendar-day, calendar-week or calendar-month"
    )]
    Reset(String),
    #[error("budget_duration cannot be combined with a calendar budget_reset (the calendar sets the window)")]
    DurationWithCalendar,
    #[error("max_budget must be a number >= 0, got {0}")]
    MaxBudget(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalendarPeriod {
    Day,
    /// ISO weeks: Monday 00:00 UTC to the next Monday.
    Week,
    Month,
}

impl CalendarPeriod {
    pub const ALL: [Self; 3] = [Self::Day, Self::Week, Self::Month];

    /// The stored form (`budget_calendar` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The calendar window containing `now`. Instants outside the calendar's range (beyond
    /// year ±9999) get a window that starts at `now` and never ends.
    pub fn window_containing(self, now: Timestamp) -> Window {
        self.bounds(now).unwrap_or(Window {
            start: now,
            reset_at: None,
        })
    }

    fn bounds(self, now: Timestamp) -> Option<Window> {
        let date =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(now.as_millis()) * 1_000_000)
                .ok()?
                .date();
        let (start, end) = match self {
            Self::Day => (date, date.next_day()?),
            Self::Week => {
                let back = i64::from(date.weekday().number_days_from_monday());
                let monday = date.checked_sub(time::Duration::days(back))?;
                (monday, monday.checked_add(time::Duration::days(7))?)
            }
            Self::Month => {
                let first = Date::from_calendar_date(date.year(), date.month(), 1).ok()?;
                let next = if date.month() == Month::December {
                    Date::from_calendar_date(date.year().checked_add(1)?, Month::January, 1)
                } else {
                    Date::from_calendar_date(date.year(), date.month().next(), 1)
                }
                .ok()?;
                (first, next)
            }
        };
        Some(Window {
            start: midnight(start),
            reset_at: Some(midnight(end)),
        })
    }
}

fn midnight(date: Date) -> Timestamp {
    Timestamp::from_millis(date.midnight().assume_utc().unix_timestamp() * 1_000)
}

/// When a budget's windows reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetPeriod {
    /// One window from the anchor on: the budget never resets.
    Lifetime,
    /// Back-to-back windows of this many milliseconds from the anchor.
    Rolling(i64),
    Calendar(CalendarPeriod),
}

impl BudgetPeriod {
    /// Reads `budget_duration` and `budget_reset` as admins write them: no duration and a
    /// rolling reset means the budget never resets.
    pub fn parse(duration: Option<&str>, reset: Option<&str>) -> Result<Self, BudgetError> {
        let duration = duration.map(str::trim).filter(|d| !d.is_empty());
        let reset = reset.map(str::trim).filter(|r| !r.is_empty());
        if let Some(r) = reset.filter(|r| *r != "rolling") {
            let period = r
                .strip_prefix("calendar-")
                .and_then(CalendarPeriod::parse)
                .ok_or_else(|| BudgetError::Reset(r.to_owned()))?;
            return match duration {
                Some(_) => Err(BudgetError::DurationWithCalendar),
                None => Ok(Self::Calendar(period)),
            };
        }
        let Some(text) = duration else {
            return Ok(Self::Lifetime);
        };
        let d = parse_duration(text).map_err(|_| BudgetError::Duration(text.to_owned()))?;
        if !(MIN_BUDGET_DURATION..=MAX_BUDGET_DURATION).contains(&d) {
            return Err(BudgetError::DurationRange(text.to_owned()));
        }
        let ms = i64::try_from(d.as_millis())
            .map_err(|_| BudgetError::DurationRange(text.to_owned()))?;
        Ok(Self::Rolling(ms))
    }

    /// The stored columns: (`budget_duration_ms`, `budget_calendar`).
    pub fn to_columns(self) -> (Option<i64>, Option<&'static str>) {
        match self {
            Self::Lifetime => (None, None),
            Self::Rolling(ms) => (Some(ms), None),
            Self::Calendar(p) => (None, Some(p.as_str())),
        }
    }

    pub fn from_columns(duration_ms: Option<i64>, calendar: Option<&str>) -> Option<Self> {
        match (duration_ms, calendar) {
            (None, None) => Some(Self::Lifetime),
            (Some(ms), None) if ms > 0 => Some(Self::Rolling(ms)),
            (None, Some(c)) => CalendarPeriod::parse(c).map(Self::Calendar),
            _ => None,
        }
    }

    /// `budget_duration` as shown to admins (`30d`); `None` unless rolling.
    pub fn duration_text(self) -> Option<String> {
        match self {
            Self::Rolling(ms) => Some(duration_text(ms)),
            Self::Lifetime | Self::Calendar(_) => None,
        }
    }

    /// `budget_reset` as shown to admins.
    pub fn reset_text(self) -> &'static str {
        match self {
            Self::Lifetime | Self::Rolling(_) => "rolling",
            Self::Calendar(CalendarPeriod::Day) => "calendar-day",
            Self::Calendar(CalendarPeriod::Week) => "calendar-week",
            Self::Calendar(CalendarPeriod::Month) => "calendar-month",
        }
    }

    /// The snapshot's `Limits.budget_duration`: the rolling duration, the calendar reset, or
    /// empty when the budget never resets.
    pub fn snapshot_text(self) -> String {
        match self {
            Self::Lifetime => String::new(),
            Self::Rolling(ms) => duration_text(ms),
            Self::Calendar(_) => self.reset_text().to_owned(),
        }
    }

    pub fn window_at(self, anchor: Timestamp, now: Timestamp) -> Window {
        match self {
            Self::Lifetime => Window {
                start: anchor,
                reset_at: None,
            },
            Self::Rolling(len) => {
                let (a, n) = (anchor.as_millis(), now.as_millis());
                // Before the anchor (a clock stepped back) the first window applies.
                let start = if n <= a { a } else { a + (n - a) / len * len };
                Window {
                    start: Timestamp::from_millis(start),
                    reset_at: Some(Timestamp::from_millis(start.saturating_add(len))),
                }
            }
            Self::Calendar(period) => period.window_containing(now),
        }
    }
}

/// The largest unit that divides the duration evenly: `30d`, `12h`, `1y`, `90s`.
fn duration_text(ms: i64) -> String {
    const UNITS: [(i64, &str); 5] = [
        (365 * DAY_MS, "y"),
        (DAY_MS, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    UNITS.iter().find(|(unit, _)| ms % unit == 0).map_or_else(
        || format!("{ms}ms"),
        |(unit, name)| format!("{}{name}", ms / unit),
    )
}

/// A spending cap and when it resets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub max_budget: f64,
    pub period: BudgetPeriod,
    /// Where rolling windows (and a lifetime budget) count from.
    pub anchor: Timestamp,
}

impl Budget {
    pub fn window_at(&self, now: Timestamp) -> Window {
        self.period.window_at(self.anchor, now)
    }

    /// Spent at or beyond the cap: a budget of 0 admits nothing.
    pub fn is_exhausted(&self, spend: f64) -> bool {
        spend >= self.max_budget
    }
}

pub fn parse_max_budget(v: f64) -> Result<f64, BudgetError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(BudgetError::MaxBudget(v))
    }
}

/// One budget window: `[start, reset_at)`; `reset_at` is `None` when it never ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: Timestamp,
    pub reset_at: Option<Timestamp>,
}

impl Window {
    pub fn has_ended(&self, now: Timestamp) -> bool {
        self.reset_at.is_some_and(|end| now >= end)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reset_at {
            Some(end) => write!(f, "[{}, {})", self.start.to_rfc3339(), end.to_rfc3339()),
            None => write!(f, "[{}, never)", self.start.to_rfc3339()),
        }
    }
}

/// The start of each calendar window containing `now`, for queries that sum every budget at
/// once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarStarts {
    pub day: Timestamp,
    pub week: Timestamp,
    pub month: Timestamp,
}

impl CalendarStarts {
    pub fn at(now: Timestamp) -> Self {
        Self {
            day: CalendarPeriod::Day.window_containing(now).start,
            week: CalendarPeriod::Week.window_containing(now).start,
            month: CalendarPeriod::Month.window_containing(now).start,
        }
    }
}

#[cfg(test)]
mod tests;
