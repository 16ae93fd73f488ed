//! Waiting for something that becomes true asynchronously (a snapshot reaching Envoy, a
//! process becoming ready), with the last reason it was not yet true in the failure message.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions are re-checked: fine enough to measure propagation times in
/// tens of milliseconds.
pub const INTERVAL: Duration = Duration::from_millis(25);

/// Re-runs `check` until it returns `Ok`, and returns how long that took. Fails the test
/// with `what` and the last `Err` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(()) => return start.elapsed(),
            Err(why) => why,
        };
        if start.elapsed() >= timeout {
            panic!("not true after {timeout:?}: {what}\nlast seen: {last}");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
