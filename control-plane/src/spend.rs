//! Spend per budget window, kept current in memory from the usage records, and the policy
//! version bumps that tell filters when a budget's state changed.
//!
//! [`SpendSync`] (one background task per control plane) starts from one aggregate query over
//! every budget's current window, then follows the usage records in chain order
//! (`usage_records.seq`: gapless, and visible in order because appends take turns on the chain
//! head), so each record is read once. Every tick (1 s) it
//! 1. reloads budgets when the policy version moved, and reads the spend of budgets that are
//!    new or whose period changed (one indexed query each, or one aggregate for many);
//! 2. rolls windows that ended: the new window starts with nothing spent, so resets happen on
//!    time without anyone touching the key;
//! 3. adds records that arrived since the last tick to the windows they fall in;
//! 4. bumps the policy version when any budget's window start or exhaustion changed, so every
//!    filter fetches a snapshot with the new [`SpendState`] within one poll.
//!
//! Snapshots read the tracker through [`SpendTracker::reader`], never the usage table, so
//! building one stays cheap however many keys and records there are. Each replica tracks on
//! its own; the first to see a change bumps the version (a second bump is harmless).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::budget::{Budget, Window};
use crate::clock::Timestamp;
use crate::domain::ScopeKind;
use crate::store::{BudgetState, Store, StoreResult};

/// Records read per query while catching up.
const PAGE: u32 = 5_000;
/// More changed budgets than this are read with one aggregate query instead of one each.
const BULK_READ: usize = 64;
/// How often budgets are re-evaluated.
pub const TICK: Duration = Duration::from_secs(1);

/// A budget's current window as filters and admins see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendState {
    pub spend: f64,
    pub window: Window,
    pub exhausted: bool,
}

impl SpendState {
    /// A window nobody has spent in yet.
    pub fn fresh(budget: &Budget, now: Timestamp) -> Self {
        Self {
            spend: 0.0,
            window: budget.window_at(now),
            exhausted: budget.is_exhausted(0.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Tracked {
    budget: Budget,
    window: Window,
    spend: f64,
    /// (window start, exhausted) as of the last tick; `None` before the first one.
    published: Option<(Timestamp, bool)>,
}

impl Tracked {
    fn follows(&self, budget: &Budget) -> bool {
        self.budget.period == budget.period && self.budget.anchor == budget.anchor
    }

    fn published_state(&self) -> (Timestamp, bool) {
        (self.window.start, self.budget.is_exhausted(self.spend))
    }
}

#[derive(Debug, Default)]
struct Budgets {
    keys: HashMap<String, Tracked>,
    teams: HashMap<String, Tracked>,
    users: HashMap<String, Tracked>,
}

impl Budgets {
    fn of(&self, kind: ScopeKind) -> &HashMap<String, Tracked> {
        match kind {
            ScopeKind::Key => &self.keys,
            ScopeKind::Team => &self.teams,
            ScopeKind::User => &self.users,
        }
    }

    fn of_mut(&mut self, kind: ScopeKind) -> &mut HashMap<String, Tracked> {
        match kind {
            ScopeKind::Key => &mut self.keys,
            ScopeKind::Team => &mut self.teams,
            ScopeKind::User => &mut self.users,
        }
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut Tracked> {
        self.keys
            .values_mut()
            .chain(self.teams.values_mut())
            .chain(self.users.values_mut())
    }
}

/// The spend of every budget in its current window, shared by the sync task (writer) and
/// the snapshot builder and admin API (readers).
#[derive(Debug, Default)]
pub struct SpendTracker {
    budgets: RwLock<Budgets>,
}

impl SpendTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Holds the read lock for a batch of lookups (a snapshot reads every key).
    pub fn reader(&self) -> SpendReader<'_> {
        SpendReader(self.budgets.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Budgets> {
        self.budgets.write().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct SpendReader<'a>(RwLockReadGuard<'a, Budgets>);

impl SpendReader<'_> {
    /// The state of a scope's `budget` at `now`. A budget the tracker does not follow yet
    /// (just created, or its period just changed) shows a fresh window until the next tick
    /// reads its spend; a window that ended since the last tick shows as already reset.
    pub fn state(&self, kind: ScopeKind, id: &str, budget: &Budget, now: Timestamp) -> SpendState {
        match self.0.of(kind).get(id) {
            Some(t) if t.follows(budget) && !t.window.has_ended(now) => SpendState {
                spend: t.spend,
                window: t.window,
                exhausted: budget.is_exhausted(t.spend),
            },
            _ => SpendState::fresh(budget, now),
        }
    }

    /// The budget the tracker follows for a scope: its own, or its budget object's.
    pub fn budget_of(&self, kind: ScopeKind, id: &str) -> Option<Budget> {
        self.0.of(kind).get(id).map(|t| t.budget)
    }
}

/// Keeps a [`SpendTracker`] current; see the module docs.
pub struct SpendSync<S> {
    store: S,
    tracker: Arc<SpendTracker>,
    /// The policy version the budgets were loaded from.
    version: u64,
    /// Every usage record up to this chain position has been counted.
    after_seq: i64,
}

impl<S: Store> SpendSync<S> {
    /// Loads every budget and its spend so far.
    pub async fn start(store: S, tracker: Arc<SpendTracker>, now: Timestamp) -> StoreResult<Self> {
        let state = store.load_budgets().await?;
        let totals = store.budget_spend(now, None).await?;
        let spent: HashMap<(ScopeKind, &str), f64> = totals
            .spend
            .iter()
            .map(|(kind, id, spend)| ((*kind, id.as_str()), *spend))
            .collect();
        {
            let mut budgets = tracker.write();
            *budgets = Budgets::default();
            for (kind, id, budget) in &state.budgets {
                let (kind, budget) = (*kind, *budget);
                let spend = spent.get(&(kind, id.as_str())).copied().unwrap_or(0.0);
                let mut t = Tracked {
                    budget,
                    window: budget.window_at(now),
                    spend,
                    published: None,
                };
                t.published = Some(t.published_state());
                budgets.of_mut(kind).insert(id.clone(), t);
            }
        }
        tracing::info!(
            budgets = state.budgets.len(),
            upto_seq = totals.upto_seq,
            "spend tracking started"
        );
        Ok(Self {
            store,
            tracker,
            version: state.version,
            after_seq: totals.upto_seq,
        })
    }

    /// One round (see the module docs). Returns whether it bumped the policy version.
    pub async fn tick(&mut self, now: Timestamp) -> StoreResult<bool> {
        let version = self.store.policy_version().await?;
        if version != self.version {
            let state = self.store.load_budgets().await?;
            self.follow(&state, now).await?;
            self.version = state.version;
        }
        self.roll(now);
        self.ingest().await?;
        if !self.republish(now) {
            return Ok(false);
        }
        let bumped = self.store.bump_policy_version().await?;
        // Nothing else changed policy in between: no need to reload it next tick.
        if bumped == self.version + 1 {
            self.version = bumped;
        }
        tracing::debug!(version = bumped, "budget state changed");
        Ok(true)
    }

    /// Ticks every [`TICK`] until `stop` turns true. Failures are logged and retried.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            if let Err(e) = self.tick(Timestamp::now()).await {
                if e.is_transient() {
                    tracing::warn!(error = %e, "spend tracking: store unavailable, retrying");
                } else {
                    tracing::error!(error = %e, "spend tracking failed, retrying");
                }
            }
        }
    }

    /// Adopts the budgets of a new policy version. Budgets whose period and anchor are
    /// unchanged keep their window and spend (a new amount applies at once); the others get
    /// their current window's spend from the records counted so far.
    async fn follow(&mut self, state: &BudgetState, now: Timestamp) -> StoreResult<()> {
        let mut next = Budgets::default();
        let mut unread = Vec::new();
        {
            let current = self.tracker.reader();
            for (kind, id, budget) in &state.budgets {
                let (kind, budget) = (*kind, *budget);
                match current.0.of(kind).get(id) {
                    Some(t) if t.follows(&budget) => {
                        next.of_mut(kind)
                            .insert(id.clone(), Tracked { budget, ..*t });
                    }
                    _ => unread.push((kind, id.clone(), budget)),
                }
            }
        }
        let read = self.read_spend(&unread, now).await?;
        for ((kind, id, budget), spend) in unread.into_iter().zip(read) {
            let tracked = Tracked {
                budget,
                window: budget.window_at(now),
                spend,
                published: None,
            };
            next.of_mut(kind).insert(id, tracked);
        }
        *self.tracker.write() = next;
        Ok(())
    }

    /// The spend of each budget's window at `now`, over the records counted so far.
    async fn read_spend(
        &self,
        budgets: &[(ScopeKind, String, Budget)],
        now: Timestamp,
    ) -> StoreResult<Vec<f64>> {
        if budgets.len() > BULK_READ {
            let totals = self.store.budget_spend(now, Some(self.after_seq)).await?;
            let spent: HashMap<(ScopeKind, &str), f64> = totals
                .spend
                .iter()
                .map(|(kind, id, spend)| ((*kind, id.as_str()), *spend))
                .collect();
            return Ok(budgets
                .iter()
                .map(|(kind, id, _)| spent.get(&(*kind, id.as_str())).copied().unwrap_or(0.0))
                .collect());
        }
        let mut out = Vec::with_capacity(budgets.len());
        for (kind, id, budget) in budgets {
            let since = budget.window_at(now).start;
            out.push(
                self.store
                    .scope_spend(*kind, id, since, self.after_seq)
                    .await?,
            );
        }
        Ok(out)
    }

    fn roll(&self, now: Timestamp) {
        for t in self.tracker.write().all_mut() {
            if t.window.has_ended(now) {
                t.window = t.budget.window_at(now);
                t.spend = 0.0;
            }
        }
    }

    /// Counts the records that arrived since the last round.
    async fn ingest(&mut self) -> StoreResult<()> {
        loop {
            let rows = self.store.usage_after(self.after_seq, PAGE).await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            let last_seq = last.id;
            {
                let mut budgets = self.tracker.write();
                for row in &rows {
                    for (kind, id) in [
                        (ScopeKind::Key, &row.key_id),
                        (ScopeKind::Team, &row.team_id),
                        (ScopeKind::User, &row.user_id),
                    ] {
                        if let Some(t) = budgets.of_mut(kind).get_mut(id.as_str()) {
                            // A record from before the window (delivered late) belongs to a
                            // window that is over.
                            if row.timestamp >= t.window.start {
                                t.spend += row.spend;
                            }
                        }
                    }
                }
            }
            self.after_seq = last_seq;
            if rows.len() < PAGE as usize {
                return Ok(());
            }
        }
    }

    /// Whether any budget's window start or exhaustion differs from the last round (a budget
    /// seen for the first time is compared with the fresh window the snapshot showed for it).
    fn republish(&self, now: Timestamp) -> bool {
        let mut changed = false;
        for t in self.tracker.write().all_mut() {
            let state = t.published_state();
            let before = t.published.unwrap_or_else(|| {
                let fresh = SpendState::fresh(&t.budget, now);
                (fresh.window.start, fresh.exhausted)
            });
            changed |= state != before;
            t.published = Some(state);
        }
        changed
    }
}

#[cfg(test)]
mod tests;
