use super::*;
use crate::budget::BudgetPeriod;

const MINUTE: i64 = 60_000;

fn budget(max: f64) -> Budget {
    Budget {
        max_budget: max,
        period: BudgetPeriod::Rolling(MINUTE),
        anchor: Timestamp::from_millis(0),
    }
}

fn tracker_with(id: &str, budget: Budget, spend: f64, now: Timestamp) -> SpendTracker {
    let tracker = SpendTracker::new();
    tracker.write().keys.insert(
        id.to_owned(),
        Tracked {
            budget,
            window: budget.window_at(now),
            spend,
            published: None,
        },
    );
    tracker
}

#[test]
fn tracked_budgets_report_their_spend_against_the_current_amount() {
    let now = Timestamp::from_millis(90_000);
    let tracker = tracker_with("k", budget(1.0), 0.75, now);
    let reader = tracker.reader();
    let state = reader.state(ScopeKind::Key, "k", &budget(1.0), now);
    assert_eq!(state.spend, 0.75);
    assert!(!state.exhausted);
    assert_eq!(state.window.start, Timestamp::from_millis(MINUTE));
    assert_eq!(
        state.window.reset_at,
        Some(Timestamp::from_millis(2 * MINUTE))
    );
    // A lowered amount applies at once, before the tracker reloads.
    assert!(
        reader
            .state(ScopeKind::Key, "k", &budget(0.5), now)
            .exhausted
    );
}

#[test]
fn unknown_changed_or_ended_windows_show_fresh() {
    let now = Timestamp::from_millis(90_000);
    let tracker = tracker_with("k", budget(1.0), 5.0, now);
    let reader = tracker.reader();
    // Not tracked (another kind, another id).
    let fresh = reader.state(ScopeKind::Team, "k", &budget(1.0), now);
    assert_eq!((fresh.spend, fresh.exhausted), (0.0, false));
    // The period changed: the old window's spend does not carry over.
    let daily = Budget {
        period: BudgetPeriod::Rolling(1_440 * MINUTE),
        ..budget(1.0)
    };
    assert_eq!(reader.state(ScopeKind::Key, "k", &daily, now).spend, 0.0);
    // The window ended and the tracker has not rolled it yet.
    let later = Timestamp::from_millis(2 * MINUTE);
    let rolled = reader.state(ScopeKind::Key, "k", &budget(1.0), later);
    assert_eq!(rolled.spend, 0.0);
    assert_eq!(rolled.window.start, later);
    assert!(
        reader
            .state(ScopeKind::Key, "k", &budget(1.0), now)
            .exhausted
    );
}

#[test]
fn a_zero_budget_is_exhausted_from_the_start() {
    let now = Timestamp::from_millis(1);
    assert!(SpendState::fresh(&budget(0.0), now).exhausted);
    assert!(!SpendState::fresh(&budget(0.01), now).exhausted);
}
