//! Rate limits, parallel-request caps and budgets, enforced per request without a network
//! call and shared by every Envoy worker thread.
//!
//! - **What applies** ([`plan`]): per key, team and user, from the snapshot.
//! - **Windows** ([`window`]): RPM and TPM are sliding windows of 60 one-second buckets plus
//!   the current one, so no 60-second interval ever admits more than the limit (no fixed-window
//!   2x at the boundary); a unit is forgotten 60 to 61 s after it was counted.
//! - **Counters** ([`record`]): one shared-data value per scope,
//!   `modelgate.v1.limits.<key|team|user>.<id>`, holding that scope's request window, token
//!   window, in-flight slots (by minute, with a 15-minute lease so a crashed VM's slots come
//!   back) and its local spend ledger.
//! - **Atomicity** ([`shared`]): compare-and-swap read-modify-write with bounded retries; a
//!   record is created with a conditional write too, so two workers never overwrite each
//!   other's first reservation.
//! - **Admission** ([`admission`]): reserve 1 request, the estimated tokens (prompt estimate +
//!   `max_tokens` or the route's default) and the estimated cost in every scope, or refuse
//!   with the first limit hit and take back what earlier scopes reserved. `settle` replaces
//!   the estimates with the real usage; `release` frees the parallel slot on every ending.
//! - **Budgets**: the snapshot says how much each scope spent (or that it is exhausted); the
//!   ledger adds what this Envoy settled since that snapshot plus the estimates of running
//!   requests. A request is admitted while spend is under the budget, so N concurrent
//!   requests against a budget that fits k go through at most k at a time (+ what finished
//!   since the last snapshot but was not yet in it: one tick of traffic).

pub mod admission;
pub mod plan;
pub mod record;
pub mod shared;
pub mod window;

pub use admission::{admit, Admission, LimitHit, Refusal};
pub use plan::{nano_to_usd, Plan, Scope, ScopeKind};
pub use record::{Actual, Demand, LimitKind};

#[cfg(test)]
mod tests;
