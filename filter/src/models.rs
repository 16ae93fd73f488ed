//! Which models a key may call, how a requested name maps to a model pool, and the model
//! lists the filter answers itself (`GET /v1/models`, Ollama's `GET /api/tags`).
//!
//! Allowlist entries follow `modelgate_allowlist` (exact names and segment-safe `*` wildcards,
//! the rules the control plane checks lists with). An empty list never means "everything" to
//! a team: a team's empty list allows nothing, a key's empty list inherits its team's, and a
//! personal key's empty list allows every routed model (as LiteLLM's keys without a team). The
//! effective allowlist of a key is its own list intersected with its team's.

pub mod request;

use modelgate_allowlist::allows;
use modelgate_proto::v1::{KeyPolicy, ModelRoute, TeamPolicy};
use serde::Serialize;

use crate::policy::PolicyIndex;

/// Completion tokens reserved for a generation that sets no limit and whose route names no
/// default (`ModelRoute.default_max_tokens`).
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

/// The effective allowlist of a key: its own list (empty = its team's) within its team's.
/// A personal key (no team) has only its own list, and an empty one allows every model the
/// snapshot routes, as LiteLLM's keys without a team do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    team: Vec<String>,
    key: Vec<String>,
}

impl Allowlist {
    pub fn of(key: &KeyPolicy, team: Option<&TeamPolicy>) -> Self {
        Self {
            team: team.map_or_else(|| vec!["*".to_owned()], |team| team.models.clone()),
            key: key.models.clone(),
        }
    }

    /// The allowlist of a caller without a key (an IdP token's bearer): their team's.
    pub fn of_team(team: &TeamPolicy) -> Self {
        Self {
            team: team.models.clone(),
            key: Vec::new(),
        }
    }

    /// Whether `model` (a public name) is allowed.
    pub fn allows(&self, model: &str) -> bool {
        allows(&self.team, model) && (self.key.is_empty() || allows(&self.key, model))
    }
}

/// Why a requested model cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelDenial {
    /// No route in the snapshot has this public name.
    NotFound(String),
    /// It exists, but not for this key.
    NotAllowed(String),
}

/// The route for `model` if this key may use it. Unknown names are refused before the
/// allowlist is consulted, so `*` cannot reach a pool the snapshot does not name.
pub fn resolve<'a>(
    index: &'a PolicyIndex,
    allowlist: &Allowlist,
    model: &str,
) -> Result<&'a ModelRoute, ModelDenial> {
    let route = index
        .route(model)
        .ok_or_else(|| ModelDenial::NotFound(model.to_owned()))?;
    if allowlist.allows(model) {
        Ok(route)
    } else {
        Err(ModelDenial::NotAllowed(model.to_owned()))
    }
}

/// The models this key may use, by public name.
pub fn visible<'a>(index: &'a PolicyIndex, allowlist: &Allowlist) -> Vec<&'a ModelRoute> {
    let mut routes: Vec<&ModelRoute> = index
        .routes()
        .filter(|route| allowlist.allows(&route.name))
        .collect();
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    routes
}

/// The name the upstream knows the model by.
pub fn upstream_name(route: &ModelRoute) -> &str {
    if route.upstream_model.is_empty() {
        &route.name
    } else {
        &route.upstream_model
    }
}

/// Cost of a request in billionths of a dollar (prices are per million tokens), rounded up so
/// spend is never under-counted; absurd or negative prices count as free.
pub fn cost_nano(route: &ModelRoute, prompt_tokens: u64, completion_tokens: u64) -> u64 {
    let part = |tokens: u64, usd_per_mtok: f64| {
        if usd_per_mtok.is_finite() && usd_per_mtok > 0.0 {
            // tokens * USD/Mtok * 1e9 nano/USD / 1e6 tok/Mtok; `as` saturates.
            (tokens as f64 * usd_per_mtok * 1_000.0).ceil() as u64
        } else {
            0
        }
    };
    part(prompt_tokens, route.input_cost_per_mtok)
        .saturating_add(part(completion_tokens, route.output_cost_per_mtok))
}

/// An OpenAI model object, as `GET /v1/models` lists it.
#[derive(Debug, Serialize)]
struct OpenAiModel<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

impl<'a> OpenAiModel<'a> {
    fn of(route: &'a ModelRoute) -> Self {
        Self {
            id: &route.name,
            object: "model",
            created: 0,
            owned_by: "modelgate",
        }
    }
}

/// `GET /v1/models`: `{"object":"list","data":[…]}`.
pub fn openai_list(routes: &[&ModelRoute]) -> Vec<u8> {
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: Vec<OpenAiModel<'a>>,
    }
    to_json(&List {
        object: "list",
        data: routes.iter().map(|route| OpenAiModel::of(route)).collect(),
    })
}

/// OpenAI's `GET /v1/models/{id}`: one model object, as in the list.
pub fn openai_model(route: &ModelRoute) -> Vec<u8> {
    to_json(&OpenAiModel::of(route))
}

/// Ollama's `GET /api/tags`: `{"models":[{"name","model",…}]}`, with the public names.
pub fn ollama_tags(routes: &[&ModelRoute]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Tags<'a> {
        models: Vec<Tag<'a>>,
    }
    #[derive(Serialize)]
    struct Tag<'a> {
        name: &'a str,
        model: &'a str,
        modified_at: &'static str,
        size: u64,
        digest: &'static str,
        details: Details,
    }
    #[derive(Serialize)]
    struct Details {}
    to_json(&Tags {
        models: routes
            .iter()
            .map(|route| Tag {
                name: &route.name,
                model: &route.name,
                modified_at: "1970-01-01T00:00:00Z",
                size: 0,
                digest: "",
                details: Details {},
            })
            .collect(),
    })
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Only strings and integers: serialization cannot fail; an empty object keeps the reply JSON.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::policy::tests::{key, snapshot, team, ALICE_KEY};
    use modelgate_proto::v1::KeyStatus;

    fn with_models(team_models: &[&str], key_models: &[&str]) -> Allowlist {
        let mut k = key(ALICE_KEY, "alice0000001", KeyStatus::Active);
        k.models = key_models.iter().map(|m| m.to_string()).collect();
        let mut t = team("team-1");
        t.models = team_models.iter().map(|m| m.to_string()).collect();
        Allowlist::of(&k, Some(&t))
    }

    #[test]
    fn the_effective_allowlist_is_key_intersected_with_team() {
        let check = |team_models: &[&str], key_models: &[&str], model: &str| {
            with_models(team_models, key_models).allows(model)
        };
        assert!(
            !check(&[], &[], "llama3.1-8b"),
            "empty team list allows nothing"
        );
        assert!(
            !check(&[], &["llama3.1-8b"], "llama3.1-8b"),
            "a key cannot widen"
        );
        assert!(!check(&[], &["*"], "llama3.1-8b"));
        assert!(check(&["*"], &[], "llama3.1-8b"), "empty key list inherits");
        assert!(check(&["llama3.1-8b", "qwen2.5-*"], &[], "qwen2.5-7b"));
        assert!(check(&["qwen2.5-*"], &["qwen2.5-7b"], "qwen2.5-7b"));
        assert!(
            !check(&["qwen2.5-*"], &["qwen2.5-7b"], "qwen2.5-14b"),
            "key narrows"
        );
        assert!(
            !check(&["llama3.1-8b"], &["*"], "qwen2.5-7b"),
            "key * is team's list"
        );
        assert!(check(&["llama3.1-8b"], &["*"], "llama3.1-8b"));
    }

    #[test]
    fn a_personal_key_has_its_own_list_and_an_empty_one_allows_every_route() {
        let index = PolicyIndex::from_snapshot(snapshot(1));
        let mut k = key(ALICE_KEY, "alice0000001", KeyStatus::Active);
        let everything = Allowlist::of(&k, None);
        assert!(everything.allows("llama3.1-8b"));
        assert!(
            matches!(
                resolve(&index, &everything, "no-such-model"),
                Err(ModelDenial::NotFound(_))
            ),
            "still only what the snapshot routes"
        );
        k.models = vec!["qwen2.5-*".to_owned()];
        let narrowed = Allowlist::of(&k, None);
        assert!(narrowed.allows("qwen2.5-7b"));
        assert!(!narrowed.allows("llama3.1-8b"));
    }

    #[test]
    fn unknown_models_are_404_and_forbidden_ones_403() {
        let index = PolicyIndex::from_snapshot(snapshot(1));
        let allowlist = with_models(&["*"], &["llama3.1-8b"]);
        assert_eq!(
            resolve(&index, &allowlist, "llama3.1-8b").unwrap().cluster,
            "pool-llama"
        );
        assert_eq!(
            resolve(&index, &allowlist, "mystery"),
            Err(ModelDenial::NotFound("mystery".to_owned()))
        );
        assert_eq!(
            resolve(&index, &allowlist, "qwen2.5-7b"),
            Err(ModelDenial::NotAllowed("qwen2.5-7b".to_owned()))
        );
        assert!(
            matches!(
                resolve(&index, &allowlist, "llama3.1:8b"),
                Err(ModelDenial::NotFound(_))
            ),
            "the upstream's own name is not a public name"
        );
    }

    #[test]
    fn lists_exactly_the_models_this_key_may_use() {
        let index = PolicyIndex::from_snapshot(snapshot(1));
        let names = |team_models: &[&str], key_models: &[&str]| {
            visible(&index, &with_models(team_models, key_models))
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&["*"], &[]),
            ["llama3.1-8b", "qwen2.5-7b", "qwen2.5x"]
        );
        assert_eq!(names(&["qwen2.5-*"], &[]), ["qwen2.5-7b"]);
        assert_eq!(names(&["*"], &["llama3.1-8b"]), ["llama3.1-8b"]);
        assert!(names(&[], &[]).is_empty());

        let routes = visible(&index, &with_models(&["qwen2.5-*"], &[]));
        let list: Value = serde_json::from_slice(&openai_list(&routes)).unwrap();
        assert_eq!(
            list,
            json!({"object": "list", "data": [{"id": "qwen2.5-7b", "object": "model", "created": 0, "owned_by": "modelgate"}]})
        );
        let tags: Value = serde_json::from_slice(&ollama_tags(&routes)).unwrap();
        assert_eq!(tags["models"][0]["name"], "qwen2.5-7b");
        assert_eq!(tags["models"][0]["model"], "qwen2.5-7b");
    }

    #[test]
    fn aliases_name_their_upstream_model() {
        let index = PolicyIndex::from_snapshot(snapshot(1));
        assert_eq!(
            upstream_name(index.route("llama3.1-8b").unwrap()),
            "llama3.1:8b"
        );
        assert_eq!(
            upstream_name(index.route("qwen2.5-7b").unwrap()),
            "qwen2.5-7b"
        );
    }

    #[test]
    fn cost_rounds_up_in_nano_dollars_and_ignores_nonsense_prices() {
        let route = |input: f64, output: f64| ModelRoute {
            input_cost_per_mtok: input,
            output_cost_per_mtok: output,
            ..ModelRoute::default()
        };
        assert_eq!(
            cost_nano(&route(1.0, 2.0), 1_000_000, 500_000),
            2_000_000_000
        );
        assert_eq!(cost_nano(&route(0.15, 0.6), 10, 5), 1_500 + 3_000);
        assert_eq!(cost_nano(&route(0.000_000_1, 0.0), 1, 0), 1, "rounded up");
        assert_eq!(cost_nano(&route(0.0, 0.0), 1_000, 1_000), 0);
        assert_eq!(cost_nano(&route(-3.0, f64::NAN), 1_000, 1_000), 0);
        assert_eq!(cost_nano(&route(f64::INFINITY, 0.0), 1, 0), 0);
        assert_eq!(
            cost_nano(&route(1e300, 1e300), u64::MAX, u64::MAX),
            u64::MAX
        );
    }
}
