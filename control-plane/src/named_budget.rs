//! LiteLLM's budget objects (`/budget/new`): a named set of limits that keys, teams and users
//! take on by naming its `budget_id`.
//!
//! What an attached budget does: its `rpm_limit`, `tpm_limit` and `max_parallel_requests`
//! apply to the key, team or user wherever that scope sets no such limit of its own (a
//! scope's own explicit limit wins, as a key's own limit wins over its team's default). The
//! snapshot carries the resolved values, so the filter enforces them like any other limit.
//!
//! Its `max_budget` is a template too, as in LiteLLM: each key, team or user it is attached
//! to spends against it on its own (not one shared pot), in windows of its `budget_duration`
//! that run from that scope's creation; a scope's own `max_budget` wins. The store reads
//! every scope's effective cap in one place (`store/sql.rs`, `effective_budgets!`), so the
//! spend tracker and the snapshot agree on it. `soft_budget` is LiteLLM's alerting threshold:
//! stored and reported, Modelgate sends no alerts.

use std::collections::HashMap;

use crate::budget::{parse_max_budget, Budget, BudgetError, BudgetPeriod};
use crate::clock::Timestamp;
use crate::domain::{parse_price, PolicyState, ScopeKind, ValidationError};
use crate::limits::{positive, Limits};

const MAX_BUDGET_ID_LEN: usize = 128;

/// A stored budget object.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedBudget {
    pub id: String,
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    /// As the admin wrote it (`30d`), validated as a budget period.
    pub budget_duration: Option<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u32>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl NamedBudget {
    /// `own` with this budget's rate limits filling the ones `own` leaves unset.
    pub fn under(&self, own: &Limits) -> Limits {
        Limits {
            rpm: own.rpm.or(self.rpm),
            tpm: own.tpm.or(self.tpm),
            max_parallel: own.max_parallel.or(self.max_parallel),
            budget: own.budget,
        }
    }

    /// How its `max_budget` resets on each scope it is attached to.
    pub fn period(&self) -> Result<BudgetPeriod, BudgetError> {
        BudgetPeriod::parse(self.budget_duration.as_deref(), None)
    }
}

/// One field of a budget change: keep, set, or unset (`null`).
pub type Field<T> = Option<Option<T>>;

/// A budget object as an admin typed it; on create `None` and `Some(None)` both mean unset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedBudgetInput {
    pub max_budget: Field<f64>,
    pub soft_budget: Field<f64>,
    pub budget_duration: Field<String>,
    pub rpm: Field<u64>,
    pub tpm: Field<u64>,
    pub max_parallel: Field<u32>,
}

fn apply<T>(change: Field<T>, current: Option<T>) -> Option<T> {
    match change {
        None => current,
        Some(v) => v,
    }
}

fn at_least_one<T: Copy + Into<u64>>(
    field: &'static str,
    v: Option<T>,
) -> Result<Option<T>, ValidationError> {
    v.map(|v| positive(field, v)).transpose()
}

/// Unsets `field` for [`NamedBudgetInput::clearing`]; a field both set and cleared is refused.
fn unset<T>(field: &mut Field<T>, name: &'static str) -> Result<(), ValidationError> {
    if matches!(field, Some(Some(_))) {
        return Err(ValidationError::SetAndCleared(name));
    }
    *field = Some(None);
    Ok(())
}

impl NamedBudgetInput {
    /// The fields an update can unset by name.
    pub const CLEARABLE: &'static str =
        "max_budget, soft_budget, budget_duration, rpm_limit, tpm_limit, max_parallel_requests";

    /// This input with the fields named in `clear` unset (the gRPC and CLI `clear` list).
    pub fn clearing(mut self, clear: &[String]) -> Result<Self, ValidationError> {
        for name in clear {
            match name.trim() {
                "max_budget" => unset(&mut self.max_budget, "max_budget")?,
                "soft_budget" => unset(&mut self.soft_budget, "soft_budget")?,
                "budget_duration" => unset(&mut self.budget_duration, "budget_duration")?,
                "rpm_limit" => unset(&mut self.rpm, "rpm_limit")?,
                "tpm_limit" => unset(&mut self.tpm, "tpm_limit")?,
                "max_parallel_requests" => {
                    unset(&mut self.max_parallel, "max_parallel_requests")?;
                }
                other => {
                    return Err(ValidationError::UnknownClear {
                        field: other.to_owned(),
                        allowed: Self::CLEARABLE,
                    })
                }
            }
        }
        Ok(self)
    }

    /// `current` changed by this input (a new budget when `current` is `None`), validated.
    pub fn apply_to(
        self,
        id: &str,
        current: Option<&NamedBudget>,
        now: Timestamp,
    ) -> Result<NamedBudget, ValidationError> {
        let max_budget = apply(self.max_budget, current.and_then(|c| c.max_budget))
            .map(parse_max_budget)
            .transpose()?;
        let soft_budget = apply(self.soft_budget, current.and_then(|c| c.soft_budget))
            .map(|v| parse_price("soft_budget", v))
            .transpose()?;
        let budget_duration = apply(
            self.budget_duration,
            current.and_then(|c| c.budget_duration.clone()),
        )
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
        if let Some(d) = &budget_duration {
            BudgetPeriod::parse(Some(d), None)?;
        }
        Ok(NamedBudget {
            id: id.to_owned(),
            max_budget,
            soft_budget,
            budget_duration,
            rpm: at_least_one("rpm_limit", apply(self.rpm, current.and_then(|c| c.rpm)))?,
            tpm: at_least_one("tpm_limit", apply(self.tpm, current.and_then(|c| c.tpm)))?,
            max_parallel: at_least_one(
                "max_parallel_requests",
                apply(self.max_parallel, current.and_then(|c| c.max_parallel)),
            )?,
            created_at: current.map_or(now, |c| c.created_at),
            updated_at: now,
        })
    }
}

/// A caller-chosen `budget_id`: 1-128 printable characters without spaces.
pub fn parse_budget_id(s: &str) -> Result<String, ValidationError> {
    let s = s.trim();
    let valid = !s.is_empty()
        && s.len() <= MAX_BUDGET_ID_LEN
        && s.chars()
            .all(|c| c.is_ascii_graphic() || c.is_alphanumeric());
    if valid {
        Ok(s.to_owned())
    } else {
        Err(ValidationError::BudgetId(s.chars().take(64).collect()))
    }
}

fn by_kind<T>(scoped: Vec<(ScopeKind, String, T)>) -> HashMap<ScopeKind, HashMap<String, T>> {
    let mut out: HashMap<ScopeKind, HashMap<String, T>> = HashMap::new();
    for (kind, id, v) in scoped {
        out.entry(kind).or_default().insert(id, v);
    }
    out
}

/// Resolves the budget objects that scopes name (`(kind, scope id, budget)`) into those
/// scopes' limits in `state`, and gives scopes without a cap of their own their effective one
/// from `caps` (as the spend tracker follows them), so the snapshot carries what is enforced.
pub fn resolve_into(
    state: &mut PolicyState,
    named: Vec<(ScopeKind, String, NamedBudget)>,
    caps: Vec<(ScopeKind, String, Budget)>,
) {
    let (named, caps) = (by_kind(named), by_kind(caps));
    let apply = |kind: ScopeKind, id: &str, limits: &mut Limits| {
        if let Some(b) = named.get(&kind).and_then(|m| m.get(id)) {
            *limits = b.under(limits);
        }
        if limits.budget.is_none() {
            limits.budget = caps.get(&kind).and_then(|m| m.get(id)).copied();
        }
    };
    for t in &mut state.teams {
        apply(ScopeKind::Team, &t.id, &mut t.limits);
    }
    for k in &mut state.keys {
        apply(ScopeKind::Key, &k.public_id, &mut k.limits);
    }
    for u in &mut state.users {
        apply(ScopeKind::User, &u.id, &mut u.limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> NamedBudgetInput {
        NamedBudgetInput {
            rpm: Some(Some(10)),
            budget_duration: Some(Some("30d".into())),
            ..NamedBudgetInput::default()
        }
    }

    #[test]
    fn a_scopes_own_limit_wins_over_its_budget() {
        let budget = input()
            .apply_to("b", None, Timestamp::from_millis(0))
            .unwrap();
        let own = Limits {
            tpm: Some(5),
            ..Limits::default()
        };
        let resolved = budget.under(&own);
        assert_eq!((resolved.rpm, resolved.tpm), (Some(10), Some(5)));
        let own_rpm = Limits {
            rpm: Some(3),
            ..Limits::default()
        };
        assert_eq!(budget.under(&own_rpm).rpm, Some(3));
    }

    #[test]
    fn updates_keep_absent_fields_and_unset_nulls() {
        let t0 = Timestamp::from_millis(1);
        let budget = input().apply_to("b", None, t0).unwrap();
        let update = NamedBudgetInput {
            tpm: Some(Some(100)),
            budget_duration: Some(None),
            ..NamedBudgetInput::default()
        };
        let updated = update
            .apply_to("b", Some(&budget), Timestamp::from_millis(2))
            .unwrap();
        assert_eq!(updated.rpm, Some(10));
        assert_eq!(updated.tpm, Some(100));
        assert_eq!(updated.budget_duration, None);
        assert_eq!(updated.created_at, t0);
    }

    #[test]
    fn clearing_unsets_named_fields_and_refuses_others() {
        let cleared = input()
            .clearing(&["max_budget".into(), "tpm_limit".into()])
            .unwrap();
        assert_eq!(cleared.max_budget, Some(None));
        assert_eq!((cleared.rpm, cleared.tpm), (Some(Some(10)), Some(None)));
        assert_eq!(
            input().clearing(&["rpm_limit".into()]),
            Err(ValidationError::SetAndCleared("rpm_limit"))
        );
        assert!(matches!(
            input().clearing(&["models".into()]),
            Err(ValidationError::UnknownClear { .. })
        ));
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (
                NamedBudgetInput {
                    rpm: Some(Some(0)),
                    ..NamedBudgetInput::default()
                },
                "rpm_limit",
            ),
            (
                NamedBudgetInput {
                    soft_budget: Some(Some(-1.0)),
                    ..NamedBudgetInput::default()
                },
                "soft_budget",
            ),
            (
                NamedBudgetInput {
                    max_budget: Some(Some(-1.0)),
                    ..NamedBudgetInput::default()
                },
                "max_budget",
            ),
            (
                NamedBudgetInput {
                    budget_duration: Some(Some("soon".into())),
                    ..NamedBudgetInput::default()
                },
                "budget_duration",
            ),
        ];
        for (input, field) in cases {
            let e = input
                .apply_to("b", None, Timestamp::from_millis(0))
                .unwrap_err();
            assert_eq!(e.param(), Some(field), "{e}");
        }
        assert_eq!(
            parse_budget_id("has space").unwrap_err().param(),
            Some("budget_id")
        );
    }
}
