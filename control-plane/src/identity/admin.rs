//! Admin operations on issuers, shared by gRPC and the CLI (through gRPC): raw input to
//! validated settings, the store, and an immediate fetch of a new or changed issuer's keys so
//! the admin sees at once whether they could be fetched.

use std::sync::Arc;

use super::jwks::Jwks;
use super::refresher::JwksRefresher;
use super::{
    parse_admin_roles, parse_audiences, parse_claim, parse_clock_skew, parse_issuer, parse_names,
    parse_url, IdentityError, IdentityProvider, IdentityProviderPatch, JwksSource, JwksState,
};
use crate::admin::{AdminError, AdminResult};
use crate::clock::Timestamp;
use crate::domain::{self, ValidationError};
use crate::limits::LimitsInput;
use crate::store::{Store, StoreError};

/// Default user limits an update can unset.
pub const CLEARABLE: &str = "rpm_limit, tpm_limit, max_parallel_requests, max_budget, \
                             budget_duration";

/// A new issuer as an admin typed it.
#[derive(Debug, Clone, Default)]
pub struct IdentityProviderInput {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// `None` with no `jwks_json` = OIDC discovery.
    pub jwks_url: Option<String>,
    pub jwks_json: Option<String>,
    pub user_claim: String,
    pub groups_claim: String,
    pub allowed_groups: Vec<String>,
    /// `None` = [`super::DEFAULT_CLOCK_SKEW_S`].
    pub clock_skew_s: Option<u32>,
    pub default_user_limits: LimitsInput,
    /// `(group, role)` pairs: members of the group may administer as the role.
    pub admin_roles: Vec<(String, String)>,
}

/// A change to an issuer: `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct IdentityProviderUpdate {
    pub audiences: Option<Vec<String>>,
    pub jwks_url: Option<String>,
    pub jwks_json: Option<String>,
    pub use_discovery: bool,
    pub user_claim: Option<String>,
    pub groups_claim: Option<String>,
    pub allowed_groups: Option<Vec<String>>,
    pub clock_skew_s: Option<u32>,
    pub default_user_limits: LimitsInput,
    pub clear: Vec<String>,
    /// Replaces the group → role mapping; `Some(vec![])` removes admin access by token.
    pub admin_roles: Option<Vec<(String, String)>>,
}

pub struct IdentityAdmin<S> {
    store: S,
    refresher: Arc<JwksRefresher<S>>,
}

impl From<IdentityError> for AdminError {
    fn from(e: IdentityError) -> Self {
        Self::Invalid(e.into())
    }
}

fn text(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The source an admin picked: at most one of URL, document and discovery.
fn source_of(
    jwks_url: Option<&str>,
    jwks_json: Option<&str>,
) -> Result<(JwksSource, Option<Jwks>), IdentityError> {
    match (text(jwks_url), text(jwks_json)) {
        (Some(_), Some(_)) => Err(IdentityError::TwoJwksSources),
        (Some(url), None) => Ok((JwksSource::Url(parse_url("JWKS", url)?), None)),
        (None, Some(json)) => Ok((JwksSource::File, Some(Jwks::parse(json)?))),
        (None, None) => Ok((JwksSource::Discovery, None)),
    }
}

impl<S: Store> IdentityAdmin<S> {
    pub fn new(store: S, refresher: Arc<JwksRefresher<S>>) -> Self {
        Self { store, refresher }
    }

    pub async fn create(&self, input: IdentityProviderInput) -> AdminResult<IdentityProvider> {
        let now = Timestamp::now();
        let (source, uploaded) = source_of(input.jwks_url.as_deref(), input.jwks_json.as_deref())?;
        let keys = JwksState::for_source(&source, uploaded.as_ref(), &JwksState::default(), now);
        let provider = IdentityProvider {
            issuer: parse_issuer(&input.issuer)?,
            audiences: parse_audiences(&input.audiences)?,
            allowed_groups: parse_names("group", &input.allowed_groups)?,
            source,
            user_claim: parse_claim("user", &input.user_claim)?,
            groups_claim: parse_claim("groups", &input.groups_claim)?,
            clock_skew_s: parse_clock_skew(input.clock_skew_s)?,
            default_user_limits: input.default_user_limits.to_limits(now)?,
            admin_roles: parse_admin_roles(input.admin_roles)?,
            created_at: now,
            keys,
        };
        self.store.create_identity_provider(&provider).await?;
        tracing::info!(issuer = %provider.issuer, source = provider.source.as_str(), "identity provider added");
        self.fetch_now(provider).await
    }

    pub async fn update(
        &self,
        issuer: &str,
        update: IdentityProviderUpdate,
    ) -> AdminResult<IdentityProvider> {
        let (limits_clear, _) =
            domain::parse_clear_list(update.clear.iter().map(String::as_str), &[], CLEARABLE)?;
        let source = match (update.use_discovery, &update.jwks_url, &update.jwks_json) {
            (false, None, None) => None,
            (true, None, None) => Some((JwksSource::Discovery, None)),
            (true, _, _) => return Err(ValidationError::from(IdentityError::TwoJwksSources).into()),
            (false, url, json) => Some(source_of(url.as_deref(), json.as_deref())?),
        };
        let patch = IdentityProviderPatch {
            audiences: update.audiences.map(parse_audiences).transpose()?,
            allowed_groups: update
                .allowed_groups
                .map(|g| parse_names("group", g))
                .transpose()?,
            source,
            user_claim: update
                .user_claim
                .map(|c| parse_claim("user", &c))
                .transpose()?,
            groups_claim: update
                .groups_claim
                .map(|c| parse_claim("groups", &c))
                .transpose()?,
            clock_skew_s: update
                .clock_skew_s
                .map(|s| parse_clock_skew(Some(s)))
                .transpose()?,
            admin_roles: update.admin_roles.map(parse_admin_roles).transpose()?,
            limits: update.default_user_limits,
            limits_clear,
        };
        let source_changed = patch.source.is_some();
        let updated = self
            .store
            .update_identity_provider(issuer.trim(), &patch, Timestamp::now())
            .await?;
        tracing::info!(issuer = %updated.issuer, "identity provider updated");
        if source_changed {
            return self.fetch_now(updated).await;
        }
        Ok(updated)
    }

    pub async fn list(&self) -> AdminResult<Vec<IdentityProvider>> {
        Ok(self.store.list_identity_providers().await?)
    }

    pub async fn delete(&self, issuer: &str) -> AdminResult<IdentityProvider> {
        let removed = self.store.delete_identity_provider(issuer.trim()).await?;
        tracing::info!(issuer = %removed.issuer, "identity provider removed");
        Ok(removed)
    }

    /// A fetched source's first keys, so the answer shows whether fetching works; the
    /// refresher's loop takes it from there.
    async fn fetch_now(&self, provider: IdentityProvider) -> AdminResult<IdentityProvider> {
        let refreshed = self.refresher.refresh(&provider).await?;
        match refreshed {
            Some(p) => Ok(p),
            None if provider.source.is_fetched() => {
                Err(StoreError::IdentityProviderNotFound(provider.issuer).into())
            }
            None => Ok(provider),
        }
    }
}
