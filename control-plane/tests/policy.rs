//! The policy model of issue 3 through the real `modelgate serve`: the CLI, the gRPC admin
//! and policy services, and the LiteLLM-compatible REST API, as admins and filters use them.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use std::time::{Duration, Instant};

use modelgate_proto::v1 as pb;
use modelgate_proto::v1::admin_service_client::AdminServiceClient;
use serde_json::{json, Value};
use support::control_plane::ControlPlane;
use support::postgres::TestDatabase;
use support::rest::{error, http, Rest};
use tonic::{Code, Request};

fn master_key(cp: &ControlPlane) -> String {
    std::fs::read_to_string(cp.data_dir.join("master.key"))
        .unwrap()
        .trim()
        .to_owned()
}

fn authorized<T>(msg: T, key: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    req
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn snapshot(cp: &ControlPlane, known_version: u64) -> pb::GetSnapshotResponse {
    let mut policy = cp.policy_client().await;
    policy
        .get_snapshot(pb::GetSnapshotRequest {
            known_version,
            node_id: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn teams_keys_users_and_models_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"entities": {"PERSON": "reversible"}}"#).unwrap();

    let team = cp
        .cli(&[
            "team",
            "create",
            "--alias",
            "ml",
            "--models",
            "llama3,qwen2.5-*",
            "--max-budget",
            "10",
            "--budget-duration",
            "30d",
            "--rpm",
            "100",
            "--tpm",
            "10000",
            "--max-parallel",
            "4",
            "--metadata",
            r#"{"owner":"ana","cost_center":42}"#,
            "--redaction-policy",
            policy.to_str().unwrap(),
            "--high-trust",
            "--json",
        ])
        .json();
    assert_eq!(team["alias"], "ml");
    assert_eq!(team["models"], json!(["llama3", "qwen2.5-*"]));
    assert_eq!(team["rpm_limit"], 100);
    assert_eq!(team["tpm_limit"], 10_000);
    assert_eq!(team["max_parallel_requests"], 4);
    assert_eq!(team["max_budget"], 10.0);
    assert_eq!(team["budget_duration"], "30d");
    assert_eq!(team["budget_reset"], "rolling");
    assert_eq!(team["metadata"]["cost_center"], 42);
    assert_eq!(team["redaction_policy"]["entities"]["PERSON"], "reversible");
    assert_eq!(team["high_trust"], true);
    assert_eq!(team["spend"]["spend"], 0.0);
    assert_eq!(team["spend"]["exhausted"], false);

    let updated = cp
        .cli(&[
            "team",
            "update",
            "ml",
            "--rpm",
            "50",
            "--no-high-trust",
            "--clear",
            "redaction_policy,max-budget",
            "--json",
        ])
        .json();
    assert_eq!(updated["rpm_limit"], 50);
    assert_eq!(updated["tpm_limit"], 10_000);
    assert_eq!(updated["high_trust"], false);
    assert!(updated["redaction_policy"].is_null());
    assert!(updated["max_budget"].is_null() && updated["spend"].is_null());
    let blocked = cp.cli(&["team", "block", "ml", "--json"]).json();
    assert_eq!(blocked["blocked"], true);
    let human = cp.cli(&["team", "unblock", "ml"]).ok().to_owned();
    assert!(human.starts_with("Unblocked team ml"), "{human}");
    let table = cp.cli(&["team", "list"]).ok().to_owned();
    assert!(table.starts_with("TEAM_ID"), "{table}");
    assert!(table.contains("50") && table.contains("active"), "{table}");

    let key = cp
        .cli(&[
            "key",
            "create",
            "--team",
            "ml",
            "--user",
            "ana@example.com",
            "--models",
            "qwen2.5-7b",
            "--rpm",
            "20",
            "--max-parallel",
            "2",
            "--max-budget",
            "1.5",
            "--budget-reset",
            "calendar-month",
            "--metadata",
            r#"{"env":"prod","owner":"ana"}"#,
            "--json",
        ])
        .json();
    assert!(key["key"].as_str().unwrap().starts_with("sk-mg-"));
    assert_eq!(key["rpm_limit"], 20);
    assert_eq!(key["budget_reset"], "calendar-month");
    assert!(key["budget_duration"].is_null());
    let id = key["public_id"].as_str().unwrap().to_owned();
    let other = cp
        .cli(&[
            "key",
            "create",
            "--team",
            "ml",
            "--metadata",
            r#"{"env":"dev"}"#,
            "--json",
        ])
        .json();
    let other_id = other["public_id"].as_str().unwrap().to_owned();

    let shown = cp.cli(&["key", "show", &id, "--json"]).json();
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["max_parallel_requests"], 2);
    assert_eq!(shown["spend"]["exhausted"], false);
    assert!(shown["spend"]["window_start"]
        .as_str()
        .unwrap()
        .ends_with("-01T00:00:00.000Z"));
    assert!(shown["last_used_at"].is_null());

    let changed = cp
        .cli(&[
            "key",
            "update",
            &id,
            "--alias",
            "laptop",
            "--tpm",
            "500",
            "--clear",
            "rpm_limit",
            "--json",
        ])
        .json();
    assert_eq!(changed["key_alias"], "laptop");
    assert!(changed["rpm_limit"].is_null());
    assert_eq!(changed["tpm_limit"], 500);
    assert_eq!(
        cp.cli(&["key", "block", &id, "--json"]).json()["status"],
        "blocked"
    );
    assert_eq!(
        cp.cli(&["key", "unblock", &id, "--json"]).json()["status"],
        "active"
    );

    let ids = |out: Value| -> Vec<String> {
        out.as_array()
            .unwrap()
            .iter()
            .map(|k| k["public_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let prod = cp
        .cli(&["key", "list", "--tag", "env=prod", "--json"])
        .json();
    assert_eq!(ids(prod), [id.as_str()]);
    let both = cp
        .cli(&[
            "key", "list", "--tag", "env=prod", "--tag", "owner=bo", "--json",
        ])
        .json();
    assert!(ids(both).is_empty());
    let ana = cp
        .cli(&["key", "list", "--user", "ana@example.com", "--json"])
        .json();
    assert_eq!(ids(ana), [id.as_str()]);
    let all = cp.cli(&["key", "list", "--team", "ml", "--json"]).json();
    assert_eq!(ids(all), [id.clone(), other_id.clone()]);
    assert!(ids(cp.cli(&["key", "list", "--expired", "--json"]).json()).is_empty());
    assert!(ids(cp
        .cli(&["key", "list", "--unused-days", "1", "--json"])
        .json())
    .is_empty());
    let table = cp.cli(&["key", "list", "--tag", "env=dev"]).ok().to_owned();
    assert!(
        table.contains(&other_id) && table.contains("LAST_USED") && !table.contains(&id),
        "{table}"
    );

    // A key that expires in a second is listed as expired after it.
    let short = cp
        .cli(&["key", "create", "--team", "ml", "--expires", "1s", "--json"])
        .json();
    std::thread::sleep(Duration::from_millis(1_100));
    let expired = cp.cli(&["key", "list", "--expired", "--json"]).json();
    assert_eq!(
        ids(expired),
        [short["public_id"].as_str().unwrap().to_owned()]
    );

    let user = cp
        .cli(&[
            "user",
            "create",
            "ana@example.com",
            "--tpm",
            "1000",
            "--max-budget",
            "5",
            "--budget-reset",
            "calendar-week",
            "--json",
        ])
        .json();
    assert_eq!(user["user_id"], "ana@example.com");
    assert_eq!(user["budget_reset"], "calendar-week");
    let user = cp
        .cli(&[
            "user",
            "update",
            "ana@example.com",
            "--rpm",
            "7",
            "--clear",
            "max_budget",
            "--json",
        ])
        .json();
    assert_eq!(
        (user["rpm_limit"].clone(), user["tpm_limit"].clone()),
        (json!(7), json!(1000))
    );
    assert!(user["max_budget"].is_null());
    let users = cp.cli(&["user", "list", "--json"]).json();
    assert_eq!(users[0]["user_id"], "ana@example.com");
    assert!(cp
        .cli(&["user", "show", "ana@example.com"])
        .ok()
        .contains("rpm 7"));

    let model = cp
        .cli(&[
            "model",
            "add",
            "llama3.1-8b",
            "--upstream-model",
            "llama3.1:8b",
            "--cluster",
            "ollama",
            "--input-cost-per-mtok",
            "0.15",
            "--output-cost-per-mtok",
            "0.6",
            "--json",
        ])
        .json();
    assert_eq!(model["upstream_model"], "llama3.1:8b");
    assert_eq!(model["cluster"], "ollama");
    cp.cli(&["model", "add", "qwen2.5-7b"]).ok();
    let updated = cp
        .cli(&[
            "model",
            "update",
            "llama3.1-8b",
            "--cluster",
            "",
            "--default-max-tokens",
            "256",
            "--max-output-tokens",
            "128",
            "--json",
        ])
        .json();
    assert!(updated["cluster"].is_null());
    assert_eq!(updated["default_max_tokens"], 256);
    assert_eq!(updated["max_output_tokens"], 128);
    let refused = cp
        .cli(&[
            "model",
            "update",
            "llama3.1-8b",
            "--max-output-tokens",
            "4294967296",
        ])
        .fails()
        .to_owned();
    assert!(
        refused.contains("max_output_tokens is too large"),
        "{refused}"
    );
    let models = cp.cli(&["model", "list", "--json"]).json();
    assert_eq!(models.as_array().unwrap().len(), 2);
    assert_eq!(
        models[1]["upstream_model"], "qwen2.5-7b",
        "defaults to the name"
    );
    assert_eq!(models[1]["input_cost_per_mtok"], 0.0);
    cp.cli(&["model", "remove", "qwen2.5-7b"]).ok();
    let table = cp.cli(&["model", "list"]).ok().to_owned();
    assert!(
        table.contains("llama3.1:8b") && !table.contains("qwen2.5-7b"),
        "{table}"
    );
    assert!(
        table.contains("MAX_OUTPUT") && table.contains(" 128"),
        "the cap shows in the list: {table}"
    );

    let spend = cp
        .cli(&["spend", "--key", &id, "--history", "--days", "7", "--json"])
        .json();
    assert_eq!(spend["scope"], "key");
    assert_eq!(spend["id"], id.as_str());
    assert_eq!(spend["spend"], 0.0);
    assert_eq!(spend["max_budget"], 1.5);
    assert_eq!(spend["history"], json!([]));
    let team_spend = cp.cli(&["spend", "--team", "ml"]).ok().to_owned();
    assert!(
        team_spend.starts_with("Spend of team team_"),
        "{team_spend}"
    );
}

#[tokio::test]
async fn mistakes_name_the_field_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    cp.cli(&[
        "team",
        "create",
        "--alias",
        "ml",
        "--models",
        "llama3,qwen2.5-*",
        "--rpm",
        "100",
        "--max-budget",
        "10",
    ])
    .ok();

    let cases: &[(&[&str], &str)] = &[
        (
            &["key", "create", "--team", "ml", "--rpm", "101"],
            "rpm_limit 101 is above team ml's rpm_limit 100",
        ),
        (
            &["key", "create", "--team", "ml", "--max-budget", "11"],
            "max_budget 11 is above team ml's max_budget 10",
        ),
        (
            &["key", "create", "--team", "ml", "--models", "qwen2.5x"],
            "models: \"qwen2.5x\" is not within team ml's models (llama3, qwen2.5-*)",
        ),
        (
            &["key", "create", "--team", "ml", "--models", "*"],
            "models: \"*\" is not within team ml's models",
        ),
        (
            &["team", "create", "--alias", "web", "--models", "qwen*-7b"],
            "model pattern \"qwen*-7b\" is invalid",
        ),
        (
            &[
                "team",
                "create",
                "--alias",
                "web",
                "--max-budget",
                "5",
                "--budget-duration",
                "30s",
            ],
            "budget_duration \"30s\" is out of range: use 1m to 1y",
        ),
        (
            &[
                "team",
                "create",
                "--alias",
                "web",
                "--budget-duration",
                "1d",
            ],
            "budget_duration and budget_reset need a max_budget",
        ),
        (
            &[
                "team",
                "create",
                "--alias",
                "web",
                "--max-budget",
                "5",
                "--budget-reset",
                "monthly",
            ],
            "budget_reset \"monthly\" is invalid",
        ),
        (
            &["team", "create", "--alias", "web", "--rpm", "0"],
            "rpm_limit must be at least 1",
        ),
        (
            &["team", "create", "--alias", "web", "--metadata", "[1]"],
            "metadata is invalid: expected a JSON object",
        ),
        (
            &["team", "update", "ml", "--clear", "alias"],
            "cannot clear \"alias\"",
        ),
        (
            &["team", "update", "ml", "--rpm", "5", "--clear", "rpm_limit"],
            "rpm_limit is both set and cleared",
        ),
        (&["team", "block", "nope"], "team \"nope\" not found"),
        (
            &["user", "create", "a\tb"],
            "user id is invalid: use 1-254 printable characters",
        ),
        (
            &["user", "update", "cy@example.com", "--rpm", "1"],
            "user \"cy@example.com\" not found",
        ),
        (
            &["model", "add", "qwen2.5-*"],
            "model route name \"qwen2.5-*\" is invalid",
        ),
        (
            &["model", "add", "m", "--input-cost-per-mtok=-1"],
            "input_cost_per_mtok must be a number >= 0",
        ),
        (&["model", "remove", "nope"], "model \"nope\" not found"),
        (
            &["key", "block", "zzzzzzzzzzzz"],
            "key \"zzzzzzzzzzzz\" not found",
        ),
        (&["key", "show", "sk-mg-abc"], "looks like a whole key"),
        (
            &["spend", "--user", "cy@example.com", "--team", "ml"],
            "cannot be used with",
        ),
    ];
    for (args, expected) in cases {
        let out = cp.cli(args);
        if expected.contains("cannot be used with") {
            // A clap usage error: exit 2.
            assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
            assert!(out.stderr.contains(expected), "{args:?}: {out:?}");
            continue;
        }
        let line = out.fails();
        assert!(line.contains(expected), "{args:?}: {line}");
    }
    cp.cli(&["model", "add", "m"]).ok();
    let dup = cp.cli(&["model", "add", "m"]);
    assert!(
        dup.fails().contains("a model named \"m\" already exists"),
        "{dup:?}"
    );
    let user = cp.cli(&["user", "create", "ana@example.com"]);
    user.ok();
    let again = cp.cli(&["user", "create", "ana@example.com"]);
    assert!(again.fails().contains("already exists"), "{again:?}");
    let key = cp.cli(&["key", "create", "--team", "ml", "--json"]).json();
    let id = key["public_id"].as_str().unwrap();
    cp.cli(&["key", "revoke", id]).ok();
    let revoked = cp.cli(&["key", "update", id, "--rpm", "1"]);
    assert!(
        revoked.fails().contains("is revoked and cannot be changed"),
        "{revoked:?}"
    );
    let bad_flag = cp.cli(&["key", "create", "--team", "ml", "--rpm", "many"]);
    assert_eq!(bad_flag.code, Some(2), "{bad_flag:?}");
}

#[tokio::test]
async fn snapshots_carry_limits_spend_users_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    cp.cli(&[
        "team",
        "create",
        "--alias",
        "ml",
        "--models",
        "qwen2.5-*",
        "--rpm",
        "100",
        "--tpm",
        "10000",
        "--max-parallel",
        "4",
        "--max-budget",
        "10",
        "--budget-reset",
        "calendar-month",
        "--keep-redacted-prompt",
    ])
    .ok();
    let key = cp
        .cli(&[
            "key",
            "create",
            "--team",
            "ml",
            "--user",
            "ana@example.com",
            "--rpm",
            "10",
            "--max-budget",
            "1",
            "--budget-duration",
            "1h",
            "--json",
        ])
        .json();
    let blocked = cp.cli(&["key", "create", "--team", "ml", "--json"]).json();
    cp.cli(&["key", "block", blocked["public_id"].as_str().unwrap()])
        .ok();
    cp.cli(&["user", "create", "ana@example.com", "--tpm", "500"])
        .ok();
    cp.cli(&[
        "model",
        "add",
        "qwen2.5-7b",
        "--upstream-model",
        "qwen2.5:7b",
        "--cluster",
        "gpu",
        "--output-cost-per-mtok",
        "2",
        "--default-max-tokens",
        "128",
    ])
    .ok();

    let s = snapshot(&cp, 0).await.snapshot.unwrap();
    let k = s
        .keys
        .iter()
        .find(|k| k.public_id == key["public_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(k.status(), pb::KeyStatus::Active);
    assert_eq!(k.user_id, "ana@example.com");
    let limits = k.limits.clone().unwrap();
    assert_eq!(limits.rpm, Some(10), "the key's own");
    assert_eq!(limits.tpm, Some(10_000), "the team's default");
    assert_eq!(limits.max_parallel_requests, Some(4));
    assert_eq!(limits.max_budget, Some(1.0));
    assert_eq!(limits.budget_duration, "1h");
    let spend = k.spend.unwrap();
    assert!(!spend.exhausted);
    assert_eq!(spend.window_reset_at_ms - spend.window_start_ms, 3_600_000);
    let b = s
        .keys
        .iter()
        .find(|k| k.public_id == blocked["public_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(b.status(), pb::KeyStatus::Blocked);
    assert_eq!(b.spend, None, "no budget of its own");

    let t = &s.teams[0];
    let team_limits = t.limits.clone().unwrap();
    assert_eq!(team_limits.budget_duration, "calendar-month");
    assert_eq!(team_limits.max_budget, Some(10.0));
    assert!(t.keep_redacted_prompt && !t.high_trust && !t.blocked);
    assert!(t.spend.is_some());
    assert_eq!(s.users[0].user_id, "ana@example.com");
    assert_eq!(s.users[0].limits.clone().unwrap().tpm, Some(500));
    let m = &s.models[0];
    assert_eq!(
        (
            m.name.as_str(),
            m.upstream_model.as_str(),
            m.cluster.as_str()
        ),
        ("qwen2.5-7b", "qwen2.5:7b", "gpu")
    );
    assert_eq!((m.output_cost_per_mtok, m.default_max_tokens), (2.0, 128));

    // Every change is a new version; blocking the team shows in the next snapshot.
    cp.cli(&["team", "block", "ml"]).ok();
    let next = snapshot(&cp, s.version).await;
    assert!(next.version > s.version);
    assert!(next.snapshot.unwrap().teams[0].blocked);
}

#[tokio::test]
async fn reported_spend_exhausts_a_budget_and_bumps_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    spend_exhausts_and_bumps(&cp).await;
}

#[tokio::test]
async fn reported_spend_exhausts_a_budget_on_postgresql() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &["--database-url", &db.url], &[]);
    spend_exhausts_and_bumps(&cp).await;
}

async fn spend_exhausts_and_bumps(cp: &ControlPlane) {
    let team = cp
        .cli(&["team", "create", "--alias", "ml", "--models", "*", "--json"])
        .json();
    let key = cp
        .cli(&[
            "key",
            "create",
            "--team",
            "ml",
            "--user",
            "ana@example.com",
            "--max-budget",
            "1",
            "--budget-duration",
            "1d",
            "--json",
        ])
        .json();
    let id = key["public_id"].as_str().unwrap().to_owned();
    let before = snapshot(cp, 0).await;

    let record = |spend: f64| pb::UsageRecord {
        request_id: format!("r-{spend}"),
        timestamp_ms: now_ms(),
        key_id: id.clone(),
        team_id: team["team_id"].as_str().unwrap().to_owned(),
        user_id: "ana@example.com".into(),
        model_requested: "llama3".into(),
        tokens_in: 100,
        tokens_out: 50,
        spend,
        status: pb::RequestStatus::Success.into(),
        ..Default::default()
    };
    let mut policy = cp.policy_client().await;
    policy
        .report_usage(pb::ReportUsageRequest {
            batch_id: "b1".into(),
            node_id: "envoy-a".into(),
            records: vec![record(0.4), record(0.7)],
        })
        .await
        .unwrap();

    // Within a couple of ticks, without any admin action, filters see it exhausted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let exhausted = loop {
        let answer = snapshot(cp, before.version).await;
        let spend = answer
            .snapshot
            .as_ref()
            .and_then(|s| s.keys.iter().find(|k| k.public_id == id))
            .and_then(|k| k.spend);
        if let Some(spend) = spend.filter(|s| s.exhausted) {
            break (answer.version, spend);
        }
        assert!(Instant::now() < deadline, "never exhausted: {answer:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(exhausted.0 > before.version);
    assert!((exhausted.1.spend - 1.1).abs() < 1e-9, "{:?}", exhausted.1);

    let shown = cp.cli(&["key", "show", &id, "--json"]).json();
    assert_eq!(shown["spend"]["exhausted"], true);
    assert!(shown["last_used_at"].is_string());
    let spend = cp
        .cli(&["spend", "--key", &id, "--history", "--json"])
        .json();
    assert!(
        (spend["spend"].as_f64().unwrap() - 1.1).abs() < 1e-9,
        "{spend}"
    );
    assert_eq!(spend["exhausted"], true);
    assert_eq!(spend["history"][0]["requests"], 2);
    assert_eq!(spend["history"][0]["tokens_in"], 200);
    let user = cp
        .cli(&["spend", "--user", "ana@example.com", "--json"])
        .json();
    assert!(
        (user["total_spend"].as_f64().unwrap() - 1.1).abs() < 1e-9,
        "{user}"
    );
    assert!(
        cp.cli(&["key", "list", "--unused-days", "1", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty(),
        "used today"
    );

    // Raising the budget lifts the exhaustion in the next version.
    cp.cli(&["key", "update", &id, "--max-budget", "5"]).ok();
    let raised = snapshot(cp, exhausted.0).await.snapshot.unwrap();
    let k = raised.keys.iter().find(|k| k.public_id == id).unwrap();
    assert!(!k.spend.unwrap().exhausted);
}

#[tokio::test]
async fn grpc_admin_calls_validate_and_resolve_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let master = master_key(&cp);
    let mut admin = AdminServiceClient::connect(cp.grpc_url()).await.unwrap();
    admin
        .create_team(authorized(
            pb::CreateTeamRequest {
                alias: "ml".into(),
                models: vec!["llama3".into()],
                limits: Some(pb::LimitSettings {
                    tpm_limit: Some(1_000),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &master,
        ))
        .await
        .unwrap();
    let created = admin
        .create_key(authorized(
            pb::CreateKeyRequest {
                team: "ml".into(),
                ..Default::default()
            },
            &master,
        ))
        .await
        .unwrap()
        .into_inner();
    let whole = created.secret.clone();
    let id = created.key.unwrap().public_id;

    // A whole key works as a reference (it is hashed, never echoed); a public id too.
    let by_key = admin
        .get_key(authorized(pb::KeyRef { key: whole.clone() }, &master))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_key.public_id, id);

    let wider = admin
        .update_key(authorized(
            pb::UpdateKeyRequest {
                key: id.clone(),
                limits: Some(pb::LimitSettings {
                    tpm_limit: Some(1_001),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &master,
        ))
        .await
        .unwrap_err();
    assert_eq!(wider.code(), Code::InvalidArgument);
    assert!(
        wider
            .message()
            .starts_with("tpm_limit 1001 is above team ml's"),
        "{wider:?}"
    );

    let outside = admin
        .update_key(authorized(
            pb::UpdateKeyRequest {
                key: id.clone(),
                models: Some(pb::ModelList {
                    models: vec!["qwen2.5-7b".into()],
                }),
                ..Default::default()
            },
            &master,
        ))
        .await
        .unwrap_err();
    assert_eq!(outside.code(), Code::InvalidArgument);
    assert!(outside.message().starts_with("models:"), "{outside:?}");

    let no_scope = admin
        .get_spend(authorized(pb::GetSpendRequest::default(), &master))
        .await
        .unwrap_err();
    assert_eq!(no_scope.code(), Code::InvalidArgument);

    let missing = admin
        .get_key(authorized(
            pb::KeyRef {
                key: format!("{whole}x"),
            },
            &master,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(!missing.message().contains(&whole), "{missing:?}");

    // Block and unblock are idempotent; a revoked key cannot be changed.
    for _ in 0..2 {
        let k = admin
            .block_key(authorized(pb::KeyRef { key: id.clone() }, &master))
            .await
            .unwrap()
            .into_inner();
        assert!(k.blocked);
    }
    admin
        .revoke_key(authorized(
            pb::RevokeKeyRequest {
                public_id: id.clone(),
            },
            &master,
        ))
        .await
        .unwrap();
    let revoked = admin
        .unblock_key(authorized(pb::KeyRef { key: id.clone() }, &master))
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::FailedPrecondition);

    // Every new call needs the master key.
    let anonymous = admin
        .list_users(Request::new(pb::ListUsersRequest {}))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn rest_api_speaks_litellm() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let master = master_key(&cp);
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };

    let team = rest.ok(rest.post(
        "/team/new",
        json!({"team_alias": "ml", "models": ["llama3", "qwen2.5-*"], "rpm_limit": 100,
               "tpm_limit": 10000, "max_budget": 10, "budget_duration": "30d",
               "metadata": {"owner": "ana"}, "redaction_policy": {"entities": {"PERSON": "mask"}}}),
    ));
    let team_id = team["team_id"].as_str().unwrap().to_owned();
    assert_eq!(team["team_alias"], "ml");
    assert_eq!(team["max_budget"], 10.0);
    assert_eq!(team["spend"], 0.0);
    assert!(team["budget_reset_at"].is_string());

    let generated = rest.ok(rest.post(
        "/key/generate",
        json!({"team_id": "ml", "models": ["qwen2.5-7b"], "max_budget": 2.5,
               "budget_duration": "1d", "rpm_limit": 10, "tpm_limit": 1000,
               "max_parallel_requests": 2, "duration": "30d",
               "metadata": {"env": "prod"}, "user_id": "ana@example.com", "key_alias": "ci"}),
    ));
    let key = generated["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-mg-"));
    let token = generated["token"].as_str().unwrap().to_owned();
    assert!(key.contains(&token));
    assert_eq!(generated["team_id"], team_id.as_str());
    assert_eq!(generated["max_parallel_requests"], 2);
    assert!(generated["expires"].is_string());

    // Info by whole key or by token; the whole key is never echoed back.
    for reference in [key.as_str(), token.as_str()] {
        let info = rest.ok(rest.get(&format!("/key/info?key={reference}")));
        assert_eq!(info["key"], token.as_str());
        assert_eq!(info["info"]["key_alias"], "ci");
        assert!(!info.to_string().contains(&key));
    }

    // Update: a value sets, null unsets, absent keeps.
    let updated = rest.ok(rest.post(
        "/key/update",
        json!({"key": key, "rpm_limit": null, "max_budget": 2.0, "metadata": {"env": "staging"}}),
    ));
    assert!(updated["rpm_limit"].is_null());
    assert_eq!(updated["tpm_limit"], 1000);
    assert_eq!(updated["max_budget"], 2.0);
    assert_eq!(updated["metadata"]["env"], "staging");
    let (status, body) = rest.post("/key/update", json!({"key": token, "rpm_limit": 101}));
    let message = error(status, 400, &body);
    assert_eq!(
        message,
        "rpm_limit 101 is above team ml's rpm_limit 100: a key can only narrow its team's limits"
    );
    let (status, body) = rest.post(
        "/key/generate",
        json!({"team_id": "ml", "models": ["gpt-4"]}),
    );
    assert!(error(status, 400, &body).contains("\"gpt-4\" is not within team ml's models"));

    let listed = rest.ok(rest.get("/key/list?tag=env=staging"));
    assert_eq!(listed["keys"], json!([token]));
    assert_eq!(listed["total_count"], 1);
    let full = rest.ok(rest.get(&format!(
        "/key/list?team_id={team_id}&user_id=ana@example.com&return_full_object=true"
    )));
    assert_eq!(full["keys"][0]["token"], token.as_str());
    assert!(rest.ok(rest.get("/key/list?expired=true"))["keys"]
        .as_array()
        .unwrap()
        .is_empty());

    assert_eq!(
        rest.ok(rest.post("/key/block", json!({"key": token})))["blocked"],
        true
    );
    assert_eq!(
        rest.ok(rest.post("/key/unblock", json!({"key": key})))["blocked"],
        false
    );

    let team = rest.ok(rest.post(
        "/team/update",
        json!({"team_id": "ml", "tpm_limit": 20000, "metadata": null, "redaction_policy": null}),
    ));
    assert_eq!(team["tpm_limit"], 20_000);
    assert_eq!(team["metadata"], json!({}));
    assert!(team["redaction_policy"].is_null());
    assert_eq!(
        rest.ok(rest.post("/team/block", json!({"team_id": team_id})))["blocked"],
        true
    );
    assert_eq!(
        rest.ok(rest.post("/team/unblock", json!({"team_id": "ml"})))["blocked"],
        false
    );
    let info = rest.ok(rest.get("/team/info?team_id=ml"));
    assert_eq!(info["team_id"], team_id.as_str());
    assert_eq!(info["team_info"]["tpm_limit"], 20_000);
    assert_eq!(info["keys"][0]["token"], token.as_str());
    let teams = rest.ok(rest.get("/team/list"));
    assert_eq!(teams[0]["team_alias"], "ml");

    let user = rest.ok(rest.post(
        "/user/new",
        json!({"user_email": "ana@example.com", "max_budget": 5, "budget_reset": "calendar-month"}),
    ));
    assert_eq!(user["user_id"], "ana@example.com");
    assert_eq!(user["budget_reset"], "calendar-month");
    let user = rest.ok(rest.post(
        "/user/update",
        json!({"user_id": "ana@example.com", "rpm_limit": 3, "max_budget": null}),
    ));
    assert_eq!(user["rpm_limit"], 3);
    assert!(user["max_budget"].is_null());
    let info = rest.ok(rest.get("/user/info?user_id=ana@example.com"));
    assert_eq!(info["user_info"]["rpm_limit"], 3);
    assert_eq!(info["keys"][0]["token"], token.as_str());
    assert_eq!(
        rest.ok(rest.get("/user/list"))["users"][0]["user_id"],
        "ana@example.com"
    );

    let model = rest.ok(rest.post(
        "/model/new",
        json!({"model_name": "llama3", "litellm_params": {"model": "llama3:8b",
               "input_cost_per_token": 0.0000001, "output_cost_per_token": 0.0000003}}),
    ));
    assert_eq!(model["upstream_model"], "llama3:8b");
    assert_eq!(model["input_cost_per_mtok"], 0.1);
    assert_eq!(model["output_cost_per_mtok"], 0.3);
    let model = rest.ok(rest.post(
        "/model/update",
        json!({"model_name": "llama3", "cluster": "gpu", "output_cost_per_mtok": 1.0}),
    ));
    assert_eq!(model["cluster"], "gpu");
    assert_eq!(model["output_cost_per_mtok"], 1.0);
    assert_eq!(
        rest.ok(rest.get("/model/info"))["data"][0]["model_name"],
        "llama3"
    );

    let spend = rest.ok(rest.get(&format!("/spend/key?key={token}&days=3")));
    assert_eq!(spend["scope"], "key");
    assert_eq!(spend["max_budget"], 2.0);
    assert_eq!(spend["spend"], 0.0);
    assert_eq!(
        rest.ok(rest.get("/spend/team?team_id=ml"))["id"],
        team_id.as_str()
    );
    assert_eq!(
        rest.ok(rest.get("/spend/user?user_id=ana@example.com"))["total_spend"],
        0.0
    );

    // The same state is what the CLI and the filters see.
    let shown = cp.cli(&["key", "show", &token, "--json"]).json();
    assert_eq!(shown["metadata"]["env"], "staging");

    let deleted = rest.ok(rest.post("/key/delete", json!({"keys": [key]})));
    assert_eq!(deleted["deleted_keys"], json!([token]));
    let info = rest.ok(rest.get(&format!("/key/info?key={token}")));
    assert_eq!(info["info"]["revoked"], true);
    assert_eq!(
        rest.ok(rest.post("/model/delete", json!({"id": "llama3"})))["model_name"],
        "llama3"
    );
}

#[tokio::test]
async fn rest_errors_are_json_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let master = master_key(&cp);
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    let addr = cp.http_addr;

    let (status, body) = http(addr, "GET", "/key/list", None, None);
    assert!(error(status, 401, &body).starts_with("missing authorization"));
    let (status, body) = http(addr, "GET", "/team/list", Some("sk-wrong"), None);
    assert!(error(status, 401, &body).starts_with("invalid admin credential"));
    rest.ok(rest.post("/team/new", json!({"team_alias": "ml", "models": ["*"]})));
    let key = rest.ok(rest.post("/key/generate", json!({"team_id": "ml"})))["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = http(addr, "GET", "/team/list", Some(&key), None);
    assert!(error(status, 401, &body).starts_with("virtual keys cannot call the admin API"));

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/key/generate",
            json!({"team_id": "nope"}),
            404,
            "team \"nope\" not found",
        ),
        (
            "/key/generate",
            json!({"team_id": "ml", "rpm_limit": "lots"}),
            400,
            "rpm_limit is invalid: invalid type: string \"lots\"",
        ),
        (
            "/key/generate",
            json!({"team_id": "ml", "duration": "soon"}),
            400,
            "invalid expiry \"soon\"",
        ),
        (
            "/key/update",
            json!({"rpm_limit": 1}),
            400,
            "key is required",
        ),
        (
            "/key/update",
            json!({"key": "zzzzzzzzzzzz", "rpm_limit": 1}),
            404,
            "key \"zzzzzzzzzzzz\" not found",
        ),
        ("/key/delete", json!({"keys": []}), 400, "keys is required"),
        (
            "/team/new",
            json!({"team_alias": "ml"}),
            409,
            "a team with alias \"ml\" already exists",
        ),
        (
            "/team/new",
            json!({"team_alias": "x", "team_id": "not mine"}),
            400,
            "team_id \"not mine\" is invalid",
        ),
        (
            "/team/new",
            json!({"team_alias": "x", "redaction_policy": {"entities": {"NOPE": "mask"}}}),
            400,
            "redaction_policy is invalid",
        ),
        (
            "/team/update",
            json!({"team_id": "ml", "budget_duration": "1d"}),
            400,
            "budget_duration and budget_reset need a max_budget",
        ),
        (
            "/user/new",
            json!({"user_id": "no\nbody"}),
            400,
            "user id is invalid",
        ),
        (
            "/model/new",
            json!({"upstream_model": "x"}),
            400,
            "model_name is required",
        ),
    ];
    for (path, body, expected_status, expected) in cases {
        let (status, answer) = rest.post(path, body.clone());
        let message = error(status, expected_status, &answer);
        assert!(message.contains(expected), "{path} {body}: {message}");
    }
    let (status, body) = http(addr, "POST", "/team/new", Some(&master), Some("{not json"));
    assert!(error(status, 400, &body).starts_with("invalid request body"));
    let (status, body) = http(addr, "POST", "/team/new", Some(&master), None);
    assert_eq!(
        error(status, 400, &body),
        "the request body must be a JSON object"
    );
    let (status, body) = rest.get("/spend/key?key=zzzzzzzzzzzz&days=x");
    assert!(error(status, 400, &body).starts_with("invalid query string"));
    let (status, body) = rest.get("/key/list?unused_days=-1");
    assert!(error(status, 400, &body).contains("unused_days"));
    let (status, body) = rest.get("/key/info");
    assert_eq!(body["error"]["param"], "key");
    error(status, 400, &body);
}
