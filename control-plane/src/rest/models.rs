//! `/model/*`: the model routes (upstream name, cluster, prices).

use crate::authz::Caller;
use axum::extract::Extension;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::RestError;
use super::input::{required, Body};
use super::views::model_json;
use super::Answer;
use super::Shared;
use crate::admin::{ModelInput, ModelUpdate};
use crate::store::Store;

/// LiteLLM's `litellm_params`: the upstream name and per-token prices.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct LitellmParams {
    model: Option<String>,
    input_cost_per_token: Option<f64>,
    output_cost_per_token: Option<f64>,
}

/// The fields of `/model/new` and `/model/update`.
pub(super) struct ModelRequest {
    model_name: Option<String>,
    upstream_model: Option<String>,
    cluster: Option<String>,
    input_cost_per_mtok: Option<f64>,
    output_cost_per_mtok: Option<f64>,
    default_max_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    litellm_params: LitellmParams,
}

impl ModelRequest {
    fn read(mut body: Body) -> Result<Self, RestError> {
        let request = Self {
            model_name: body.take("model_name")?,
            upstream_model: body.take("upstream_model")?,
            cluster: body.take("cluster")?,
            input_cost_per_mtok: body.take("input_cost_per_mtok")?,
            output_cost_per_mtok: body.take("output_cost_per_mtok")?,
            default_max_tokens: body.take("default_max_tokens")?,
            max_output_tokens: body.take("max_output_tokens")?,
            litellm_params: body.take("litellm_params")?.unwrap_or_default(),
        };
        body.finish()?;
        Ok(request)
    }

    /// Prices per million tokens, from either form.
    fn prices(&self) -> (Option<f64>, Option<f64>) {
        // Rounded to a billionth, so 1e-7 per token reads 0.1 rather than 0.09999….
        let per_mtok = |t: Option<f64>| t.map(|t| (t * 1e15).round() / 1e9);
        (
            self.input_cost_per_mtok
                .or(per_mtok(self.litellm_params.input_cost_per_token)),
            self.output_cost_per_mtok
                .or(per_mtok(self.litellm_params.output_cost_per_token)),
        )
    }

    fn upstream(&self) -> Option<String> {
        self.upstream_model
            .clone()
            .or_else(|| self.litellm_params.model.clone())
    }
}

pub(super) async fn model_new<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let r = ModelRequest::read(body)?;
    let (input, output) = r.prices();
    let model = ModelInput {
        upstream_model: r.upstream().unwrap_or_default(),
        cluster: r.cluster.clone().unwrap_or_default(),
        input_cost_per_mtok: input.unwrap_or(0.0),
        output_cost_per_mtok: output.unwrap_or(0.0),
        default_max_tokens: r.default_max_tokens.unwrap_or(0),
        max_output_tokens: r.max_output_tokens.unwrap_or(0),
        name: required(r.model_name, "model_name")?,
    };
    Ok(Json(model_json(&admin.create_model(&caller, model).await?)))
}

pub(super) async fn model_update<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Answer {
    let r = ModelRequest::read(body)?;
    let (input, output) = r.prices();
    let update = ModelUpdate {
        upstream_model: r.upstream(),
        cluster: r.cluster.clone(),
        input_cost_per_mtok: input,
        output_cost_per_mtok: output,
        default_max_tokens: r.default_max_tokens,
        max_output_tokens: r.max_output_tokens,
    };
    let name = required(r.model_name, "model_name")?;
    Ok(Json(model_json(
        &admin.update_model(&caller, &name, update).await?,
    )))
}

pub(super) async fn model_delete<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
    mut body: Body,
) -> Answer {
    let model_name: Option<String> = body.take("model_name")?;
    // LiteLLM deletes by `id`; a route's id is its name.
    let id: Option<String> = body.take("id")?;
    body.finish()?;
    let name = required(model_name.or(id), "model_name")?;
    Ok(Json(model_json(&admin.delete_model(&caller, &name).await?)))
}

pub(super) async fn model_info<S: Store>(
    State(admin): Shared<S>,
    Extension(caller): Extension<Caller>,
) -> Answer {
    let models = admin.list_models(&caller).await?;
    Ok(Json(
        json!({"data": models.iter().map(model_json).collect::<Vec<_>>()}),
    ))
}
