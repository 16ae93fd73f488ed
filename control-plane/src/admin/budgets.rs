//! LiteLLM budget objects: admins manage them and attach them to keys, teams and users;
//! readers are asked of [`authz`](crate::authz) like other reads.

use std::future::Future;

use super::access::{self, Target};
use super::{Admin, AdminResult, CreatedKey, KeyView, TeamView, UserView};
use crate::authz::{Action, Caller, Object};
use crate::clock::Timestamp;
use crate::domain::ScopeKind;
use crate::keys;
use crate::named_budget::{parse_budget_id, NamedBudget, NamedBudgetInput};
use crate::store::{Store, StoreError};

/// Length of the random part of a generated `budget_id`.
const GENERATED_ID_LEN: usize = 16;

fn budget_fields(b: &NamedBudget) -> Vec<(&'static str, String)> {
    let shown = |v: Option<String>| v.unwrap_or_default();
    vec![
        ("max_budget", shown(b.max_budget.map(|v| v.to_string()))),
        ("soft_budget", shown(b.soft_budget.map(|v| v.to_string()))),
        ("budget_duration", shown(b.budget_duration.clone())),
        ("rpm_limit", shown(b.rpm.map(|v| v.to_string()))),
        ("tpm_limit", shown(b.tpm.map(|v| v.to_string()))),
        (
            "max_parallel_requests",
            shown(b.max_parallel.map(|v| v.to_string())),
        ),
    ]
}

impl<S: Store> Admin<S> {
    async fn permit_budgets(&self, caller: &Caller, action: Action, id: &str) -> AdminResult<()> {
        self.permit(caller, action, Object::Global, Target::new("budget", id))
            .await
    }

    /// Creates a budget under the caller's `budget_id`, or a generated one.
    pub async fn create_budget(
        &self,
        caller: &Caller,
        id: Option<&str>,
        input: NamedBudgetInput,
    ) -> AdminResult<NamedBudget> {
        let id = match id {
            Some(id) => parse_budget_id(id)?,
            None => format!("budget-{}", keys::random_id(GENERATED_ID_LEN)?),
        };
        self.permit_budgets(caller, Action::ManageBudgets, &id)
            .await?;
        let budget = input.apply_to(&id, None, Timestamp::now())?;
        self.store.create_budget(&budget).await?;
        tracing::info!(budget_id = %budget.id, "budget created");
        self.record_budget(caller, None, Some(&budget)).await;
        Ok(budget)
    }

    pub async fn update_budget(
        &self,
        caller: &Caller,
        id: &str,
        input: NamedBudgetInput,
    ) -> AdminResult<NamedBudget> {
        self.permit_budgets(caller, Action::ManageBudgets, id)
            .await?;
        let (before, after) = self
            .store
            .update_budget(id, &input, Timestamp::now())
            .await?;
        tracing::info!(budget_id = %id, "budget updated");
        self.record_budget(caller, Some(&before), Some(&after))
            .await;
        Ok(after)
    }

    /// Deletes a budget nothing is attached to (as LiteLLM, whose budget rows are referenced).
    pub async fn delete_budget(&self, caller: &Caller, id: &str) -> AdminResult<NamedBudget> {
        self.permit_budgets(caller, Action::ManageBudgets, id)
            .await?;
        let budget = self.store.delete_budget(id).await?;
        tracing::info!(budget_id = %id, "budget deleted");
        self.record_budget(caller, Some(&budget), None).await;
        Ok(budget)
    }

    /// Appends a budget's change (created: no `before`; deleted: no `after`).
    async fn record_budget(
        &self,
        caller: &Caller,
        before: Option<&NamedBudget>,
        after: Option<&NamedBudget>,
    ) {
        let Some(id) = after.or(before).map(|b| b.id.as_str()) else {
            return;
        };
        let fields = |b: Option<&NamedBudget>| b.map(budget_fields).unwrap_or_default();
        let changes = access::changes(&fields(before), &fields(after));
        self.record_write(
            caller,
            Action::ManageBudgets,
            Target::new("budget", id),
            changes,
        )
        .await;
    }

    pub async fn get_budget(&self, caller: &Caller, id: &str) -> AdminResult<NamedBudget> {
        self.permit_budgets(caller, Action::ReadBudgets, id).await?;
        Ok(self
            .store
            .find_budget(id)
            .await?
            .ok_or_else(|| StoreError::BudgetNotFound(id.to_owned()))?)
    }

    pub async fn list_budgets(&self, caller: &Caller) -> AdminResult<Vec<NamedBudget>> {
        self.permit_budgets(caller, Action::ReadBudgets, "").await?;
        Ok(self.store.list_budgets().await?)
    }

    /// Whether the caller may attach `budget` (`None`: detach) and the budget exists; asked
    /// before the scope is written, so a refusal changes nothing.
    pub async fn check_attachable(&self, caller: &Caller, budget: Option<&str>) -> AdminResult<()> {
        self.permit_budgets(caller, Action::ManageBudgets, budget.unwrap_or_default())
            .await?;
        if let Some(id) = budget {
            self.store
                .find_budget(id)
                .await?
                .ok_or_else(|| StoreError::BudgetNotFound(id.to_owned()))?;
        }
        Ok(())
    }

    /// Makes a key (public id), team (id) or user name `budget` (`None` detaches). The caller
    /// has already changed or created the scope with its own permission; attaching limits
    /// is an admin's call on top.
    pub async fn attach_budget(
        &self,
        caller: &Caller,
        kind: ScopeKind,
        scope_id: &str,
        budget: Option<&str>,
    ) -> AdminResult<()> {
        let target = Target::new(kind.as_str(), scope_id);
        self.permit(caller, Action::ManageBudgets, Object::Global, target)
            .await?;
        let before = self.store.link_budget(kind, scope_id, budget).await?;
        if before.as_deref() != budget {
            tracing::info!(scope = kind.as_str(), scope_id, budget_id = ?budget, "budget attached");
            let field = |b: Option<&str>| vec![("budget_id", b.unwrap_or_default().to_owned())];
            let changes = access::changes(&field(before.as_deref()), &field(budget));
            self.record_write(caller, Action::ManageBudgets, target, changes)
                .await;
        }
        Ok(())
    }

    /// Runs `write` (a key's, team's or user's create or update) with a budget object
    /// attached to or detached from the written scope: `change` is `None` to leave it,
    /// `Some(Some(id))` to attach, `Some(None)` to detach. The budget is checked before
    /// `write` runs, so a refusal writes nothing, and the answer shows the budget.
    pub async fn with_budget<V: Budgeted>(
        &self,
        caller: &Caller,
        change: Option<Option<&str>>,
        write: impl Future<Output = AdminResult<V>>,
    ) -> AdminResult<V> {
        if let Some(budget) = change {
            self.check_attachable(caller, budget).await?;
        }
        let mut view = write.await?;
        if let Some(budget) = change {
            let (kind, scope_id) = view.scope();
            let scope_id = scope_id.to_owned();
            self.attach_budget(caller, kind, &scope_id, budget).await?;
            *view.budget_id_mut() = budget.map(str::to_owned);
        }
        Ok(view)
    }

    /// The budget a scope the caller has already been allowed to read names.
    pub async fn budget_of(&self, kind: ScopeKind, scope_id: &str) -> AdminResult<Option<String>> {
        Ok(self.store.budget_link(kind, scope_id).await?)
    }
}

/// A written key, team or user as answered, which can name a budget object.
pub trait Budgeted {
    fn scope(&self) -> (ScopeKind, &str);
    fn budget_id_mut(&mut self) -> &mut Option<String>;
}

impl Budgeted for TeamView {
    fn scope(&self) -> (ScopeKind, &str) {
        (ScopeKind::Team, &self.team.id)
    }

    fn budget_id_mut(&mut self) -> &mut Option<String> {
        &mut self.budget_id
    }
}

impl Budgeted for KeyView {
    fn scope(&self) -> (ScopeKind, &str) {
        (ScopeKind::Key, &self.key.public_id)
    }

    fn budget_id_mut(&mut self) -> &mut Option<String> {
        &mut self.budget_id
    }
}

impl Budgeted for CreatedKey {
    fn scope(&self) -> (ScopeKind, &str) {
        self.view.scope()
    }

    fn budget_id_mut(&mut self) -> &mut Option<String> {
        self.view.budget_id_mut()
    }
}

impl Budgeted for UserView {
    fn scope(&self) -> (ScopeKind, &str) {
        (ScopeKind::User, &self.user.id)
    }

    fn budget_id_mut(&mut self) -> &mut Option<String> {
        &mut self.budget_id
    }
}
