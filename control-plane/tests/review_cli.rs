//! `modelgate review` against the real control plane: every live key with its findings, in
//! each format, exit 1 when anything is flagged (0 when nothing is), and only for roles that
//! may read keys, users and the audit log.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use serde_json::Value;
use support::control_plane::ControlPlane;

fn created(cp: &ControlPlane, args: &[&str]) -> String {
    let mut all = vec!["key", "create"];
    all.extend(args);
    all.push("--json");
    cp.cli(&all).json()["public_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn flags_of(report: &Value, public_id: &str) -> Vec<String> {
    let entry = report
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["public_id"] == public_id)
        .unwrap_or_else(|| panic!("{public_id} not in {report}"));
    entry["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn review_flags_what_needs_action_and_exits_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    for (team, rpm) in [("eng", "100"), ("tidy", "100")] {
        cp.cli(&[
            "team", "create", "--alias", team, "--models", "*", "--rpm", rpm,
        ])
        .ok();
    }
    cp.cli(&["user", "create", "ana@corp"]).ok();
    let clean = created(
        &cp,
        &[
            "--team",
            "tidy",
            "--user",
            "ana@corp",
            "--expires",
            "30d",
            "--metadata",
            r#"{"env":"prod"}"#,
        ],
    );
    let ownerless = created(&cp, &["--team", "eng"]);
    let ghost = created(
        &cp,
        &["--team", "eng", "--user", "ghost@corp", "--expires", "30d"],
    );
    let greedy = created(
        &cp,
        &[
            "--team",
            "eng",
            "--metadata",
            r#"{"owner":"bo"}"#,
            "--expires",
            "30d",
            "--max-budget",
            "5",
        ],
    );
    let revoked = created(&cp, &["--team", "eng"]);
    cp.cli(&["key", "revoke", &revoked]).ok();

    let out = cp.cli(&["review", "--format", "json"]);
    assert_eq!(out.code, Some(1), "flagged keys exit 1: {out:?}");
    assert!(out.stderr.contains("2 of 4 keys flagged"), "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report.as_array().unwrap().len(),
        4,
        "revoked keys are not reviewed: {report}"
    );
    assert!(flags_of(&report, &clean).is_empty());
    assert_eq!(
        flags_of(&report, &ownerless),
        ["never_expires", "missing_owner"]
    );
    assert_eq!(flags_of(&report, &ghost), ["owner_not_a_user"]);
    // The team sets no budget, so a key's own one is not "above" it; the owner tag counts.
    assert!(flags_of(&report, &greedy).is_empty(), "{report}");
    let clean_entry = report
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["public_id"] == clean.as_str())
        .unwrap();
    assert_eq!(clean_entry["team"], "tidy");
    assert_eq!(clean_entry["owner"], "ana@corp");
    assert_eq!(clean_entry["tags"], serde_json::json!(["env=prod"]));
    assert_eq!(clean_entry["spend"], 0.0);
    assert!(clean_entry["created_at"].is_string() && clean_entry["last_used_at"].is_null());

    // A team above which a key claims more: flagged once the team's cap is lowered.
    cp.cli(&["team", "update", "eng", "--max-budget", "1"]).ok();
    let report: Value =
        serde_json::from_str(&cp.cli(&["review", "--format", "json"]).stdout).unwrap();
    assert_eq!(flags_of(&report, &greedy), ["limits_above_team"]);

    // One team with nothing to act on: exit 0, in every format.
    let table = cp.cli(&["review", "--team", "tidy"]);
    assert!(table.ok().starts_with("PUBLIC_ID"), "{table:?}");
    assert!(table.stdout.contains(&clean) && !table.stdout.contains(&ghost));
    let csv = cp.cli(&["review", "--team", "tidy", "--format", "csv"]);
    let mut lines = csv.ok().lines();
    assert_eq!(
        lines.next().unwrap(),
        r#""public_id","team","owner","tags","created","expires","last_used","status","spend","flags""#
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!(r#""{clean}","tidy","ana@corp","env=prod","#)),
        "{row}"
    );
    assert!(row.ends_with(r#","active","0.0000","""#), "{row}");
    assert_eq!(lines.next(), None);

    // Bad input is clap's (exit 2); an unknown team is one clear line.
    assert_eq!(cp.cli(&["review", "--unused-days", "0"]).code, Some(2));
    assert_eq!(cp.cli(&["review", "--format", "xml"]).code, Some(2));
    let unknown = cp.cli(&["review", "--team", "nope"]).fails().to_owned();
    assert!(unknown.contains("nope"), "{unknown}");
}

#[test]
fn auditors_may_review_and_team_admins_may_not() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    cp.cli(&["team", "create", "--alias", "eng", "--models", "*"])
        .ok();
    let admin_key = |user: &str, role: &str, team: Option<&str>| {
        let mut args = vec!["admin-key", "create", "--user", user, "--role", role];
        args.extend(team.map(|t| ["--team", t]).into_iter().flatten());
        args.push("--json");
        cp.cli(&args).json()["key"].as_str().unwrap().to_owned()
    };
    let auditor = admin_key("audrey@corp", "auditor", None);
    let lead = admin_key("tara@corp", "team_admin", Some("eng"));
    let out = cp.cli(&["--admin-key", &auditor, "review"]);
    assert_eq!(out.code, Some(0), "nothing to flag: {out:?}");
    let denied = cp.cli(&["--admin-key", &lead, "review"]).fails().to_owned();
    assert!(denied.contains("role team_admin may not"), "{denied}");
}
