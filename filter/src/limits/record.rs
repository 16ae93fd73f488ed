//! The counters of one scope, as one shared-data value, and the pure arithmetic of reserving
//! and settling against them. One value per scope means one compare-and-swap per scope per
//! step, whatever mix of limits the scope has.

use super::plan::{Baseline, Budget, ScopeLimits};
use super::window::{Slot, Window, WindowSpec};

/// In-flight slots are counted by the minute they were taken and forgotten after
/// [`LEASE`]: if a worker VM dies (its `on_log` never runs), its slots come back by themselves
/// instead of blocking the key forever. Longer than Envoy's route timeout in our configs (600 s).
pub const LEASE: WindowSpec = WindowSpec {
    bucket_ms: 60_000,
    buckets: 16,
};

/// Every counter of one scope.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeRecord {
    #[prost(message, optional, tag = "1")]
    pub requests: Option<Window>,
    #[prost(message, optional, tag = "2")]
    pub tokens: Option<Window>,
    #[prost(message, optional, tag = "3")]
    pub in_flight: Option<Window>,
    #[prost(message, optional, tag = "4")]
    pub spend: Option<SpendLedger>,
}

/// Spend seen by this Envoy that the snapshot's numbers do not include yet.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpendLedger {
    #[prost(uint64, tag = "1")]
    pub snapshot_version: u64,
    #[prost(int64, tag = "2")]
    pub window_id: i64,
    /// Spend of finished requests since the baseline.
    #[prost(uint64, tag = "3")]
    pub settled_nano: u64,
    /// Estimated cost of requests still running.
    #[prost(uint64, tag = "4")]
    pub reserved_nano: u64,
}

impl SpendLedger {
    /// Starts the local count over when the snapshot or the budget window moved on; a worker
    /// still holding an older snapshot leaves a newer baseline alone.
    fn rebase(&mut self, baseline: Baseline) {
        let current = Baseline {
            snapshot_version: self.snapshot_version,
            window_id: self.window_id,
        };
        if baseline > current {
            self.snapshot_version = baseline.snapshot_version;
            self.window_id = baseline.window_id;
            self.settled_nano = 0;
        }
    }
}

/// What one request asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    /// Estimated prompt tokens plus the completion limit.
    pub tokens: u64,
    /// Estimated cost of those tokens.
    pub cost_nano: u64,
}

/// What one request turned out to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actual {
    pub tokens: u64,
    pub cost_nano: u64,
}

/// What a reservation added to one scope, so that exactly it can be settled and released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reservation {
    pub requests: Option<Slot>,
    pub tokens: Option<(Slot, u64)>,
    pub in_flight: Option<Slot>,
    pub spend_nano: Option<u64>,
}

/// A successful reservation, with the scope's quotas before and after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    pub reservation: Reservation,
    pub before: Quotas,
    pub after: Quotas,
}

/// The limit, what is left of it, and when it is whole again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    pub reset_ms: u64,
}

/// Requests and tokens quotas of one scope (for the `x-ratelimit-*` headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    pub requests: Option<Quota>,
    pub tokens: Option<Quota>,
}

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
    ParallelRequests,
    Budget,
}

impl LimitKind {
    /// The limit's name in the snapshot and in error bodies.
    pub fn field(self) -> &'static str {
        match self {
            Self::Requests => "rpm",
            Self::Tokens => "tpm",
            Self::ParallelRequests => "max_parallel_requests",
            Self::Budget => "max_budget",
        }
    }
}

/// A refusal by one scope's counters. Money is in nano-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub kind: LimitKind,
    pub limit: u64,
    pub used: u64,
    pub requested: u64,
    /// When retrying can succeed; `None` when it never can (the request alone is over the
    /// limit) or nobody can tell (a budget that does not reset).
    pub retry_after_ms: Option<u64>,
    pub quotas: Quotas,
}

impl ScopeRecord {
    /// Moves every window to `now_ms`.
    fn advance(&mut self, now_ms: i64) {
        for (window, spec) in [
            (&mut self.requests, WindowSpec::MINUTE),
            (&mut self.tokens, WindowSpec::MINUTE),
            (&mut self.in_flight, LEASE),
        ] {
            if let Some(window) = window {
                window.advance(spec, now_ms);
            }
        }
    }

    /// Checks every limit of the scope and, if all admit, reserves the request in one go.
    /// A refusal leaves the record as it was (the caller does not write it back).
    pub fn reserve(
        &mut self,
        limits: &ScopeLimits,
        demand: Demand,
        now_ms: i64,
    ) -> Result<Reserved, Exceeded> {
        // Windows of the limits that apply, created at `now_ms` when new.
        if limits.rpm.is_some() {
            self.requests.get_or_insert_with(Window::default);
        }
        if limits.tpm.is_some() {
            self.tokens.get_or_insert_with(Window::default);
        }
        if limits.parallel.is_some() {
            self.in_flight.get_or_insert_with(Window::default);
        }
        self.advance(now_ms);
        let before = self.quotas(limits, now_ms);
        let refuse = |kind, limit, used, requested, retry_after_ms| Exceeded {
            kind,
            limit,
            used,
            requested,
            retry_after_ms,
            quotas: before,
        };
        if let Some(rpm) = limits.rpm {
            let window = self.requests.get_or_insert_with(Window::default);
            if let Some(wait) = window
                .wait_ms(WindowSpec::MINUTE, now_ms, rpm, 1)
                .filter(|wait| *wait > 0)
            {
                return Err(refuse(
                    LimitKind::Requests,
                    rpm,
                    window.total(),
                    1,
                    Some(wait),
                ));
            }
        }
        if let Some(tpm) = limits.tpm {
            let window = self.tokens.get_or_insert_with(Window::default);
            match window.wait_ms(WindowSpec::MINUTE, now_ms, tpm, demand.tokens) {
                Some(0) => {}
                wait => {
                    return Err(refuse(
                        LimitKind::Tokens,
                        tpm,
                        window.total(),
                        demand.tokens,
                        wait,
                    ))
                }
            }
        }
        if let Some(parallel) = limits.parallel {
            let window = self.in_flight.get_or_insert_with(Window::default);
            let running = window.total();
            if running >= parallel {
                // Slots come back when requests end; nobody knows when.
                return Err(refuse(
                    LimitKind::ParallelRequests,
                    parallel,
                    running,
                    1,
                    Some(1_000),
                ));
            }
        }
        if let Some(budget) = &limits.budget {
            let ledger = self.spend.get_or_insert_with(SpendLedger::default);
            ledger.rebase(budget.baseline(now_ms));
            let (spent, exhausted) = budget.snapshot_spend(now_ms);
            let settled = spent.saturating_add(ledger.settled_nano);
            let used = settled.saturating_add(ledger.reserved_nano);
            if exhausted || used >= budget.max_nano {
                let retry = if exhausted || settled >= budget.max_nano {
                    budget_reset_in(budget, now_ms)
                } else {
                    // Only running requests' estimates stand in the way; they settle soon.
                    Some(1_000)
                };
                return Err(refuse(
                    LimitKind::Budget,
                    budget.max_nano,
                    used,
                    demand.cost_nano,
                    retry,
                ));
            }
        }

        let mut reservation = Reservation::default();
        if limits.rpm.is_some() {
            reservation.requests = Some(self.requests.get_or_insert_with(Window::default).add(1));
        }
        if limits.tpm.is_some() {
            let slot = self
                .tokens
                .get_or_insert_with(Window::default)
                .add(demand.tokens);
            reservation.tokens = Some((slot, demand.tokens));
        }
        if limits.parallel.is_some() {
            reservation.in_flight = Some(self.in_flight.get_or_insert_with(Window::default).add(1));
        }
        if limits.budget.is_some() {
            let ledger = self.spend.get_or_insert_with(SpendLedger::default);
            ledger.reserved_nano = ledger.reserved_nano.saturating_add(demand.cost_nano);
            reservation.spend_nano = Some(demand.cost_nano);
        }
        Ok(Reserved {
            reservation,
            before,
            after: self.quotas(limits, now_ms),
        })
    }

    /// Replaces the estimates of `reservation` with what the request used: a token refund goes
    /// back to the bucket it was taken from (while that is counted), extra tokens count from
    /// now, and spend moves from reserved to settled.
    pub fn settle(
        &mut self,
        reservation: &Reservation,
        actual: Actual,
        baseline: Option<Baseline>,
        now_ms: i64,
    ) {
        self.advance(now_ms);
        if let (Some((slot, reserved)), Some(window)) = (reservation.tokens, &mut self.tokens) {
            if actual.tokens < reserved {
                window.remove(slot, reserved - actual.tokens);
            } else {
                window.add(actual.tokens - reserved);
            }
        }
        if let (Some(reserved), Some(ledger)) = (reservation.spend_nano, &mut self.spend) {
            if let Some(baseline) = baseline {
                ledger.rebase(baseline);
            }
            ledger.reserved_nano = ledger.reserved_nano.saturating_sub(reserved);
            ledger.settled_nano = ledger.settled_nano.saturating_add(actual.cost_nano);
        }
    }

    /// Gives back the in-flight slot of `reservation`.
    pub fn release(&mut self, reservation: &Reservation, now_ms: i64) {
        self.advance(now_ms);
        if let (Some(slot), Some(window)) = (reservation.in_flight, &mut self.in_flight) {
            window.remove(slot, 1);
        }
    }

    /// Takes back everything `reservation` added, as if the request had never been admitted
    /// (another scope refused it).
    pub fn cancel(&mut self, reservation: &Reservation, now_ms: i64) {
        self.advance(now_ms);
        if let (Some(slot), Some(window)) = (reservation.requests, &mut self.requests) {
            window.remove(slot, 1);
        }
        if let (Some((slot, reserved)), Some(window)) = (reservation.tokens, &mut self.tokens) {
            window.remove(slot, reserved);
        }
        if let (Some(reserved), Some(ledger)) = (reservation.spend_nano, &mut self.spend) {
            ledger.reserved_nano = ledger.reserved_nano.saturating_sub(reserved);
        }
        self.release(reservation, now_ms);
    }

    /// Requests and tokens quotas as the record stands (windows advanced).
    fn quotas(&self, limits: &ScopeLimits, now_ms: i64) -> Quotas {
        let quota = |limit: Option<u64>, window: &Option<Window>| {
            let limit = limit?;
            let (used, reset_ms) = window.as_ref().map_or((0, 0), |w| {
                (w.total(), w.reset_ms(WindowSpec::MINUTE, now_ms))
            });
            Some(Quota {
                limit,
                remaining: limit.saturating_sub(used),
                reset_ms,
            })
        };
        Quotas {
            requests: quota(limits.rpm, &self.requests),
            tokens: quota(limits.tpm, &self.tokens),
        }
    }
}

fn budget_reset_in(budget: &Budget, now_ms: i64) -> Option<u64> {
    (budget.reset_at_ms > 0)
        .then(|| u64::try_from(budget.reset_at_ms.saturating_sub(now_ms)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn rpm(limit: u64) -> ScopeLimits {
        ScopeLimits {
            rpm: Some(limit),
            ..ScopeLimits::default()
        }
    }

    fn demand(tokens: u64, cost_nano: u64) -> Demand {
        Demand { tokens, cost_nano }
    }

    fn budget(max_nano: u64, spent_nano: u64) -> Budget {
        Budget {
            max_nano,
            spent_nano,
            exhausted: false,
            window_start_ms: T0,
            reset_at_ms: T0 + 300_000,
            snapshot_version: 1,
        }
    }

    #[test]
    fn rpm_admits_exactly_the_limit_then_says_when_to_retry() {
        let mut record = ScopeRecord::default();
        for i in 0..3 {
            let reserved = record
                .reserve(&rpm(3), demand(0, 0), T0 + i * 1_000)
                .unwrap();
            let requests = reserved.after.requests.unwrap();
            assert_eq!((requests.limit, requests.remaining), (3, 2 - i as u64));
        }
        let before = record.clone();
        let refused = record
            .reserve(&rpm(3), demand(0, 0), T0 + 30_000)
            .unwrap_err();
        assert_eq!(refused.kind, LimitKind::Requests);
        assert_eq!((refused.limit, refused.used), (3, 3));
        assert_eq!(
            refused.retry_after_ms,
            Some(31_000),
            "the first one expires at T0+61s"
        );
        assert_eq!(refused.quotas.requests.unwrap().remaining, 0);
        assert_eq!(refused.quotas.requests.unwrap().reset_ms, 33_000);
        record.advance(T0 + 30_000);
        let mut advanced = before.clone();
        advanced.advance(T0 + 30_000);
        assert_eq!(record, advanced, "a refusal consumes nothing");
        assert!(record.reserve(&rpm(3), demand(0, 0), T0 + 61_000).is_ok());
    }

    #[test]
    fn tpm_reserves_the_estimate_and_settles_to_the_real_count() {
        let limits = ScopeLimits {
            tpm: Some(1_000),
            ..ScopeLimits::default()
        };
        let mut record = ScopeRecord::default();
        let first = record
            .reserve(&limits, demand(600, 0), T0)
            .unwrap()
            .reservation;
        let tokens = record.quotas(&limits, T0).tokens.unwrap();
        assert_eq!(tokens.remaining, 400);
        let refused = record
            .reserve(&limits, demand(600, 0), T0 + 10)
            .unwrap_err();
        assert_eq!(refused.kind, LimitKind::Tokens);
        assert_eq!(refused.requested, 600);
        // The first used only 150 of its 600: the room comes back at once.
        record.settle(
            &first,
            Actual {
                tokens: 150,
                cost_nano: 0,
            },
            None,
            T0 + 2_000,
        );
        let second = record.reserve(&limits, demand(600, 0), T0 + 2_001).unwrap();
        assert_eq!(second.before.tokens.unwrap().remaining, 850);
        assert_eq!(second.after.tokens.unwrap().remaining, 250);
        let second = second.reservation;
        // The second ran over its estimate: the excess counts from when it ended.
        record.settle(
            &second,
            Actual {
                tokens: 900,
                cost_nano: 0,
            },
            None,
            T0 + 5_000,
        );
        assert_eq!(record.tokens.as_ref().unwrap().total(), 1_050);
        let huge = record
            .reserve(&limits, demand(1_001, 0), T0 + 200_000)
            .unwrap_err();
        assert_eq!(
            huge.retry_after_ms, None,
            "more than the whole limit never fits"
        );
    }

    #[test]
    fn parallel_slots_come_back_on_release_and_after_the_lease() {
        let limits = ScopeLimits {
            parallel: Some(2),
            ..ScopeLimits::default()
        };
        let mut record = ScopeRecord::default();
        let a = record
            .reserve(&limits, demand(0, 0), T0)
            .unwrap()
            .reservation;
        let _b = record
            .reserve(&limits, demand(0, 0), T0)
            .unwrap()
            .reservation;
        let refused = record.reserve(&limits, demand(0, 0), T0).unwrap_err();
        assert_eq!(refused.kind, LimitKind::ParallelRequests);
        assert_eq!(refused.retry_after_ms, Some(1_000));
        record.release(&a, T0 + 5);
        let c = record
            .reserve(&limits, demand(0, 0), T0 + 6)
            .unwrap()
            .reservation;
        record.release(&c, T0 + 7);
        assert_eq!(record.in_flight.as_ref().unwrap().total(), 1);
        // `_b` never comes back (its VM died): the lease frees it.
        assert!(record.reserve(&limits, demand(0, 0), T0 + 8).is_ok());
        assert!(record.reserve(&limits, demand(0, 0), T0 + 9).is_err());
        assert!(record
            .reserve(&limits, demand(0, 0), T0 + 16 * 60_000)
            .is_ok());
    }

    #[test]
    fn budget_counts_snapshot_spend_plus_local_settled_plus_reserved() {
        let limits = ScopeLimits {
            budget: Some(budget(1_000, 500)),
            ..ScopeLimits::default()
        };
        let mut record = ScopeRecord::default();
        // 500 spent; each request is estimated at 250 and really costs 200. A request is
        // admitted while something is left, so the last one may end a little over.
        let a = record
            .reserve(&limits, demand(0, 250), T0)
            .unwrap()
            .reservation;
        let b = record
            .reserve(&limits, demand(0, 250), T0)
            .unwrap()
            .reservation;
        let refused = record.reserve(&limits, demand(0, 250), T0).unwrap_err();
        assert_eq!((refused.kind, refused.used), (LimitKind::Budget, 1_000));
        assert_eq!(
            refused.retry_after_ms,
            Some(1_000),
            "only estimates in the way"
        );
        let baseline = limits.budget.unwrap().baseline(T0);
        record.settle(
            &a,
            Actual {
                tokens: 0,
                cost_nano: 200,
            },
            Some(baseline),
            T0 + 1,
        );
        record.settle(
            &b,
            Actual {
                tokens: 0,
                cost_nano: 200,
            },
            Some(baseline),
            T0 + 1,
        );
        let c = record
            .reserve(&limits, demand(0, 250), T0 + 2)
            .unwrap()
            .reservation;
        record.settle(
            &c,
            Actual {
                tokens: 0,
                cost_nano: 200,
            },
            Some(baseline),
            T0 + 3,
        );
        let spent = record.reserve(&limits, demand(0, 1), T0 + 4).unwrap_err();
        assert_eq!(spent.used, 1_100);
        assert_eq!(
            spent.retry_after_ms,
            Some(300_000 - 4),
            "until the window resets"
        );
        // The window ends: the snapshot's spend and the local count start over.
        assert!(record
            .reserve(&limits, demand(0, 250), T0 + 300_000)
            .is_ok());
    }

    #[test]
    fn a_newer_snapshot_replaces_the_local_count_but_not_running_reservations() {
        let mut limits = ScopeLimits {
            budget: Some(budget(1_000, 0)),
            ..ScopeLimits::default()
        };
        let mut record = ScopeRecord::default();
        let a = record
            .reserve(&limits, demand(0, 300), T0)
            .unwrap()
            .reservation;
        let baseline = limits.budget.unwrap().baseline(T0);
        record.settle(
            &a,
            Actual {
                tokens: 0,
                cost_nano: 300,
            },
            Some(baseline),
            T0,
        );
        let _running = record
            .reserve(&limits, demand(0, 300), T0)
            .unwrap()
            .reservation;
        // Snapshot v2 includes the 300 that was shipped.
        limits.budget = Some(Budget {
            spent_nano: 300,
            snapshot_version: 2,
            ..budget(900, 0)
        });
        record.reserve(&limits, demand(0, 300), T0 + 1).unwrap();
        let ledger = record.spend.clone().unwrap();
        assert_eq!((ledger.settled_nano, ledger.reserved_nano), (0, 600));
        let refused = record.reserve(&limits, demand(0, 1), T0 + 2).unwrap_err();
        assert_eq!(refused.used, 900, "300 in the snapshot + 600 running");
        // A worker still on v1 does not undo v2's baseline.
        let old = ScopeLimits {
            budget: Some(budget(10_000, 0)),
            ..ScopeLimits::default()
        };
        record.reserve(&old, demand(0, 0), T0 + 3).unwrap();
        assert_eq!(record.spend.as_ref().unwrap().snapshot_version, 2);
    }

    #[test]
    fn a_cancelled_reservation_leaves_no_trace() {
        let limits = ScopeLimits {
            rpm: Some(5),
            tpm: Some(1_000),
            parallel: Some(3),
            budget: Some(budget(1_000, 0)),
        };
        let mut record = ScopeRecord::default();
        record.reserve(&limits, demand(10, 10), T0).unwrap();
        let before = record.clone();
        let held = record
            .reserve(&limits, demand(100, 100), T0 + 500)
            .unwrap()
            .reservation;
        record.cancel(&held, T0 + 600);
        assert_eq!(record, before);
    }

    #[test]
    fn the_snapshot_can_say_exhausted_on_its_own() {
        let limits = ScopeLimits {
            budget: Some(Budget {
                exhausted: true,
                reset_at_ms: 0,
                ..budget(1_000, 10)
            }),
            ..ScopeLimits::default()
        };
        let refused = ScopeRecord::default()
            .reserve(&limits, demand(0, 0), T0)
            .unwrap_err();
        assert_eq!(refused.kind, LimitKind::Budget);
        assert_eq!(refused.retry_after_ms, None, "a budget that never resets");
    }

    #[test]
    fn the_first_limit_that_refuses_is_reported_and_nothing_is_taken() {
        let limits = ScopeLimits {
            rpm: Some(10),
            tpm: Some(100),
            parallel: Some(1),
            budget: Some(budget(1_000, 0)),
        };
        let mut record = ScopeRecord::default();
        let reserved = record.reserve(&limits, demand(60, 100), T0).unwrap();
        assert_eq!(reserved.after.requests.unwrap().remaining, 9);
        assert_eq!(reserved.after.tokens.unwrap().remaining, 40);
        let held = reserved.reservation;
        let snapshot = record.clone();
        let refused = record.reserve(&limits, demand(60, 100), T0).unwrap_err();
        assert_eq!(refused.kind, LimitKind::Tokens);
        assert_eq!(record, snapshot);
        let refused = record.reserve(&limits, demand(10, 100), T0).unwrap_err();
        assert_eq!(refused.kind, LimitKind::ParallelRequests);
        record.release(&held, T0);
        assert!(record.reserve(&limits, demand(10, 100), T0).is_ok());
    }
}
