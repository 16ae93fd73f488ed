//! Model routes: admins manage them; who may read them is asked of [`authz`].

use super::access::{self, Target};
use super::{Admin, AdminResult};
use super::{ModelInput, ModelUpdate};
use crate::authz::{Action, Caller, Object};
use crate::clock::Timestamp;
use crate::domain::{self, Change, ModelPatch, ModelRoute};
use crate::store::Store;

impl<S: Store> Admin<S> {
    async fn permit_models(&self, caller: &Caller, action: Action, name: &str) -> AdminResult<()> {
        self.permit(caller, action, Object::Global, Target::new("model", name))
            .await
    }

    pub async fn create_model(
        &self,
        caller: &Caller,
        input: ModelInput,
    ) -> AdminResult<ModelRoute> {
        self.permit_models(caller, Action::ManageModels, &input.name)
            .await?;
        let model = ModelRoute {
            name: domain::parse_route_name(&input.name)?,
            upstream_model: domain::parse_upstream_model(&input.upstream_model)?,
            cluster: domain::parse_cluster(&input.cluster)?,
            input_cost_per_mtok: domain::parse_price(
                "input_cost_per_mtok",
                input.input_cost_per_mtok,
            )?,
            output_cost_per_mtok: domain::parse_price(
                "output_cost_per_mtok",
                input.output_cost_per_mtok,
            )?,
            default_max_tokens: (input.default_max_tokens > 0).then_some(input.default_max_tokens),
            max_output_tokens: domain::parse_max_output_tokens(input.max_output_tokens)?,
            created_at: Timestamp::now(),
        };
        self.store.create_model(&model).await?;
        tracing::info!(model = %model.name, "model route created");
        self.record_model(caller, None, Some(&model)).await;
        Ok(model)
    }

    pub async fn update_model(
        &self,
        caller: &Caller,
        name: &str,
        update: ModelUpdate,
    ) -> AdminResult<ModelRoute> {
        self.permit_models(caller, Action::ManageModels, name)
            .await?;
        let before = self
            .store
            .list_models()
            .await?
            .into_iter()
            .find(|m| m.name == name.trim());
        let optional = |v: Option<Option<String>>| match v {
            None => Change::Keep,
            Some(None) => Change::Clear,
            Some(Some(s)) => Change::Set(s),
        };
        let patch = ModelPatch {
            upstream_model: optional(
                update
                    .upstream_model
                    .as_deref()
                    .map(domain::parse_upstream_model)
                    .transpose()?,
            ),
            cluster: optional(
                update
                    .cluster
                    .as_deref()
                    .map(domain::parse_cluster)
                    .transpose()?,
            ),
            input_cost_per_mtok: update
                .input_cost_per_mtok
                .map(|v| domain::parse_price("input_cost_per_mtok", v))
                .transpose()?,
            output_cost_per_mtok: update
                .output_cost_per_mtok
                .map(|v| domain::parse_price("output_cost_per_mtok", v))
                .transpose()?,
            default_max_tokens: match update.default_max_tokens {
                None => Change::Keep,
                Some(0) => Change::Clear,
                Some(n) => Change::Set(n),
            },
            max_output_tokens: match update.max_output_tokens {
                None => Change::Keep,
                Some(n) => domain::parse_max_output_tokens(n)?.map_or(Change::Clear, Change::Set),
            },
        };
        let model = self.store.update_model(name.trim(), &patch).await?;
        tracing::info!(model = %model.name, "model route updated");
        self.record_model(caller, before.as_ref(), Some(&model))
            .await;
        Ok(model)
    }

    pub async fn delete_model(&self, caller: &Caller, name: &str) -> AdminResult<ModelRoute> {
        self.permit_models(caller, Action::ManageModels, name)
            .await?;
        let model = self.store.delete_model(name.trim()).await?;
        tracing::info!(model = %model.name, "model route deleted");
        self.record_model(caller, Some(&model), None).await;
        Ok(model)
    }

    /// Appends a model route's change (created: no `before`; deleted: no `after`).
    async fn record_model(
        &self,
        caller: &Caller,
        before: Option<&ModelRoute>,
        after: Option<&ModelRoute>,
    ) {
        let Some(name) = after.or(before).map(|m| m.name.as_str()) else {
            return;
        };
        let fields = |m: Option<&ModelRoute>| m.map(access::model_fields).unwrap_or_default();
        let changes = access::changes(&fields(before), &fields(after));
        self.record_write(
            caller,
            Action::ManageModels,
            Target::new("model", name),
            changes,
        )
        .await;
    }

    pub async fn list_models(&self, caller: &Caller) -> AdminResult<Vec<ModelRoute>> {
        self.permit_models(caller, Action::ReadModels, "").await?;
        Ok(self.store.list_models().await?)
    }
}
