//! Bad input on every LiteLLM-compatible REST route, through the real `modelgate serve`:
//! malformed JSON, wrong types, unknown fields, negative and huge limits, oversized bodies and
//! unknown ids each get a clear 4xx JSON error naming the field, and nothing is half-written.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use serde_json::{json, Value};
use sha2::Digest;
use support::control_plane::ControlPlane;
use support::rest::{error, http, start, Rest};

/// A minimal valid body per POST route, naming existing objects (team `ml`, user `ana@corp.example`,
/// model `llama3`, the key `key`).
fn post_routes(key: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("/key/generate", json!({"team_id": "ml"})),
        ("/key/update", json!({"key": key})),
        ("/key/delete", json!({"keys": [key]})),
        ("/key/block", json!({"key": key})),
        ("/key/unblock", json!({"key": key})),
        ("/team/new", json!({"team_alias": "fresh"})),
        ("/team/update", json!({"team_id": "ml"})),
        ("/team/block", json!({"team_id": "ml"})),
        ("/team/unblock", json!({"team_id": "ml"})),
        ("/user/new", json!({"user_id": "new@corp.example"})),
        ("/user/update", json!({"user_id": "ana@corp.example"})),
        ("/model/new", json!({"model_name": "fresh"})),
        ("/model/update", json!({"model_name": "llama3"})),
        ("/model/delete", json!({"model_name": "llama3"})),
    ]
}

fn with(base: &Value, field: &str, value: Value) -> Value {
    let mut body = base.clone();
    body[field] = value;
    body
}

/// Asserts a 400 naming `param` in the error's `param` and returns the message.
fn refused(rest: &Rest, path: &str, body: Value, param: &str) -> String {
    let (status, answer) = rest.post(path, body.clone());
    let message = error(status, 400, &answer);
    assert_eq!(answer["error"]["param"], param, "{path} {body}: {answer}");
    message
}

/// The key as every Envoy gets it in the policy snapshot.
async fn key_policy(cp: &ControlPlane, public_id: &str) -> modelgate_proto::v1::KeyPolicy {
    let snapshot = cp
        .policy_client()
        .await
        .get_snapshot(modelgate_proto::v1::GetSnapshotRequest::default())
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    snapshot
        .keys
        .into_iter()
        .find(|k| k.public_id == public_id)
        .unwrap()
}

#[tokio::test]
async fn every_route_refuses_bad_input_naming_the_field() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    rest.ok(rest.post(
        "/team/new",
        json!({"team_alias": "ml", "models": ["*"], "rpm_limit": 100}),
    ));
    rest.ok(rest.post("/user/new", json!({"user_id": "ana@corp.example"})));
    rest.ok(rest.post("/model/new", json!({"model_name": "llama3"})));
    let key = rest.ok(rest.post("/key/generate", json!({"team_id": "ml", "key_alias": "ci"})))
        ["token"]
        .as_str()
        .unwrap()
        .to_owned();

    for (path, base) in post_routes(&key) {
        // A field Modelgate does not implement is refused by name, never ignored.
        let message = refused(
            &rest,
            path,
            with(&base, "soft_budget", json!(5)),
            "soft_budget",
        );
        assert!(message.contains("unknown field"), "{path}: {message}");

        let (status, answer) = http(cp.http_addr, "POST", path, Some(&master), Some("{\"a\":"));
        assert!(
            error(status, 400, &answer).starts_with("invalid request body"),
            "{path}"
        );
        for not_object in ["[1]", "\"text\"", ""] {
            let (status, answer) =
                http(cp.http_addr, "POST", path, Some(&master), Some(not_object));
            assert_eq!(
                error(status, 400, &answer),
                "the request body must be a JSON object",
                "{path} {not_object:?}"
            );
        }

        let huge = json!({"metadata": {"note": "x".repeat(1 << 20)}}).to_string();
        let (status, answer) = http(cp.http_addr, "POST", path, Some(&master), Some(&huge));
        assert!(
            error(status, 413, &answer).contains("larger than 1048576 bytes"),
            "{path}: {answer}"
        );
    }

    // Limits: wrong types, negative, zero, beyond what can be stored; on every route that
    // takes them, creations and updates alike.
    let limit_routes = [
        ("/key/generate", json!({"team_id": "ml"})),
        ("/key/update", json!({"key": key})),
        ("/team/new", json!({"team_alias": "fresh"})),
        ("/team/update", json!({"team_id": "ml"})),
        ("/user/new", json!({"user_id": "new@corp.example"})),
        ("/user/update", json!({"user_id": "ana@corp.example"})),
    ];
    let bad_limits = [
        ("rpm_limit", json!("lots")),
        ("rpm_limit", json!(-1)),
        ("rpm_limit", json!(0)),
        ("rpm_limit", json!(1.5)),
        ("tpm_limit", json!(u64::MAX)),
        ("tpm_limit", json!(1e30)),
        ("max_parallel_requests", json!(5_000_000_000_u64)),
        ("max_parallel_requests", json!(true)),
        ("max_budget", json!(-5)),
        ("max_budget", json!("ten")),
        ("budget_duration", json!(30)),
        ("budget_reset", json!(["rolling"])),
    ];
    for (path, base) in &limit_routes {
        for (field, value) in &bad_limits {
            let mut body = with(base, field, value.clone());
            if *field == "budget_duration" || *field == "budget_reset" {
                body["max_budget"] = json!(10);
            }
            let message = refused(&rest, path, body.clone(), field);
            assert!(message.contains(field), "{path} {body}: {message}");
        }
    }

    // Other typed fields.
    for (path, body, param) in [
        (
            "/key/generate",
            json!({"team_id": "ml", "models": "gpt-4"}),
            "models",
        ),
        ("/key/generate", json!({"team_id": 7}), "team_id"),
        (
            "/key/generate",
            json!({"team_id": "ml", "duration": "soon"}),
            "duration",
        ),
        (
            "/key/generate",
            json!({"team_id": "ml", "metadata": [1]}),
            "metadata",
        ),
        (
            "/key/generate",
            json!({"team_id": "ml", "tags": "prod"}),
            "tags",
        ),
        (
            "/key/update",
            json!({"key": key, "blocked": "yes"}),
            "blocked",
        ),
        ("/key/delete", json!({"keys": key}), "keys"),
        (
            "/team/new",
            json!({"team_alias": "Not Valid"}),
            "team_alias",
        ),
        (
            "/team/new",
            json!({"team_alias": "x", "high_trust": 1}),
            "high_trust",
        ),
        (
            "/team/update",
            json!({"team_id": "ml", "idp_groups": "eng"}),
            "idp_groups",
        ),
        ("/user/new", json!({"user_id": ["a@b.c"]}), "user_id"),
        (
            "/model/new",
            json!({"model_name": "m", "default_max_tokens": -1}),
            "default_max_tokens",
        ),
        (
            "/model/new",
            json!({"model_name": "m", "litellm_params": {"api_base": "http://x"}}),
            "litellm_params",
        ),
        (
            "/model/update",
            json!({"model_name": "llama3", "input_cost_per_mtok": "free"}),
            "input_cost_per_mtok",
        ),
    ] {
        refused(&rest, path, body, param);
    }

    // Unknown ids: 404 in the same shape, on every route that names an object.
    let missing = "zzzzzzzzzzzz";
    for (path, body) in [
        ("/key/update", json!({"key": missing, "rpm_limit": 1})),
        ("/key/delete", json!({"keys": [missing]})),
        ("/key/block", json!({"key": missing})),
        ("/key/unblock", json!({"key": missing})),
        ("/key/generate", json!({"team_id": "nope"})),
        ("/team/update", json!({"team_id": "nope", "rpm_limit": 1})),
        ("/team/block", json!({"team_id": "nope"})),
        ("/team/unblock", json!({"team_id": "nope"})),
        (
            "/user/update",
            json!({"user_id": "nobody@corp.example", "rpm_limit": 1}),
        ),
        (
            "/model/update",
            json!({"model_name": "nope", "cluster": "c"}),
        ),
        ("/model/delete", json!({"model_name": "nope"})),
    ] {
        let (status, answer) = rest.post(path, body.clone());
        assert!(
            error(status, 404, &answer).contains("not found"),
            "{path} {body}: {answer}"
        );
    }
    for path in [
        format!("/key/info?key={missing}"),
        "/team/info?team_id=nope".to_owned(),
        "/user/info?user_id=nobody@corp.example".to_owned(),
        format!("/spend/key?key={missing}"),
        // (A user id that was never registered may still own keys, so its spend is 0, not 404.)
        "/spend/team?team_id=nope".to_owned(),
    ] {
        let (status, answer) = rest.get(&path);
        assert!(
            error(status, 404, &answer).contains("not found"),
            "{path}: {answer}"
        );
    }

    // Query strings are as strict as bodies.
    for path in [
        "/key/info?key=x&verbose=1",
        "/team/info?team_id=ml&expand=keys",
        "/user/info?user_id=ana@corp.example&x=1",
        "/spend/team?team_id=ml&start_date=2020-01-01",
        "/key/list?team=ml",
    ] {
        let (status, answer) = rest.get(path);
        let message = error(status, 400, &answer);
        assert!(message.contains("unknown"), "{path}: {message}");
    }
}

#[tokio::test]
async fn a_refused_change_changes_nothing() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    rest.ok(rest.post(
        "/team/new",
        json!({"team_alias": "ml", "models": ["*"], "rpm_limit": 100, "max_budget": 10}),
    ));
    let key = rest.ok(rest.post(
        "/key/generate",
        json!({"team_id": "ml", "key_alias": "ci", "rpm_limit": 10, "metadata": {"env": "prod"}}),
    ))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_info = || rest.ok(rest.get(&format!("/key/info?key={key}")))["info"].clone();
    let team_info = || rest.ok(rest.get("/team/info?team_id=ml"))["team_info"].clone();
    let (key_before, team_before) = (key_info(), team_info());

    // Valid changes next to a bad one: none of them lands.
    for body in [
        json!({"key": key, "key_alias": "renamed", "rpm_limit": -1}),
        json!({"key": key, "key_alias": "renamed", "metadata": {"env": "dev"}, "allowed_routes": ["/chat"]}),
        // Refused by the team's caps, after the body parsed.
        json!({"key": key, "key_alias": "renamed", "rpm_limit": 1000}),
    ] {
        let (status, answer) = rest.post("/key/update", body.clone());
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(key_info(), key_before, "{body}");
    }
    for body in [
        json!({"team_id": "ml", "team_alias": "renamed", "budget_duration": "1d", "max_budget": null}),
        json!({"team_id": "ml", "team_alias": "renamed", "models": ["a"], "guardrails": ["pii"]}),
    ] {
        let (status, answer) = rest.post("/team/update", body.clone());
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(team_info(), team_before, "{body}");
    }

    // A delete naming one unknown key revokes none of them.
    let (status, answer) = rest.post("/key/delete", json!({"keys": [key, "zzzzzzzzzzzz"]}));
    error(status, 404, &answer);
    assert_eq!(key_info()["revoked"], false);

    // Nothing was created by refused creations either.
    let (status, _) = rest.post("/team/new", json!({"team_alias": "half", "rpm_limit": "x"}));
    assert_eq!(status, 400);
    let (status, _) = rest.post(
        "/key/generate",
        json!({"team_id": "ml", "key_alias": "half", "permissions": {}}),
    );
    assert_eq!(status, 400);
    let teams = rest.ok(rest.get("/team/list"));
    assert_eq!(teams.as_array().unwrap().len(), 1, "{teams}");
    let keys = rest.ok(rest.get("/key/list?return_full_object=true"));
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
}

#[tokio::test]
async fn litellm_tags_are_kept_in_metadata() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    rest.ok(rest.post(
        "/team/new",
        json!({"team_alias": "ml", "models": ["*"], "tags": ["ml"]}),
    ));
    let key = rest.ok(rest.post(
        "/key/generate",
        json!({"team_id": "ml", "metadata": {"owner": "ana"}, "tags": ["prod", "batch"]}),
    ));
    assert_eq!(
        key["metadata"],
        json!({"owner": "ana", "tags": ["prod", "batch"]})
    );
    let token = key["token"].as_str().unwrap();
    let updated = rest.ok(rest.post("/key/update", json!({"key": token, "tags": ["dev"]})));
    assert_eq!(
        updated["metadata"],
        json!({"owner": "ana", "tags": ["dev"]})
    );
    let team = rest.ok(rest.get("/team/info?team_id=ml"));
    assert_eq!(team["team_info"]["metadata"]["tags"], json!(["ml"]));
}

#[tokio::test]
async fn a_key_without_a_team_is_personal() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    rest.ok(rest.post(
        "/team/new",
        json!({"team_alias": "ml", "models": ["llama3"], "rpm_limit": 10}),
    ));
    // As LiteLLM: no team_id (or null) makes a key with only its own models and limits.
    for body in [
        json!({"user_id": "ana@corp.example", "models": ["gpt-x"], "rpm_limit": 500}),
        json!({"team_id": null, "key_alias": "laptop"}),
    ] {
        let created = rest.ok(rest.post("/key/generate", body.clone()));
        assert_eq!(created["team_id"], Value::Null, "{body}: {created}");
        let public_id = created["token"].as_str().unwrap();
        let info = rest.ok(rest.get(&format!("/key/info?key={public_id}")));
        assert_eq!(info["info"]["team_id"], Value::Null, "{info}");
        let policy = key_policy(&cp, public_id).await;
        assert_eq!(policy.team_id, "", "the filter sees no team");
        assert_eq!(
            policy.models,
            body["models"].as_array().map_or(vec![], |m| {
                m.iter().map(|m| m.as_str().unwrap().to_owned()).collect()
            })
        );
    }
    // No team caps to stay within: its own rpm stands as given, above the team's 10.
    let ana = rest.ok(rest.post(
        "/key/generate",
        json!({"user_id": "ana@corp.example", "rpm_limit": 500}),
    ));
    let policy = key_policy(&cp, ana["token"].as_str().unwrap()).await;
    assert_eq!(policy.limits.and_then(|l| l.rpm), Some(500));
    // It cannot be moved into a team later, nor a team key out of one.
    let personal = rest.ok(rest.post("/key/generate", json!({})))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let moved = refused(
        &rest,
        "/key/update",
        json!({"key": personal, "team_id": "ml"}),
        "team_id",
    );
    assert!(moved.contains("cannot change"), "{moved}");
}

#[tokio::test]
async fn teams_and_keys_are_addressed_by_id_or_alias() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    // A caller-chosen team id, then used as LiteLLM scripts use it.
    let team = rest.ok(rest.post(
        "/team/new",
        json!({"team_id": "team_engineering", "team_alias": "engineering", "models": ["*"]}),
    ));
    assert_eq!(team["team_id"], "team_engineering");
    let drawn = rest.ok(rest.post("/team/new", json!({"team_alias": "research"})));
    assert!(drawn["team_id"].as_str().unwrap().starts_with("team_"));
    for team in ["team_engineering", "engineering"] {
        let key = rest.ok(rest.post("/key/generate", json!({"team_id": team})));
        assert_eq!(key["team_id"], "team_engineering", "{team}");
    }

    // One namespace for ids and aliases, so a name never means two teams.
    for (body, status, message) in [
        (
            json!({"team_id": "team_engineering", "team_alias": "other"}),
            409,
            "already exists",
        ),
        (
            json!({"team_id": "research", "team_alias": "other"}),
            409,
            "already exists",
        ),
        (json!({"team_id": "ops", "team_alias": "ops"}), 200, ""),
        (
            json!({"team_id": "x", "team_alias": "ops"}),
            409,
            "already exists",
        ),
        (
            json!({"team_id": "team one", "team_alias": "other"}),
            400,
            "team_id \"team one\" is invalid",
        ),
        (
            json!({"team_id": "_x", "team_alias": "other"}),
            400,
            "is invalid",
        ),
        (
            json!({"team_id": "t".repeat(65), "team_alias": "other"}),
            400,
            "is invalid",
        ),
    ] {
        let (got, answer) = rest.post("/team/new", body.clone());
        if status == 200 {
            assert_eq!(got, 200, "{body}: {answer}");
        } else {
            assert!(
                error(got, status, &answer).contains(message),
                "{body}: {answer}"
            );
        }
    }
    let (status, answer) = rest.post(
        "/team/update",
        json!({"team_id": "ops", "team_alias": "research"}),
    );
    error(status, 409, &answer);

    // Updates by alias, as declarative clients send them.
    let updated = rest.ok(rest.post(
        "/team/update",
        json!({"team_alias": "engineering", "rpm_limit": 50}),
    ));
    assert_eq!(updated["team_id"], "team_engineering");
    assert_eq!(updated["rpm_limit"], 50);
    rest.ok(rest.post(
        "/key/generate",
        json!({"team_id": "engineering", "key_alias": "ci"}),
    ));
    let key = rest.ok(rest.post(
        "/key/update",
        json!({"key_alias": "ci", "team_id": "team_engineering", "rpm_limit": 5}),
    ));
    assert_eq!(
        (key["key_alias"].clone(), key["rpm_limit"].clone()),
        (json!("ci"), json!(5))
    );
    let (status, answer) = rest.post(
        "/key/update",
        json!({"key_alias": "ci", "team_id": "research"}),
    );
    assert!(error(status, 400, &answer).contains("team_id cannot change"));
    let (status, answer) = rest.post("/key/update", json!({"key_alias": "nope", "rpm_limit": 5}));
    error(status, 404, &answer);
    // Renaming still works when the key itself is named.
    let token = key["token"].as_str().unwrap();
    let renamed = rest.ok(rest.post("/key/update", json!({"key": token, "key_alias": "ci-2"})));
    assert_eq!(renamed["key_alias"], "ci-2");
    let info = rest.ok(rest.get(&format!("/key/info?key={token}")));
    assert_eq!(info["info"]["rpm_limit"], 5);

    // Users are any stable string, as LiteLLM's are.
    for user in [
        "krrish",
        "ana@corp.example",
        "6f1c2a7e-0b1d-4c55-9a3e-2f1d0c9b8a7e",
    ] {
        let created = rest.ok(rest.post("/user/new", json!({"user_id": user})));
        assert_eq!(created["user_id"], user);
    }
}

#[tokio::test]
async fn deleting_teams_and_users_takes_their_keys_all_or_nothing() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    for alias in ["ml", "ops"] {
        rest.ok(rest.post("/team/new", json!({"team_alias": alias, "models": ["*"]})));
    }
    rest.ok(rest.post("/user/new", json!({"user_id": "ana"})));
    let mut tokens = Vec::new();
    for body in [
        json!({"team_id": "ml"}),
        json!({"team_id": "ml", "user_id": "ana"}),
        json!({"team_id": "ops", "user_id": "ana"}),
        json!({"team_id": "ops", "metadata": {"env": "prod"}}),
    ] {
        tokens.push(
            rest.ok(rest.post("/key/generate", body))["token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let live = || rest.ok(rest.get("/key/list?include_revoked=true"))["keys"].clone();

    // One unknown name: nothing is deleted.
    let (status, answer) = rest.post("/team/delete", json!({"team_ids": ["ml", "nope"]}));
    error(status, 404, &answer);
    assert_eq!(live().as_array().unwrap().len(), 4);
    let (status, answer) = rest.post("/user/delete", json!({"user_ids": ["ana", "nobody"]}));
    error(status, 404, &answer);
    assert_eq!(live().as_array().unwrap().len(), 4);
    let (status, answer) = rest.post("/team/delete", json!({"team_ids": []}));
    assert_eq!(answer["error"]["param"], "team_ids");
    error(status, 400, &answer);

    // As in LiteLLM, a deleted user's keys go with it, and a deleted team's keys with it.
    let deleted = rest.ok(rest.post("/user/delete", json!({"user_ids": ["ana"]})));
    assert_eq!(
        deleted,
        json!({"deleted_users": ["ana"], "deleted_keys": 2})
    );
    assert_eq!(live(), json!([tokens[0], tokens[3]]));
    let (status, answer) = rest.get("/user/info?user_id=ana");
    error(status, 404, &answer);
    let deleted = rest.ok(rest.post("/team/delete", json!({"team_ids": ["ops"]})));
    assert_eq!(deleted["deleted_teams"].as_array().unwrap().len(), 1);
    assert_eq!(deleted["deleted_keys"], 1);
    assert_eq!(live(), json!([tokens[0]]));
    let (status, answer) = rest.get("/team/info?team_id=ops");
    error(status, 404, &answer);
    // The alias is free again.
    rest.ok(rest.post("/team/new", json!({"team_alias": "ops"})));
}

#[tokio::test]
async fn spend_logs_are_litellm_rows_from_the_request_records() {
    use modelgate_proto::v1 as pb;
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    rest.ok(rest.post(
        "/team/new",
        json!({"team_id": "team_ml", "team_alias": "ml", "models": ["*"]}),
    ));
    let key = rest.ok(rest.post("/key/generate", json!({"team_id": "ml", "user_id": "ana"})));
    let (whole, token) = (key["key"].as_str().unwrap(), key["token"].as_str().unwrap());
    let record =
        |request_id: &str, timestamp_ms: i64, key_id: &str, user_id: &str| pb::UsageRecord {
            request_id: request_id.into(),
            timestamp_ms,
            key_id: key_id.into(),
            team_id: "team_ml".into(),
            user_id: user_id.into(),
            model_requested: "llama3".into(),
            model_resolved: "llama3".into(),
            tokens_in: 10,
            tokens_out: 5,
            spend: 0.25,
            latency_ms: 1500,
            status: pb::RequestStatus::Success.into(),
            ..Default::default()
        };
    let day = 86_400_000;
    let jan_2 = 1_767_312_000_000; // 2026-01-02T00:00:00Z
    cp.policy_client()
        .await
        .report_usage(pb::ReportUsageRequest {
            batch_id: "b1".into(),
            node_id: "edge-1".into(),
            records: vec![
                record("r1", jan_2 + 1000, token, "ana"),
                record("r2", jan_2 + day + 1000, token, "ana"),
                record("r3", jan_2 + day + 2000, "otherkey0000", "bo"),
            ],
        })
        .await
        .unwrap();

    let rows = rest.ok(rest.get("/spend/logs"));
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    let first = &rows[0];
    assert_eq!(first["request_id"], "r1");
    assert_eq!(first["api_key"], token);
    assert_eq!(first["user"], "ana");
    assert_eq!(first["team_id"], "team_ml");
    assert_eq!(first["total_tokens"], 15);
    assert_eq!(first["spend"], 0.25);
    assert_eq!(first["startTime"], "2026-01-02T00:00:01.000Z");
    assert_eq!(first["endTime"], "2026-01-02T00:00:02.500Z");
    assert_eq!(first["status"], "success");
    assert!(!rows.to_string().contains(whole));

    let ids = |path: &str| -> Vec<String> {
        rest.ok(rest.get(path))
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&format!("/spend/logs?api_key={whole}")), ["r1", "r2"]);
    assert_eq!(ids(&format!("/spend/logs?api_key={token}")), ["r1", "r2"]);
    assert_eq!(ids("/spend/logs?user_id=bo"), ["r3"]);
    assert_eq!(ids("/spend/logs?team_id=ml"), ["r1", "r2", "r3"]);
    assert_eq!(
        ids("/spend/logs?start_date=2026-01-02&end_date=2026-01-02"),
        ["r1"]
    );
    assert_eq!(ids("/spend/logs?start_date=2026-01-03"), ["r2", "r3"]);
    let (status, answer) = rest.get("/spend/logs?start_date=yesterday");
    assert_eq!(answer["error"]["param"], "start_date");
    error(status, 400, &answer);
    let (status, answer) = rest.get("/spend/logs?summarize=true");
    error(status, 400, &answer);
}

#[tokio::test]
async fn regenerate_replaces_the_secret_and_keeps_the_key() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    rest.ok(rest.post("/team/new", json!({"team_alias": "ml", "models": ["*"]})));
    let old = rest.ok(rest.post(
        "/key/generate",
        json!({"team_id": "ml", "key_alias": "ci", "rpm_limit": 7}),
    ));
    let (old_key, token) = (old["key"].as_str().unwrap(), old["token"].as_str().unwrap());

    let new = rest.ok(rest.post("/key/regenerate", json!({"key": old_key})));
    let new_key = new["key"].as_str().unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(new["token"], token);
    assert_eq!(new["rpm_limit"], 7);
    // The old secret is gone; the new one names the same key.
    let (status, answer) = rest.get(&format!("/key/info?key={old_key}"));
    error(status, 404, &answer);
    assert_eq!(
        rest.ok(rest.get(&format!("/key/info?key={new_key}")))["key"],
        token
    );

    // LiteLLM's path form, and by alias.
    let again = rest.ok(rest.post(
        &format!("/key/{token}/regenerate"),
        json!({"grace_period": "0s"}),
    ));
    assert_ne!(again["key"], new["key"]);
    let by_alias = rest.ok(rest.post("/key/regenerate", json!({"key_alias": "ci"})));
    assert_eq!(by_alias["token"], token);

    // With a grace period, every filter gets the previous secret and until when it works.
    let current = by_alias["key"].as_str().unwrap().to_owned();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let graced = rest.ok(rest.post(
        "/key/regenerate",
        json!({"key": token, "grace_period": "24h"}),
    ));
    let policy = key_policy(&cp, token).await;
    let sha256 = |s: &str| -> Vec<u8> { sha2::Sha256::digest(s.as_bytes()).to_vec() };
    assert_eq!(policy.key_sha256, sha256(graced["key"].as_str().unwrap()));
    assert_eq!(policy.previous_key_sha256, sha256(&current));
    let day = 86_400_000;
    assert!(
        (before + day..before + day + 60_000).contains(&policy.previous_key_expires_at_ms),
        "{policy:?}"
    );
    // Regenerating without a grace forgets the previous secret.
    rest.ok(rest.post("/key/regenerate", json!({"key": token})));
    let policy = key_policy(&cp, token).await;
    assert!(policy.previous_key_sha256.is_empty());

    for grace in [json!("31d"), json!("soon"), json!(60), json!("s")] {
        let (status, answer) = rest.post(
            "/key/regenerate",
            json!({"key": token, "grace_period": grace}),
        );
        assert_eq!(answer["error"]["param"], "grace_period", "{answer}");
        error(status, 400, &answer);
    }
    let (status, answer) = rest.post("/key/regenerate", json!({"key": token, "models": ["x"]}));
    assert_eq!(answer["error"]["param"], "models");
    error(status, 400, &answer);
    // The CLI rotates the same way.
    let rotated = cp
        .cli(&["key", "rotate", token, "--grace", "1h", "--json"])
        .json();
    assert_eq!(rotated["public_id"], token);
    let policy = key_policy(&cp, token).await;
    assert_eq!(policy.key_sha256, sha256(rotated["key"].as_str().unwrap()));
    assert!(!policy.previous_key_sha256.is_empty());
    let refused = cp.cli(&["key", "rotate", token, "--grace", "90d"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("grace_period \"90d\" is invalid"),
        "{refused:?}"
    );

    rest.ok(rest.post("/key/delete", json!({"keys": [token]})));
    let (status, answer) = rest.post("/key/regenerate", json!({"key": token}));
    error(status, 409, &answer);
}
