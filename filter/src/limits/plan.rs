//! Which limits apply to a request: one [`ScopePlan`] per scope (key, team, user) that has any,
//! read from the snapshot.
//!
//! - key: its own `rpm`, `tpm` and budget; `max_parallel_requests` is the key's own or its
//!   team's (the team value is each key's default and ceiling: the smaller wins).
//! - team: `rpm`, `tpm` and budget shared by all its keys.
//! - user: `rpm`, `tpm`, `max_parallel_requests` and budget across all the user's keys (and
//!   IdP tokens, which have no key scope: there the team's parallel cap bounds the user's).

use modelgate_proto::v1::{KeyPolicy, Limits, SpendState, TeamPolicy, UserPolicy};

/// Whose limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    Key,
    Team,
    User,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Team => "team",
            Self::User => "user",
        }
    }
}

/// A scope and its id (key public id, team id, user id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: ScopeKind,
    pub id: String,
}

impl Scope {
    /// The shared-data key of this scope's counters: `modelgate.v1.limits.<kind>.<id>`.
    pub fn shared_key(&self) -> String {
        format!("modelgate.v1.limits.{}.{}", self.kind.as_str(), self.id)
    }
}

/// The limits of one scope; `None` = no limit of that kind here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeLimits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub parallel: Option<u64>,
    pub budget: Option<Budget>,
}

impl ScopeLimits {
    fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.parallel.is_none() && self.budget.is_none()
    }
}

/// A budget and the spend the snapshot reports for its window; money in billionths of a
/// dollar so shared counters add up exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_nano: u64,
    pub spent_nano: u64,
    pub exhausted: bool,
    pub window_start_ms: i64,
    /// 0 when the budget never resets.
    pub reset_at_ms: i64,
    /// The snapshot these numbers come from: local spend is counted on top of them.
    pub snapshot_version: u64,
}

/// What local spend is counted against: the snapshot's numbers for one budget window. When
/// either moves on, the local count starts over (the newer snapshot includes what was shipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Baseline {
    pub snapshot_version: u64,
    pub window_id: i64,
}

impl Budget {
    fn new(limits: &Limits, spend: Option<&SpendState>, snapshot_version: u64) -> Option<Self> {
        let max = limits.max_budget?;
        let spend = spend.cloned().unwrap_or_default();
        Some(Self {
            max_nano: usd_to_nano(max),
            spent_nano: usd_to_nano(spend.spend),
            exhausted: spend.exhausted,
            window_start_ms: spend.window_start_ms,
            reset_at_ms: spend.window_reset_at_ms,
            snapshot_version,
        })
    }

    /// Whether the window the snapshot describes has ended by `now_ms` (the control plane
    /// starts a new one; until its next snapshot, the filter counts from zero).
    pub fn window_over(&self, now_ms: i64) -> bool {
        self.reset_at_ms > 0 && now_ms >= self.reset_at_ms
    }

    /// Spend and exhaustion as they stand at `now_ms`, before local spend.
    pub fn snapshot_spend(&self, now_ms: i64) -> (u64, bool) {
        if self.window_over(now_ms) {
            (0, false)
        } else {
            (self.spent_nano, self.exhausted)
        }
    }

    pub fn baseline(&self, now_ms: i64) -> Baseline {
        Baseline {
            snapshot_version: self.snapshot_version,
            window_id: if self.window_over(now_ms) {
                self.reset_at_ms
            } else {
                self.window_start_ms
            },
        }
    }
}

/// Dollars to billionths of a dollar; negative, NaN and absurd values saturate.
pub fn usd_to_nano(usd: f64) -> u64 {
    if usd.is_nan() || usd <= 0.0 {
        0
    } else {
        // `as` saturates at u64::MAX.
        (usd * 1e9).round() as u64
    }
}

pub fn nano_to_usd(nano: u64) -> f64 {
    nano as f64 / 1e9
}

/// One scope that has limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopePlan {
    pub scope: Scope,
    pub limits: ScopeLimits,
}

/// The limits of one request, in the order they are reserved: key, team, user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub scopes: Vec<ScopePlan>,
}

impl Plan {
    /// The limits of a key: its own, its team's (none for a personal key) and its owner's.
    pub fn new(
        snapshot_version: u64,
        key: &KeyPolicy,
        team: Option<&TeamPolicy>,
        user: Option<&UserPolicy>,
    ) -> Self {
        let none = Limits::default();
        let key_limits = key.limits.as_ref().unwrap_or(&none);
        let parallel = at_most_team(key_limits, team);
        let mut scopes = vec![ScopePlan {
            scope: Scope {
                kind: ScopeKind::Key,
                id: key.public_id.clone(),
            },
            limits: ScopeLimits {
                rpm: key_limits.rpm,
                tpm: key_limits.tpm,
                parallel,
                budget: Budget::new(key_limits, key.spend.as_ref(), snapshot_version),
            },
        }];
        scopes.extend(team.map(|team| team_scope(snapshot_version, team)));
        if let Some(user) = user.filter(|user| !user.user_id.is_empty()) {
            scopes.push(user_scope(snapshot_version, user, None));
        }
        scopes.retain(|scope| !scope.limits.is_empty());
        Self { scopes }
    }

    /// The limits of a caller without a key (an IdP token's bearer, or the end user a service
    /// key names): their team's, if any, and their own. The team's parallel cap is each
    /// member's default and ceiling, as it is each key's.
    pub fn for_member(snapshot_version: u64, team: Option<&TeamPolicy>, user: &UserPolicy) -> Self {
        let none = Limits::default();
        let parallel = at_most_team(user.limits.as_ref().unwrap_or(&none), team);
        let mut scopes: Vec<ScopePlan> = team
            .map(|team| team_scope(snapshot_version, team))
            .into_iter()
            .collect();
        scopes.push(user_scope(snapshot_version, user, parallel));
        scopes.retain(|scope| !scope.limits.is_empty());
        Self { scopes }
    }

    /// Also counts the request against `team`'s own limits: a service key's team bounds every
    /// end user the key names, whatever team the user belongs to.
    pub fn within(mut self, snapshot_version: u64, team: Option<&TeamPolicy>) -> Self {
        let Some(team) = team else {
            return self;
        };
        let scope = team_scope(snapshot_version, team);
        if !scope.limits.is_empty() && !self.scopes.iter().any(|s| s.scope == scope.scope) {
            self.scopes.push(scope);
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }
}

/// The parallel cap of a key or member: their own, within their team's.
fn at_most_team(own: &Limits, team: Option<&TeamPolicy>) -> Option<u64> {
    let team = team
        .and_then(|team| team.limits.as_ref())
        .and_then(|limits| limits.max_parallel_requests);
    match (own.max_parallel_requests, team) {
        (Some(own), Some(team)) => Some(own.min(team)),
        (own, team) => own.or(team),
    }
    .map(u64::from)
}

/// RPM, TPM and budget shared by all of a team's callers.
fn team_scope(snapshot_version: u64, team: &TeamPolicy) -> ScopePlan {
    let none = Limits::default();
    let limits = team.limits.as_ref().unwrap_or(&none);
    ScopePlan {
        scope: Scope {
            kind: ScopeKind::Team,
            id: team.team_id.clone(),
        },
        limits: ScopeLimits {
            rpm: limits.rpm,
            tpm: limits.tpm,
            parallel: None,
            budget: Budget::new(limits, team.spend.as_ref(), snapshot_version),
        },
    }
}

/// A user's own limits across all their keys and tokens; `parallel` overrides their own cap.
fn user_scope(snapshot_version: u64, user: &UserPolicy, parallel: Option<u64>) -> ScopePlan {
    let none = Limits::default();
    let limits = user.limits.as_ref().unwrap_or(&none);
    ScopePlan {
        scope: Scope {
            kind: ScopeKind::User,
            id: user.user_id.clone(),
        },
        limits: ScopeLimits {
            rpm: limits.rpm,
            tpm: limits.tpm,
            parallel: parallel.or(limits.max_parallel_requests.map(u64::from)),
            budget: Budget::new(limits, user.spend.as_ref(), snapshot_version),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::{key, team};
    use modelgate_proto::v1::KeyStatus;

    fn limits(rpm: Option<u64>, parallel: Option<u32>, budget: Option<f64>) -> Option<Limits> {
        Some(Limits {
            rpm,
            max_parallel_requests: parallel,
            max_budget: budget,
            ..Limits::default()
        })
    }

    #[test]
    fn scopes_without_limits_cost_nothing() {
        let k = key("k", "key000000001", KeyStatus::Active);
        let t = team("team-1");
        assert!(Plan::new(1, &k, Some(&t), None).is_empty());
        let user = UserPolicy {
            user_id: "u@example.com".to_owned(),
            ..UserPolicy::default()
        };
        assert!(Plan::new(1, &k, Some(&t), Some(&user)).is_empty());
    }

    #[test]
    fn the_team_parallel_cap_is_each_keys_default_and_ceiling() {
        let mut k = key("k", "key000000001", KeyStatus::Active);
        let mut t = team("team-1");
        t.limits = limits(Some(100), Some(4), None);
        let plan = Plan::new(1, &k, Some(&t), None);
        assert_eq!(plan.scopes.len(), 2);
        assert_eq!(plan.scopes[0].scope.kind, ScopeKind::Key);
        assert_eq!(plan.scopes[0].limits.parallel, Some(4), "inherited");
        assert_eq!(plan.scopes[1].limits.rpm, Some(100));
        assert_eq!(plan.scopes[1].limits.parallel, None, "not team-wide");

        k.limits = limits(None, Some(2), None);
        assert_eq!(
            Plan::new(1, &k, Some(&t), None).scopes[0].limits.parallel,
            Some(2)
        );
        k.limits = limits(None, Some(9), None);
        assert_eq!(
            Plan::new(1, &k, Some(&t), None).scopes[0].limits.parallel,
            Some(4),
            "a key cannot exceed its team"
        );
    }

    #[test]
    fn a_personal_key_counts_only_against_itself_and_its_owner() {
        let mut k = key("k", "key000000001", KeyStatus::Active);
        k.limits = limits(Some(5), Some(9), None);
        let user = UserPolicy {
            user_id: "u@example.com".to_owned(),
            limits: limits(Some(7), None, None),
            ..UserPolicy::default()
        };
        let plan = Plan::new(1, &k, None, Some(&user));
        let kinds: Vec<ScopeKind> = plan.scopes.iter().map(|s| s.scope.kind).collect();
        assert_eq!(kinds, [ScopeKind::Key, ScopeKind::User]);
        assert_eq!(plan.scopes[0].limits.parallel, Some(9), "no team ceiling");
        assert_eq!(plan.scopes[0].limits.rpm, Some(5));
    }

    #[test]
    fn budgets_carry_the_snapshot_spend_in_nano_dollars() {
        let mut k = key("k", "key000000001", KeyStatus::Active);
        k.limits = limits(None, None, Some(1.5));
        k.spend = Some(SpendState {
            spend: 0.25,
            window_start_ms: 1_000,
            window_reset_at_ms: 5_000,
            exhausted: false,
        });
        let user = UserPolicy {
            user_id: "u@example.com".to_owned(),
            limits: limits(Some(7), None, None),
            ..UserPolicy::default()
        };
        let plan = Plan::new(9, &k, Some(&team("team-1")), Some(&user));
        assert_eq!(plan.scopes.len(), 2);
        let budget = plan.scopes[0].limits.budget.unwrap();
        assert_eq!(budget.max_nano, 1_500_000_000);
        assert_eq!(budget.spent_nano, 250_000_000);
        assert_eq!(budget.snapshot_spend(4_999), (250_000_000, false));
        assert_eq!(budget.snapshot_spend(5_000), (0, false), "the window ended");
        assert_eq!(
            budget.baseline(4_999),
            Baseline {
                snapshot_version: 9,
                window_id: 1_000
            }
        );
        assert_eq!(budget.baseline(5_000).window_id, 5_000);
        assert_eq!(
            plan.scopes[1].scope.shared_key(),
            "modelgate.v1.limits.user.u@example.com"
        );
    }

    #[test]
    fn dollars_convert_exactly_and_saturate() {
        assert_eq!(usd_to_nano(0.1), 100_000_000);
        assert_eq!(usd_to_nano(-1.0), 0);
        assert_eq!(usd_to_nano(f64::NAN), 0);
        assert_eq!(usd_to_nano(f64::INFINITY), u64::MAX);
        assert_eq!(nano_to_usd(1_500_000_000), 1.5);
    }
}
