//! Roles through the real `modelgate serve`: for each role (admin, team_admin, auditor,
//! member) and representative actions on their own and on others' objects, the exact
//! allowed/denied outcome over gRPC and over REST; every denial in the audit chain, which
//! verifies with the admin records in it and fails once one is edited.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use std::fmt::Debug;

use modelgate_proto::v1 as pb;
use modelgate_proto::v1::admin_service_client::AdminServiceClient;
use modelgate_proto::v1::audit_service_client::AuditServiceClient;
use serde_json::{json, Value};
use sqlx::Connection;
use support::control_plane::{command, CliOutput, ControlPlane};
use support::http::http;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

const ROLES: [&str; 4] = ["admin", "team_admin", "auditor", "member"];
/// The member's (and every "own" key's) user.
const MIA: &str = "mia@corp";
const BO: &str = "bo@corp";

fn authorized<T>(msg: T, key: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    req
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied,
}
use Outcome::{Allowed, Denied};

fn grpc<T: Debug>(role: &str, result: Result<Response<T>, Status>) -> Outcome {
    match result {
        Ok(_) => Allowed,
        Err(s) if s.code() == Code::PermissionDenied => {
            assert!(
                s.message().contains(&format!("role {role} may not")),
                "{s:?}"
            );
            Denied
        }
        Err(s) => panic!("{role}: unexpected {s:?}"),
    }
}

fn rest(role: &str, (status, body): (u16, Value)) -> Outcome {
    match status {
        200 => Allowed,
        403 => {
            assert_eq!(body["error"]["type"], "permission_error", "{body}");
            assert_eq!(body["error"]["code"], "403", "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(&format!("role {role} may not")), "{body}");
            Denied
        }
        _ => panic!("{role}: unexpected {status} {body}"),
    }
}

struct Fixture {
    cp: ControlPlane,
    master: String,
    admin: AdminServiceClient<Channel>,
    audit: AuditServiceClient<Channel>,
    /// One admin key per role, in [`ROLES`] order (team_admin and member in team `eng`).
    keys: Vec<String>,
}

impl Fixture {
    async fn start(dir: &std::path::Path) -> Self {
        let cp = ControlPlane::start(dir, &[], &[]);
        let master = std::fs::read_to_string(cp.data_dir.join("master.key"))
            .unwrap()
            .trim()
            .to_owned();
        for team in ["eng", "ops"] {
            cp.cli(&["team", "create", "--alias", team, "--models", "*"])
                .ok();
        }
        let keys = [
            ("root@corp", "admin", None),
            ("tara@corp", "team_admin", Some("eng")),
            ("audrey@corp", "auditor", None),
            (MIA, "member", Some("eng")),
        ]
        .into_iter()
        .map(|(user, role, team)| {
            let mut args = vec!["admin-key", "create", "--user", user, "--role", role];
            if let Some(team) = team {
                args.extend(["--team", team]);
            }
            args.push("--json");
            let created = cp.cli(&args).json();
            assert_eq!(created["role"], role, "{created}");
            created["key"].as_str().unwrap().to_owned()
        })
        .collect();
        let admin = AdminServiceClient::connect(cp.grpc_url()).await.unwrap();
        let audit = AuditServiceClient::connect(cp.grpc_url()).await.unwrap();
        Self {
            cp,
            master,
            admin,
            audit,
            keys,
        }
    }

    /// A new key in `team` owned by `user`, made with the master key; its public id.
    async fn key(&mut self, team: &str, user: &str) -> String {
        self.admin
            .create_key(authorized(
                pb::CreateKeyRequest {
                    team: team.into(),
                    user_id: user.into(),
                    ..Default::default()
                },
                &self.master,
            ))
            .await
            .unwrap()
            .into_inner()
            .key
            .unwrap()
            .public_id
    }

    fn rest_get(&self, key: &str, path: &str) -> (u16, Value) {
        http(self.cp.http_addr, "GET", path, Some(key), None)
    }

    fn rest_post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        http(
            self.cp.http_addr,
            "POST",
            path,
            Some(key),
            Some(&body.to_string()),
        )
    }

    async fn admin_records(&mut self, denied_only: bool) -> Vec<pb::AuditEntry> {
        self.audit
            .query(authorized(
                pb::AuditQueryRequest {
                    filter: Some(pb::AuditFilter {
                        kind: "admin".into(),
                        status: if denied_only {
                            pb::RequestStatus::Blocked
                        } else {
                            pb::RequestStatus::Unspecified
                        }
                        .into(),
                        ..Default::default()
                    }),
                    page_size: 1_000,
                    ..Default::default()
                },
                &self.master,
            ))
            .await
            .unwrap()
            .into_inner()
            .entries
    }
}

/// `expected` in [`ROLES`] order.
fn check(label: &str, transport: &str, got: [Outcome; 4], expected: [Outcome; 4]) -> usize {
    assert_eq!(got, expected, "{label} over {transport}: {ROLES:?}");
    got.iter().filter(|o| **o == Denied).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_gets_exactly_its_rights_over_grpc_and_rest_and_denials_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::start(dir.path()).await;
    let mut denials = 0;

    // Create a team.
    let mut got = [Allowed; 4];
    for (i, role) in ROLES.iter().enumerate() {
        let req = pb::CreateTeamRequest {
            alias: format!("grpc-{i}"),
            ..Default::default()
        };
        got[i] = grpc(role, f.admin.create_team(authorized(req, &f.keys[i])).await);
    }
    denials += check(
        "create team",
        "gRPC",
        got,
        [Allowed, Denied, Denied, Denied],
    );
    for (i, role) in ROLES.iter().enumerate() {
        let body = json!({"team_alias": format!("rest-{i}")});
        got[i] = rest(role, f.rest_post(&f.keys[i], "/team/new", body));
    }
    denials += check(
        "create team",
        "REST",
        got,
        [Allowed, Denied, Denied, Denied],
    );

    // Update team limits: own team (eng) and another team (ops). Team caps are admins' alone.
    for team in ["eng", "ops"] {
        for (i, role) in ROLES.iter().enumerate() {
            let req = pb::UpdateTeamRequest {
                team: team.into(),
                limits: Some(pb::LimitSettings {
                    rpm_limit: Some(100 + i as u64),
                    ..Default::default()
                }),
                ..Default::default()
            };
            got[i] = grpc(role, f.admin.update_team(authorized(req, &f.keys[i])).await);
        }
        let label = format!("update limits of {team}");
        denials += check(&label, "gRPC", got, [Allowed, Denied, Denied, Denied]);
        for (i, role) in ROLES.iter().enumerate() {
            let body = json!({"team_id": team, "rpm_limit": 200 + i});
            got[i] = rest(role, f.rest_post(&f.keys[i], "/team/update", body));
        }
        denials += check(&label, "REST", got, [Allowed, Denied, Denied, Denied]);
    }

    // Create a key for the member's user: in the own team, in another team.
    for (team, expected) in [
        ("eng", [Allowed, Allowed, Denied, Allowed]),
        ("ops", [Allowed, Denied, Denied, Denied]),
    ] {
        for (i, role) in ROLES.iter().enumerate() {
            let req = pb::CreateKeyRequest {
                team: team.into(),
                user_id: MIA.into(),
                ..Default::default()
            };
            got[i] = grpc(role, f.admin.create_key(authorized(req, &f.keys[i])).await);
        }
        let label = format!("create a key in {team}");
        denials += check(&label, "gRPC", got, expected);
        for (i, role) in ROLES.iter().enumerate() {
            let body = json!({"team_id": team, "user_id": MIA});
            got[i] = rest(role, f.rest_post(&f.keys[i], "/key/generate", body));
        }
        denials += check(&label, "REST", got, expected);
    }
    // A member's key is theirs: creating one for a colleague is refused.
    let req = pb::CreateKeyRequest {
        team: "eng".into(),
        user_id: BO.into(),
        ..Default::default()
    };
    let member = grpc(
        "member",
        f.admin.create_key(authorized(req, &f.keys[3])).await,
    );
    assert_eq!(member, Denied);
    denials += 1;

    // A personal key (no team, so no team caps to stay within) is made by admins only; the
    // member may revoke their own.
    let label = "create a personal key";
    for (i, role) in ROLES.iter().enumerate() {
        let req = pb::CreateKeyRequest {
            user_id: MIA.into(),
            ..Default::default()
        };
        got[i] = grpc(role, f.admin.create_key(authorized(req, &f.keys[i])).await);
    }
    denials += check(label, "gRPC", got, [Allowed, Denied, Denied, Denied]);
    for (i, role) in ROLES.iter().enumerate() {
        let body = json!({"user_id": MIA, "models": ["*"]});
        got[i] = rest(role, f.rest_post(&f.keys[i], "/key/generate", body));
    }
    denials += check(label, "REST", got, [Allowed, Denied, Denied, Denied]);
    let label = "revoke a personal key of the member";
    for (i, role) in ROLES.iter().enumerate() {
        let public_id = f.key("", MIA).await;
        let body = json!({"keys": [public_id]});
        got[i] = rest(role, f.rest_post(&f.keys[i], "/key/delete", body));
    }
    denials += check(label, "REST", got, [Allowed, Denied, Denied, Allowed]);

    // Revoke a key: own (eng, the member's user), another user's in the own team, another
    // team's. A fresh key per attempt, since revoking is final.
    for (team, user, expected) in [
        ("eng", MIA, [Allowed, Allowed, Denied, Allowed]),
        ("eng", BO, [Allowed, Allowed, Denied, Denied]),
        ("ops", MIA, [Allowed, Denied, Denied, Denied]),
    ] {
        let label = format!("revoke a key of {user} in {team}");
        for (i, role) in ROLES.iter().enumerate() {
            let public_id = f.key(team, user).await;
            let req = pb::RevokeKeyRequest { public_id };
            got[i] = grpc(role, f.admin.revoke_key(authorized(req, &f.keys[i])).await);
        }
        denials += check(&label, "gRPC", got, expected);
        for (i, role) in ROLES.iter().enumerate() {
            let public_id = f.key(team, user).await;
            let body = json!({"keys": [public_id]});
            got[i] = rest(role, f.rest_post(&f.keys[i], "/key/delete", body));
        }
        denials += check(&label, "REST", got, expected);
    }

    // Read spend: own user, another user; own team, another team.
    for (scope, expected) in [
        (("user_id", MIA), [Allowed, Denied, Allowed, Allowed]),
        (("user_id", BO), [Allowed, Denied, Allowed, Denied]),
        (("team_id", "eng"), [Allowed, Allowed, Allowed, Denied]),
        (("team_id", "ops"), [Allowed, Denied, Allowed, Denied]),
    ] {
        let label = format!("read the spend of {}", scope.1);
        for (i, role) in ROLES.iter().enumerate() {
            let scope = match scope {
                ("user_id", u) => pb::get_spend_request::Scope::UserId(u.into()),
                (_, t) => pb::get_spend_request::Scope::Team(t.into()),
            };
            let req = pb::GetSpendRequest {
                scope: Some(scope),
                history_days: 1,
            };
            got[i] = grpc(role, f.admin.get_spend(authorized(req, &f.keys[i])).await);
        }
        denials += check(&label, "gRPC", got, expected);
        let path = match scope {
            ("user_id", u) => format!("/spend/user?user_id={u}"),
            (_, t) => format!("/spend/team?team_id={t}"),
        };
        for (i, role) in ROLES.iter().enumerate() {
            got[i] = rest(role, f.rest_get(&f.keys[i], &path));
        }
        denials += check(&label, "REST", got, expected);
    }

    // Read the audit log and mint a data-plane token: gRPC only (no REST routes).
    for (i, role) in ROLES.iter().enumerate() {
        let req = pb::AuditQueryRequest::default();
        got[i] = grpc(role, f.audit.query(authorized(req, &f.keys[i])).await);
    }
    denials += check(
        "read the audit log",
        "gRPC",
        got,
        [Allowed, Denied, Allowed, Denied],
    );
    for (i, role) in ROLES.iter().enumerate() {
        let req = pb::CreateDataPlaneTokenRequest {
            name: format!("edge-{i}"),
        };
        got[i] = grpc(
            role,
            f.admin
                .create_data_plane_token(authorized(req, &f.keys[i]))
                .await,
        );
    }
    denials += check(
        "mint a data-plane token",
        "gRPC",
        got,
        [Allowed, Denied, Denied, Denied],
    );

    // Listings show each role only what it may read.
    let eng = f
        .admin
        .get_team(authorized(pb::TeamRef { team: "eng".into() }, &f.master))
        .await
        .unwrap()
        .into_inner()
        .team_id;
    let member_keys = f
        .admin
        .list_keys(authorized(pb::ListKeysRequest::default(), &f.keys[3]))
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert!(!member_keys.is_empty());
    // Their keys in their team, and their own personal keys (no team).
    assert!(
        member_keys
            .iter()
            .all(|k| (k.team_id == eng || k.team_id.is_empty()) && k.user_id == MIA),
        "{member_keys:?}"
    );
    assert!(member_keys.iter().any(|k| k.team_id.is_empty()));
    let lead_teams = f
        .admin
        .list_teams(authorized(pb::ListTeamsRequest {}, &f.keys[1]))
        .await
        .unwrap()
        .into_inner();
    let aliases: Vec<&str> = lead_teams.teams.iter().map(|t| t.alias.as_str()).collect();
    assert_eq!(aliases, ["eng"]);

    // Every denial is in the chain, naming who, in which role, and what.
    let denied = f.admin_records(true).await;
    assert_eq!(denied.len(), denials, "one admin record per denial");
    let first = denied[0].record.as_ref().unwrap();
    let action = first.admin.as_ref().unwrap();
    assert_eq!(
        (
            action.actor.as_str(),
            action.role.as_str(),
            action.action.as_str()
        ),
        ("tara@corp", "team_admin", "create_team")
    );
    assert!(!action.allowed && action.principal == "admin_key");
    assert!(first.reason.contains("role team_admin may not create_team"));
    assert!(!first.client_ip.is_empty());
    // Writes name their object and what changed, and never a secret.
    let writes = f.admin_records(false).await;
    let update = writes
        .iter()
        .filter_map(|e| e.record.as_ref()?.admin.as_ref())
        .find(|a| a.action == "update_team" && a.allowed)
        .unwrap();
    assert_eq!(update.object_kind, "team");
    let limits = update.changes.iter().find(|c| c.field == "limits").unwrap();
    assert!(limits.after.contains("100"), "{limits:?}");
    let everything = format!("{writes:?}");
    for key in f.keys.iter().chain([&f.master]) {
        assert!(
            !everything.contains(key.as_str()),
            "a credential in the audit log"
        );
    }

    // The CLI with an admin key: the same rule, one clear line.
    let out =
        f.cp.cli(&[
            "--admin-key",
            &f.keys[2],
            "team",
            "create",
            "--alias",
            "cli",
        ])
        .fails()
        .to_owned();
    assert!(
        out.contains("permission denied") && out.contains("role auditor may not create_team"),
        "{out}"
    );
    let teams =
        f.cp.cli_with_env(
            &["team", "list", "--json"],
            &[("MODELGATE_ADMIN_KEY", &f.keys[2])],
        )
        .json();
    assert!(teams.as_array().unwrap().len() >= 2, "{teams}");

    // The chain verifies with the admin records in it...
    let verified = f.cp.cli(&["audit", "verify", "--remote", "--json"]).json();
    assert_eq!(verified["ok"], true, "{verified}");
    let (clean, _, _) = f.cp.stop();
    assert!(clean);
    let offline = |args: &[&str]| -> CliOutput {
        command()
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    assert!(offline(&["audit", "verify"]).ok().starts_with("OK: "));
    // ...and fails once a denial is edited into a success in the database file.
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("modelgate.db"));
    let mut db = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let seq: i64 = sqlx::query_scalar(
        "SELECT MIN(seq) FROM usage_records WHERE kind = 'admin' AND status = 'blocked'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    sqlx::query("UPDATE usage_records SET status = 'success' WHERE seq = $1")
        .bind(seq)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let after = offline(&["audit", "verify"]);
    assert_eq!(after.code, Some(1), "{after:?}");
    assert!(
        after
            .stdout
            .contains(&format!("FAILED: record {seq}: column status")),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_live_admin_keys_and_the_master_key_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::start(dir.path()).await;
    let virtual_key = f
        .admin
        .create_key(authorized(
            pb::CreateKeyRequest {
                team: "eng".into(),
                ..Default::default()
            },
            &f.master,
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let token = f.cp.create_data_plane_token("edge-1");
    // An admin key revoked by an admin stops working at once.
    let listed = f.cp.cli(&["admin-key", "list", "--json"]).json();
    let member_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "member")
        .unwrap()["public_id"]
        .as_str()
        .unwrap()
        .to_owned();
    f.cp.cli(&["--admin-key", &f.keys[0], "admin-key", "revoke", &member_id])
        .ok();
    let unknown = format!("mgak-abcdefghijkl-{}", "A".repeat(43));
    for (credential, expected) in [
        (
            virtual_key.as_str(),
            "virtual keys cannot call the admin API",
        ),
        (token.as_str(), "invalid admin credential"),
        (unknown.as_str(), "unknown admin key"),
        (
            f.keys[3].as_str(),
            &format!("admin key {member_id} is revoked"),
        ),
    ] {
        let status = f
            .admin
            .list_teams(authorized(pb::ListTeamsRequest {}, credential))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains(expected), "{status:?}");
        let (code, body) = f.rest_get(credential, "/team/list");
        assert_eq!(code, 401, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{body}"
        );
    }

    // Admin keys are an admin's alone; their input is checked before anything is stored.
    let refused =
        f.cp.cli(&["--admin-key", &f.keys[1], "admin-key", "list"])
            .fails()
            .to_owned();
    assert!(
        refused.contains("role team_admin may not manage_admin_keys"),
        "{refused}"
    );
    for (args, expected) in [
        (vec!["--role", "member"], "needs at least one team"),
        (
            vec!["--role", "auditor", "--team", "eng"],
            "applies to every team",
        ),
        (vec!["--role", "root"], "unknown role"),
        (vec!["--role", "member", "--team", "nope"], "not found"),
    ] {
        let mut all = vec!["admin-key", "create", "--user", "x@corp"];
        all.extend(args);
        let err = f.cp.cli(&all).fails().to_owned();
        assert!(err.contains(expected), "{all:?}: {err}");
    }
    let live = f.cp.cli(&["admin-key", "list", "--json"]).json();
    assert_eq!(live.as_array().unwrap().len(), 3, "{live}");
    let listed = f.cp.cli(&["admin-key", "list", "--all"]).ok().to_owned();
    assert!(listed.starts_with("PUBLIC_ID"), "{listed}");
    assert!(!listed.contains(&f.keys[0]), "a whole key in the listing");
    // The admin key's use was recorded.
    let root = live
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "admin")
        .unwrap();
    assert!(root["last_used_at"].is_string(), "{root}");
}
