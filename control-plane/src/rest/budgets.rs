//! `/budget/*`: LiteLLM's budget objects (see [`crate::named_budget`] for what an attached
//! budget enforces). Shapes as LiteLLM's: `/budget/list` and `POST /budget/info` answer bare
//! arrays of budget rows, `/budget/delete` takes `{"id": …}`. `GET /budget/info?budget_id=`
//! answers one row, for people reading a budget by hand.

use axum::extract::{Extension, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::RestError;
use super::input::{required, Body};
use super::views::time;
use super::{params, Answer, Params, Shared};
use crate::authz::Caller;
use crate::named_budget::{NamedBudget, NamedBudgetInput};
use crate::store::Store;

fn budget_json(b: &NamedBudget) -> Value {
    json!({
        "budget_id": b.id,
        "max_budget": b.max_budget,
        "soft_budget": b.soft_budget,
        "budget_duration": b.budget_duration,
        "rpm_limit": b.rpm,
        "tpm_limit": b.tpm,
        "max_parallel_requests": b.max_parallel,
        "created_at": time(Some(b.created_at)),
        "updated_at": time(Some(b.updated_at)),
    })
}

/// The body of `/budget/new` and `/budget/update`: its `budget_id` and the limits.
fn budget_request(mut body: Body) -> Result<(Option<String>, NamedBudgetInput), RestError> {
    let id = body.take("budget_id")?;
    let input = NamedBudgetInput {
        max_budget: body.change("max_budget")?,
        soft_budget: body.change("soft_budget")?,
        budget_duration: body.change("budget_duration")?,
        rpm: body.change("rpm_limit")?,
        tpm: body.change("tpm_limit")?,
        max_parallel: body.change("max_parallel_requests")?,
    };
    body.finish()?;
    Ok((id, input))
}

pub(super) async fn budget_new<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let (id, input) = budget_request(body)?;
    let budget = admin.create_budget(&caller, id.as_deref(), input).await?;
    Ok(Json(budget_json(&budget)))
}

pub(super) async fn budget_update<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let (id, input) = budget_request(body)?;
    let id = required(id, "budget_id")?;
    Ok(Json(budget_json(
        &admin.update_budget(&caller, &id, input).await?,
    )))
}

pub(super) async fn budget_delete<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let id = body.take("id")?;
    body.finish()?;
    let id = required(id, "id")?;
    Ok(Json(budget_json(&admin.delete_budget(&caller, &id).await?)))
}

pub(super) async fn budget_list<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
) -> Answer {
    let budgets = admin.list_budgets(&caller).await?;
    Ok(Json(json!(budgets
        .iter()
        .map(budget_json)
        .collect::<Vec<_>>())))
}

/// LiteLLM's `{"budgets": [ids]}`: every id must exist.
pub(super) async fn budget_info<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let ids: Vec<String> = body.take("budgets")?.unwrap_or_default();
    body.finish()?;
    if ids.is_empty() {
        return Err(RestError::missing("budgets"));
    }
    let mut found = Vec::with_capacity(ids.len());
    for id in &ids {
        found.push(budget_json(&admin.get_budget(&caller, id).await?));
    }
    Ok(Json(Value::Array(found)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BudgetRef {
    budget_id: Option<String>,
}

pub(super) async fn budget_info_one<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    q: Params<BudgetRef>,
) -> Answer {
    let id = required(params(q)?.budget_id, "budget_id")?;
    Ok(Json(budget_json(&admin.get_budget(&caller, &id).await?)))
}
