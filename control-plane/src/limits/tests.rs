use super::*;
use crate::budget::{BudgetError, CalendarPeriod};
use crate::domain::Team;

const DAY: i64 = 86_400_000;

fn now() -> Timestamp {
    Timestamp::from_millis(1_000_000)
}

fn input() -> LimitsInput {
    LimitsInput::default()
}

#[test]
fn new_limits_validate_each_field() {
    let limits = LimitsInput {
        rpm: Some(100),
        tpm: Some(10_000),
        max_parallel: Some(4),
        max_budget: Some(10.0),
        budget_duration: Some("30d".into()),
        budget_reset: None,
    }
    .to_limits(now())
    .unwrap();
    assert_eq!(limits.rpm, Some(100));
    assert_eq!(limits.max_parallel, Some(4));
    let budget = limits.budget.unwrap();
    assert_eq!(budget.max_budget, 10.0);
    assert_eq!(budget.period, BudgetPeriod::Rolling(30 * DAY));
    assert_eq!(budget.anchor, now());

    assert_eq!(input().to_limits(now()).unwrap(), Limits::default());
    let zero = LimitsInput {
        rpm: Some(0),
        ..input()
    };
    assert_eq!(
        zero.to_limits(now()),
        Err(ValidationError::LimitZero("rpm_limit"))
    );
    let huge = LimitsInput {
        tpm: Some(u64::MAX),
        ..input()
    };
    assert_eq!(
        huge.to_limits(now()),
        Err(ValidationError::LimitTooLarge("tpm_limit"))
    );
    let negative = LimitsInput {
        max_budget: Some(-0.01),
        ..input()
    };
    assert_eq!(
        negative.to_limits(now()),
        Err(ValidationError::Budget(BudgetError::MaxBudget(-0.01)))
    );
    let no_max = LimitsInput {
        budget_duration: Some("1d".into()),
        ..input()
    };
    assert_eq!(
        no_max.to_limits(now()),
        Err(ValidationError::BudgetWithoutMax)
    );
    let lifetime = LimitsInput {
        max_budget: Some(1.0),
        ..input()
    };
    assert_eq!(
        lifetime.to_limits(now()).unwrap().budget.unwrap().period,
        BudgetPeriod::Lifetime
    );
}

#[test]
fn updates_keep_clear_or_replace() {
    let current = LimitsInput {
        rpm: Some(100),
        tpm: Some(1_000),
        max_budget: Some(10.0),
        budget_duration: Some("1d".into()),
        ..input()
    }
    .to_limits(Timestamp::from_millis(0))
    .unwrap();

    let later = now();
    // Only the amount changes: the window keeps its anchor.
    let raised = LimitsInput {
        max_budget: Some(20.0),
        ..input()
    }
    .apply(LimitsClear::default(), &current, later)
    .unwrap();
    let b = raised.budget.unwrap();
    assert_eq!((b.max_budget, b.anchor), (20.0, Timestamp::from_millis(0)));
    assert_eq!(raised.rpm, Some(100));

    // A new period starts a new window now.
    let weekly = LimitsInput {
        budget_duration: Some("7d".into()),
        ..input()
    }
    .apply(LimitsClear::default(), &current, later)
    .unwrap()
    .budget
    .unwrap();
    assert_eq!(weekly.period, BudgetPeriod::Rolling(7 * DAY));
    assert_eq!((weekly.max_budget, weekly.anchor), (10.0, later));

    let monthly = LimitsInput {
        budget_reset: Some("calendar-month".into()),
        ..input()
    }
    .apply(LimitsClear::default(), &current, later)
    .unwrap()
    .budget
    .unwrap();
    assert_eq!(
        monthly.period,
        BudgetPeriod::Calendar(CalendarPeriod::Month)
    );

    // Back to rolling keeps a rolling duration; from a calendar it never resets.
    let same = LimitsInput {
        budget_reset: Some("rolling".into()),
        ..input()
    };
    assert_eq!(
        same.apply(LimitsClear::default(), &current, later)
            .unwrap()
            .budget,
        current.budget
    );
    let from_calendar = Limits {
        budget: Some(monthly),
        ..current
    };
    assert_eq!(
        same.apply(LimitsClear::default(), &from_calendar, later)
            .unwrap()
            .budget
            .unwrap()
            .period,
        BudgetPeriod::Lifetime
    );

    let mut clear = LimitsClear::default();
    assert!(clear.take("rpm_limit") && clear.take("budget_duration"));
    assert!(!clear.take("models"));
    let cleared = input().apply(clear, &current, later).unwrap();
    assert_eq!(cleared.rpm, None);
    assert_eq!(cleared.tpm, Some(1_000));
    let b = cleared.budget.unwrap();
    assert_eq!(b.period, BudgetPeriod::Lifetime);
    assert_eq!(b.anchor, later);

    let no_budget = input()
        .apply(
            LimitsClear {
                budget: true,
                ..LimitsClear::default()
            },
            &current,
            later,
        )
        .unwrap();
    assert_eq!(no_budget.budget, None);
}

#[test]
fn setting_and_clearing_the_same_field_is_refused() {
    let current = Limits::default();
    let both = LimitsInput {
        rpm: Some(5),
        ..input()
    };
    let clear = LimitsClear {
        rpm: true,
        ..LimitsClear::default()
    };
    assert_eq!(
        both.apply(clear, &current, now()),
        Err(ValidationError::SetAndCleared("rpm_limit"))
    );
    let budget = LimitsInput {
        max_budget: Some(1.0),
        ..input()
    };
    let clear = LimitsClear {
        budget: true,
        ..LimitsClear::default()
    };
    assert_eq!(
        budget.apply(clear, &current, now()),
        Err(ValidationError::SetAndCleared("max_budget"))
    );
    let duration = LimitsInput {
        max_budget: Some(1.0),
        budget_duration: Some("1d".into()),
        ..input()
    };
    let clear = LimitsClear {
        budget_duration: true,
        ..LimitsClear::default()
    };
    assert_eq!(
        duration.apply(clear, &current, now()),
        Err(ValidationError::SetAndCleared("budget_duration"))
    );
}

#[test]
fn keys_inherit_team_rate_limits_but_not_its_budget() {
    let team = LimitsInput {
        rpm: Some(100),
        tpm: Some(1_000),
        max_parallel: Some(4),
        max_budget: Some(10.0),
        ..input()
    }
    .to_limits(now())
    .unwrap();
    let key = Limits {
        rpm: Some(10),
        ..Limits::default()
    };
    let effective = key.inheriting(&team);
    assert_eq!(effective.rpm, Some(10));
    assert_eq!(effective.tpm, Some(1_000));
    assert_eq!(effective.max_parallel, Some(4));
    assert_eq!(effective.budget, None);
}

fn team_with(models: &[&str], limits: LimitsInput) -> Team {
    let mut t = Team::new(
        "team_aaaaaaaaaaaa".into(),
        "ml".into(),
        models.iter().map(|m| (*m).to_owned()).collect(),
        now(),
    );
    t.limits = limits.to_limits(now()).unwrap();
    t
}

fn models(list: &[&str]) -> Vec<String> {
    list.iter().map(|m| (*m).to_owned()).collect()
}

#[test]
fn keys_only_narrow_their_team() {
    let team = team_with(
        &["llama3", "qwen2.5-*"],
        LimitsInput {
            rpm: Some(100),
            tpm: Some(10_000),
            max_parallel: Some(4),
            max_budget: Some(10.0),
            ..input()
        },
    );
    let within = LimitsInput {
        rpm: Some(100),
        tpm: Some(1),
        max_parallel: Some(4),
        max_budget: Some(10.0),
        budget_duration: Some("1d".into()),
        ..input()
    }
    .to_limits(now())
    .unwrap();
    check_key_within_team(&models(&["llama3", "qwen2.5-7b"]), &within, &team).unwrap();
    check_key_within_team(&[], &Limits::default(), &team).unwrap();

    let cases = [
        (
            LimitsInput {
                rpm: Some(101),
                ..input()
            },
            "rpm_limit 101 is above team ml's rpm_limit 100",
        ),
        (
            LimitsInput {
                tpm: Some(10_001),
                ..input()
            },
            "tpm_limit 10001 is above team ml's tpm_limit 10000",
        ),
        (
            LimitsInput {
                max_parallel: Some(5),
                ..input()
            },
            "max_parallel_requests 5 is above team ml's max_parallel_requests 4",
        ),
        (
            LimitsInput {
                max_budget: Some(10.5),
                ..input()
            },
            "max_budget 10.5 is above team ml's max_budget 10",
        ),
    ];
    for (limits, message) in cases {
        let err = check_key_within_team(&[], &limits.to_limits(now()).unwrap(), &team)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(message), "{err}");
    }

    let err = check_key_within_team(&models(&["qwen2.5x"]), &Limits::default(), &team).unwrap_err();
    assert!(matches!(
        err,
        ValidationError::ModelOutsideTeam { ref model, .. } if model == "qwen2.5x"
    ));
    assert!(check_key_within_team(&models(&["*"]), &Limits::default(), &team).is_err());
}

#[test]
fn a_team_without_limits_bounds_nothing_but_models() {
    let open = team_with(&["*"], input());
    let anything = LimitsInput {
        rpm: Some(1_000_000),
        max_budget: Some(1e9),
        ..input()
    }
    .to_limits(now())
    .unwrap();
    check_key_within_team(&models(&["any-model", "qwen2.5-*"]), &anything, &open).unwrap();

    let none = team_with(&[], input());
    let err = check_key_within_team(&models(&["llama3"]), &Limits::default(), &none).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("models: \"llama3\" is not within team ml's models (none)"),
        "{err}"
    );
}
