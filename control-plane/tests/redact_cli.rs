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
