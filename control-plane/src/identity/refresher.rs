//! The task that keeps every fetched issuer's keys fresh: on schedule (see [`super::refresh`]),
//! at once after an admin adds or changes an issuer, and when filters report a token whose
//! `kid` the snapshot lacks. A failed fetch keeps the last good keys and records the error.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use modelgate_proto::v1 as pb;
use tokio::sync::{watch, Mutex};

use super::fetch::{FetchError, JwksFetcher};
use super::refresh::{self, UnknownKidLimiter};
use super::{IdentityProvider, JwksFetchOutcome};
use crate::clock::Timestamp;
use crate::store::{IdentityStore, StoreResult};

/// The loop looks at the store at least this often, so issuers another replica added or
/// changed are fetched without waiting for their schedule.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Issuers looked at per poll: a filter reports the few it saw, never thousands.
const MAX_REPORTED_ISSUERS: usize = 8;

pub struct JwksRefresher<S> {
    store: S,
    fetcher: JwksFetcher,
    unknown_kids: Mutex<UnknownKidLimiter>,
}

impl<S: IdentityStore + Clone + 'static> JwksRefresher<S> {
    pub fn new(store: S) -> Result<Self, FetchError> {
        Ok(Self {
            store,
            fetcher: JwksFetcher::new()?,
            unknown_kids: Mutex::new(UnknownKidLimiter::default()),
        })
    }

    /// Fetches the issuer's keys now and records the outcome; returns the issuer as stored
    /// afterwards (`None` when it was removed meanwhile, or its keys are uploaded).
    pub async fn refresh(
        &self,
        provider: &IdentityProvider,
    ) -> StoreResult<Option<IdentityProvider>> {
        if !provider.source.is_fetched() {
            return Ok(None);
        }
        let now = Timestamp::now();
        let outcome = match self.fetcher.fetch(&provider.issuer, &provider.source).await {
            Ok(fetched) => {
                let interval = refresh::refresh_interval(fetched.cache_control.as_deref());
                if fetched.jwks.json.as_str()
                    != provider.keys.jwks_json.as_deref().unwrap_or_default()
                {
                    tracing::info!(issuer = %provider.issuer, kids = ?fetched.jwks.kids, "new JWKS");
                }
                JwksFetchOutcome::Fetched {
                    jwks_json: fetched.jwks.json,
                    url: fetched.url,
                    at: now,
                    next_refresh_at: refresh::next_refresh(now, interval),
                }
            }
            Err(e) => {
                tracing::warn!(issuer = %provider.issuer, error = %e, "cannot fetch JWKS; keeping the last good keys");
                JwksFetchOutcome::Failed {
                    error: e.to_string(),
                    at: now,
                    next_refresh_at: refresh::next_refresh(now, refresh::RETRY_AFTER_FAILURE),
                }
            }
        };
        self.store
            .record_jwks_fetch(&provider.issuer, &outcome)
            .await
    }

    /// Filters report `kid`s their snapshot lacks: refetch those issuers (configured ones
    /// only, each at most once per [`refresh::UNKNOWN_KID_INTERVAL`]) without holding up
    /// the poll.
    pub fn report_unknown_kids(self: &Arc<Self>, reported: &[pb::UnknownSigningKey]) {
        let issuers: BTreeSet<&str> = reported
            .iter()
            .map(|k| k.issuer.as_str())
            .take(MAX_REPORTED_ISSUERS)
            .collect();
        for issuer in issuers {
            let this = Arc::clone(self);
            let issuer = issuer.to_owned();
            tokio::spawn(async move {
                if let Err(e) = this.refetch_for_unknown_kid(&issuer).await {
                    tracing::warn!(error = %e, "cannot refetch a JWKS for an unknown kid");
                }
            });
        }
    }

    async fn refetch_for_unknown_kid(&self, issuer: &str) -> StoreResult<()> {
        let Some(provider) = self.store.find_identity_provider(issuer).await? else {
            return Ok(());
        };
        if !provider.source.is_fetched()
            || !self
                .unknown_kids
                .lock()
                .await
                .admit(issuer, Timestamp::now())
        {
            return Ok(());
        }
        tracing::info!(%issuer, "token with an unknown kid reported; refetching the JWKS");
        self.refresh(&provider).await.map(|_| ())
    }

    /// Refreshes due issuers until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let sleep = match self.refresh_due().await {
                Ok(sleep) => sleep,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read identity providers; retrying");
                    MAX_SLEEP
                }
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Fetches every due issuer; returns how long until the next one is due.
    async fn refresh_due(&self) -> StoreResult<Duration> {
        let providers = self.store.list_identity_providers().await?;
        self.unknown_kids
            .lock()
            .await
            .retain(|issuer| providers.iter().any(|p| p.issuer == issuer));
        let mut next_due: Option<Timestamp> = None;
        for provider in providers.iter().filter(|p| p.source.is_fetched()) {
            let due = provider.keys.next_refresh_at.unwrap_or(provider.created_at);
            let due = if due <= Timestamp::now() {
                self.refresh(provider)
                    .await?
                    .and_then(|p| p.keys.next_refresh_at)
            } else {
                Some(due)
            };
            next_due = match (next_due, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let now = Timestamp::now().as_millis();
        Ok(next_due.map_or(MAX_SLEEP, |due| {
            let ms = u64::try_from(due.as_millis().saturating_sub(now)).unwrap_or(0);
            Duration::from_millis(ms).min(MAX_SLEEP)
        }))
    }
}
