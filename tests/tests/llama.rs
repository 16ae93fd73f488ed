//! A real inference server behind the gateway: llama.cpp's `llama-server` with SmolLM2-135M,
//! the real Envoy and filter, the real control plane, and the official OpenAI Python SDK as the
//! client (`tests/clients/llama_sdk.py`; only `base_url` and `api_key` are ours).
//!
//! The audit records must carry exactly the token counts llama-server itself reports. The
//! server's own numbers come from the same requests sent directly to it (greedy decoding with a
//! fixed seed gives the same tokens both ways, which the tests check through the texts).
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use modelgate_e2e::api::PROPAGATION_TIMEOUT;
use modelgate_e2e::artifacts;
use modelgate_e2e::llama::{LlamaServer, MODEL};
use modelgate_e2e::poll::eventually;
use modelgate_e2e::process::run_to_success;
use modelgate_e2e::{ControlPlane, CreatedKey, Envoy, EnvoyConfig};
use modelgate_proto::v1::CreateModelRequest;
use serde_json::Value;

/// One llama-server at a time: two on 2 cores would distort the timings and slow both.
static ONE_SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Records reach the control plane in the filter's next usage batch (1 s tick) plus slack.
const RECORD_TIMEOUT: Duration = Duration::from_secs(15);

/// Streamed requests per path in the timing comparison; the first of each is a warm-up.
const BENCH_RUNS: usize = 6;

struct Gatewayed {
    llama: LlamaServer,
    control_plane: ControlPlane,
    envoy: Envoy,
    key: CreatedKey,
}

impl Gatewayed {
    async fn start() -> Gatewayed {
        let llama = LlamaServer::start().await;
        let control_plane = ControlPlane::start().await;
        let envoy = Envoy::start(
            llama.addr(),
            &control_plane.data_plane_access("llama"),
            EnvoyConfig::default(),
        )
        .await;
        // A team's empty model list allows nothing.
        let team =
            control_plane.cli_json(&["team", "create", "--alias", "llama", "--models", MODEL]);
        let key = control_plane.create_key(team["team_id"].as_str().expect("team_id"));
        // The filter serves only models the snapshot routes; an empty cluster is its default
        // cluster, here the llama-server.
        control_plane
            .admin()
            .await
            .create_model(CreateModelRequest {
                name: MODEL.to_string(),
                ..CreateModelRequest::default()
            })
            .await
            .expect("CreateModel");
        // A cheap request (no generation) tells when the key and the route have reached Envoy.
        let gateway = envoy.gateway().clone();
        eventually("the key sees the model", PROPAGATION_TIMEOUT, || {
            let request = gateway
                .request(http::Method::GET, "/v1/models")
                .bearer_auth(&key.key);
            async move {
                let response = request.send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let body = response.text().await.map_err(|e| e.to_string())?;
                if status == 200 && body.contains(MODEL) {
                    Ok(())
                } else {
                    Err(format!("status {status}: {body}"))
                }
            }
        })
        .await;
        Gatewayed {
            llama,
            control_plane,
            envoy,
            key,
        }
    }

    fn gateway_base(&self) -> String {
        self.envoy.gateway().url("/v1")
    }

    fn direct_base(&self) -> String {
        format!("{}/v1", self.llama.url())
    }
}

/// Runs the SDK driver; one JSON object per request, by name.
fn sdk(base_url: &str, api_key: &str, args: &[&str]) -> Vec<Value> {
    let output = run_to_success(
        Command::new(artifacts::python())
            .arg(artifacts::repo_root().join("tests/clients/llama_sdk.py"))
            .args([base_url, api_key, MODEL])
            .args(args)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL"),
    );
    output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn by_name(results: Vec<Value>) -> HashMap<String, Value> {
    results
        .into_iter()
        .map(|r| (r["name"].as_str().expect("name").to_string(), r))
        .collect()
}

/// The audit records of `request_ids`, once all of them are in the log.
async fn records_of(control_plane: &ControlPlane, request_ids: &[String]) -> Vec<Value> {
    let mut found = Vec::new();
    eventually("every request has its audit record", RECORD_TIMEOUT, || {
        let output = control_plane.cli(&["audit", "export"]);
        let result = if output.status.success() {
            let all: Vec<Value> = String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(|line| serde_json::from_str(line).expect("export prints JSON lines"))
                .collect();
            found = all
                .into_iter()
                .filter(|r| request_ids.iter().any(|id| r["request_id"] == **id))
                .collect();
            if found.len() >= request_ids.len() {
                Ok(())
            } else {
                Err(format!("{} of {} records", found.len(), request_ids.len()))
            }
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        };
        async move { result }
    })
    .await;
    found
}

#[tokio::test]
async fn openai_sdk_requests_are_counted_exactly_as_llama_server_reports_them() {
    let _one = ONE_SERVER.lock().await;
    let started = Instant::now();
    let mut stack = Gatewayed::start().await;
    println!("stack with llama-server up in {:?}", started.elapsed());

    let through = by_name(sdk(&stack.gateway_base(), &stack.key.key, &["exact"]));
    let direct = by_name(sdk(&stack.direct_base(), "unused", &["exact"]));
    stack.llama.assert_running();
    assert_eq!(through.len(), 7, "{through:?}");

    let request_ids: Vec<String> = through
        .values()
        .map(|r| {
            r["request_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no x-modelgate-request-id: {r}"))
                .to_string()
        })
        .collect();
    let records = records_of(&stack.control_plane, &request_ids).await;
    assert_eq!(
        records.len(),
        request_ids.len(),
        "one record per request: {records:#?}"
    );

    for (name, seen) in &through {
        let server = &direct[name];
        let record = records
            .iter()
            .find(|r| r["request_id"] == seen["request_id"])
            .expect("record");
        // The server's own count for this request: what it reported when asked directly (for a
        // stream without usage, when asked the same with usage: the same tokens, same text).
        let usage = match name.strip_suffix("_plain") {
            Some(base) => {
                let with_usage = &direct[&format!("{base}_usage")];
                assert_eq!(with_usage["text"], server["text"], "{name}");
                &with_usage["usage"]
            }
            None => &server["usage"],
        };
        assert!(usage.is_object(), "{name}: llama-server reported {server}");
        println!(
            "{name:<24} server usage {usage} | record tokens_in {} tokens_out {} estimated {}",
            record["tokens_in"], record["tokens_out"], record["tokens_estimated"]
        );
        if name == "embeddings" {
            assert_eq!(seen["vectors"], server["vectors"], "{name}");
            assert_eq!(seen["dimensions"], server["dimensions"], "{name}");
        } else {
            assert_eq!(
                seen["text"], server["text"],
                "{name}: same tokens both ways"
            );
        }
        assert_eq!(record["status"], "success", "{name}: {record}");
        assert_eq!(record["key_id"], stack.key.public_id.as_str(), "{name}");
        assert_eq!(record["model"], MODEL, "{name}: {record}");
        assert_eq!(
            record["stream"],
            name.contains("stream"),
            "{name}: {record}"
        );
        assert_eq!(record["tokens_estimated"], false, "{name}: {record}");
        assert_eq!(
            record["tokens_in"], usage["prompt_tokens"],
            "{name}: {record}"
        );
        let completion = usage["completion_tokens"].as_u64().unwrap_or(0);
        assert_eq!(record["tokens_out"], completion, "{name}: {record}");
        assert!(record["tokens_in"].as_u64() > Some(0), "{name}: {record}");
    }

    // Where the client asked for usage (or the answer carries it anyway), it gets the server's.
    for name in [
        "chat",
        "chat_stream_usage",
        "completion",
        "completion_stream_usage",
    ] {
        assert_eq!(through[name]["usage"], direct[name]["usage"], "{name}");
        assert_eq!(through[name]["usage_chunks"], direct[name]["usage_chunks"]);
    }
    assert_eq!(
        through["embeddings"]["usage"],
        direct["embeddings"]["usage"]
    );

    // A stream the client did not ask usage for: the filter asked llama-server for it (the
    // record is exact, above) and took that chunk out again, so the client sees what it would
    // have seen directly.
    let plain = &through["chat_stream_plain"];
    assert_eq!(plain["usage_chunks"], 0, "{plain}");
    assert_eq!(
        plain["chunks"], direct["chat_stream_plain"]["chunks"],
        "{plain}"
    );
    println!(
        "completion_stream_plain: usage chunks to the client {} through the gateway, {} direct",
        through["completion_stream_plain"]["usage_chunks"],
        direct["completion_stream_plain"]["usage_chunks"]
    );
    println!("whole scenario {:?}", started.elapsed());
}

#[derive(Debug)]
struct Timing {
    ttft_ms: f64,
    /// Decode speed: tokens after the first, over the time after the first.
    tokens_per_s: f64,
}

fn timings(results: &[Value]) -> Vec<Timing> {
    results
        .iter()
        .skip(1) // warm-up: loads the prompt into the slot's cache
        .map(|r| {
            let ttft = r["ttft_s"].as_f64().expect("ttft_s");
            let total = r["total_s"].as_f64().expect("total_s");
            let tokens = r["completion_tokens"].as_f64().expect("completion_tokens");
            Timing {
                ttft_ms: ttft * 1000.0,
                tokens_per_s: (tokens - 1.0) / (total - ttft),
            }
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn summary(path: &str, timings: &[Timing]) -> (f64, f64) {
    let ttft = median(timings.iter().map(|t| t.ttft_ms).collect());
    let rate = median(timings.iter().map(|t| t.tokens_per_s).collect());
    let each: Vec<String> = timings
        .iter()
        .map(|t| format!("{:.0} ms/{:.1} tok/s", t.ttft_ms, t.tokens_per_s))
        .collect();
    println!(
        "{path:<8} median TTFT {ttft:.0} ms, median {rate:.1} tokens/s  [{}]",
        each.join(", ")
    );
    (ttft, rate)
}

#[tokio::test]
async fn streamed_time_to_first_token_and_tokens_per_second_through_envoy_vs_direct() {
    let _one = ONE_SERVER.lock().await;
    let stack = Gatewayed::start().await;
    let started = Instant::now();
    let runs = BENCH_RUNS.to_string();
    let direct = timings(&sdk(&stack.direct_base(), "unused", &["bench", &runs]));
    let through = timings(&sdk(
        &stack.gateway_base(),
        &stack.key.key,
        &["bench", &runs],
    ));
    println!(
        "{} streamed chat requests each (max_tokens 16, greedy), llama-server -t 1 -np 4, \
         first of each discarded:",
        BENCH_RUNS
    );
    let (direct_ttft, direct_rate) = summary("direct", &direct);
    let (envoy_ttft, envoy_rate) = summary("envoy", &through);
    println!(
        "envoy - direct: TTFT {:+.0} ms, tokens/s {:+.1} ({:+.0}%); measured in {:?}",
        envoy_ttft - direct_ttft,
        envoy_rate - direct_rate,
        (envoy_rate / direct_rate - 1.0) * 100.0,
        started.elapsed()
    );
    assert!(direct_rate > 0.0 && envoy_rate > 0.0);
}
