//! The audit log through the real binaries: `modelgate serve` receives ReportUsage batches as
//! a filter sends them, and `modelgate audit …` reads, verifies and prunes the log, over gRPC
//! and straight from the database file (with the server stopped), before and after someone
//! edits that file.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use modelgate_proto::v1 as pb;
use sqlx::Connection;
use support::control_plane::{command, CliOutput, ControlPlane};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn record(i: u64, at_ms: i64) -> pb::UsageRecord {
    let status = match i % 4 {
        0 | 1 => pb::RequestStatus::Success,
        2 => pb::RequestStatus::Blocked,
        _ => pb::RequestStatus::Errored,
    };
    pb::UsageRecord {
        request_id: format!("req-{i}"),
        timestamp_ms: at_ms + i as i64,
        key_id: if i.is_multiple_of(2) {
            "keyaaaaaaaaa"
        } else {
            "keybbbbbbbbb"
        }
        .into(),
        team_id: "team_ml".into(),
        user_id: "ana@example.com".into(),
        model_requested: "llama3".into(),
        model_resolved: "llama3.1:8b".into(),
        prompt_sha256: "ab".repeat(32),
        prompt_redacted: "my email is <EMAIL_1>".into(),
        tokens_in: 10,
        tokens_out: 5,
        spend: 0.5,
        latency_ms: 30,
        status: status.into(),
        reason: if status == pb::RequestStatus::Blocked {
            "rpm_limit"
        } else {
            ""
        }
        .into(),
        http_status: if status == pb::RequestStatus::Success {
            200
        } else {
            429
        },
        redactions: vec![pb::EntityCount {
            entity_type: "email".into(),
            count: 1,
        }],
        ..Default::default()
    }
}

async fn report(
    cp: &ControlPlane,
    batch_id: &str,
    records: Vec<pb::UsageRecord>,
) -> pb::ReportUsageResponse {
    let mut client = cp.policy_client().await;
    client
        .report_usage(pb::ReportUsageRequest {
            batch_id: batch_id.into(),
            node_id: "envoy-test".into(),
            records,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Runs the CLI on a data dir with no server (direct database access).
fn offline(data_dir: &Path, args: &[&str]) -> CliOutput {
    command()
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn sink_lines(data_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join("audit")) else {
        return 0;
    };
    entries
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliance_team_reads_verifies_and_prunes_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let cp = ControlPlane::start(data, &["--audit-checkpoint-every", "5"], &[]);

    // 100 days ago, then today: 8 + 12 records, and a retried batch that must not count twice.
    let old = now_ms() - 100 * DAY_MS;
    let today = now_ms() - 60_000;
    let first = report(&cp, "batch-old", (0..8).map(|i| record(i, old)).collect()).await;
    assert_eq!((first.accepted, first.duplicate), (8, false));
    let today_batch: Vec<_> = (8..20).map(|i| record(i, today)).collect();
    report(&cp, "batch-today", today_batch.clone()).await;
    let retry = report(&cp, "batch-today", today_batch).await;
    assert_eq!((retry.accepted, retry.duplicate), (12, true));

    // The signing key: created with mode 0600, the same whichever way it is asked for.
    let key_path = data.join("audit-signing.key");
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let public = cp.cli(&["audit", "public-key"]).ok().trim().to_owned();
    assert_eq!(public.len(), 64);
    assert_eq!(
        cp.cli(&["audit", "public-key", "--remote"]).ok().trim(),
        public
    );

    // Query over gRPC and straight from the database give the same records.
    let remote = cp
        .cli(&["audit", "query", "--remote", "--json", "--kind", "request"])
        .json();
    let direct = cp
        .cli(&["audit", "query", "--json", "--kind", "request"])
        .json();
    assert_eq!(remote, direct);
    assert_eq!(remote.as_array().unwrap().len(), 20);
    // Minting the data-plane token the reports came with is in the chain too, as the master
    // key's (break-glass) admin record.
    let admin = cp
        .cli(&["audit", "query", "--remote", "--json", "--kind", "admin"])
        .json();
    let admin = admin.as_array().unwrap();
    assert_eq!(admin.len(), 1, "{admin:?}");
    assert_eq!(admin[0]["seq"], 1);
    assert_eq!(admin[0]["kind"], "admin");
    assert_eq!(admin[0]["admin"]["principal"], "master_key");
    assert_eq!(admin[0]["admin"]["action"], "manage_data_planes");
    assert_eq!(admin[0]["admin"]["object_kind"], "data_plane_token");
    assert!(admin[0]["key_id"].is_null() && admin[0]["team_id"].is_null());
    let r0 = &remote[0];
    assert_eq!(r0["request_id"], "req-0");
    assert_eq!(r0["model"], "llama3");
    assert_eq!(r0["model_resolved"], "llama3.1:8b");
    assert_eq!(r0["prompt_redacted"], "my email is <EMAIL_1>");
    assert_eq!(r0["redactions"], serde_json::json!({"email": 1}));
    assert!(r0["timestamp"].as_str().unwrap().ends_with('Z'));

    let blocked = cp
        .cli(&[
            "audit", "query", "--remote", "--json", "--status", "blocked", "--from", "2h",
        ])
        .json();
    // Today's i = 8..20 with i % 4 == 2: 10, 14, 18.
    assert_eq!(blocked.as_array().unwrap().len(), 3);
    assert!(blocked
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["reason"] == "rpm_limit"));
    let table = cp
        .cli(&["audit", "query", "--key", "keyaaaaaaaaa", "--limit", "3"])
        .ok()
        .to_owned();
    assert!(table.starts_with("TIME"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");

    let exported = cp
        .cli(&[
            "audit", "export", "--remote", "--from", "2h", "--kind", "request",
        ])
        .ok()
        .to_owned();
    assert_eq!(exported.lines().count(), 12);
    for line in exported.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["seq"].as_u64().unwrap() > 8);
    }

    let by_key = cp
        .cli(&["audit", "report", "--by", "key", "--json", "--remote"])
        .json();
    let rows = by_key.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows.iter()
            .map(|r| r["requests"].as_u64().unwrap())
            .sum::<u64>(),
        20
    );
    assert!(rows
        .iter()
        .all(|r| r["spend"] == 5.0 && r["key_id"].is_string()));
    let by_team = cp.cli(&["audit", "report", "--by", "team"]).ok().to_owned();
    assert!(by_team.starts_with("TEAM"), "{by_team}");
    assert!(by_team.contains("team_ml"), "{by_team}");

    // The JSONL sink catches up with every record: 20 requests and the admin record.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink_lines(data) < 21 {
        assert!(
            Instant::now() < deadline,
            "sink has {} lines",
            sink_lines(data)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let verified = cp.cli(&["audit", "verify", "--remote"]).ok().to_owned();
    assert!(verified.starts_with("OK: 21 records (1..21)"), "{verified}");

    // Stopped: everything is signed and the log verifies from the file alone.
    let (clean, _, _) = cp.stop();
    assert!(clean);
    let verified = offline(data, &["audit", "verify", "--json"]).json();
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["records"], 21);
    assert_eq!(verified["unsigned_records"], 0);
    assert_eq!(sink_lines(data), 21);

    // Retention removes only a prefix of the chain: the 100-day-old records sit behind the
    // (young) admin record at position 1, so they stay, and the log still verifies whole.
    let pruned = offline(data, &["audit", "prune", "--older-than", "90d", "--json"]).json();
    assert_eq!(pruned["records_deleted"].as_u64().unwrap(), 0, "{pruned}");
    let verified = offline(data, &["audit", "verify"]);
    assert!(
        verified.ok().starts_with("OK: 21 records (1..21)"),
        "{verified:?}"
    );
}

async fn tampered(data: &Path, sql: &str) {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(data.join("modelgate.db"));
    let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    sqlx::query(sql).execute(&mut c).await.unwrap();
}

/// A log of 20 request records written by a real server after the admin record of minting
/// their data-plane token (position 1), then the server stopped.
async fn written_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &["--audit-checkpoint-every", "5"], &[]);
    for b in 0..4 {
        report(
            &cp,
            &format!("b{b}"),
            (b * 5..b * 5 + 5).map(|i| record(i, now_ms())).collect(),
        )
        .await;
    }
    let (clean, _, _) = cp.stop();
    assert!(clean);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_spot_after_the_database_file_is_edited() {
    let cases: &[(&str, &str)] = &[
        (
            "UPDATE usage_records SET tokens_out = 0 WHERE seq = 7",
            "FAILED: record 7: column tokens_out",
        ),
        (
            "UPDATE usage_records SET record = X'0a0378797a' WHERE seq = 3",
            "FAILED: record 3:",
        ),
        (
            "DELETE FROM usage_records WHERE seq = 11",
            "FAILED: record 11: record 11 is missing",
        ),
        (
            "DELETE FROM audit_checkpoints WHERE checkpoint_no = 2",
            "FAILED: checkpoint 2: missing",
        ),
        (
            "UPDATE audit_checkpoints SET seq = seq + 1 WHERE checkpoint_no = 1",
            "FAILED: checkpoint 1: its signature",
        ),
        ("DELETE FROM usage_records WHERE seq > 15", "tail truncated"),
        // An admin record edited: passed off as a request, or its action rewritten.
        (
            "UPDATE usage_records SET kind = 'request' WHERE seq = 1",
            "FAILED: record 1: column kind",
        ),
        (
            "UPDATE usage_records SET record = \
             CAST(REPLACE(CAST(record AS TEXT), 'manage_data_planes', 'manage_admin_keys_') AS BLOB) \
             WHERE seq = 1",
            "FAILED: record 1:",
        ),
    ];
    for (sql, expected) in cases {
        let dir = written_log().await;
        let before = offline(dir.path(), &["audit", "verify"]);
        assert!(before.ok().starts_with("OK: 21 records"), "{before:?}");
        tampered(dir.path(), sql).await;
        let after = offline(dir.path(), &["audit", "verify"]);
        assert_eq!(after.code, Some(1), "{sql}: {after:?}");
        assert!(after.stdout.contains(expected), "{sql}: {after:?}");
        assert_eq!(after.fails(), "error: the audit log FAILED verification");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_commands_explain_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = offline(dir.path(), &["audit", "verify"]);
    assert!(out.fails().contains("no database at"), "{out:?}");
    let out = offline(dir.path(), &["audit", "public-key"]);
    assert!(out.fails().contains("no audit signing key"), "{out:?}");
    let out = offline(dir.path(), &["audit", "query", "--from", "yesterday"]);
    assert!(out.fails().contains("invalid time"), "{out:?}");
}
