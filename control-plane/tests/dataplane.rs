//! The data plane's door: `PolicyService` answers only callers presenting a live data-plane
//! token, records which data plane sent each batch, and admins mint, list and revoke tokens.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use modelgate_proto::v1 as pb;
use support::control_plane::{ControlPlane, PolicyClient};
use tonic::Code;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn get_snapshot() -> pb::GetSnapshotRequest {
    pb::GetSnapshotRequest {
        known_version: 0,
        node_id: "edge".into(),
        ..Default::default()
    }
}

/// A batch of one record spending `spend` for `key` of `team`.
fn batch(batch_id: &str, key: &serde_json::Value, spend: f64) -> pb::ReportUsageRequest {
    pb::ReportUsageRequest {
        batch_id: batch_id.into(),
        node_id: "edge".into(),
        records: vec![pb::UsageRecord {
            request_id: format!("{batch_id}-r"),
            timestamp_ms: now_ms(),
            key_id: key["public_id"].as_str().unwrap().to_owned(),
            team_id: key["team_id"].as_str().unwrap().to_owned(),
            model_requested: "llama3".into(),
            tokens_in: 10,
            tokens_out: 5,
            spend,
            status: pb::RequestStatus::Success.into(),
            ..Default::default()
        }],
    }
}

/// Both calls with the client's credential: refused as UNAUTHENTICATED with a message
/// containing `why`, and nothing of the policy in the answer.
async fn refused(mut client: PolicyClient, why: &str, report: pb::ReportUsageRequest) {
    let status = client.get_snapshot(get_snapshot()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains(why), "{status:?}");
    let status = client.report_usage(report).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains(why), "{status:?}");
}

fn team_with_key(cp: &ControlPlane) -> serde_json::Value {
    cp.cli(&[
        "team",
        "create",
        "--alias",
        "ml",
        "--models",
        "*",
        "--max-budget",
        "100",
        "--json",
    ])
    .ok();
    cp.cli(&["key", "create", "--team", "ml", "--json"]).json()
}

fn team_spend(cp: &ControlPlane) -> f64 {
    cp.cli(&["spend", "--team", "ml", "--json"]).json()["spend"]
        .as_f64()
        .unwrap()
}

/// Request records only: minting tokens is an admin write, chained as an admin record.
fn audit_records(cp: &ControlPlane) -> usize {
    cp.cli(&["audit", "export", "--kind", "request"])
        .ok()
        .lines()
        .count()
}

#[tokio::test]
async fn policy_calls_need_a_live_data_plane_token() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let key = team_with_key(&cp);
    let master = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    let virtual_key = cp.cli(&["key", "create", "--team", "ml", "--json"]).json()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // Forged reports and snapshot requests from anyone without a data-plane token.
    refused(
        cp.policy_client_with(None).await,
        "missing data-plane credential",
        batch("forged-1", &key, 50.0),
    )
    .await;
    for not_a_token in [
        format!("Bearer {}", master.trim()),
        format!("Bearer {virtual_key}"),
        "Bearer mgdp-nonsense".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
    ] {
        refused(
            cp.policy_client_with(Some(&not_a_token)).await,
            "malformed data-plane credential",
            batch("forged-2", &key, 50.0),
        )
        .await;
    }
    let unknown = format!("Bearer mgdp-abcdefghijkl-{}", "A".repeat(43));
    refused(
        cp.policy_client_with(Some(&unknown)).await,
        "unknown data-plane token",
        batch("forged-3", &key, 50.0),
    )
    .await;
    assert_eq!(team_spend(&cp), 0.0, "a refused report changed spend");
    assert_eq!(
        audit_records(&cp),
        0,
        "a refused report reached the audit log"
    );

    // A valid token: the snapshot and the report go through.
    let token = cp.create_data_plane_token("edge-1");
    let bearer = format!("Bearer {token}");
    let mut edge = cp.policy_client_with(Some(&bearer)).await;
    let snapshot = edge
        .get_snapshot(get_snapshot())
        .await
        .unwrap()
        .into_inner();
    assert!(snapshot.snapshot.is_some_and(|s| !s.keys.is_empty()));
    let ack = edge
        .report_usage(batch("real-1", &key, 2.5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ack.accepted, ack.duplicate), (1, false));
    assert_eq!(audit_records(&cp), 1);

    // Revoked: refused from the next call on, with nothing more stored.
    cp.cli(&["dataplane", "token", "revoke", "edge-1"]).ok();
    refused(
        cp.policy_client_with(Some(&bearer)).await,
        "is revoked",
        batch("real-2", &key, 50.0),
    )
    .await;
    assert_eq!(audit_records(&cp), 1);
    assert!(cp.cli(&["audit", "verify"]).code == Some(0));

    // The server never logged a presented secret.
    let (_, _, stderr) = cp.stop();
    for secret in [token.as_str(), virtual_key.as_str(), master.trim()] {
        assert!(!stderr.contains(secret), "a credential reached the log");
    }
    assert!(stderr.contains("policy call refused"), "{stderr}");
}

#[tokio::test]
async fn a_batch_id_cannot_be_replayed_from_another_data_plane() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let key = team_with_key(&cp);
    let a = format!("Bearer {}", cp.create_data_plane_token("edge-a"));
    let b = format!("Bearer {}", cp.create_data_plane_token("edge-b"));
    let mut edge_a = cp.policy_client_with(Some(&a)).await;
    let mut edge_b = cp.policy_client_with(Some(&b)).await;

    let first = edge_a
        .report_usage(batch("batch-1", &key, 1.0))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    let status = edge_b
        .report_usage(batch("batch-1", &key, 1.0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(
        status.message().contains("another data plane"),
        "{status:?}"
    );
    // The sender's own retry stays an idempotent duplicate.
    let retry = edge_a
        .report_usage(batch("batch-1", &key, 1.0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((retry.accepted, retry.duplicate), (1, true));
    assert_eq!(audit_records(&cp), 1);
}

#[tokio::test]
async fn admins_mint_list_and_revoke_data_plane_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);

    let text = cp.cli(&["dataplane", "token", "create", "--name", "edge-1"]);
    let shown = text.ok();
    let token = shown
        .split_whitespace()
        .find(|w| w.starts_with("mgdp-"))
        .unwrap()
        .to_owned();
    assert!(shown.contains("only time"), "{shown}");
    let created = cp
        .cli(&["dataplane", "token", "create", "--name", "edge-2", "--json"])
        .json();
    let public_id = created["public_id"].as_str().unwrap().to_owned();
    assert!(created["token"]
        .as_str()
        .unwrap()
        .starts_with(&format!("mgdp-{public_id}-")));
    assert_eq!(created["name"], "edge-2");
    assert!(created["created_at"].is_string());

    // Bad names and taken names: clear refusals, nothing stored.
    for bad in ["", "edge 1", "edge/1", "n".repeat(65).as_str()] {
        let err = cp
            .cli(&["dataplane", "token", "create", "--name", bad])
            .fails()
            .to_owned();
        assert!(err.contains("1 to 64 characters"), "{bad:?}: {err}");
    }
    let err = cp
        .cli(&["dataplane", "token", "create", "--name", "edge-1"])
        .fails()
        .to_owned();
    assert!(err.contains("already exists"), "{err}");

    // Last use shows once the token was presented.
    let mut edge = cp
        .policy_client_with(Some(&format!("Bearer {token}")))
        .await;
    edge.get_snapshot(get_snapshot()).await.unwrap();
    let listed = cp.cli(&["dataplane", "token", "list", "--json"]).json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["name"], "edge-1");
    assert!(listed[0]["last_used_at"].is_string(), "{listed:?}");
    assert!(listed[1]["last_used_at"].is_null(), "{listed:?}");
    assert!(!listed.iter().any(|t| t.to_string().contains("mgdp-")));

    // Revoked by public id; listed only with --all; the name is free again.
    let revoked = cp
        .cli(&["dataplane", "token", "revoke", &public_id, "--json"])
        .json();
    assert!(revoked["revoked_at"].is_string());
    let live = cp.cli(&["dataplane", "token", "list", "--json"]).json();
    assert_eq!(live.as_array().unwrap().len(), 1);
    let all = cp
        .cli(&["dataplane", "token", "list", "--all"])
        .ok()
        .to_owned();
    assert!(all.contains("edge-2") && all.contains("LAST_USED"), "{all}");
    cp.cli(&["dataplane", "token", "create", "--name", "edge-2"])
        .ok();
    let err = cp
        .cli(&["dataplane", "token", "revoke", "nobody"])
        .fails()
        .to_owned();
    assert!(err.contains("no live data-plane token named"), "{err}");

    // Master key only.
    let err = cp
        .cli_with_env(
            &["dataplane", "token", "list"],
            &[("MODELGATE_MASTER_KEY", token.as_str())],
        )
        .fails()
        .to_owned();
    assert!(err.contains("refused the credential"), "{err}");
}
