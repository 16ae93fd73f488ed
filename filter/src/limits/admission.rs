//! Admitting one request against every scope that limits it, and giving back what it held
//! when it ends.
//!
//! Scopes are reserved one after another (key, team, user), each with its own
//! compare-and-swap. If a later scope refuses, the earlier reservations are cancelled, so a
//! refused request consumes nothing; meanwhile another request may see those scopes briefly
//! fuller than they end up, which can only refuse, never over-admit.

use std::convert::Infallible;

use super::plan::{nano_to_usd, Budget, Plan, Scope, ScopeKind};
use super::record::{Actual, Demand, Exceeded, LimitKind, Quota, Quotas, Reservation};
use super::shared::{update, UpdateError};
use crate::host::Host;

/// A request that passed every limit, holding its reservations until it ends.
///
/// Call [`Admission::settle`] when the real usage is known (end of the response), and
/// [`Admission::release`] when the request is over (`on_log`, which runs on every ending).
/// Both are idempotent; `release` without a `settle` charges the estimate (nothing better is
/// known, and it is the most the request could have used).
#[derive(Debug)]
pub struct Admission {
    held: Vec<Held>,
    demand: Demand,
    quotas: Quotas,
    settled: bool,
    released: bool,
}

#[derive(Debug)]
struct Held {
    key: String,
    budget: Option<Budget>,
    reservation: Reservation,
}

/// The limit that refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    pub scope: Scope,
    pub exceeded: Exceeded,
    /// Requests/tokens quotas over the scopes looked at, for the `x-ratelimit-*` headers.
    pub quotas: Quotas,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Limited(Box<LimitHit>),
    /// The counters could not be read or written (host failure or endless contention): the
    /// request is refused rather than let through unchecked.
    Unavailable(String),
}

/// Reserves `demand` in every scope of `plan`.
pub fn admit(
    host: &impl Host,
    now_ms: i64,
    plan: &Plan,
    demand: Demand,
) -> Result<Admission, Refusal> {
    let mut admission = Admission {
        held: Vec::with_capacity(plan.scopes.len()),
        demand,
        quotas: Quotas::default(),
        settled: false,
        released: false,
    };
    // What the scopes reserved so far looked like before this request, for a refusal's
    // headers (its reservations are taken back).
    let mut before = Quotas::default();
    for scope in &plan.scopes {
        let key = scope.scope.shared_key();
        let reserved = update(host, &key, |record| {
            record.reserve(&scope.limits, demand, now_ms)
        });
        match reserved {
            Ok(reserved) => {
                before = combine(before, reserved.before);
                admission.quotas = combine(admission.quotas, reserved.after);
                admission.held.push(Held {
                    key,
                    budget: scope.limits.budget,
                    reservation: reserved.reservation,
                });
            }
            Err(err) => {
                let refusal = match err {
                    UpdateError::Refused(exceeded) => Refusal::Limited(Box::new(LimitHit {
                        scope: scope.scope.clone(),
                        exceeded,
                        quotas: combine(before, exceeded.quotas),
                    })),
                    UpdateError::Host(err) => Refusal::Unavailable(format!("{key}: {err}")),
                    UpdateError::Contended => {
                        Refusal::Unavailable(format!("{key}: contended beyond retries"))
                    }
                };
                admission.cancel(host, now_ms);
                return Err(refusal);
            }
        }
    }
    Ok(admission)
}

impl Admission {
    /// Headers for a successful response: the `x-ratelimit-*` trios of the limits that apply.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        quota_headers(&self.quotas)
    }

    /// Replaces the estimates with what the request really used: tokens for TPM, cost for
    /// budgets. Applied to the shared counters at once; later calls do nothing.
    pub fn settle(&mut self, host: &impl Host, now_ms: i64, actual: Actual) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        self.apply(host, now_ms, Some(actual), false);
    }

    /// The request is over: frees its parallel slots, and charges the estimate if
    /// [`Admission::settle`] never ran. Later calls do nothing.
    pub fn release(&mut self, host: &impl Host, now_ms: i64) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let estimate = Actual {
            tokens: self.demand.tokens,
            cost_nano: self.demand.cost_nano,
        };
        let settle = (!std::mem::replace(&mut self.settled, true)).then_some(estimate);
        self.apply(host, now_ms, settle, true);
    }

    fn apply(&self, host: &impl Host, now_ms: i64, settle: Option<Actual>, release: bool) {
        for held in &self.held {
            let reservation = &held.reservation;
            let settles = settle.is_some()
                && (reservation.tokens.is_some() || reservation.spend_nano.is_some());
            let releases = release && reservation.in_flight.is_some();
            if !settles && !releases {
                continue;
            }
            let baseline = held.budget.map(|budget| budget.baseline(now_ms));
            let result = update(host, &held.key, |record| {
                if let Some(actual) = settle {
                    record.settle(reservation, actual, baseline, now_ms);
                }
                if releases {
                    record.release(reservation, now_ms);
                }
                Ok::<(), Infallible>(())
            });
            if let Err(err) = result {
                // The counters keep the estimate until it ages out of its window (slots:
                // until their lease ends); worse for the client, never a leak of limits.
                log::warn!("limit record {} not settled: {err:?}", held.key);
            }
        }
    }

    /// Takes back every reservation, as if the request had never been admitted (a later
    /// scope refused it, or a later check did). Later `settle`/`release` calls do nothing.
    pub fn cancel(&mut self, host: &impl Host, now_ms: i64) {
        self.settled = true;
        self.released = true;
        for held in self.held.drain(..) {
            let result = update(host, &held.key, |record| {
                record.cancel(&held.reservation, now_ms);
                Ok::<(), Infallible>(())
            });
            if let Err(err) = result {
                log::warn!("limit record {} not rolled back: {err:?}", held.key);
            }
        }
    }
}

impl LimitHit {
    /// `error.code`: OpenAI's `rate_limit_exceeded`, or `budget_exceeded`.
    pub fn code(&self) -> &'static str {
        match self.exceeded.kind {
            LimitKind::Budget => "budget_exceeded",
            _ => "rate_limit_exceeded",
        }
    }

    /// `error.type`: which kind of limit (OpenAI's `requests`/`tokens`, `insufficient_quota`).
    pub fn error_type(&self) -> &'static str {
        match self.exceeded.kind {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::ParallelRequests => "parallel_requests",
            LimitKind::Budget => "insufficient_quota",
        }
    }

    /// The audit record's reason: scope and limit, e.g. `team_tpm_exceeded`.
    pub fn reason(&self) -> &'static str {
        use LimitKind::{Budget, ParallelRequests, Requests, Tokens};
        use ScopeKind::{Key, Team, User};
        match (self.scope.kind, self.exceeded.kind) {
            (Key, Requests) => "key_rpm_exceeded",
            (Key, Tokens) => "key_tpm_exceeded",
            (Key, ParallelRequests) => "key_max_parallel_requests_exceeded",
            (Key, Budget) => "key_budget_exceeded",
            (Team, Requests) => "team_rpm_exceeded",
            (Team, Tokens) => "team_tpm_exceeded",
            (Team, ParallelRequests) => "team_max_parallel_requests_exceeded",
            (Team, Budget) => "team_budget_exceeded",
            (User, Requests) => "user_rpm_exceeded",
            (User, Tokens) => "user_tpm_exceeded",
            (User, ParallelRequests) => "user_max_parallel_requests_exceeded",
            (User, Budget) => "user_budget_exceeded",
        }
    }

    /// Which limit of which scope, in words a client can act on.
    pub fn message(&self) -> String {
        let whose = match self.scope.kind {
            ScopeKind::Key => format!("key {}", self.scope.id),
            ScopeKind::Team => format!("team {}", self.scope.id),
            // The user id is an email address: not repeated in answers.
            ScopeKind::User => "the user of this key".to_owned(),
        };
        let Exceeded {
            kind,
            limit,
            used,
            requested,
            retry_after_ms,
            ..
        } = self.exceeded;
        let retry = match retry_after_ms {
            Some(ms) => format!(" Please try again in {}.", duration(ms.max(1))),
            None => String::new(),
        };
        match kind {
            LimitKind::Requests => format!(
                "Rate limit reached for requests per minute (rpm) of {whose}: limit {limit}, used {used}, requested {requested}.{retry}"
            ),
            LimitKind::Tokens if retry_after_ms.is_none() => format!(
                "This request needs about {requested} tokens (prompt estimate plus max_tokens), more than the tokens per minute (tpm) limit of {whose}: {limit}. Lower max_tokens or the prompt."
            ),
            LimitKind::Tokens => format!(
                "Rate limit reached for tokens per minute (tpm) of {whose}: limit {limit}, used {used}, requested {requested}.{retry}"
            ),
            LimitKind::ParallelRequests => format!(
                "Too many requests in flight for {whose}: max_parallel_requests is {limit}.{retry}"
            ),
            LimitKind::Budget => {
                let resets = if retry_after_ms.is_some() {
                    retry
                } else {
                    " It does not reset by itself; ask an administrator.".to_owned()
                };
                format!(
                    "The budget of {whose} is exhausted: max_budget ${:.2}, spent ${:.2}.{resets}",
                    nano_to_usd(limit),
                    nano_to_usd(used)
                )
            }
        }
    }

    /// Seconds a client should wait: at least 1, rounded up.
    pub fn retry_after_s(&self) -> u64 {
        // A refusal that waiting cannot cure still gets a header; a minute keeps retrying
        // clients from hammering.
        self.exceeded
            .retry_after_ms
            .unwrap_or(60_000)
            .div_ceil(1_000)
            .max(1)
    }

    /// `retry-after` and the `x-ratelimit-*` trios.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("retry-after", self.retry_after_s().to_string())];
        headers.extend(quota_headers(&self.quotas));
        headers
    }
}

/// The tighter of two scopes' quotas, per dimension: the one with less left (on a tie, the one
/// that takes longer to reset).
fn combine(a: Quotas, b: Quotas) -> Quotas {
    fn tighter(a: Option<Quota>, b: Option<Quota>) -> Option<Quota> {
        match (a, b) {
            (Some(a), Some(b)) => Some(
                if (b.remaining, std::cmp::Reverse(b.reset_ms))
                    < (a.remaining, std::cmp::Reverse(a.reset_ms))
                {
                    b
                } else {
                    a
                },
            ),
            (a, b) => a.or(b),
        }
    }
    Quotas {
        requests: tighter(a.requests, b.requests),
        tokens: tighter(a.tokens, b.tokens),
    }
}

fn quota_headers(quotas: &Quotas) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(quota) = quotas.requests {
        headers.push(("x-ratelimit-limit-requests", quota.limit.to_string()));
        headers.push((
            "x-ratelimit-remaining-requests",
            quota.remaining.to_string(),
        ));
        headers.push(("x-ratelimit-reset-requests", duration(quota.reset_ms)));
    }
    if let Some(quota) = quotas.tokens {
        headers.push(("x-ratelimit-limit-tokens", quota.limit.to_string()));
        headers.push(("x-ratelimit-remaining-tokens", quota.remaining.to_string()));
        headers.push(("x-ratelimit-reset-tokens", duration(quota.reset_ms)));
    }
    headers
}

/// OpenAI's format for the reset headers: `0s`, `250ms`, `17s`, `6m0s`, `1h2m3s`.
pub fn duration(ms: u64) -> String {
    if ms > 0 && ms < 1_000 {
        return format!("{ms}ms");
    }
    let seconds = ms.div_ceil(1_000);
    let (hours, minutes, seconds) = (seconds / 3_600, seconds / 60 % 60, seconds % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openais() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(250), "250ms");
        assert_eq!(duration(1_000), "1s");
        assert_eq!(duration(1_001), "2s");
        assert_eq!(duration(59_000), "59s");
        assert_eq!(duration(360_000), "6m0s");
        assert_eq!(duration(3_723_000), "1h2m3s");
        assert!(!duration(u64::MAX).is_empty());
    }

    #[test]
    fn the_tighter_scope_shows_in_the_headers() {
        let quota = |limit, remaining, reset_ms| {
            Some(Quota {
                limit,
                remaining,
                reset_ms,
            })
        };
        let key = Quotas {
            requests: quota(10, 7, 5_000),
            tokens: None,
        };
        let team = Quotas {
            requests: quota(100, 3, 9_000),
            tokens: quota(1_000, 900, 1_000),
        };
        let both = combine(key, team);
        assert_eq!(both.requests, team.requests);
        assert_eq!(both.tokens, team.tokens);
        let tie = Quotas {
            requests: quota(5, 3, 20_000),
            tokens: None,
        };
        assert_eq!(combine(both, tie).requests, tie.requests);
        assert_eq!(
            quota_headers(&both),
            [
                ("x-ratelimit-limit-requests", "100".to_owned()),
                ("x-ratelimit-remaining-requests", "3".to_owned()),
                ("x-ratelimit-reset-requests", "9s".to_owned()),
                ("x-ratelimit-limit-tokens", "1000".to_owned()),
                ("x-ratelimit-remaining-tokens", "900".to_owned()),
                ("x-ratelimit-reset-tokens", "1s".to_owned()),
            ]
        );
    }
}
