//! A declarative LiteLLM client reconciles against Modelgate unchanged: `litellm-as-code` from
//! PyPI (pinned in `tests/litellm-as-code/requirements.txt`, installed by
//! `make litellm-as-code`) applies a spec of a budget, a user, two teams (one with the user
//! as its member) and two keys to the real control plane's LiteLLM REST API, finds nothing to change when it applies the same spec
//! again, and updates a changed budget and key in place.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use modelgate_e2e::api::send;
use modelgate_e2e::process::run_to_success;
use modelgate_e2e::{artifacts, ControlPlane, Gateway};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The spec, with the values the test changes between applies.
fn spec(budget_rpm: u32, budget_max: u32, key_max: u32) -> String {
    format!(
        "budgets:
  - budget_id: research-monthly
    max_budget: {budget_max}
    rpm_limit: {budget_rpm}
    budget_duration: 30d
users:
  - user_id: ana@corp.example
    user_email: ana@corp.example
teams:
  - team_id: team-research
    team_alias: research
    models: [llama3, qwen2.5-7b]
    members_with_roles:
      - user_id: ana@corp.example
        role: user
  - team_id: team-support
    team_alias: support
    models: [llama3]
virtual_keys:
  - key_alias: research-ci
    team_id: team-research
    models: [qwen2.5-7b]
    max_budget: {key_max}
  - key_alias: support-bot
    team_id: team-support
"
    )
}

/// Applies `spec` and returns the plan's summary line ("N to create, N to update, N
/// unchanged.").
fn apply(cp: &ControlPlane, dir: &Path, spec: &str) -> String {
    let path = dir.join("spec.yml");
    std::fs::write(&path, spec).unwrap();
    let out = run_to_success(
        Command::new(litellm_as_code())
            .arg(&path)
            .arg("--base-url")
            .arg(format!("http://{}", cp.http_addr()))
            .arg("--api-key")
            .arg(cp.master_key())
            .env("NO_PROXY", "*"),
    );
    println!("{out}");
    out.lines()
        .rev()
        .find(|l| l.contains(" to update"))
        .unwrap_or_else(|| panic!("no plan summary in:\n{out}"))
        .trim()
        .to_owned()
}

async fn get(cp: &ControlPlane, path: &str) -> Value {
    let gateway = Gateway::new(format!("http://{}", cp.http_addr()));
    let response = send(
        gateway
            .request(http::Method::GET, path)
            .bearer_auth(cp.master_key()),
    )
    .await;
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    response.json()
}

#[tokio::test]
async fn litellm_as_code_applies_reapplies_and_changes_a_spec() {
    let cp = ControlPlane::start().await;
    let dir = tempfile::tempdir().unwrap();

    assert_eq!(
        apply(&cp, dir.path(), &spec(60, 100, 5)),
        "6 to create, 0 to update, 0 unchanged."
    );
    let research = get(&cp, "/team/info?team_id=team-research").await;
    assert_eq!(
        research["team_info"]["members_with_roles"],
        serde_json::json!([{"user_id": "ana@corp.example", "user_email": "ana@corp.example", "role": "user"}]),
        "{research}"
    );
    let teams = get(&cp, "/v2/team/list").await;
    let mut aliases: Vec<&str> = teams["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["team_alias"].as_str().unwrap())
        .collect();
    aliases.sort_unstable();
    assert_eq!(aliases, ["research", "support"]);

    // Idempotent: what it reads back is what it asked for.
    assert_eq!(
        apply(&cp, dir.path(), &spec(60, 100, 5)),
        "0 to create, 0 to update, 6 unchanged."
    );

    // A changed budget and a changed key (addressed by its alias) are updated in place.
    assert_eq!(
        apply(&cp, dir.path(), &spec(120, 250, 8)),
        "0 to create, 2 to update, 4 unchanged."
    );
    let budget = get(&cp, "/budget/info?budget_id=research-monthly").await;
    assert_eq!(
        (
            &budget["rpm_limit"],
            &budget["max_budget"],
            &budget["budget_duration"]
        ),
        (&Value::from(120), &Value::from(250.0), &Value::from("30d")),
        "{budget}"
    );
    let keys = get(&cp, "/key/list?return_full_object=true").await;
    let research = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_alias"] == "research-ci")
        .unwrap();
    assert_eq!(research["max_budget"], 8.0, "{research}");
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "{keys}");
    assert_eq!(
        apply(&cp, dir.path(), &spec(120, 250, 8)),
        "0 to create, 0 to update, 6 unchanged."
    );
}

/// `MODELGATE_LITELLM_AS_CODE`, else where the Makefile installs it:
/// `~/.cache/modelgate/litellm-as-code-<first 16 hex of the requirements' SHA-256>`.
fn litellm_as_code() -> PathBuf {
    let path = match std::env::var_os("MODELGATE_LITELLM_AS_CODE") {
        Some(path) => PathBuf::from(path),
        None => {
            let requirements =
                artifacts::repo_root().join("tests/litellm-as-code/requirements.txt");
            let digest = Sha256::digest(std::fs::read(&requirements).unwrap());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(format!(
                ".cache/modelgate/litellm-as-code-{}/bin/litellm-as-code",
                &hex[..16]
            ))
        }
    };
    assert!(
        path.is_file(),
        "{} not found (run `make litellm-as-code`)",
        path.display()
    );
    path
}
