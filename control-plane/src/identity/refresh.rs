//! When an issuer's keys are fetched again, as plain rules: on the response's
//! `Cache-Control: max-age` bounded to [5 min, 24 h], a minute after a failure, and at once
//! when a filter reports a token with an unknown `kid`, at most once per 5 s per issuer so
//! a flood of made-up `kid`s cannot hammer the IdP.

use std::collections::HashMap;
use std::time::Duration;

use crate::clock::Timestamp;

pub const MIN_REFRESH: Duration = Duration::from_secs(5 * 60);
pub const MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);
/// Without a `max-age`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60 * 60);
/// After a failed fetch: soon enough to recover from an IdP blip, rare enough to be harmless.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// Least time between two fetches of one issuer triggered by unknown `kid`s.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(5);

/// `max-age` of a `Cache-Control` value, in seconds; `no-store`/`no-cache` count as 0.
pub fn max_age(cache_control: &str) -> Option<u64> {
    let mut age = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return Some(0),
            "max-age" => age = value.trim().trim_matches('"').parse().ok(),
            _ => {}
        }
    }
    age
}

/// How long fetched keys are used before the next scheduled fetch.
pub fn refresh_interval(cache_control: Option<&str>) -> Duration {
    cache_control
        .and_then(max_age)
        .map_or(DEFAULT_REFRESH, |s| {
            Duration::from_secs(s).clamp(MIN_REFRESH, MAX_REFRESH)
        })
}

pub fn next_refresh(now: Timestamp, interval: Duration) -> Timestamp {
    now.checked_add(interval).unwrap_or(now)
}

/// Per issuer, when the last fetch triggered by an unknown `kid` started. Holds only issuers
/// that are configured (the caller checks before asking), so it stays small.
#[derive(Debug, Default)]
pub struct UnknownKidLimiter {
    last: HashMap<String, Timestamp>,
}

impl UnknownKidLimiter {
    /// Whether an unknown `kid` of `issuer` may trigger a fetch at `now`; if so, counts it.
    pub fn admit(&mut self, issuer: &str, now: Timestamp) -> bool {
        let interval = i64::try_from(UNKNOWN_KID_INTERVAL.as_millis()).unwrap_or(i64::MAX);
        match self.last.get(issuer) {
            Some(last) if now.as_millis().saturating_sub(last.as_millis()) < interval => false,
            _ => {
                self.last.insert(issuer.to_owned(), now);
                true
            }
        }
    }

    /// Forgets issuers no longer configured.
    pub fn retain(&mut self, configured: impl Fn(&str) -> bool) {
        self.last.retain(|issuer, _| configured(issuer));
    }
}
