//! Fetching an issuer's JWKS over HTTP: from its configured URL, or through OIDC discovery
//! (`<issuer>/.well-known/openid-configuration` → `jwks_uri`, whose `issuer` must be the
//! configured one). Responses are capped at 1 MiB and every request has a deadline, so a
//! slow or hostile IdP cannot stall the refresher or fill memory.

use std::time::Duration;

use reqwest::header::CACHE_CONTROL;
use serde::Deserialize;

use super::jwks::{Jwks, JwksError, MAX_JWKS_BYTES};
use super::{is_acceptable_url, JwksSource};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REDIRECTS: usize = 3;
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("GET {url}: {reason}")]
    Request { url: String, reason: String },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: response larger than 1 MiB")]
    TooLarge { url: String },
    #[error("{url} is not an OpenID configuration: {reason}")]
    Discovery { url: String, reason: String },
    #[error("the OpenID configuration names issuer {found:?}, not {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("the OpenID configuration's jwks_uri {0:?} is not an https URL")]
    JwksUri(String),
    #[error("{url} is not a usable JWKS: {source}")]
    Jwks {
        url: String,
        #[source]
        source: JwksError,
    },
    #[error("keys of this issuer are uploaded, not fetched")]
    NotFetched,
}

/// A JWKS as fetched: the keys, where they came from, and the response's `Cache-Control`.
#[derive(Debug, Clone)]
pub struct FetchedJwks {
    pub jwks: Jwks,
    pub url: String,
    pub cache_control: Option<String>,
}

#[derive(Debug, Clone)]
pub struct JwksFetcher {
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct OpenIdConfiguration {
    issuer: String,
    jwks_uri: String,
}

struct Body {
    bytes: Vec<u8>,
    cache_control: Option<String>,
}

impl JwksFetcher {
    pub fn new() -> Result<Self, FetchError> {
        // reqwest is built without a bundled crypto provider.
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .user_agent(concat!("modelgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(FetchError::Client)?;
        Ok(Self { client })
    }

    /// The issuer's current keys.
    pub async fn fetch(
        &self,
        issuer: &str,
        source: &JwksSource,
    ) -> Result<FetchedJwks, FetchError> {
        let url = match source {
            JwksSource::Url(url) => url.clone(),
            JwksSource::Discovery => self.discover(issuer).await?,
            JwksSource::File => return Err(FetchError::NotFetched),
        };
        let body = self.get(&url).await?;
        let text = String::from_utf8_lossy(&body.bytes);
        let jwks = Jwks::parse(&text).map_err(|source| FetchError::Jwks {
            url: url.clone(),
            source,
        })?;
        Ok(FetchedJwks {
            jwks,
            url,
            cache_control: body.cache_control,
        })
    }

    /// The `jwks_uri` of the issuer's OpenID configuration.
    async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        let url = format!("{}{DISCOVERY_PATH}", issuer.trim_end_matches('/'));
        let body = self.get(&url).await?;
        let config: OpenIdConfiguration =
            serde_json::from_slice(&body.bytes).map_err(|e| FetchError::Discovery {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        // OpenID Connect Discovery §4.3: the document must name exactly this issuer, or
        // someone else's keys would verify this issuer's tokens.
        if config.issuer != issuer {
            return Err(FetchError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: config.issuer.chars().take(200).collect(),
            });
        }
        if !is_acceptable_url(&config.jwks_uri) {
            return Err(FetchError::JwksUri(
                config.jwks_uri.chars().take(200).collect(),
            ));
        }
        Ok(config.jwks_uri)
    }

    async fn get(&self, url: &str) -> Result<Body, FetchError> {
        let request_failed = |e: reqwest::Error| FetchError::Request {
            url: url.to_owned(),
            reason: error_chain(&e),
        };
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(request_failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let too_large = || FetchError::TooLarge {
            url: url.to_owned(),
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(too_large());
        }
        let cache_control = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_failed)? {
            if bytes.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Body {
            bytes,
            cache_control,
        })
    }
}

/// reqwest's top-level message ("error sending request") hides the cause an admin needs
/// (connection refused, certificate, timeout).
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
