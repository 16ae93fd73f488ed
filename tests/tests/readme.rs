//! The README's first requests work as written: its curl command and its OpenAI Python SDK
//! snippet, pointed at a test stack and given a key made with the CLI, get the upstream's
//! answer through Envoy.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use modelgate_e2e::artifacts;
use modelgate_e2e::process::run_to_success;
use modelgate_e2e::upstream::REPLY;
use modelgate_e2e::{EnvoyConfig, Stack};

/// The README's examples use the `make run` listener and a placeholder key.
const README_BASE_URL: &str = "http://127.0.0.1:8080";
const README_KEY: &str = "sk-mg-...";

#[tokio::test]
async fn readme_curl_and_openai_sdk_examples_work() {
    let readme =
        std::fs::read_to_string(artifacts::repo_root().join("README.md")).expect("README.md");
    let stack = Stack::start(EnvoyConfig::default()).await;
    // The examples ask for the model `make run` serves; route it to the stand-in too.
    let python_model = code_block(&readme, "python", "OpenAI(")
        .split("model=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("model=\"...\" in the Python example")
        .to_string();
    stack.control_plane.create_model(&python_model).await;
    let key = stack.control_plane.team_with_key("demo");
    stack.gateway().wait_for_status(&key.key, 200).await;
    let adapt = |snippet: &str| {
        assert!(
            snippet.contains(README_BASE_URL) && snippet.contains(README_KEY),
            "{snippet}"
        );
        snippet
            .replace(README_BASE_URL, &stack.gateway().url(""))
            .replace(README_KEY, &key.key)
    };

    let curl = adapt(&code_block(&readme, "sh", "curl "));
    let output = run_to_success(Command::new("bash").arg("-c").arg(&curl));
    let answer: serde_json::Value = serde_json::from_str(&output).expect("curl printed JSON");
    assert_eq!(
        answer["choices"][0]["message"]["content"], REPLY,
        "{output}"
    );

    let python = adapt(&code_block(&readme, "python", "OpenAI("));
    let output = run_to_success(
        Command::new(artifacts::python())
            .arg("-c")
            .arg(&python)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL"),
    );
    assert_eq!(output.trim(), REPLY);

    let requests = stack.upstream.requests();
    let from_sdk = requests.last().expect("the SDK's request");
    assert_eq!(from_sdk.path, "/v1/chat/completions");
    assert!(
        from_sdk
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("OpenAI/Python")),
        "user-agent {:?}",
        from_sdk.header("user-agent")
    );
}

/// The first fenced block of `language` that contains `needle`.
fn code_block(markdown: &str, language: &str, needle: &str) -> String {
    let fence = format!("```{language}\n");
    markdown
        .split(&fence)
        .skip(1)
        .filter_map(|rest| rest.split_once("\n```").map(|(block, _)| block))
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("no ```{language} block with {needle:?} in README.md"))
        .to_string()
}
