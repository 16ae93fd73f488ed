//! IdP access tokens as admin credentials on the real `modelgate serve`: an issuer registered
//! with `idp add --admin-role GROUP=ROLE`, tokens signed by a stand-in IdP (the filter's test
//! IdP, whose JWKS is uploaded), used by the CLI (`MODELGATE_ADMIN_TOKEN`), gRPC and REST. The
//! role comes from the token's groups, team roles act for the teams the groups map to, every
//! refusal is a clear 401, and admin records name the person and the issuer.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use modelgate_filter::identity::fixture::{self, TestIdp, ISSUER};
use modelgate_filter::identity::jwks::Algorithm;
use serde_json::{json, Value};
use support::control_plane::{CliOutput, ControlPlane};
use support::http::http;

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A token of `idp` for `user` in `groups`, issued `age_s` seconds ago (valid for an hour).
fn token(idp: &TestIdp, user: &str, groups: &[&str], age_s: i64) -> String {
    let claims = fixture::claims(now_ms() - age_s * 1000, user, groups);
    idp.sign(Algorithm::Es256, claims)
}

struct Fixture {
    cp: ControlPlane,
    idp: TestIdp,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cp = ControlPlane::start(dir.path(), &[], &[]);
        let idp = TestIdp::new();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, idp.jwks()).unwrap();
        let added = cp
            .cli(&[
                "idp",
                "add",
                "--issuer",
                ISSUER,
                "--audience",
                fixture::AUDIENCE,
                "--jwks-file",
                jwks.to_str().unwrap(),
                "--admin-role",
                "mg-admins=admin",
                "--admin-role",
                "audit=auditor",
                "--admin-role",
                "eng-leads=team_admin",
                "--admin-role",
                "lost-leads=team_admin",
                "--json",
            ])
            .json();
        assert_eq!(
            added["admin_roles"],
            json!({"mg-admins": "admin", "audit": "auditor", "eng-leads": "team_admin", "lost-leads": "team_admin"})
        );
        for (team, groups) in [("eng", "eng-leads"), ("ops", "ops-people")] {
            cp.cli(&[
                "team",
                "create",
                "--alias",
                team,
                "--models",
                "*",
                "--idp-groups",
                groups,
            ])
            .ok();
        }
        Self { cp, idp, _dir: dir }
    }

    fn cli(&self, token: &str, args: &[&str]) -> CliOutput {
        self.cp
            .cli_with_env(args, &[("MODELGATE_ADMIN_TOKEN", token)])
    }

    fn rest_post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        http(
            self.cp.http_addr,
            "POST",
            path,
            Some(token),
            Some(&body.to_string()),
        )
    }
}

#[test]
fn an_idp_token_administers_as_the_role_its_groups_give() {
    let f = Fixture::start();
    let ana = token(&f.idp, "ana@corp", &["staff", "mg-admins"], 0);
    let created = f
        .cli(
            &ana,
            &[
                "team", "create", "--alias", "research", "--models", "*", "--json",
            ],
        )
        .json();
    assert_eq!(created["alias"], "research");
    let (status, body) = f.rest_post(&ana, "/team/new", json!({"team_alias": "sales"}));
    assert_eq!(status, 200, "{body}");

    // An auditor reads, and may not write: the CLI says which role was refused what.
    let aud = token(&f.idp, "audrey@corp", &["audit"], 0);
    let teams = f.cli(&aud, &["team", "list", "--json"]).json();
    assert_eq!(teams.as_array().unwrap().len(), 4, "{teams}");
    let denied = f
        .cli(&aud, &["team", "create", "--alias", "nope"])
        .fails()
        .to_owned();
    assert!(
        denied.contains("permission denied") && denied.contains("role auditor may not"),
        "{denied}"
    );
    let (status, body) = f.rest_post(&aud, "/team/new", json!({"team_alias": "nope"}));
    assert_eq!(status, 403, "{body}");

    // A team lead (team_admin through a group that also maps to team eng) makes keys in eng
    // only.
    let tara = token(&f.idp, "tara@corp", &["eng-leads"], 0);
    let key = f
        .cli(&tara, &["key", "create", "--team", "eng", "--json"])
        .json();
    assert!(key["key"].as_str().unwrap().starts_with("sk-"), "{key}");
    let denied = f
        .cli(&tara, &["key", "create", "--team", "ops"])
        .fails()
        .to_owned();
    assert!(denied.contains("role team_admin may not"), "{denied}");

    // Every admin write and denial names the person, the issuer and how they signed in.
    let records =
        f.cp.cli(&["audit", "query", "--remote", "--json", "--kind", "admin"])
            .json();
    let by_token: Vec<&Value> = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["admin"]["principal"] == "idp_token")
        .collect();
    let seen: Vec<(&str, &str, bool)> = by_token
        .iter()
        .map(|r| {
            (
                r["admin"]["actor"].as_str().unwrap(),
                r["admin"]["action"].as_str().unwrap(),
                r["admin"]["allowed"].as_bool().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("ana@corp", "create_team", true),
        ("audrey@corp", "create_team", false),
        ("tara@corp", "create_key", true),
        ("tara@corp", "create_key", false),
    ] {
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }
    assert!(
        by_token.iter().all(|r| r["issuer"] == ISSUER),
        "{by_token:?}"
    );
    f.cp.cli(&["audit", "verify"]).ok();
}

#[test]
fn tokens_that_give_no_role_are_refused_with_the_reason() {
    let f = Fixture::start();
    let refused = |token: &str| {
        let line = f.cli(token, &["team", "list"]).fails().to_owned();
        assert!(
            line.contains("the control plane refused the credential"),
            "{line}"
        );
        let (status, body) = http(f.cp.http_addr, "GET", "/team/list", Some(token), None);
        assert_eq!(status, 401, "{body}");
        line
    };

    let staff = token(&f.idp, "bo@corp", &["staff", "ops-people"], 0);
    assert!(refused(&staff).contains("none of the token's groups is given an admin role"));
    // A team role whose groups map to no team has nothing to act on.
    let lost = token(&f.idp, "lu@corp", &["lost-leads"], 0);
    assert!(refused(&lost).contains("needs a team"));
    let expired = token(&f.idp, "ana@corp", &["mg-admins"], 2 * 3600);
    assert!(refused(&expired).contains("token_expired"));
    let forged = TestIdp::forger().sign(
        Algorithm::Es256,
        fixture::claims(now_ms(), "ana@corp", &["mg-admins"]),
    );
    assert!(refused(&forged).contains("token_invalid_signature"));
    // Not a JWT at all: the CLI refuses it before calling.
    let line = f.cli("not-a-token", &["team", "list"]).fails().to_owned();
    assert!(
        line.contains("--admin-token") && line.contains("JWT"),
        "{line}"
    );

    // Removing the mapping removes the access of tokens already issued.
    let ana = token(&f.idp, "ana@corp", &["mg-admins"], 0);
    f.cli(&ana, &["team", "list"]).ok();
    let updated =
        f.cp.cli(&["idp", "update", ISSUER, "--no-admin-roles", "--json"])
            .json();
    assert_eq!(updated["admin_roles"], json!({}));
    assert!(refused(&ana).contains("token_unknown_issuer"));
    // Nothing the refused calls tried was written.
    let teams = f.cp.cli(&["team", "list", "--json"]).json();
    assert_eq!(teams.as_array().unwrap().len(), 2, "{teams}");
}

#[test]
fn admin_roles_are_validated_and_managed_over_rest_too() {
    let f = Fixture::start();
    let bad =
        f.cp.cli(&["idp", "update", ISSUER, "--admin-role", "ops=root"]);
    assert!(
        bad.fails().contains("admin role \"ops=root\" is invalid"),
        "{bad:?}"
    );
    let master = std::fs::read_to_string(f.cp.data_dir.join("master.key")).unwrap();
    let master = master.trim();
    let (status, body) = f.rest_post(
        master,
        "/idp/update",
        json!({"issuer": ISSUER, "admin_roles": {"platform": "admin", "audit": "auditor"}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["admin_roles"],
        json!({"platform": "admin", "audit": "auditor"})
    );
    let (status, body) = f.rest_post(
        master,
        "/idp/update",
        json!({"issuer": ISSUER, "admin_roles": ["platform"]}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("admin_roles"),
        "{body}"
    );
    // The failed update changed nothing.
    let listed = f.cp.cli(&["idp", "list", "--json"]).json();
    assert_eq!(
        listed[0]["admin_roles"],
        json!({"platform": "admin", "audit": "auditor"})
    );
    // The old admin group is gone, the new one administers.
    let old = token(&f.idp, "ana@corp", &["mg-admins"], 0);
    f.cli(&old, &["team", "list"]).fails();
    let new = token(&f.idp, "ana@corp", &["platform"], 0);
    f.cli(&new, &["team", "create", "--alias", "x"]).ok();
}
