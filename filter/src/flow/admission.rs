//! The admission side of a request: the models its key may use (and the lists the filter
//! answers itself), the model pool its body names, and the limits it holds until it ends.

use modelgate_proto::v1::{ModelRoute, TeamPolicy, UserPolicy};

use crate::endpoint::Endpoint;
use crate::errors::Rejection;
use crate::host::Host;
use crate::limits::{self, Actual, Admission, Demand, Plan, Refusal};
use crate::models::request::ModelRequest;
use crate::models::{self, Allowlist, ModelDenial};
use crate::policy::{PolicyIndex, Principal};

/// What one request may do, and what it holds.
#[derive(Debug, Default)]
pub(super) struct Access {
    allowlist: Allowlist,
    plan: Plan,
    held: Option<Admission>,
}

impl Access {
    pub(super) fn new(policy: &PolicyIndex, principal: Principal<'_>) -> Self {
        let user = policy.user(&principal.key.user_id);
        Self {
            allowlist: Allowlist::of(&principal.key, principal.team),
            plan: Plan::new(policy.version(), &principal.key, principal.team, user),
            held: None,
        }
    }

    /// What an IdP token's bearer may do: their team's models, their team's and their own
    /// limits (`user` is the snapshot's or, first seen, one with the issuer's defaults).
    pub(super) fn for_member(policy: &PolicyIndex, team: &TeamPolicy, user: &UserPolicy) -> Self {
        Self {
            allowlist: Allowlist::of_team(team),
            plan: Plan::for_member(policy.version(), Some(team), user),
            held: None,
        }
    }

    /// What a service key's end user may do: the key's models within their team's, their
    /// team's limits and their own (the snapshot's, or the key's for a user first seen), and
    /// the key's team's limits, which bound every user the key names.
    pub(super) fn for_end_user(
        policy: &PolicyIndex,
        principal: &Principal<'_>,
        team: Option<&TeamPolicy>,
        user: &UserPolicy,
    ) -> Self {
        let version = policy.version();
        Self {
            allowlist: Allowlist::of(&principal.key, team),
            plan: Plan::for_member(version, team, user).within(version, principal.team),
            held: None,
        }
    }

    /// The body of a model list the filter answers itself: `GET /v1/models` and Ollama's
    /// `GET /api/tags`, with exactly the models this key may use.
    pub(super) fn listing(
        &self,
        policy: &PolicyIndex,
        endpoint: Option<Endpoint>,
    ) -> Option<Vec<u8>> {
        let visible = || models::visible(policy, &self.allowlist);
        match endpoint? {
            Endpoint::Models => Some(models::openai_list(&visible())),
            Endpoint::OllamaTags => Some(models::ollama_tags(&visible())),
            _ => None,
        }
    }

    /// `GET /v1/models/{id}`: the model object when this key may use it. A model it may not
    /// use is as absent as an unknown one (404), so the answer reveals no other team's routes.
    pub(super) fn model_info(&self, policy: &PolicyIndex, id: &str) -> Result<Vec<u8>, Rejection> {
        models::resolve(policy, &self.allowlist, id)
            .map(models::openai_model)
            .map_err(|_| Rejection::ModelNotFound(id.to_owned()))
    }

    /// The route of a requested model: 404 when the snapshot has no such model, 403 when this
    /// key may not use it.
    pub(super) fn resolve<'p>(
        &self,
        policy: &'p PolicyIndex,
        model: &str,
    ) -> Result<&'p ModelRoute, Rejection> {
        models::resolve(policy, &self.allowlist, model).map_err(|denial| match denial {
            ModelDenial::NotFound(model) => Rejection::ModelNotFound(model),
            ModelDenial::NotAllowed(model) => Rejection::ModelNotAllowed(model),
        })
    }

    /// Reserves the request in every scope that limits it (nothing to do when none does).
    /// The model's request reserves its prompt estimate plus its completion limit and their
    /// estimated cost; a request without a model (pass-through) reserves one request.
    pub(super) fn admit(
        &mut self,
        host: &impl Host,
        now_ms: i64,
        request: Option<(&ModelRequest, &ModelRoute, Endpoint)>,
    ) -> Result<(), Rejection> {
        if self.plan.is_empty() {
            return Ok(());
        }
        let demand = request.map_or_else(Demand::default, |(request, route, endpoint)| {
            estimate(request, route, endpoint)
        });
        match limits::admit(host, now_ms, &self.plan, demand) {
            Ok(admission) => {
                self.held = Some(admission);
                Ok(())
            }
            Err(Refusal::Limited(hit)) => Err(Rejection::Limited(hit)),
            Err(Refusal::Unavailable(why)) => {
                log::error!("limits unavailable, request refused: {why}");
                Err(Rejection::LimitsUnavailable)
            }
        }
    }

    /// A later check refused the request: it holds nothing.
    pub(super) fn cancel(&mut self, host: &impl Host, now_ms: i64) {
        if let Some(held) = &mut self.held {
            held.cancel(host, now_ms);
        }
    }

    /// The request is over (every ending comes through here): replaces the estimates with
    /// what it used, as its usage record says, and frees its parallel slot.
    pub(super) fn finish(&mut self, host: &impl Host, now_ms: i64, used: Actual) {
        if let Some(held) = &mut self.held {
            held.settle(host, now_ms, used);
            held.release(host, now_ms);
        }
    }

    /// `x-ratelimit-*` headers for a response that was admitted.
    pub(super) fn headers(&self) -> Vec<(&'static str, String)> {
        self.held
            .as_ref()
            .map(Admission::headers)
            .unwrap_or_default()
    }
}

/// What a model request reserves: its prompt estimate plus its completion limit (the client's
/// `max_tokens`, else the route's default, else ours; none for embeddings), and their cost.
fn estimate(request: &ModelRequest, route: &ModelRoute, endpoint: Endpoint) -> Demand {
    let completion = if endpoint.generates_text() {
        request
            .max_tokens
            .or((route.default_max_tokens > 0).then_some(route.default_max_tokens))
            .unwrap_or(models::DEFAULT_MAX_TOKENS)
    } else {
        0
    };
    let prompt = request.prompt_tokens;
    Demand {
        tokens: prompt.saturating_add(completion),
        cost_nano: models::cost_nano(route, prompt, completion),
    }
}

#[cfg(test)]
mod tests;
