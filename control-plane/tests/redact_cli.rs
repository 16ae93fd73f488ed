//! The real `modelgate redact` binary: offline (no control plane, no master key), plain text
//! and JSON Lines, team policies, and one-line errors with exit code 1.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

/// Runs `modelgate redact ARGS` with `stdin`, in an environment where every admin command
/// would fail: no master key anywhere, an empty data dir, nothing listening at the address.
fn redact(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .arg("redact")
        .args(args)
        .current_dir(dir)
        .env_remove("MODELGATE_MASTER_KEY")
        .env_remove("RUST_LOG")
        .env("MODELGATE_DATA_DIR", dir.join("no-such-data-dir"))
        .env("MODELGATE_ADDR", "http://127.0.0.1:1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // A separate writer: a large input must not wait on output nobody reads yet.
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let out = child.wait_with_output().unwrap();
    // Commands that fail before reading stdin (a bad policy) close it early.
    match writer.join().unwrap() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("stdin: {e}"),
        _ => {}
    }
    out
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// Exit code 1 and exactly one `error: …` line on stderr, returned without its prefix.
fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.ends_with('\n') && stderr.lines().count() == 1,
        "{stderr:?}"
    );
    stderr
        .trim_end()
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("{stderr:?}"))
        .to_owned()
}

fn rows(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn char_slice(s: &str, e: &Value) -> String {
    let start = e["start"].as_u64().unwrap() as usize;
    let end = e["end"].as_u64().unwrap() as usize;
    s.chars().skip(start).take(end - start).collect()
}

#[test]
fn plain_text_is_redacted_offline_without_a_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let input = "Dear Priya Raman,\nmy SSN is 123-45-6789, mail priya@example.com from 10.0.0.1.\n";
    let out = redact(dir.path(), &[], input.as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "Dear <PERSON>,\nmy SSN is <US_SSN>, mail <EMAIL_ADDRESS> from <IP_ADDRESS>.\n"
    );
    assert_eq!(text(&out.stderr), "");
    assert!(!dir.path().join("no-such-data-dir").exists());

    // The summary lists types and character offsets on stderr, never the values.
    let out = redact(dir.path(), &["--show-entities"], input.as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stderr),
        "PERSON 5..16\nUS_SSN 28..39\nEMAIL_ADDRESS 46..63\nIP_ADDRESS 69..77\n"
    );

    // No trailing newline is added or lost.
    let out = redact(dir.path(), &[], b"call +1 (415) 555-0132");
    assert_eq!(text(&out.stdout), "call <PHONE_NUMBER>");
}

#[test]
fn jsonl_offsets_are_characters_into_unicode_text() {
    let dir = tempfile::tempdir().unwrap();
    let texts = [
        "東京のオフィス: 連絡先 tanaka@example.jp、電話 +81 3 1234 5678",
        "🙂🙂 Dr. Priya Raman — IBAN DE89 3704 0044 0532 0130 00 ✓",
        "Ünïcödé only, nothing to find",
    ];
    let mut input = String::new();
    for (i, t) in texts.iter().enumerate() {
        input.push_str(&json!({"id": format!("doc-{i}"), "text": t, "extra": [1]}).to_string());
        input.push('\n');
    }
    let out = redact(dir.path(), &["--jsonl"], input.as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stderr), "");
    let rows = rows(&out);
    assert_eq!(rows.len(), texts.len());
    let found = |i: usize| -> Vec<(String, String)> {
        rows[i]["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    char_slice(texts[i], e),
                )
            })
            .collect()
    };
    assert_eq!(rows[0]["id"], "doc-0");
    assert_eq!(
        found(0),
        vec![
            ("EMAIL_ADDRESS".into(), "tanaka@example.jp".into()),
            ("PHONE_NUMBER".into(), "+81 3 1234 5678".into())
        ]
    );
    assert_eq!(
        rows[0]["redacted"],
        "東京のオフィス: 連絡先 <EMAIL_ADDRESS>、電話 <PHONE_NUMBER>"
    );
    assert_eq!(
        found(1),
        vec![
            ("PERSON".into(), "Priya Raman".into()),
            ("IBAN_CODE".into(), "DE89 3704 0044 0532 0130 00".into())
        ]
    );
    assert_eq!(
        rows[2],
        json!({"id": "doc-2", "redacted": texts[2], "entities": []})
    );
}

#[test]
fn a_policy_file_chooses_actions_directions_and_custom_detectors() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("team-policy.json");
    std::fs::write(
        &policy,
        r#"{"entities": {"PERSON": "reversible", "CREDIT_CARD": "block", "IP_ADDRESS": "off",
            "EMAIL_ADDRESS": {"action": "mask", "direction": "both"}},
            "custom_patterns": [{"name": "EMPLOYEE_ID", "pattern": "\\bEMP-[0-9]{6}\\b"}],
            "deny_terms": [{"name": "CODENAME", "terms": ["Project Nightjar"]}]}"#,
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    let input = "Dear Priya Raman, EMP-123456 on project nightjar paid with 4111 1111 1111 1111 \
                 from 10.0.0.1; Priya Raman cc a@example.com";
    let out = redact(dir.path(), &["--policy", policy], input.as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "Dear <PERSON_1>, <EMPLOYEE_ID> on <CODENAME> paid with <CREDIT_CARD> from 10.0.0.1; \
         <PERSON_1> cc <EMAIL_ADDRESS>"
    );
    assert_eq!(
        text(&out.stderr),
        "note: the gateway would refuse this request (400 pii_blocked): CREDIT_CARD\n"
    );

    let line = format!("{}\n", json!({"id": 1, "text": input}));
    let out = redact(
        dir.path(),
        &["--jsonl", "--policy", policy],
        line.as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    let rows = rows(&out);
    assert_eq!(rows[0]["blocked"], json!(["CREDIT_CARD"]));
    let types: Vec<&str> = rows[0]["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "PERSON",
            "EMPLOYEE_ID",
            "CODENAME",
            "CREDIT_CARD",
            "PERSON",
            "EMAIL_ADDRESS"
        ]
    );

    // A model's answer: only the rule covering responses applies.
    let out = redact(
        dir.path(),
        &["--policy", policy, "--direction", "response"],
        input.as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        input.replace("a@example.com", "<EMAIL_ADDRESS>")
    );
    assert_eq!(text(&out.stderr), "");

    let trusted = dir.path().join("trusted.json");
    std::fs::write(&trusted, r#"{"high_trust": true}"#).unwrap();
    let out = redact(
        dir.path(),
        &["--policy", trusted.to_str().unwrap()],
        input.as_bytes(),
    );
    assert_eq!(text(&out.stdout), input);
    assert_eq!(
        text(&out.stderr),
        "note: high-trust policy: redaction is bypassed\n"
    );
}

#[test]
fn an_invalid_policy_is_one_error_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{\"entities\": ", "not valid JSON"),
        (
            r#"{"entities": {"PASSPORT": "mask"}}"#,
            "unknown entity type \"PASSPORT\"",
        ),
        (r#"{"default_action": "hide"}"#, "unknown variant `hide`"),
        // The regex crate's own message spans several lines.
        (
            r#"{"custom_patterns": [{"name": "TICKET", "pattern": "(TK-[0-9]+"}]}"#,
            "custom pattern \"TICKET\" does not compile: regex parse error:",
        ),
    ];
    for (i, (policy, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("policy-{i}.json"));
        std::fs::write(&path, policy).unwrap();
        let path = path.to_str().unwrap();
        for mode in [&[][..], &["--jsonl"][..]] {
            let args: Vec<&str> = ["--policy", path].iter().chain(mode).copied().collect();
            let out = redact(
                dir.path(),
                &args,
                b"{\"id\": 1, \"text\": \"a@example.com\"}\n",
            );
            let err = one_line_error(&out);
            assert!(
                err.starts_with(&format!("invalid policy {path}: ")) && err.contains(expected),
                "{err}"
            );
            assert!(out.stdout.is_empty(), "{out:?}");
        }
    }

    let missing = dir.path().join("missing.json");
    let out = redact(dir.path(), &["--policy", missing.to_str().unwrap()], b"x");
    let err = one_line_error(&out);
    assert!(
        err.starts_with(&format!("cannot read policy file {}", missing.display())),
        "{err}"
    );
}

#[test]
fn an_invalid_jsonl_line_stops_with_its_line_number_after_the_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = concat!(
        "{\"id\": 1, \"text\": \"mail a@example.com\"}\n",
        "\n",
        "{\"id\": 2, \"txt\": \"typo in the field name\"}\n",
        "{\"id\": 3, \"text\": \"never processed b@example.com\"}\n",
    );
    let out = redact(dir.path(), &["--jsonl"], input.as_bytes());
    assert_eq!(one_line_error(&out), "line 3: the record has no \"text\"");
    assert_eq!(
        rows(&out),
        vec![json!({"id": 1, "redacted": "mail <EMAIL_ADDRESS>",
                    "entities": [{"type": "EMAIL_ADDRESS", "start": 5, "end": 18}]})]
    );

    let out = redact(dir.path(), &["--jsonl"], b"{\"id\": 1, \"text\": \"x\"\n");
    assert_eq!(
        one_line_error(&out),
        "line 1: not valid JSON: EOF while parsing an object (column 21)"
    );
    assert!(out.stdout.is_empty());

    let out = redact(
        dir.path(),
        &["--jsonl"],
        b"{\"id\": 1, \"text\": \"\xff\"}\n",
    );
    assert_eq!(one_line_error(&out), "line 1: not valid UTF-8");

    let out = redact(dir.path(), &[], b"plain text \xff\xfe");
    assert!(one_line_error(&out).starts_with("cannot read stdin: "));
    assert!(out.stdout.is_empty());
}

/// The JSON examples of the README's "Redaction policy" section, in order.
fn readme_policies() -> Vec<Value> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("\n## Redaction policy\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Redaction policy section");
    section
        .split("```json\n")
        .skip(1)
        .map(|rest| serde_json::from_str(rest.split("\n```").next().unwrap()).unwrap())
        .collect()
}

#[test]
fn the_documented_policies_work_as_described_and_help_shows_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let policies = readme_policies();
    // What each mode's example does to one text, in README order.
    let sample = "Dear Priya Raman, mail priya@example.com from 10.0.0.1 about EMP-123456.";
    let expected = [
        (
            "Dear <PERSON>, mail <EMAIL_ADDRESS> from 10.0.0.1 about EMP-123456.",
            "",
        ),
        (
            "Dear <PERSON_1>, mail <EMAIL_ADDRESS_1> from <IP_ADDRESS> about EMP-123456.",
            "",
        ),
        (
            "Dear <PERSON>, mail <EMAIL_ADDRESS> from <IP_ADDRESS> about EMP-123456.",
            "",
        ),
        (
            "Dear Priya Raman, mail <EMAIL_ADDRESS> from 10.0.0.1 about <EMPLOYEE_ID>.",
            "",
        ),
        (sample, "note: high-trust policy: redaction is bypassed\n"),
    ];
    assert_eq!(policies.len(), expected.len(), "one example per mode");
    for (i, (policy, (stdout, stderr))) in policies.iter().zip(expected).enumerate() {
        let path = dir.path().join(format!("policy-{i}.json"));
        std::fs::write(&path, policy.to_string()).unwrap();
        let path = path.to_str().unwrap();
        let out = redact(dir.path(), &["--policy", path], sample.as_bytes());
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            (text(&out.stdout), text(&out.stderr)),
            (stdout, stderr),
            "{policy}"
        );
        let out = redact(dir.path(), &["--policy", path, "--explain", "--json"], b"");
        assert!(out.status.success(), "{out:?}");
    }
    let blocked = policies[2].to_string();
    let path = dir.path().join("block.json");
    std::fs::write(&path, blocked).unwrap();
    let out = redact(
        dir.path(),
        &["--policy", path.to_str().unwrap()],
        b"card 4111 1111 1111 1111",
    );
    assert_eq!(
        text(&out.stderr),
        "note: the gateway would refuse this request (400 pii_blocked): CREDIT_CARD\n"
    );

    // `--help` of --policy prints the same policies, one per line.
    let out = redact(dir.path(), &["--help"], b"");
    assert!(out.status.success(), "{out:?}");
    let in_help: Vec<Value> = text(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(in_help, policies);
}

#[test]
fn explain_prints_the_effective_policy_with_defaults_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.json");
    std::fs::write(
        &path,
        r#"{"entities": {"US_SSN": "block", "PERSON": {"action": "reversible", "direction": "both"}},
            "deny_terms": [{"terms": ["Bluebird"]}], "scope": ["messages", "tool_calls"]}"#,
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let out = redact(dir.path(), &["--policy", path, "--explain", "--json"], b"");
    assert!(out.status.success(), "{out:?}");
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            &e["default_action"],
            &e["direction"],
            &e["high_trust"],
            &e["scope"]
        ),
        (
            &json!("mask"),
            &json!("request"),
            &json!(false),
            &json!(["messages", "tool_calls"])
        )
    );
    let rules = e["rules"].as_array().unwrap();
    let rule = |name: &str| rules.iter().find(|r| r["entity"] == name).unwrap().clone();
    assert_eq!(rules.len(), 11, "10 built-in types and the deny-list");
    let itin = rule("US_ITIN");
    assert_eq!(
        (&itin["from"], &itin["action"], &itin["request"]),
        (&json!("entities.US_SSN"), &json!("block"), &json!("block"))
    );
    assert!(itin["cues"].as_array().unwrap().contains(&json!("itin")));
    assert!(itin["negative_cues"]
        .as_array()
        .unwrap()
        .contains(&json!("order")));
    let person = rule("PERSON");
    assert_eq!(
        (&person["request"], &person["response"]),
        (&json!("reversible"), &json!("restore and mask"))
    );
    let card = rule("CREDIT_CARD");
    assert_eq!(
        (&card["from"], &card["request"], &card["response"]),
        (&json!("default_action"), &json!("mask"), &json!("off"))
    );
    assert!(card["checks"].as_str().unwrap().contains("Luhn"));
    let deny = rule("DENY_LIST");
    assert_eq!(
        (
            &deny["detector"],
            &deny["terms"],
            &deny["case_sensitive"],
            &deny["action"]
        ),
        (
            &json!("deny_terms"),
            &json!(1),
            &json!(false),
            &json!("mask")
        )
    );

    let out = redact(dir.path(), &["--policy", path, "--explain"], b"");
    assert!(out.status.success(), "{out:?}");
    let shown = text(&out.stdout);
    for line in [
        "default_action: mask",
        "scope:          messages,tool_calls (messages, tool_calls)",
        "US_ITIN (built-in, from entities.US_SSN)",
        "  action block, direction request: prompts block, answers off",
        "PERSON (built-in, from entities)",
        "  action reversible, direction both: prompts reversible, answers restore and mask",
        "DENY_LIST (deny_terms, from deny_terms[0])",
        "  terms: 1, whole words, case-insensitive",
    ] {
        assert!(shown.lines().any(|l| l == line), "{line:?} in\n{shown}");
    }
    // Without a file: the default policy.
    let out = redact(dir.path(), &["--explain"], b"");
    assert!(
        text(&out.stdout).starts_with("policy:         (default)\n"),
        "{out:?}"
    );
}

#[test]
fn explain_refuses_an_invalid_policy_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"{"default_action": "hide"}"#,
            "field `default_action` is invalid: unknown variant `hide`",
        ),
        (
            r#"{"entities": {"PERSON": {"action": "maybe"}}}"#,
            "field `entities.PERSON`",
        ),
        (
            r#"{"custom_patterns": [{"name": "T", "pattern": "x", "action": "nope"}]}"#,
            "field `custom_patterns[0].action`",
        ),
        (r#"{"scopes": "full"}"#, "unknown field `scopes`"),
        (
            r#"{"scope": "everything"}"#,
            "unknown redaction scope \"everything\"",
        ),
    ];
    for (i, (policy, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.json"));
        std::fs::write(&path, policy).unwrap();
        let out = redact(
            dir.path(),
            &["--policy", path.to_str().unwrap(), "--explain"],
            b"",
        );
        let err = one_line_error(&out);
        assert!(err.contains(expected), "{policy}: {err}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
}
