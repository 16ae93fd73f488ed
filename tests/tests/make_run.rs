//! `make run` on a fresh clone: it installs and builds what it needs, starts the control plane
//! and Envoy, prints commands that work as printed (team, key, curl), and Ctrl-C stops it all.
//!
//! The clone is of the committed HEAD, so uncommitted changes are not part of this test.
//! Builds are shared through the Makefile's CARGO_TARGET_DIR; the clone gets its own `.venv`.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use modelgate_e2e::artifacts;
use modelgate_e2e::poll::eventually;
use modelgate_e2e::process::{free_port, new_log, run_to_success, Process};
use modelgate_e2e::upstream::REPLY;
use modelgate_e2e::Upstream;

/// Installing the venv and building the release artifacts of a new checkout.
const SETUP_TIMEOUT: Duration = Duration::from_secs(25 * 60);

#[tokio::test]
async fn make_run_on_a_fresh_clone_serves_a_request_and_stops_on_ctrl_c() {
    let upstream = Upstream::start();
    let dir = tempfile::Builder::new()
        .prefix("modelgate-make-run-")
        .tempdir()
        .expect("temp dir");
    let clone = dir.path().join("modelgate");
    run_to_success(
        Command::new("git")
            .args(["clone", "--quiet"])
            .arg(artifacts::repo_root())
            .arg(&clone),
    );

    // Free ports rather than the documented defaults, so a `make run` of the developer's own
    // does not collide with the test.
    let ports = [
        ("LISTEN_PORT", free_port().port()),
        ("ADMIN_PORT", free_port().port()),
        ("GRPC_PORT", free_port().port()),
        ("HTTP_PORT", free_port().port()),
    ];
    let port = |name: &str| ports.iter().find(|(n, _)| *n == name).expect("port").1;
    let mut make = Command::new("make");
    make.arg("run")
        .current_dir(&clone)
        .env("UPSTREAM_URL", upstream.url());
    for (name, value) in ports {
        make.env(name, value.to_string());
    }
    fresh_shell_env(&mut make);
    let log = new_log(dir.path(), "make-run.log");
    let mut make = Process::spawn_group("make run", make, &log);

    let mut printed = Vec::new();
    make.wait_for_line(SETUP_TIMEOUT, |line| {
        printed.push(line.to_string());
        line.contains("Ctrl-C stops both").then_some(())
    });
    let printed = printed.join("\n");
    println!("make run printed:\n{printed}");
    assert!(printed.contains(&format!("http://127.0.0.1:{}/v1", port("LISTEN_PORT"))));

    // The commands it printed, run as printed.
    let commands: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with(".run/bin/modelgate "))
        .collect();
    assert_eq!(
        commands.len(),
        2,
        "team create and key create lines:\n{printed}"
    );
    run_shell(&clone, commands[0]);
    let key_output = run_shell(&clone, commands[1]);
    let key = key_output
        .split_whitespace()
        .find(|word| word.starts_with("sk-mg-"))
        .unwrap_or_else(|| panic!("no key in: {key_output}"))
        .to_string();

    let curl = curl_command(&printed).replace("sk-mg-...", &key);
    let answer = eventually(
        "the printed curl gets the upstream's answer",
        Duration::from_secs(10),
        || {
            let output = shell(&clone, &curl);
            async move {
                let body: serde_json::Value =
                    serde_json::from_str(&output).map_err(|e| format!("{e}: {output}"))?;
                if body["choices"][0]["message"]["content"] == REPLY {
                    Ok(())
                } else {
                    Err(output)
                }
            }
        },
    )
    .await;
    println!("the printed curl got the upstream's answer {answer:?} after the key was made");
    // The LiteLLM admin API through Envoy, as the printed banner says: the team just made.
    let teams = shell(
        &clone,
        &format!(
            "curl -s http://127.0.0.1:{}/litellm/team/list -H \"Authorization: Bearer $(cat .run/data/master.key)\"",
            port("LISTEN_PORT")
        ),
    );
    assert!(
        printed.contains(&format!(
            "http://127.0.0.1:{}/litellm/",
            port("LISTEN_PORT")
        )),
        "{printed}"
    );
    let teams: serde_json::Value =
        serde_json::from_str(&teams).unwrap_or_else(|e| panic!("{e}: {teams}"));
    assert!(
        teams
            .as_array()
            .is_some_and(|list| list.iter().any(|t| t["team_alias"] == "demo")),
        "{teams}"
    );
    let seen = upstream.requests();
    let last = seen.last().expect("the upstream saw the request");
    assert!(
        last.header("authorization").is_none(),
        "client key forwarded upstream"
    );

    make.interrupt();
    make.wait_exit(Duration::from_secs(30));
    eventually(
        "Ctrl-C stopped Envoy and the control plane",
        Duration::from_secs(10),
        || {
            let alive = make.group_alive();
            let listening = ports
                .iter()
                .filter(|(_, p)| TcpStream::connect(("127.0.0.1", *p)).is_ok())
                .map(|(name, _)| *name)
                .collect::<Vec<_>>();
            async move {
                if alive || !listening.is_empty() {
                    Err(format!(
                        "processes alive: {alive}, still listening: {listening:?}"
                    ))
                } else {
                    Ok(())
                }
            }
        },
    )
    .await;
}

/// The multi-line curl command of the printed instructions, as one shell command.
fn curl_command(printed: &str) -> String {
    let lines: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .skip_while(|line| !line.starts_with("curl "))
        .collect();
    let end = lines
        .iter()
        .position(|line| !line.ends_with('\\'))
        .expect("curl command ends");
    lines[..=end].join("\n")
}

/// What a new terminal has: no artifact locations or Modelgate settings from the outer
/// `make test` or the developer's shell.
fn fresh_shell_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("MODELGATE_") || name == "ENVOY_BIN" {
            cmd.env_remove(name.as_ref());
        }
    }
}

fn bash(dir: &Path, script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).current_dir(dir);
    fresh_shell_env(&mut cmd);
    cmd
}

fn run_shell(dir: &Path, script: &str) -> String {
    run_to_success(&mut bash(dir, script))
}

/// Runs `script` and returns its stdout whatever the outcome (for polling).
fn shell(dir: &Path, script: &str) -> String {
    bash(dir, script)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}
