//! Spend reports of a key, team or user, each asked of [`authz`] with the scope.

use super::access::Target;
use super::{Admin, AdminResult};
use super::{SpendReport, SpendScope, MAX_HISTORY_DAYS};
use modelgate_proto::v1::UsageRecord;
use prost::Message;

use crate::audit::{AuditFilter, RecordKind};
use crate::authz::{Action, Caller, Object};
use crate::budget::{Budget, Window, DAY_MS};
use crate::clock::Timestamp;
use crate::domain::ScopeKind;
use crate::limits::Limits;
use crate::store::Store;

impl<S: Store> Admin<S> {
    /// Spend of one scope: its current window (read from the usage records, so it includes
    /// what arrived since the last tick) and `history_days` of daily totals.
    pub async fn spend(
        &self,
        caller: &Caller,
        scope: SpendScope,
        history_days: u32,
    ) -> AdminResult<SpendReport> {
        let now = Timestamp::now();
        let (kind, id, limits, created_at) = match scope {
            SpendScope::Key(key) => {
                let k = self
                    .permitted_key(caller, Action::ReadSpend, &key)
                    .await?
                    .key;
                (ScopeKind::Key, k.public_id, k.limits, k.created_at)
            }
            SpendScope::Team(team) => {
                let t = self.find_team(&team).await?;
                let target = Target::new("team", &t.id);
                self.permit(caller, Action::ReadSpend, Object::Team(&t.id), target)
                    .await?;
                (ScopeKind::Team, t.id, t.limits, t.created_at)
            }
            SpendScope::User(user) => {
                let user = user.trim().to_owned();
                let target = Target::new("user", &user);
                self.permit(caller, Action::ReadSpend, Object::User(&user), target)
                    .await?;
                // Keys name users freely, so spend exists for users without a record.
                match self.store.find_user(&user).await? {
                    Some(u) => (ScopeKind::User, u.id, u.limits, u.created_at),
                    None => (
                        ScopeKind::User,
                        user,
                        Limits::default(),
                        Timestamp::from_millis(0),
                    ),
                }
            }
        };
        let budget = self.effective_budget(kind, &id, &limits);
        let window = budget.map_or(
            Window {
                start: created_at,
                reset_at: None,
            },
            |b: Budget| b.window_at(now),
        );
        let all = i64::MAX;
        let spend = self.store.scope_spend(kind, &id, window.start, all).await?;
        let total_spend = self
            .store
            .scope_spend(kind, &id, Timestamp::from_millis(0), all)
            .await?;
        let history = match history_days.min(MAX_HISTORY_DAYS) {
            0 => Vec::new(),
            days => {
                let today = now.as_millis() - now.as_millis().rem_euclid(DAY_MS);
                let since = Timestamp::from_millis(today - i64::from(days - 1) * DAY_MS);
                self.store.spend_history(kind, &id, since).await?
            }
        };
        Ok(SpendReport {
            scope: kind,
            exhausted: budget.is_some_and(|b| b.is_exhausted(spend)),
            id,
            limits,
            window,
            spend,
            total_spend,
            history,
        })
    }

    /// Request records matching `filter` (admin records are not spend), in time order, at
    /// most `limit`: LiteLLM's spend logs, so readable by whoever may read the audit log.
    pub async fn usage_records(
        &self,
        caller: &Caller,
        filter: &AuditFilter,
        limit: u32,
    ) -> AdminResult<Vec<UsageRecord>> {
        self.permit(caller, Action::ReadAudit, Object::Global, Target::NONE)
            .await?;
        let filter = AuditFilter {
            kind: Some(RecordKind::Request),
            ..filter.clone()
        };
        let stored = self.store.query_records(&filter, None, limit).await?;
        stored
            .iter()
            .map(|r| Ok(UsageRecord::decode(r.record.as_slice())?))
            .collect()
    }
}
