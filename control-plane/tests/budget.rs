//! LiteLLM's budget objects through the real `modelgate serve`: `/budget/*` with LiteLLM's
//! shapes, strict input, attaching a budget to keys, teams and users by `budget_id` (its
//! limits reach the policy snapshot every Envoy enforces; a scope's own limit wins), and the
//! list routes declarative clients read. A budget's `max_budget` caps each key, team or
//! user that names it on its own spend.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use std::time::{Duration, Instant};

use modelgate_control_plane::clock::Timestamp;
use modelgate_proto::v1 as pb;
use serde_json::{json, Value};
use support::control_plane::ControlPlane;
use support::rest::{error, start, Rest};

async fn snapshot(cp: &ControlPlane) -> pb::PolicySnapshot {
    cp.policy_client()
        .await
        .get_snapshot(pb::GetSnapshotRequest::default())
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap()
}

/// `(rpm, tpm, max_parallel)` as the snapshot carries them.
fn rates(l: Option<&pb::Limits>) -> (Option<u64>, Option<u64>, Option<u32>) {
    l.map_or((None, None, None), |l| {
        (l.rpm, l.tpm, l.max_parallel_requests)
    })
}

async fn key_rates(cp: &ControlPlane, public_id: &str) -> (Option<u64>, Option<u64>, Option<u32>) {
    let s = snapshot(cp).await;
    rates(
        s.keys
            .iter()
            .find(|k| k.public_id == public_id)
            .unwrap()
            .limits
            .as_ref(),
    )
}

/// Team `ml` (id `ml-team`), open to every model, and the budget object `budget`.
fn ml_team_and_budget(rest: &Rest, budget: Value) {
    rest.ok(rest.post(
        "/team/new",
        json!({"team_id": "ml-team", "team_alias": "ml", "models": ["*"]}),
    ));
    rest.ok(rest.post("/budget/new", budget));
}

/// Asserts a 400 naming `param`.
fn refused(rest: &Rest, path: &str, body: Value, param: &str) {
    let (status, answer) = rest.post(path, body.clone());
    error(status, 400, &answer);
    assert_eq!(answer["error"]["param"], param, "{path} {body}: {answer}");
}

#[tokio::test]
async fn budgets_are_created_read_listed_updated_and_deleted() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    let created = rest.ok(rest.post(
        "/budget/new",
        json!({"budget_id": "tier-1", "max_budget": 100, "soft_budget": 80,
               "budget_duration": "30d", "rpm_limit": 10}),
    ));
    assert_eq!(created["budget_id"], "tier-1");
    assert_eq!(created["max_budget"], 100.0);
    assert_eq!(created["soft_budget"], 80.0);
    assert_eq!(created["budget_duration"], "30d");
    assert_eq!(created["rpm_limit"], 10);
    assert_eq!(created["tpm_limit"], Value::Null);
    // LiteLLM draws an id when none is given.
    let drawn = rest.ok(rest.post("/budget/new", json!({"tpm_limit": 1000})));
    let drawn_id = drawn["budget_id"].as_str().unwrap().to_owned();
    assert!(drawn_id.starts_with("budget-"), "{drawn}");

    let (status, answer) = rest.post("/budget/new", json!({"budget_id": "tier-1"}));
    error(status, 409, &answer);

    // `/budget/list` and `POST /budget/info` answer bare arrays, as LiteLLM's.
    let listed = rest.ok(rest.get("/budget/list"));
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["budget_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [drawn_id.as_str(), "tier-1"]);
    let info = rest.ok(rest.post("/budget/info", json!({"budgets": ["tier-1"]})));
    assert_eq!(info, json!([created]));
    assert_eq!(rest.ok(rest.get("/budget/info?budget_id=tier-1")), created);

    // An update changes what it names, unsets nulls and keeps the rest.
    let updated = rest.ok(rest.post(
        "/budget/update",
        json!({"budget_id": "tier-1", "max_budget": 150, "soft_budget": null}),
    ));
    assert_eq!(
        (
            &updated["max_budget"],
            &updated["soft_budget"],
            &updated["rpm_limit"],
            &updated["budget_duration"]
        ),
        (&json!(150.0), &Value::Null, &json!(10), &json!("30d"))
    );
    assert_eq!(rest.ok(rest.get("/budget/info?budget_id=tier-1")), updated);

    for (status, answer) in [
        rest.get("/budget/info?budget_id=nope"),
        rest.post("/budget/info", json!({"budgets": ["tier-1", "nope"]})),
        rest.post(
            "/budget/update",
            json!({"budget_id": "nope", "rpm_limit": 1}),
        ),
        rest.post("/budget/delete", json!({"id": "nope"})),
    ] {
        assert!(error(status, 404, &answer).contains("\"nope\""), "{answer}");
    }

    assert_eq!(
        rest.ok(rest.post("/budget/delete", json!({"id": "tier-1"})))["budget_id"],
        "tier-1"
    );
    let (status, answer) = rest.get("/budget/info?budget_id=tier-1");
    error(status, 404, &answer);
    assert_eq!(
        rest.ok(rest.get("/budget/list")).as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn bad_budget_input_is_refused_by_field_and_changes_nothing() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    let base = json!({"budget_id": "b", "rpm_limit": 10, "budget_duration": "1d"});
    let before = rest.ok(rest.post("/budget/new", base.clone()));
    for (field, value) in [
        ("model_max_budget", json!({"gpt-4": 1})),
        ("rpm_limit", json!(-1)),
        ("rpm_limit", json!(0)),
        ("rpm_limit", json!("ten")),
        ("tpm_limit", json!(1.5)),
        ("max_parallel_requests", json!(-2)),
        ("max_budget", json!(-1)),
        ("soft_budget", json!(-0.5)),
        ("budget_duration", json!("soon")),
        ("budget_duration", json!(30)),
        ("budget_id", json!(7)),
    ] {
        let mut update = base.clone();
        update[field] = value.clone();
        refused(&rest, "/budget/update", update.clone(), field);
        let mut new = update;
        new["budget_id"] = if field == "budget_id" {
            value
        } else {
            json!("c")
        };
        refused(&rest, "/budget/new", new, field);
    }
    refused(
        &rest,
        "/budget/new",
        json!({"budget_id": "has space"}),
        "budget_id",
    );
    refused(
        &rest,
        "/budget/update",
        json!({"rpm_limit": 5}),
        "budget_id",
    );
    refused(&rest, "/budget/info", json!({"budgets": []}), "budgets");
    refused(
        &rest,
        "/budget/delete",
        json!({"budget_id": "b"}),
        "budget_id",
    );
    let (status, answer) = rest.get("/budget/info?id=b");
    error(status, 400, &answer);

    // Nothing was created or changed.
    assert_eq!(rest.ok(rest.get("/budget/list")), json!([before]));
}

#[tokio::test]
async fn an_attached_budget_limits_its_keys_teams_and_users() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    ml_team_and_budget(
        &rest,
        json!({"budget_id": "rl", "rpm_limit": 5, "tpm_limit": 1000, "max_parallel_requests": 2}),
    );
    let key = |body: Value| {
        rest.ok(rest.post("/key/generate", body))["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let plain = key(json!({"team_id": "ml", "key_alias": "plain", "budget_id": "rl"}));
    let own = key(json!({"team_id": "ml", "key_alias": "own", "budget_id": "rl", "rpm_limit": 3}));
    assert_eq!(key_rates(&cp, &plain).await, (Some(5), Some(1000), Some(2)));
    // The key's own explicit limit wins over its budget's.
    assert_eq!(key_rates(&cp, &own).await, (Some(3), Some(1000), Some(2)));

    // Changing the budget changes every key that names it.
    rest.ok(rest.post("/budget/update", json!({"budget_id": "rl", "rpm_limit": 7})));
    assert_eq!(key_rates(&cp, &plain).await.0, Some(7));

    // Teams and users take one on the same way; every answer shows the budget_id.
    let team = rest.ok(rest.post("/team/update", json!({"team_id": "ml", "budget_id": "rl"})));
    let user = rest.ok(rest.post(
        "/user/new",
        json!({"user_id": "ana@corp.example", "budget_id": "rl"}),
    ));
    assert_eq!(
        (&team["budget_id"], &user["budget_id"]),
        (&json!("rl"), &json!("rl"))
    );
    for shown in [
        cp.cli(&["team", "show", "ml", "--json"]).json()["budget_id"].clone(),
        cp.cli(&["user", "show", "ana@corp.example", "--json"])
            .json()["budget_id"]
            .clone(),
        cp.cli(&["key", "show", &plain, "--json"]).json()["budget_id"].clone(),
        rest.ok(rest.get("/team/info?team_id=ml"))["team_info"]["budget_id"].clone(),
        rest.ok(rest.get("/team/list"))[0]["budget_id"].clone(),
        rest.ok(rest.get("/user/info?user_id=ana@corp.example"))["user_info"]["budget_id"].clone(),
        rest.ok(rest.get("/user/list"))["users"][0]["budget_id"].clone(),
        rest.ok(rest.get(&format!("/key/info?key={plain}")))["info"]["budget_id"].clone(),
        rest.ok(rest.get("/key/list?return_full_object=true"))["keys"][0]["budget_id"].clone(),
    ] {
        assert_eq!(shown, "rl");
    }
    let s = snapshot(&cp).await;
    assert_eq!(
        rates(s.teams[0].limits.as_ref()),
        (Some(7), Some(1000), Some(2))
    );
    assert_eq!(
        rates(s.users[0].limits.as_ref()),
        (Some(7), Some(1000), Some(2))
    );

    // An attached budget is not deleted (LiteLLM's budget rows are referenced too).
    let (status, answer) = rest.post("/budget/delete", json!({"id": "rl"}));
    let message = error(status, 409, &answer);
    assert!(
        message.contains(&plain) && message.contains("team ml-team"),
        "{message}"
    );

    // An unknown budget is refused before anything is written.
    let keys_before = rest.ok(rest.get("/key/list?return_full_object=true"));
    let (status, answer) = rest.post(
        "/key/generate",
        json!({"team_id": "ml", "key_alias": "ghost", "budget_id": "nope"}),
    );
    error(status, 404, &answer);
    assert_eq!(
        rest.ok(rest.get("/key/list?return_full_object=true")),
        keys_before
    );

    // `null` detaches: the team's own (none) applies again, and the budget can go once
    // nothing names it (a revoked key no longer does).
    rest.ok(rest.post("/team/update", json!({"team_id": "ml", "budget_id": null})));
    rest.ok(rest.post(
        "/user/update",
        json!({"user_id": "ana@corp.example", "budget_id": null}),
    ));
    let detached = rest.ok(rest.post("/key/update", json!({"key": plain, "budget_id": null})));
    assert_eq!(detached["budget_id"], Value::Null);
    assert_eq!(key_rates(&cp, &plain).await, (None, None, None));
    rest.ok(rest.post("/key/delete", json!({"keys": [own]})));
    rest.ok(rest.post("/budget/delete", json!({"id": "rl"})));
}

async fn report(cp: &ControlPlane, batch_id: &str, records: Vec<pb::UsageRecord>) {
    cp.policy_client()
        .await
        .report_usage(pb::ReportUsageRequest {
            batch_id: batch_id.into(),
            node_id: "envoy-a".into(),
            records,
        })
        .await
        .unwrap();
}

/// The key's spend state in the snapshot once `done` holds for it (the spend tracker ticks
/// every second).
async fn key_spend_until(
    cp: &ControlPlane,
    public_id: &str,
    done: impl Fn(&pb::SpendState) -> bool,
) -> (pb::SpendState, Option<f64>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = snapshot(cp).await;
        let k = s.keys.iter().find(|k| k.public_id == public_id).unwrap();
        if let Some(spend) = k.spend.filter(|s| done(s)) {
            return (spend, k.limits.as_ref().and_then(|l| l.max_budget));
        }
        assert!(Instant::now() < deadline, "never reached: {k:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_attached_max_budget_caps_each_keys_own_spend() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    ml_team_and_budget(
        &rest,
        json!({"budget_id": "capped", "max_budget": 1, "budget_duration": "1d"}),
    );
    let key = |alias: &str| {
        rest.ok(rest.post(
            "/key/generate",
            json!({"team_id": "ml", "key_alias": alias, "budget_id": "capped"}),
        ))["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (over, under) = (key("over"), key("under"));
    let record = |key: &str, n: u32, spend: f64| pb::UsageRecord {
        request_id: format!("{key}-{n}"),
        timestamp_ms: Timestamp::now().as_millis(),
        key_id: key.to_owned(),
        team_id: "ml-team".into(),
        model_requested: "llama3".into(),
        spend,
        status: pb::RequestStatus::Success.into(),
        ..Default::default()
    };
    report(
        &cp,
        "b1",
        vec![
            record(&over, 1, 0.7),
            record(&over, 2, 0.4),
            record(&under, 1, 0.3),
        ],
    )
    .await;

    // Each key is held to the budget's cap on its own spend (not one pot for both).
    let (spend, cap) = key_spend_until(&cp, &over, |s| s.exhausted).await;
    assert!((spend.spend - 1.1).abs() < 1e-9, "{spend:?}");
    assert_eq!(cap, Some(1.0));
    let (spend, _) = key_spend_until(&cp, &under, |_| true).await;
    assert!(
        !spend.exhausted && (spend.spend - 0.3).abs() < 1e-9,
        "{spend:?}"
    );
    // The key's own fields stay its own; its state shows the budget it is held to.
    let info = &rest.ok(rest.get(&format!("/key/info?key={over}")))["info"];
    assert_eq!(
        (
            &info["max_budget"],
            &info["budget_exhausted"],
            &info["budget_id"]
        ),
        (&Value::Null, &json!(true), &json!("capped"))
    );

    // Raising the budget's cap lifts it; a key's own cap wins over the budget's.
    rest.ok(rest.post(
        "/budget/update",
        json!({"budget_id": "capped", "max_budget": 5}),
    ));
    key_spend_until(&cp, &over, |s| !s.exhausted).await;
    rest.ok(rest.post("/key/update", json!({"key": under, "max_budget": 0.2})));
    // (A cap of its own counts from when it was set.)
    report(&cp, "b2", vec![record(&under, 2, 0.25)]).await;
    let (spend, cap) = key_spend_until(&cp, &under, |s| s.exhausted).await;
    assert_eq!((spend.spend, cap), (0.25, Some(0.2)));
}

#[tokio::test]
async fn declarative_clients_find_every_list_they_read() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    rest.ok(rest.post(
        "/team/new",
        json!({"team_id": "team_ml", "team_alias": "ml"}),
    ));
    let teams = rest.ok(rest.get("/v2/team/list?page=1&page_size=50"));
    assert_eq!(teams["teams"][0]["team_id"], "team_ml");
    assert_eq!(teams["total"], 1);
    let (status, answer) = rest.get("/v2/team/list?organization_id=o");
    error(status, 400, &answer);
    // Features Modelgate does not have answer as LiteLLM does when none are configured.
    assert_eq!(rest.ok(rest.get("/organization/list")), json!([]));
    assert_eq!(rest.ok(rest.get("/credentials"))["credentials"], json!([]));
    assert_eq!(
        rest.ok(rest.get("/v2/guardrails/list"))["guardrails"],
        json!([])
    );
    assert_eq!(rest.ok(rest.get("/policies/list"))["policies"], json!([]));
    // All behind the admin credential.
    let anonymous = Rest {
        addr: cp.http_addr,
        key: "sk-wrong",
    };
    for path in [
        "/budget/list",
        "/organization/list",
        "/credentials",
        "/v2/team/list",
    ] {
        let (status, answer) = anonymous.get(path);
        error(status, 401, &answer);
    }
}

#[tokio::test]
async fn budgets_are_managed_with_the_cli_over_grpc() {
    let (_dir, cp, master) = start();
    let created = cp
        .cli(&[
            "budget",
            "create",
            "--budget-id",
            "tier-2",
            "--max-budget",
            "10",
            "--budget-duration",
            "30d",
            "--rpm",
            "5",
            "--json",
        ])
        .json();
    assert_eq!(
        (
            &created["budget_id"],
            &created["max_budget"],
            &created["budget_duration"],
            &created["rpm_limit"]
        ),
        (&json!("tier-2"), &json!(10.0), &json!("30d"), &json!(5))
    );
    let drawn = cp
        .cli(&["budget", "create", "--tpm", "100", "--json"])
        .json();
    assert!(drawn["budget_id"].as_str().unwrap().starts_with("budget-"));

    // An update changes what it names and unsets what --clear names.
    let updated = cp
        .cli(&[
            "budget",
            "update",
            "tier-2",
            "--soft-budget",
            "8",
            "--clear",
            "rpm_limit",
            "--json",
        ])
        .json();
    assert_eq!(
        (
            &updated["soft_budget"],
            &updated["rpm_limit"],
            &updated["max_budget"]
        ),
        (&json!(8.0), &Value::Null, &json!(10.0))
    );
    assert_eq!(
        cp.cli(&["budget", "info", "tier-2", "--json"]).json(),
        updated
    );
    let listed = cp.cli(&["budget", "list"]).ok().to_owned();
    assert!(
        listed.starts_with("BUDGET") && listed.contains("tier-2"),
        "{listed}"
    );

    // Bad input names its field; an unknown budget is named.
    for (args, named) in [
        (
            &["budget", "update", "tier-2", "--clear", "models"][..],
            "models",
        ),
        (
            &["budget", "update", "tier-2", "--rpm", "0"][..],
            "rpm_limit",
        ),
        (
            &[
                "budget",
                "update",
                "tier-2",
                "--rpm",
                "3",
                "--clear",
                "rpm_limit",
            ][..],
            "rpm_limit",
        ),
        (&["budget", "info", "nope"][..], "nope"),
    ] {
        let error = cp.cli(args).fails().to_owned();
        assert!(error.contains(named), "{args:?}: {error}");
    }

    // The same objects as REST shows them.
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    assert_eq!(
        rest.ok(rest.get("/budget/info?budget_id=tier-2"))["soft_budget"],
        8.0
    );
    // --budget-id attaches on create and update; empty detaches; an unknown one writes
    // nothing.
    let team = cp
        .cli(&[
            "team",
            "create",
            "--alias",
            "ml",
            "--models",
            "*",
            "--budget-id",
            "tier-2",
            "--json",
        ])
        .json();
    assert_eq!(team["budget_id"], "tier-2", "{team}");
    let create_key = |budget: &str| {
        cp.cli(&[
            "key",
            "create",
            "--team",
            "ml",
            "--budget-id",
            budget,
            "--json",
        ])
    };
    let error = create_key("nope").fails().to_owned();
    assert!(error.contains("nope"), "{error}");
    assert_eq!(cp.cli(&["key", "list", "--json"]).json(), json!([]));
    let key = create_key("tier-2").json();
    let id = key["public_id"].as_str().unwrap();
    let key_budget = || cp.cli(&["key", "show", id, "--json"]).json()["budget_id"].clone();
    assert_eq!(key_budget(), "tier-2");
    cp.cli(&["key", "update", id, "--budget-id", ""]).ok();
    cp.cli(&["team", "update", "ml", "--budget-id", ""]).ok();
    assert_eq!(key_budget(), Value::Null);
    let deleted = cp.cli(&["budget", "delete", "tier-2", "--json"]).json();
    assert_eq!(deleted["budget_id"], "tier-2");
    let left = cp.cli(&["budget", "list", "--json"]).json();
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
}
