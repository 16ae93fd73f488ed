//! LiteLLM's team members through the real `modelgate serve`: `/team/member_add`,
//! `/team/member_delete`, `/team/member_update`, `members_with_roles` in `/team/info` and on
//! `/team/new|update`. A member is a user whose team is the team; input is strict and a
//! refusal changes nothing.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use serde_json::{json, Value};
use support::rest::{error, start, Rest};

fn members(rest: &Rest, team: &str) -> Value {
    rest.ok(rest.get(&format!("/team/info?team_id={team}")))["team_info"]["members_with_roles"]
        .clone()
}

fn member(user: &str) -> Value {
    json!({"user_id": user, "user_email": user, "role": "user"})
}

#[tokio::test]
async fn team_members_are_added_listed_confirmed_and_removed() {
    let (_dir, cp, master) = start();
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    for (id, alias) in [("eng", "engineering"), ("ops", "operations")] {
        rest.ok(rest.post("/team/new", json!({"team_id": id, "team_alias": alias})));
    }
    let (ana, bo, cy) = ("ana@corp.example", "bo@corp.example", "cy@corp.example");
    for user in [ana, bo, cy] {
        rest.ok(rest.post("/user/new", json!({"user_id": user})));
    }
    assert_eq!(members(&rest, "eng"), json!([]));

    // One member object, or a list; by user_id or user_email; by team id or alias.
    let added = rest.ok(rest.post(
        "/team/member_add",
        json!({"team_id": "eng", "member": {"user_id": ana, "role": "user"}}),
    ));
    assert_eq!(added["updated_users"][0]["team_id"], "eng");
    assert_eq!(added["members_with_roles"], json!([member(ana)]));
    rest.ok(rest.post(
        "/team/member_add",
        json!({"team_id": "engineering", "member": [{"user_email": bo}]}),
    ));
    assert_eq!(members(&rest, "eng"), json!([member(ana), member(bo)]));

    // Each refusal names its field and adds no one, not even the valid members of a list.
    let cases = [
        (
            json!({"team_id": "eng", "member": {"user_id": cy, "role": "admin"}}),
            400,
            "role",
        ),
        (
            json!({"team_id": "eng", "member": {"user_id": cy, "role": "owner"}}),
            400,
            "role",
        ),
        (
            json!({"team_id": "eng", "member": {"user_id": cy, "max_budget_in_team": 1}}),
            400,
            "max_budget_in_team",
        ),
        (
            json!({"team_id": "eng", "member": [{"user_id": cy}, {"user_id": ana}]}),
            400,
            "user_id",
        ),
        (
            json!({"team_id": "ops", "member": {"user_id": ana}}),
            400,
            "user_id",
        ),
        (json!({"team_id": "eng", "member": []}), 400, "member"),
        (json!({"team_id": "eng", "member": "cy"}), 400, "member"),
        (json!({"team_id": "eng"}), 400, "member"),
        (json!({"member": {"user_id": cy}}), 400, "team_id"),
        (
            json!({"team_id": "eng", "member": {"role": "user"}}),
            400,
            "user_id",
        ),
        (
            json!({"team_id": "eng", "member": {"user_id": cy}, "x": 1}),
            400,
            "x",
        ),
        (
            json!({"team_id": "nope", "member": {"user_id": cy}}),
            404,
            "",
        ),
        (
            json!({"team_id": "eng", "member": [{"user_id": cy}, {"user_id": "zed@corp.example"}]}),
            404,
            "",
        ),
    ];
    for (body, status, param) in cases {
        let (got, answer) = rest.post("/team/member_add", body.clone());
        error(got, status, &answer);
        if status == 400 {
            assert_eq!(answer["error"]["param"], param, "{body}: {answer}");
        }
    }
    assert_eq!(members(&rest, "eng"), json!([member(ana), member(bo)]));
    assert_eq!(members(&rest, "ops"), json!([]));
    let info = rest.ok(rest.get(&format!("/user/info?user_id={cy}")));
    assert_eq!(info["user_info"]["team_id"], Value::Null);

    // member_update confirms a member's role; Modelgate's team admins are admin roles.
    let confirmed = rest.ok(rest.post(
        "/team/member_update",
        json!({"team_id": "eng", "user_id": bo, "role": "user"}),
    ));
    assert_eq!(
        (
            &confirmed["team_id"],
            &confirmed["user_id"],
            &confirmed["role"]
        ),
        (&json!("eng"), &json!(bo), &json!("user"))
    );
    for (body, param) in [
        (
            json!({"team_id": "eng", "user_id": bo, "role": "admin"}),
            "role",
        ),
        (
            json!({"team_id": "eng", "user_id": cy, "role": "user"}),
            "user_id",
        ),
        (
            json!({"team_id": "eng", "user_id": bo, "max_budget_in_team": 5}),
            "max_budget_in_team",
        ),
    ] {
        let (status, answer) = rest.post("/team/member_update", body.clone());
        error(status, 400, &answer);
        assert_eq!(answer["error"]["param"], param, "{body}: {answer}");
    }

    // member_delete frees the user for another team.
    let (status, answer) = rest.post(
        "/team/member_delete",
        json!({"team_id": "eng", "user_id": cy}),
    );
    error(status, 400, &answer);
    let (status, answer) = rest.post(
        "/team/member_delete",
        json!({"team_id": "eng", "user_id": "zed@corp.example"}),
    );
    error(status, 404, &answer);
    let after = rest.ok(rest.post(
        "/team/member_delete",
        json!({"team_id": "eng", "user_email": bo}),
    ));
    assert_eq!(after["members_with_roles"], json!([member(ana)]));
    rest.ok(rest.post(
        "/team/member_add",
        json!({"team_id": "operations", "member": {"user_id": bo}}),
    ));
    let info = rest.ok(rest.get(&format!("/user/info?user_id={bo}")));
    assert_eq!(info["user_info"]["team_id"], "ops");

    // members_with_roles on /team/new and /team/update makes exactly those the members,
    // checked before anything is written.
    let (status, answer) = rest.post(
        "/team/new",
        json!({"team_id": "qa", "team_alias": "quality",
               "members_with_roles": [{"user_id": cy}, {"user_id": ana}]}),
    );
    error(status, 400, &answer);
    assert_eq!(answer["error"]["param"], "user_id", "{answer}");
    let (status, answer) = rest.get("/team/info?team_id=qa");
    error(status, 404, &answer);
    let qa = rest.ok(rest.post(
        "/team/new",
        json!({"team_id": "qa", "team_alias": "quality",
               "members_with_roles": [{"user_id": cy, "role": "user"}]}),
    ));
    assert_eq!(qa["members_with_roles"], json!([member(cy)]));
    let eng = rest.ok(rest.post(
        "/team/update",
        json!({"team_id": "engineering", "members_with_roles": []}),
    ));
    assert_eq!(eng["members_with_roles"], json!([]));
    let info = rest.ok(rest.get(&format!("/user/info?user_id={ana}")));
    assert_eq!(info["user_info"]["team_id"], Value::Null);
}
