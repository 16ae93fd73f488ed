//! Rate limits and budgets of a team, key or user, how admins change them, and the rule that
//! a key can only narrow what its team allows.

use crate::allowlist;
use crate::budget::{parse_max_budget, Budget, BudgetPeriod};
use crate::clock::Timestamp;
use crate::domain::{Team, ValidationError};

/// Limits of one scope. `None` means no limit at this scope (a key then inherits its team's
/// rpm/tpm/parallel values, see [`Limits::inheriting`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u32>,
    pub budget: Option<Budget>,
}

impl Limits {
    /// What the filter enforces per key: the key's own rate limits, else its team's defaults.
    /// The budget is not inherited: the team's budget is enforced at the team scope.
    pub fn inheriting(&self, team: &Limits) -> Limits {
        Limits {
            rpm: self.rpm.or(team.rpm),
            tpm: self.tpm.or(team.tpm),
            max_parallel: self.max_parallel.or(team.max_parallel),
            budget: self.budget,
        }
    }
}

/// Limits as an admin typed them (gRPC, REST or CLI), not yet validated. Empty strings count
/// as absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsInput {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u32>,
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub budget_reset: Option<String>,
}

/// Which limits an update unsets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsClear {
    pub rpm: bool,
    pub tpm: bool,
    pub max_parallel: bool,
    /// The whole budget.
    pub budget: bool,
    /// The budget's period only: the budget then never resets.
    pub budget_duration: bool,
}

impl LimitsClear {
    /// Takes the limit fields out of a `clear` list; returns whether `field` was one.
    pub fn take(&mut self, field: &str) -> bool {
        let flag = match field {
            "rpm_limit" => &mut self.rpm,
            "tpm_limit" => &mut self.tpm,
            "max_parallel_requests" => &mut self.max_parallel,
            "max_budget" => &mut self.budget,
            "budget_duration" => &mut self.budget_duration,
            _ => return false,
        };
        *flag = true;
        true
    }
}

fn text(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A limit of at least 1 that fits the stores' signed 64-bit integers.
pub(crate) fn positive<T: Copy + Into<u64>>(
    field: &'static str,
    v: T,
) -> Result<T, ValidationError> {
    let n: u64 = v.into();
    if n == 0 {
        return Err(ValidationError::LimitZero(field));
    }
    // Stored as signed 64-bit integers.
    if i64::try_from(n).is_err() {
        return Err(ValidationError::LimitTooLarge(field));
    }
    Ok(v)
}

/// One limit after an update: the new value, nothing, or the current one.
fn change<T: Copy + Into<u64>>(
    field: &'static str,
    set: Option<T>,
    clear: bool,
    current: Option<T>,
) -> Result<Option<T>, ValidationError> {
    match (set, clear) {
        (Some(_), true) => Err(ValidationError::SetAndCleared(field)),
        (Some(v), false) => positive(field, v).map(Some),
        (None, true) => Ok(None),
        (None, false) => Ok(current),
    }
}

impl LimitsInput {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none()
            && self.tpm.is_none()
            && self.max_parallel.is_none()
            && self.max_budget.is_none()
            && text(&self.budget_duration).is_none()
            && text(&self.budget_reset).is_none()
    }

    /// Limits of a new scope; a budget's windows count from `now`.
    pub fn to_limits(&self, now: Timestamp) -> Result<Limits, ValidationError> {
        self.apply(LimitsClear::default(), &Limits::default(), now)
    }

    /// `current` changed by this input and `clear`. Changing a budget's period starts a new
    /// window at `now`; changing only its amount keeps the window.
    pub fn apply(
        &self,
        clear: LimitsClear,
        current: &Limits,
        now: Timestamp,
    ) -> Result<Limits, ValidationError> {
        Ok(Limits {
            rpm: change("rpm_limit", self.rpm, clear.rpm, current.rpm)?,
            tpm: change("tpm_limit", self.tpm, clear.tpm, current.tpm)?,
            max_parallel: change(
                "max_parallel_requests",
                self.max_parallel,
                clear.max_parallel,
                current.max_parallel,
            )?,
            budget: self.apply_budget(clear, current.budget, now)?,
        })
    }

    fn apply_budget(
        &self,
        clear: LimitsClear,
        current: Option<Budget>,
        now: Timestamp,
    ) -> Result<Option<Budget>, ValidationError> {
        let duration = text(&self.budget_duration);
        let reset = text(&self.budget_reset);
        let period_given = duration.is_some() || reset.is_some() || clear.budget_duration;
        if clear.budget {
            if self.max_budget.is_some() || period_given {
                return Err(ValidationError::SetAndCleared("max_budget"));
            }
            return Ok(None);
        }
        if clear.budget_duration && duration.is_some() {
            return Err(ValidationError::SetAndCleared("budget_duration"));
        }
        let current_period = current.map(|b| b.period);
        let period = match (duration, reset) {
            (None, None) if clear.budget_duration => BudgetPeriod::Lifetime,
            (None, None) => current_period.unwrap_or(BudgetPeriod::Lifetime),
            // Switching a rolling budget's reset to "rolling" keeps its duration.
            (None, Some("rolling")) if !clear.budget_duration => match current_period {
                Some(p @ BudgetPeriod::Rolling(_)) => p,
                _ => BudgetPeriod::Lifetime,
            },
            (duration, reset) => BudgetPeriod::parse(duration, reset)?,
        };
        let max_budget = match (self.max_budget, current) {
            (Some(v), _) => parse_max_budget(v)?,
            (None, Some(b)) => b.max_budget,
            (None, None) if period_given => return Err(ValidationError::BudgetWithoutMax),
            (None, None) => return Ok(None),
        };
        let anchor = match current {
            Some(b) if b.period == period => b.anchor,
            _ => now,
        };
        Ok(Some(Budget {
            max_budget,
            period,
            anchor,
        }))
    }
}

/// A key's own models and limits must fit inside its team's: every model it lists must be
/// allowed by the team's list, and each limit it sets must not exceed the team's.
pub fn check_key_within_team(
    models: &[String],
    limits: &Limits,
    team: &Team,
) -> Result<(), ValidationError> {
    if let Some(model) = allowlist::first_not_covered(models, &team.models) {
        return Err(ValidationError::ModelOutsideTeam {
            model: model.to_owned(),
            team: team.alias.clone(),
            allowed: if team.models.is_empty() {
                "none".to_owned()
            } else {
                team.models.join(", ")
            },
        });
    }
    above("rpm_limit", limits.rpm, team.limits.rpm, team)?;
    above("tpm_limit", limits.tpm, team.limits.tpm, team)?;
    above(
        "max_parallel_requests",
        limits.max_parallel,
        team.limits.max_parallel,
        team,
    )?;
    above(
        "max_budget",
        limits.budget.map(|b| b.max_budget),
        team.limits.budget.map(|b| b.max_budget),
        team,
    )
}

fn above<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    key: Option<T>,
    team_value: Option<T>,
    team: &Team,
) -> Result<(), ValidationError> {
    match (key, team_value) {
        (Some(k), Some(t)) if k > t => Err(ValidationError::AboveTeam {
            field,
            key: k.to_string(),
            team: team.alias.clone(),
            team_value: t.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
