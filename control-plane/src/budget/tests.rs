use super::*;

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn window(start: &str, end: &str) -> Window {
    Window {
        start: at(start),
        reset_at: Some(at(end)),
    }
}

fn calendar(period: CalendarPeriod, now: &str) -> Window {
    BudgetPeriod::Calendar(period).window_at(Timestamp::from_millis(0), at(now))
}

#[test]
fn periods_parse_from_duration_and_reset() {
    assert_eq!(BudgetPeriod::parse(None, None), Ok(BudgetPeriod::Lifetime));
    assert_eq!(
        BudgetPeriod::parse(Some(" "), Some("")),
        Ok(BudgetPeriod::Lifetime)
    );
    assert_eq!(
        BudgetPeriod::parse(Some("30d"), None),
        Ok(BudgetPeriod::Rolling(30 * DAY_MS))
    );
    assert_eq!(
        BudgetPeriod::parse(Some("1m"), Some("rolling")),
        Ok(BudgetPeriod::Rolling(60_000))
    );
    assert_eq!(
        BudgetPeriod::parse(Some("1y"), None),
        Ok(BudgetPeriod::Rolling(365 * DAY_MS))
    );
    assert_eq!(
        BudgetPeriod::parse(None, Some("calendar-month")),
        Ok(BudgetPeriod::Calendar(CalendarPeriod::Month))
    );
    assert_eq!(
        BudgetPeriod::parse(None, Some("calendar-week")),
        Ok(BudgetPeriod::Calendar(CalendarPeriod::Week))
    );
    assert_eq!(
        BudgetPeriod::parse(Some(""), Some("calendar-day")),
        Ok(BudgetPeriod::Calendar(CalendarPeriod::Day))
    );
}

#[test]
fn bad_periods_name_the_field() {
    assert_eq!(
        BudgetPeriod::parse(Some("59s"), None),
        Err(BudgetError::DurationRange("59s".into()))
    );
    assert_eq!(
        BudgetPeriod::parse(Some("366d"), None),
        Err(BudgetError::DurationRange("366d".into()))
    );
    assert_eq!(
        BudgetPeriod::parse(Some("1mo"), None),
        Err(BudgetError::Duration("1mo".into()))
    );
    assert_eq!(
        BudgetPeriod::parse(None, Some("monthly")),
        Err(BudgetError::Reset("monthly".into()))
    );
    assert_eq!(
        BudgetPeriod::parse(None, Some("calendar-year")),
        Err(BudgetError::Reset("calendar-year".into()))
    );
    assert_eq!(
        BudgetPeriod::parse(Some("30d"), Some("calendar-month")),
        Err(BudgetError::DurationWithCalendar)
    );
    let msg = BudgetPeriod::parse(Some("2x"), None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("budget_duration \"2x\" is invalid"),
        "{msg}"
    );
}

#[test]
fn periods_round_trip_through_columns_and_text() {
    for p in [
        BudgetPeriod::Lifetime,
        BudgetPeriod::Rolling(90_000),
        BudgetPeriod::Calendar(CalendarPeriod::Week),
    ] {
        let (ms, cal) = p.to_columns();
        assert_eq!(BudgetPeriod::from_columns(ms, cal), Some(p));
    }
    assert_eq!(BudgetPeriod::from_columns(Some(1), Some("day")), None);
    assert_eq!(BudgetPeriod::from_columns(None, Some("year")), None);
    assert_eq!(BudgetPeriod::from_columns(Some(0), None), None);

    let text = |s: &str| {
        BudgetPeriod::parse(Some(s), None)
            .unwrap()
            .duration_text()
            .unwrap()
    };
    assert_eq!(text("30d"), "30d");
    assert_eq!(text("720h"), "30d");
    assert_eq!(text("365d"), "1y");
    assert_eq!(text("90s"), "90s");
    assert_eq!(text("1w"), "7d");
    assert_eq!(text("60m"), "1h");
    assert_eq!(BudgetPeriod::Lifetime.snapshot_text(), "");
    assert_eq!(
        BudgetPeriod::Calendar(CalendarPeriod::Month).snapshot_text(),
        "calendar-month"
    );
    assert_eq!(BudgetPeriod::Rolling(DAY_MS).snapshot_text(), "1d");
}

#[test]
fn rolling_windows_repeat_from_the_anchor() {
    let anchor = at("2026-01-31T10:17:30.250Z");
    let hour = BudgetPeriod::Rolling(3_600_000);
    // The anchor itself opens the first window.
    assert_eq!(
        hour.window_at(anchor, anchor),
        window("2026-01-31T10:17:30.250Z", "2026-01-31T11:17:30.250Z")
    );
    // One millisecond before the end is still inside; the end opens the next window.
    assert_eq!(
        hour.window_at(anchor, at("2026-01-31T11:17:30.249Z")).start,
        anchor
    );
    assert_eq!(
        hour.window_at(anchor, at("2026-01-31T11:17:30.250Z")),
        window("2026-01-31T11:17:30.250Z", "2026-01-31T12:17:30.250Z")
    );
    // Many windows later, across a month end: no drift.
    assert_eq!(
        hour.window_at(anchor, at("2026-02-03T00:00:00Z")),
        window("2026-02-02T23:17:30.250Z", "2026-02-03T00:17:30.250Z")
    );
    // A clock that stepped back before the anchor sees the first window.
    assert_eq!(
        hour.window_at(anchor, at("2026-01-01T00:00:00Z")).start,
        anchor
    );
}

#[test]
fn rolling_30_days_ignore_calendar_months_and_leap_days() {
    let anchor = at("2024-01-31T00:00:00Z");
    let thirty = BudgetPeriod::Rolling(30 * DAY_MS);
    // 2024 is a leap year: 30 days after Jan 31 is Mar 1, after that Mar 31.
    assert_eq!(
        thirty.window_at(anchor, at("2024-02-29T23:59:59.999Z")),
        window("2024-01-31T00:00:00Z", "2024-03-01T00:00:00Z")
    );
    assert_eq!(
        thirty.window_at(anchor, at("2024-03-01T00:00:00Z")),
        window("2024-03-01T00:00:00Z", "2024-03-31T00:00:00Z")
    );
    let year = BudgetPeriod::Rolling(365 * DAY_MS);
    // A 365-day year starting before a leap day ends one calendar day early.
    assert_eq!(
        year.window_at(at("2024-01-01T00:00:00Z"), at("2024-12-31T12:00:00Z")),
        window("2024-12-31T00:00:00Z", "2025-12-31T00:00:00Z")
    );
}

#[test]
fn lifetime_windows_never_end() {
    let anchor = at("2026-01-01T00:00:00Z");
    let w = BudgetPeriod::Lifetime.window_at(anchor, at("2099-01-01T00:00:00Z"));
    assert_eq!(
        w,
        Window {
            start: anchor,
            reset_at: None
        }
    );
    assert!(!w.has_ended(Timestamp::from_millis(i64::MAX)));
}

#[test]
fn calendar_days_are_utc_days() {
    assert_eq!(
        calendar(CalendarPeriod::Day, "2026-03-29T01:30:00+02:00"),
        window("2026-03-28T00:00:00Z", "2026-03-29T00:00:00Z")
    );
    assert_eq!(
        calendar(CalendarPeriod::Day, "2026-03-29T00:00:00Z"),
        window("2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z")
    );
    assert_eq!(
        calendar(CalendarPeriod::Day, "2026-12-31T23:59:59.999Z"),
        window("2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z")
    );
    assert_eq!(
        calendar(CalendarPeriod::Day, "2024-02-28T12:00:00Z"),
        window("2024-02-28T00:00:00Z", "2024-02-29T00:00:00Z")
    );
}

#[test]
fn calendar_weeks_start_on_monday() {
    // 2026-01-01 is a Thursday; its week began on Monday 2025-12-29.
    assert_eq!(
        calendar(CalendarPeriod::Week, "2026-01-01T08:00:00Z"),
        window("2025-12-29T00:00:00Z", "2026-01-05T00:00:00Z")
    );
    // Sunday's last millisecond and Monday's first.
    assert_eq!(
        calendar(CalendarPeriod::Week, "2026-01-04T23:59:59.999Z").start,
        at("2025-12-29T00:00:00Z")
    );
    assert_eq!(
        calendar(CalendarPeriod::Week, "2026-01-05T00:00:00Z"),
        window("2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z")
    );
    // Across the leap day.
    assert_eq!(
        calendar(CalendarPeriod::Week, "2024-02-29T10:00:00Z"),
        window("2024-02-26T00:00:00Z", "2024-03-04T00:00:00Z")
    );
    // The Unix epoch was a Thursday.
    assert_eq!(
        calendar(CalendarPeriod::Week, "1970-01-01T00:00:00Z").start,
        at("1969-12-29T00:00:00Z")
    );
}

#[test]
fn calendar_months_have_their_own_lengths() {
    assert_eq!(
        calendar(CalendarPeriod::Month, "2024-02-29T23:59:59.999Z"),
        window("2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z")
    );
    assert_eq!(
        calendar(CalendarPeriod::Month, "2025-02-15T00:00:00Z"),
        window("2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z")
    );
    assert_eq!(
        calendar(CalendarPeriod::Month, "2026-04-30T12:00:00Z"),
        window("2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z")
    );
    assert_eq!(
        calendar(CalendarPeriod::Month, "2026-12-31T23:59:59.999Z"),
        window("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")
    );
    assert_eq!(
        calendar(CalendarPeriod::Month, "2027-01-01T00:00:00Z"),
        window("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")
    );
    // 2100 is not a leap year.
    assert_eq!(
        calendar(CalendarPeriod::Month, "2100-02-28T00:00:00Z").reset_at,
        Some(at("2100-03-01T00:00:00Z"))
    );
}

#[test]
fn out_of_range_instants_get_an_open_window() {
    let far = Timestamp::from_millis(i64::MAX);
    for p in CalendarPeriod::ALL {
        let w = p.window_containing(far);
        assert_eq!(w.start, far);
        assert_eq!(w.reset_at, None);
    }
    let w = BudgetPeriod::Rolling(60_000).window_at(Timestamp::from_millis(0), far);
    assert!(w.reset_at.unwrap() >= w.start);
}

#[test]
fn calendar_starts_match_each_period() {
    let now = at("2026-05-14T15:00:00Z");
    let starts = CalendarStarts::at(now);
    assert_eq!(starts.day, at("2026-05-14T00:00:00Z"));
    assert_eq!(starts.week, at("2026-05-11T00:00:00Z"));
    assert_eq!(starts.month, at("2026-05-01T00:00:00Z"));
}

#[test]
fn exhaustion_is_spend_at_or_over_the_cap() {
    let b = Budget {
        max_budget: 10.0,
        period: BudgetPeriod::Lifetime,
        anchor: Timestamp::from_millis(0),
    };
    assert!(!b.is_exhausted(9.999));
    assert!(b.is_exhausted(10.0));
    let zero = Budget {
        max_budget: 0.0,
        ..b
    };
    assert!(zero.is_exhausted(0.0));
    assert_eq!(parse_max_budget(0.0), Ok(0.0));
    assert!(parse_max_budget(-1.0).is_err());
    assert!(parse_max_budget(f64::NAN).is_err());
    assert!(parse_max_budget(f64::INFINITY).is_err());
}
