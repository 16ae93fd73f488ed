//! `/model/*`: the model routes (upstream name, cluster, prices).

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::input::{body, required};
use super::views::model_json;
use super::Answer;
use super::Shared;
use crate::admin::{ModelInput, ModelUpdate};
use crate::store::Store;

/// LiteLLM's `litellm_params`: the upstream name and per-token prices.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LitellmParams {
    model: Option<String>,
    input_cost_per_token: Option<f64>,
    output_cost_per_token: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ModelRequest {
    model_name: Option<String>,
    upstream_model: Option<String>,
    cluster: Option<String>,
    input_cost_per_mtok: Option<f64>,
    output_cost_per_mtok: Option<f64>,
    default_max_tokens: Option<u64>,
    litellm_params: LitellmParams,
}

impl ModelRequest {
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

pub(super) async fn model_new<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: ModelRequest = body(&bytes)?;
    let (input, output) = r.prices();
    let model = ModelInput {
        upstream_model: r.upstream().unwrap_or_default(),
        cluster: r.cluster.clone().unwrap_or_default(),
        input_cost_per_mtok: input.unwrap_or(0.0),
        output_cost_per_mtok: output.unwrap_or(0.0),
        default_max_tokens: r.default_max_tokens.unwrap_or(0),
        name: required(r.model_name, "model_name")?,
    };
    Ok(Json(model_json(&admin.create_model(model).await?)))
}

pub(super) async fn model_update<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: ModelRequest = body(&bytes)?;
    let (input, output) = r.prices();
    let update = ModelUpdate {
        upstream_model: r.upstream(),
        cluster: r.cluster.clone(),
        input_cost_per_mtok: input,
        output_cost_per_mtok: output,
        default_max_tokens: r.default_max_tokens,
    };
    let name = required(r.model_name, "model_name")?;
    Ok(Json(model_json(&admin.update_model(&name, update).await?)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ModelRef {
    model_name: Option<String>,
    /// LiteLLM deletes by `id`; a route's id is its name.
    id: Option<String>,
}

pub(super) async fn model_delete<S: Store>(State(admin): Shared<S>, bytes: Bytes) -> Answer {
    let r: ModelRef = body(&bytes)?;
    let name = required(r.model_name.or(r.id), "model_name")?;
    Ok(Json(model_json(&admin.delete_model(&name).await?)))
}

pub(super) async fn model_info<S: Store>(State(admin): Shared<S>) -> Answer {
    let models = admin.list_models().await?;
    Ok(Json(
        json!({"data": models.iter().map(model_json).collect::<Vec<_>>()}),
    ))
}
