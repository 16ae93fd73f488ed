//! Whole requests through the filter logic in a loop, for instruction counts per request:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*run_requests*' \
//!   target/release/examples/profile_requests <plain|redaction> <requests>
//! ```
//!
//! Only `run_requests` is counted (one warm-up request before it builds the snapshot cache
//! and compiles the redactor, as a worker's first request does), so Ir / requests is the
//! steady-state cost of one request. Same fixtures as `benches/filter.rs`.

#[path = "../benches/support/mod.rs"]
#[allow(dead_code)] // What only the benches use.
mod support;

use std::process::ExitCode;

use support::Worker;

#[inline(never)]
fn run_requests(worker: &mut Worker, key: &str, body: &[u8], requests: u32) -> Result<(), String> {
    for _ in 0..requests {
        worker.request(key, body, support::ANSWER)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (policy, body) = match args.next().as_deref() {
        Some("plain") => ("", support::chat_body()),
        Some("redaction") => (
            support::MASK_POLICY,
            support::chat_with_prompt(&support::pii_prompt()),
        ),
        _ => {
            eprintln!("usage: profile_requests <plain|redaction> <requests>");
            return ExitCode::FAILURE;
        }
    };
    let Some(requests) = args.next().and_then(|n| n.parse::<u32>().ok()) else {
        eprintln!("usage: profile_requests <plain|redaction> <requests>");
        return ExitCode::FAILURE;
    };
    let key = support::secret(0);
    let result = Worker::new(&support::snapshot(10_000, policy)).and_then(|mut worker| {
        worker.request(&key, &body, support::ANSWER)?;
        run_requests(&mut worker, &key, &body, requests)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("request did not go through: {why}");
            ExitCode::FAILURE
        }
    }
}
