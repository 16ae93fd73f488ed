//! The real `modelgate serve` driven by the real CLI and by tonic clients, as an admin and as
//! a filter would.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use modelgate_proto::v1 as pb;
use modelgate_proto::v1::admin_service_client::AdminServiceClient;
use sha2::{Digest, Sha256};
use sqlx::Connection;
use support::control_plane::ControlPlane;
use support::postgres::TestDatabase;
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

/// Every byte of every file under `dir`, so a secret cannot hide in a WAL or journal.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn keys_are_shown_once_stored_as_hashes_listed_without_secrets_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);

    let team = cp
        .cli(&[
            "team",
            "create",
            "--alias",
            "ml",
            "--models",
            "llama3,qwen2.5-*",
            "--json",
        ])
        .json();
    let team_id = team["team_id"].as_str().unwrap().to_owned();
    assert!(team_id.starts_with("team_"));
    assert_eq!(team["alias"], "ml");
    assert_eq!(team["models"], serde_json::json!(["llama3", "qwen2.5-*"]));

    let human = cp.cli(&["team", "list"]).ok().to_owned();
    assert!(human.starts_with("TEAM_ID"), "{human}");
    assert!(
        human.contains(&team_id) && human.contains("llama3,qwen2.5-*"),
        "{human}"
    );
    let listed = cp.cli(&["team", "list", "--json"]).json();
    assert_eq!(listed[0]["team_id"], team_id.as_str());

    let created = cp
        .cli(&[
            "key",
            "create",
            "--team",
            "ml",
            "--user",
            "ana@example.com",
            "--alias",
            "laptop",
            "--expires",
            "30d",
            "--json",
        ])
        .json();
    let key = created["key"].as_str().unwrap().to_owned();
    let public_id = created["public_id"].as_str().unwrap().to_owned();
    assert_eq!(created["team_id"], team_id.as_str());
    assert_eq!(created["user_id"], "ana@example.com");
    assert!(created["expires_at"].as_str().unwrap().ends_with('Z'));

    // sk-mg-<12 [a-z0-9]>-<43 base62>: 43 × log2(62) > 256 bits.
    let rest = key.strip_prefix("sk-mg-").unwrap();
    let (id, secret) = rest.split_once('-').unwrap();
    assert_eq!(id, public_id);
    assert_eq!(id.len(), 12);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert_eq!(secret.len(), 43);
    assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()));

    // Only the hash is stored: not the key, not its secret part, anywhere in the data dir.
    let db_path = dir.path().join("modelgate.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db_path)
        .read_only(true);
    let mut db = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let (stored_hash, last4): (String, String) =
        sqlx::query_as("SELECT key_sha256, last4 FROM api_keys WHERE public_id = $1")
            .bind(&public_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    db.close().await.unwrap();
    assert_eq!(stored_hash, hex::encode(Sha256::digest(key.as_bytes())));
    assert_eq!(last4, key[key.len() - 4..]);
    let files = all_bytes(dir.path());
    assert!(!contains(&files, &key), "the key is stored somewhere");
    assert!(!contains(&files, secret), "the secret is stored somewhere");

    // The human form shows it once, with the warning.
    let human = cp
        .cli(&["key", "create", "--team", &team_id])
        .ok()
        .to_owned();
    assert!(human.contains("only time the key is shown"), "{human}");
    assert_eq!(human.matches("sk-mg-").count(), 1, "{human}");

    // Listing: last 4, never the secret.
    let list = cp.cli(&["key", "list"]).ok().to_owned();
    assert!(list.contains(&public_id), "{list}");
    assert!(list.contains(&last4), "{list}");
    assert!(
        list.contains("ana@example.com") && list.contains("ml"),
        "{list}"
    );
    assert!(!list.contains(secret), "{list}");
    let list_json = cp.cli(&["key", "list", "--team", "ml", "--json"]);
    assert!(!list_json.stdout.contains(secret));
    let keys = list_json.json();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert!(keys
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k.get("key").is_none()));

    // Revoke: gone from the default list, shown as revoked with --all.
    let revoked = cp.cli(&["key", "revoke", &public_id]).ok().to_owned();
    assert!(
        revoked.starts_with(&format!("Revoked key {public_id}")),
        "{revoked}"
    );
    let active = cp.cli(&["key", "list", "--json"]).json();
    assert!(active
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["public_id"] != public_id.as_str()));
    let all = cp.cli(&["key", "list", "--all", "--json"]).json();
    let entry = all
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["public_id"] == public_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["status"], "revoked");
    assert!(entry["revoked_at"].is_string());
    let table = cp.cli(&["key", "list", "--all"]).ok().to_owned();
    assert!(table.contains("revoked"), "{table}");
}

#[tokio::test]
async fn admin_calls_need_the_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let mut admin = AdminServiceClient::connect(cp.grpc_url()).await.unwrap();

    let err = admin.list_teams(pb::ListTeamsRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("authorization"), "{err:?}");

    for bad in ["Bearer wrong", "Basic abc", "Bearer "] {
        let mut req = Request::new(pb::ListTeamsRequest {});
        req.metadata_mut()
            .insert("authorization", bad.parse().unwrap());
        let err = admin.list_teams(req).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{bad}: {err:?}");
    }

    // A valid virtual key is not an admin credential: unauthenticated, like any other.
    let key = master_key(&cp);
    admin
        .create_team(authorized(
            pb::CreateTeamRequest {
                alias: "ml".into(),
                ..Default::default()
            },
            &key,
        ))
        .await
        .unwrap();
    let virtual_key = admin
        .create_key(authorized(
            pb::CreateKeyRequest {
                team: "ml".into(),
                ..Default::default()
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let err = admin
        .list_teams(authorized(pb::ListTeamsRequest {}, &virtual_key))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message()
            .contains("virtual keys cannot call the admin API"),
        "{err:?}"
    );

    // The CLI: a wrong key, or none at all, is one clear line and exit 1.
    let line = cp
        .cli(&["team", "list", "--master-key", "sk-mg-master-wrong"])
        .fails()
        .to_owned();
    assert!(line.contains("refused the credential"), "{line}");
    let empty = tempfile::tempdir().unwrap();
    let out = support::control_plane::command()
        .args(["--addr", &cp.grpc_url(), "--data-dir"])
        .arg(empty.path())
        .args(["team", "list"])
        .output()
        .unwrap();
    let out = support::control_plane::CliOutput::from(out);
    assert!(out.fails().contains("no master key"), "{out:?}");
    // The flag works too.
    let ok = cp
        .cli(&["team", "list", "--json", "--master-key", &key])
        .json();
    assert_eq!(ok[0]["alias"], "ml");
}

#[tokio::test]
async fn mistakes_get_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    cp.cli(&["team", "create", "--alias", "ml"]).ok();

    let cases: &[(&[&str], &str)] = &[
        (&["team", "create", "--alias", "ml"], "already exists"),
        (
            &["team", "create", "--alias", "Bad Alias"],
            "team alias \"Bad Alias\" is invalid",
        ),
        (
            &["key", "create", "--team", "nope"],
            "team \"nope\" not found",
        ),
        (
            &["key", "create", "--team", "ml", "--expires", "soon"],
            "invalid expiry \"soon\"",
        ),
        (
            &[
                "key",
                "create",
                "--team",
                "ml",
                "--expires",
                "2001-01-01T00:00:00Z",
            ],
            "is in the past",
        ),
        (
            &["key", "list", "--team", "nope"],
            "team \"nope\" not found",
        ),
        (
            &["key", "revoke", "zzzzzzzzzzzz"],
            "key \"zzzzzzzzzzzz\" not found",
        ),
        (&["key", "revoke", "nope"], "is not a key id"),
    ];
    for (args, expected) in cases {
        let out = cp.cli(args);
        let line = out.fails();
        assert!(line.starts_with("error: "), "{args:?}: {line}");
        assert!(line.contains(expected), "{args:?}: {line}");
    }

    // A whole key given to revoke is refused without being echoed back.
    let key = cp.cli(&["key", "create", "--team", "ml", "--json"]).json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = cp.cli(&["key", "revoke", &key]);
    assert!(out.fails().contains("looks like a whole key"), "{out:?}");
    assert!(!out.stderr.contains(&key));

    // gRPC codes behind those messages.
    let master = master_key(&cp);
    let mut admin = AdminServiceClient::connect(cp.grpc_url()).await.unwrap();
    let code = |r: Result<tonic::Response<pb::Key>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(
        code(
            admin
                .revoke_key(authorized(
                    pb::RevokeKeyRequest {
                        public_id: "zzzzzzzzzzzz".into()
                    },
                    &master
                ))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            admin
                .revoke_key(authorized(
                    pb::RevokeKeyRequest {
                        public_id: "x".into()
                    },
                    &master
                ))
                .await
        ),
        Code::InvalidArgument
    );
    let dup = admin
        .create_team(authorized(
            pb::CreateTeamRequest {
                alias: "ml".into(),
                ..Default::default()
            },
            &master,
        ))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    let no_such_team = admin
        .create_key(authorized(
            pb::CreateKeyRequest {
                team: "nope".into(),
                ..Default::default()
            },
            &master,
        ))
        .await
        .unwrap_err();
    assert_eq!(no_such_team.code(), Code::NotFound);

    // Usage errors are clap's: exit 2.
    assert_eq!(cp.cli(&["key", "create", "--rpm"]).code, Some(2));
    // An unreachable server.
    let out = support::control_plane::command()
        .args([
            "--addr",
            "http://127.0.0.1:1",
            "--master-key",
            "k",
            "team",
            "list",
        ])
        .output()
        .unwrap();
    let out = support::control_plane::CliOutput::from(out);
    assert!(
        out.fails().contains("cannot reach the control plane"),
        "{out:?}"
    );
}

#[tokio::test]
async fn filters_get_snapshots_with_hashes_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let mut policy = cp.policy_client().await;
    let get = |known_version| pb::GetSnapshotRequest {
        known_version,
        node_id: "envoy-test".into(),
        ..Default::default()
    };

    let first = policy.get_snapshot(get(0)).await.unwrap().into_inner();
    let empty = first.snapshot.unwrap();
    assert!(empty.keys.is_empty() && empty.teams.is_empty());
    assert_eq!(empty.version, first.version);
    assert!(first.server_time_ms > 0);

    let team = cp
        .cli(&["team", "create", "--alias", "ml", "--json"])
        .json();
    let created = cp
        .cli(&[
            "key",
            "create",
            "--team",
            "ml",
            "--user",
            "bo@example.com",
            "--json",
        ])
        .json();
    let key = created["key"].as_str().unwrap();
    let public_id = created["public_id"].as_str().unwrap();

    let resp = policy
        .get_snapshot(get(first.version))
        .await
        .unwrap()
        .into_inner();
    let snap = resp.snapshot.expect("a change means a new snapshot");
    assert_eq!(resp.version, first.version + 2);
    assert_eq!(snap.version, resp.version);
    assert_eq!(snap.teams.len(), 1);
    assert_eq!(snap.teams[0].team_id, team["team_id"].as_str().unwrap());
    let kp = &snap.keys[0];
    assert_eq!(kp.key_sha256, Sha256::digest(key.as_bytes()).to_vec());
    assert_eq!(kp.public_id, public_id);
    assert_eq!(kp.user_id, "bo@example.com");
    assert_eq!(kp.status(), pb::KeyStatus::Active);
    assert_eq!(kp.expires_at_ms, 0);

    // Holding the current version: "unchanged".
    let same = policy
        .get_snapshot(get(resp.version))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.version, resp.version);
    assert!(same.snapshot.is_none());

    cp.cli(&["key", "revoke", public_id]).ok();
    let after = policy
        .get_snapshot(get(resp.version))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.version, resp.version + 1);
    let kp = &after.snapshot.unwrap().keys[0];
    assert_eq!(kp.public_id, public_id);
    assert_eq!(kp.status(), pb::KeyStatus::Revoked);

    // A filter keeps its connection open; shutdown must not wait for it to go away. (Stop
    // on a blocking thread so this runtime keeps answering the server's HTTP/2 GOAWAY ping.)
    let started = std::time::Instant::now();
    let (clean_exit, _, stderr) = tokio::task::spawn_blocking(move || cp.stop())
        .await
        .unwrap();
    assert!(clean_exit, "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    drop(policy);
}

#[tokio::test]
async fn serve_refuses_bad_configuration_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |args: &[&str]| {
        let out = support::control_plane::command()
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--http-addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        support::control_plane::CliOutput::from(out)
    };
    let out = serve(&[
        "--grpc-addr",
        "127.0.0.1:0",
        "--database-url",
        "mysql://db/modelgate",
    ]);
    assert!(out.fails().contains("unsupported database URL"), "{out:?}");

    assert!(
        !dir.path().join("master.key").exists(),
        "a server that cannot start leaves no key behind"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = serve(&["--grpc-addr", &addr]);
    assert!(
        out.fails()
            .contains(&format!("cannot listen for gRPC on {addr}")),
        "{out:?}"
    );
}

#[tokio::test]
async fn usage_batches_are_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let mut policy = cp.policy_client().await;
    let record = |i: u64| pb::UsageRecord {
        request_id: format!("req-{i}"),
        timestamp_ms: 1_700_000_000_000,
        key_id: "abcdefghijkl".into(),
        team_id: "team_x".into(),
        model_requested: "llama3".into(),
        tokens_in: i,
        tokens_out: 2 * i,
        status: pb::RequestStatus::Success.into(),
        http_status: 200,
        ..Default::default()
    };
    let batch = pb::ReportUsageRequest {
        batch_id: "node-a-000001".into(),
        node_id: "node-a".into(),
        records: vec![record(1), record(2)],
    };
    let first = policy
        .report_usage(batch.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first,
        pb::ReportUsageResponse {
            accepted: 2,
            duplicate: false
        }
    );
    let again = policy.report_usage(batch).await.unwrap().into_inner();
    assert_eq!(
        again,
        pb::ReportUsageResponse {
            accepted: 2,
            duplicate: true
        }
    );

    let err = policy
        .report_usage(pb::ReportUsageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("modelgate.db"))
        .read_only(true);
    let mut db = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let rows: Vec<(String, i64, Vec<u8>)> =
        // Minting the data-plane token is chained too, as an admin record.
        sqlx::query_as(
            "SELECT request_id, tokens_out, record FROM usage_records WHERE kind = 'request' \
             ORDER BY seq",
        )
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].0, "req-2");
    assert_eq!(rows[1].1, 4);
    // The whole record is kept as sent.
    let decoded = <pb::UsageRecord as prost::Message>::decode(rows[1].2.as_slice()).unwrap();
    assert_eq!(decoded, record(2));
}

#[tokio::test]
async fn master_key_file_is_private_reused_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let path = dir.path().join("master.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key = master_key(&cp);
    assert!(key.starts_with("sk-mg-master-") && key.len() == "sk-mg-master-".len() + 43);

    cp.cli(&["team", "create", "--alias", "ml"]).ok();
    let listed = cp.cli(&["team", "list"]);
    let (clean_exit, stdout, stderr) = cp.stop();
    assert!(
        clean_exit,
        "SIGTERM must stop the server cleanly; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("master key written to {}", path.display())),
        "{stderr}"
    );
    for text in [&stdout, &stderr, &listed.stdout, &listed.stderr] {
        assert!(!text.contains(&key), "master key printed:\n{text}");
        assert!(!text.contains(&key["sk-mg-master-".len()..]));
    }

    // Restart: same key from the file, data kept, nothing "written" this time.
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    assert_eq!(master_key(&cp), key);
    assert_eq!(cp.cli(&["team", "list", "--json"]).json()[0]["alias"], "ml");
    let (_, stdout, stderr) = cp.stop();
    assert!(!stderr.contains("master key written"), "{stderr}");
    assert!(!stdout.contains(&key) && !stderr.contains(&key));
}

#[tokio::test]
async fn master_key_from_the_environment_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = "sk-mg-master-from-the-environment";
    let cp = ControlPlane::start(dir.path(), &[], &[("MODELGATE_MASTER_KEY", key)]);
    assert!(!dir.path().join("master.key").exists());
    let out = cp.cli_with_env(
        &["team", "create", "--alias", "ml", "--json"],
        &[("MODELGATE_MASTER_KEY", key)],
    );
    assert_eq!(out.json()["alias"], "ml");
    let (_, stdout, stderr) = cp.stop();
    assert!(!stdout.contains(key) && !stderr.contains(key));
}

#[tokio::test]
async fn health_readiness_and_reflection() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient as V1;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest as V1Req;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse as V1Resp;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as V1a;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as V1aReq;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as V1aResp;

    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    assert_eq!(http_get(cp.http_addr, "/ready"), (200, "ok".into()));
    assert_eq!(http_get(cp.http_addr, "/healthz"), (200, "ok".into()));
    assert_eq!(http_get(cp.http_addr, "/nope").0, 404);

    let expected = ["modelgate.v1.AdminService", "modelgate.v1.PolicyService"];

    let channel = tonic::transport::Endpoint::from_shared(cp.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut v1 = V1::new(channel.clone());
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(V1Req::ListServices(String::new())),
    };
    let mut stream = v1
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(V1Resp::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in expected {
        assert!(names.iter().any(|n| n == name), "{names:?}");
    }

    let mut v1alpha = V1a::new(channel);
    let req = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(V1aReq::ListServices(String::new())),
    };
    let mut stream = v1alpha
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(V1aResp::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in expected {
        assert!(names.iter().any(|n| n == name), "{names:?}");
    }
}

#[tokio::test]
async fn serves_from_postgresql() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &["--database-url", &db.url], &[]);
    assert!(
        !dir.path().join("modelgate.db").exists(),
        "PostgreSQL, not SQLite"
    );
    assert_eq!(http_get(cp.http_addr, "/ready"), (200, "ok".into()));

    cp.cli(&["team", "create", "--alias", "ml"]).ok();
    let created = cp.cli(&["key", "create", "--team", "ml", "--json"]).json();
    let key = created["key"].as_str().unwrap();

    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT key_sha256 FROM api_keys")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, hex::encode(Sha256::digest(key.as_bytes())));

    let mut policy = cp.policy_client().await;
    let snap = policy
        .get_snapshot(pb::GetSnapshotRequest::default())
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_eq!(snap.keys.len(), 1);
    // Stopped from a blocking thread, so this runtime keeps serving the client's connection.
    let (clean_exit, _, stderr) = tokio::task::spawn_blocking(move || cp.stop())
        .await
        .unwrap();
    drop(policy);
    assert!(clean_exit, "{stderr}");
}
