//! `modelgate budget create|list|info|update|delete`: LiteLLM budget objects, the named limits
//! keys, teams and users take on by naming them (REST `budget_id`).

use std::io::Write;

use clap::{Args, Subcommand};
use modelgate_proto::v1 as pb;
use serde_json::json;

use super::admin::{connect, ClearArgs};
use super::client::CliError;
use super::output::{json_line, non_empty, opt, table};
use super::GlobalArgs;
use crate::named_budget::NamedBudgetInput;

/// A budget object's fields; on update, only those given change.
#[derive(Args, Default)]
pub struct BudgetArgs {
    /// Spending cap of each key, team or user the budget is attached to, on its own spend.
    #[arg(long, value_name = "AMOUNT")]
    max_budget: Option<f64>,
    /// Alerting threshold (stored and shown; Modelgate sends no alerts).
    #[arg(long, value_name = "AMOUNT")]
    soft_budget: Option<f64>,
    /// How often each attached scope's spend resets: 1m to 1y (m, h, d, w, y).
    #[arg(long, value_name = "DURATION")]
    budget_duration: Option<String>,
    /// Requests per minute, where the scope sets none of its own.
    #[arg(long, value_name = "N")]
    rpm: Option<u64>,
    /// Tokens per minute, where the scope sets none of its own.
    #[arg(long, value_name = "N")]
    tpm: Option<u64>,
    /// Requests in flight at once, where the scope sets none of its own.
    #[arg(long, value_name = "N")]
    max_parallel: Option<u32>,
}

impl BudgetArgs {
    fn settings(self) -> pb::BudgetSettings {
        pb::BudgetSettings {
            max_budget: self.max_budget,
            soft_budget: self.soft_budget,
            budget_duration: self.budget_duration,
            rpm_limit: self.rpm,
            tpm_limit: self.tpm,
            max_parallel_requests: self.max_parallel,
        }
    }
}

#[derive(Subcommand)]
pub enum BudgetCommand {
    /// Create a budget object.
    Create {
        /// Its id (default: a drawn `budget-<16 chars>`).
        #[arg(long)]
        budget_id: Option<String>,
        #[command(flatten)]
        settings: BudgetArgs,
        #[arg(long)]
        json: bool,
    },
    /// List budget objects.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a budget object.
    Info {
        budget_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a budget object: what is given, and what --clear names.
    #[command(after_help = format!("--clear takes: {}", NamedBudgetInput::CLEARABLE))]
    Update {
        budget_id: String,
        #[command(flatten)]
        settings: BudgetArgs,
        #[command(flatten)]
        clear: ClearArgs,
        #[arg(long)]
        json: bool,
    },
    /// Delete a budget object nothing is attached to.
    Delete {
        budget_id: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run_budget(global: &GlobalArgs, command: BudgetCommand) -> Result<(), CliError> {
    let mut client = connect(global).await?;
    let mut out = std::io::stdout().lock();
    let admin = client.admin();
    match command {
        BudgetCommand::Create {
            budget_id,
            settings,
            json,
        } => {
            let request = pb::CreateBudgetRequest {
                budget_id: budget_id.unwrap_or_default(),
                settings: Some(settings.settings()),
            };
            let b = admin.create_budget(request).await?.into_inner();
            budget(&mut out, &b, "Created budget", json)
        }
        BudgetCommand::List { json } => {
            let budgets = admin
                .list_budgets(pb::ListBudgetsRequest {})
                .await?
                .into_inner()
                .budgets;
            if json {
                let items: Vec<_> = budgets.iter().map(budget_json).collect();
                return json_line(&mut out, &items);
            }
            let rows: Vec<Vec<String>> = budgets
                .iter()
                .map(|b| {
                    vec![
                        b.budget_id.clone(),
                        opt(b.max_budget),
                        opt(non_empty(&b.budget_duration)),
                        opt(b.rpm_limit),
                        opt(b.tpm_limit),
                        opt(b.max_parallel_requests),
                        opt(b.soft_budget),
                    ]
                })
                .collect();
            let header = [
                "BUDGET", "MAX", "DURATION", "RPM", "TPM", "PARALLEL", "SOFT",
            ];
            table(&mut out, &header, &rows)
        }
        BudgetCommand::Info { budget_id, json } => {
            let b = admin
                .get_budget(pb::BudgetRef { budget_id })
                .await?
                .into_inner();
            budget(&mut out, &b, "Budget", json)
        }
        BudgetCommand::Update {
            budget_id,
            settings,
            clear,
            json,
        } => {
            let request = pb::UpdateBudgetRequest {
                budget_id,
                settings: Some(settings.settings()),
                clear: clear.clear,
            };
            let b = admin.update_budget(request).await?.into_inner();
            budget(&mut out, &b, "Updated budget", json)
        }
        BudgetCommand::Delete { budget_id, json } => {
            let b = admin
                .delete_budget(pb::BudgetRef { budget_id })
                .await?
                .into_inner();
            budget(&mut out, &b, "Deleted budget", json)
        }
    }
}

/// The REST shape (`/budget/info`).
fn budget_json(b: &pb::BudgetObject) -> serde_json::Value {
    json!({
        "budget_id": b.budget_id,
        "max_budget": b.max_budget,
        "soft_budget": b.soft_budget,
        "budget_duration": non_empty(&b.budget_duration),
        "rpm_limit": b.rpm_limit,
        "tpm_limit": b.tpm_limit,
        "max_parallel_requests": b.max_parallel_requests,
    })
}

fn budget(
    out: &mut impl Write,
    b: &pb::BudgetObject,
    heading: &str,
    json: bool,
) -> Result<(), CliError> {
    if json {
        return json_line(out, &budget_json(b));
    }
    writeln!(out, "{heading} {}", b.budget_id)?;
    let duration = non_empty(&b.budget_duration);
    writeln!(
        out,
        "max_budget: {} per {}",
        opt(b.max_budget),
        duration.unwrap_or("lifetime")
    )?;
    writeln!(
        out,
        "limits:     rpm {}  tpm {}  parallel {}",
        opt(b.rpm_limit),
        opt(b.tpm_limit),
        opt(b.max_parallel_requests)
    )?;
    writeln!(out, "soft:       {}", opt(b.soft_budget))?;
    Ok(())
}
