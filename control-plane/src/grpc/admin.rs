//! `modelgate.v1.AdminService`: teams, keys, users, model routes, spend, data planes,
//! identity providers, admin keys and budget objects. Each call establishes its [`Caller`] from the bearer
//! credential and maps its message onto [`crate::admin::Admin`], which asks whether the
//! caller's role allows it.

use std::sync::Arc;

use modelgate_proto::v1 as pb;
use modelgate_proto::v1::admin_service_server::AdminService;
use tonic::{Request, Response, Status};

use super::{convert, dataplane, identity, store_status};
use crate::admin::{Admin, AdminError, AdminKeyInput, SpendScope, Target};
use crate::authz::{Action, Caller, Object};
use crate::dataplane::DataPlanes;
use crate::identity::admin::IdentityAdmin;
use crate::store::Store;

pub struct AdminApi<S> {
    admin: Arc<Admin<S>>,
    data_planes: DataPlanes<S>,
    identity: Arc<IdentityAdmin<S>>,
}

impl<S: Clone> Clone for AdminApi<S> {
    fn clone(&self) -> Self {
        Self {
            admin: Arc::clone(&self.admin),
            data_planes: self.data_planes.clone(),
            identity: Arc::clone(&self.identity),
        }
    }
}

impl<S: Store> AdminApi<S> {
    pub fn new(
        admin: Arc<Admin<S>>,
        data_planes: DataPlanes<S>,
        identity: Arc<IdentityAdmin<S>>,
    ) -> Self {
        Self {
            admin,
            data_planes,
            identity,
        }
    }

    /// The caller behind the request's credential (see [`Admin::authenticate`]).
    pub(super) async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let value = match request.metadata().get("authorization") {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                Status::unauthenticated("malformed authorization: expected 'Bearer <admin key>'")
            })?),
        };
        self.admin
            .authenticate(value, &peer)
            .await
            .map_err(admin_status)
    }

    /// Asks whether `caller` may `action` something that is not a team, key or user (data
    /// planes, identity providers, the audit log), through the same rule as every call.
    pub(super) async fn permit(
        &self,
        caller: &Caller,
        action: Action,
        target: Target<'_>,
    ) -> Result<(), Status> {
        self.admin
            .permit(caller, action, Object::Global, target)
            .await
            .map_err(admin_status)
    }

    /// Appends a write that succeeded to the audit chain.
    pub(super) async fn record_write(&self, caller: &Caller, action: Action, target: Target<'_>) {
        self.admin
            .record_write(caller, action, target, Vec::new())
            .await;
    }
}

/// Maps an admin failure to a status a person can act on.
pub(super) fn admin_status(e: AdminError) -> Status {
    match e {
        AdminError::Invalid(e) => Status::invalid_argument(e.to_string()),
        AdminError::AdminKey(e) => Status::invalid_argument(e.to_string()),
        AdminError::Store(e) => store_status(e),
        AdminError::Unauthenticated(msg) => Status::unauthenticated(msg),
        AdminError::Denied(e) => Status::permission_denied(format!("permission denied: {e}")),
        AdminError::CorruptRecord(e) => {
            tracing::error!(error = %e, "an audit record does not decode");
            Status::data_loss("an audit record does not decode; run `modelgate audit verify`")
        }
        AdminError::Random(e) => {
            tracing::error!(error = %e, "cannot mint a key");
            Status::internal("cannot draw random bytes for a key")
        }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn answer<T, U>(result: Result<T, AdminError>, to_proto: impl FnOnce(&T) -> U) -> Answer<U> {
    result
        .map(|v| Response::new(to_proto(&v)))
        .map_err(admin_status)
}

#[tonic::async_trait]
impl<S: Store> AdminService for AdminApi<S> {
    async fn create_team(&self, request: Request<pb::CreateTeamRequest>) -> Answer<pb::Team> {
        let caller = self.caller(&request).await?;
        let mut req = request.into_inner();
        let budget = req.budget_id.take();
        let write = self.admin.create_team(&caller, convert::team_input(req));
        let change = convert::budget_change(budget.as_deref());
        answer(
            self.admin.with_budget(&caller, change, write).await,
            convert::team,
        )
    }

    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Answer<pb::ListTeamsResponse> {
        let caller = self.caller(&request).await?;
        answer(self.admin.list_teams(&caller).await, |teams| {
            pb::ListTeamsResponse {
                teams: teams.iter().map(convert::team).collect(),
            }
        })
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Answer<pb::CreateKeyResponse> {
        let caller = self.caller(&request).await?;
        let mut req = request.into_inner();
        let budget = req.budget_id.take();
        let write = self.admin.create_key(&caller, convert::key_input(req));
        let change = convert::budget_change(budget.as_deref());
        answer(
            self.admin.with_budget(&caller, change, write).await,
            |created| pb::CreateKeyResponse {
                key: Some(convert::key(&created.view)),
                secret: created.secret.expose().to_owned(),
            },
        )
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Answer<pb::ListKeysResponse> {
        let caller = self.caller(&request).await?;
        let query = convert::key_query(request.into_inner());
        answer(self.admin.list_keys(&caller, query).await, |keys| {
            pb::ListKeysResponse {
                keys: keys.iter().map(convert::key).collect(),
            }
        })
    }

    async fn revoke_key(&self, request: Request<pb::RevokeKeyRequest>) -> Answer<pb::Key> {
        let caller = self.caller(&request).await?;
        // The field names a public id: a whole key here is refused, not looked up.
        let public_id = crate::domain::parse_public_id(&request.get_ref().public_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        answer(
            self.admin.revoke_key(&caller, &public_id).await,
            convert::key,
        )
    }

    async fn regenerate_key(
        &self,
        request: Request<pb::RegenerateKeyRequest>,
    ) -> Answer<pb::CreateKeyResponse> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let public_id = crate::domain::parse_public_id(&req.public_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let grace = crate::domain::parse_grace_period(&req.grace_period)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        answer(
            self.admin.regenerate_key(&caller, &public_id, grace).await,
            |created| pb::CreateKeyResponse {
                key: Some(convert::key(&created.view)),
                secret: created.secret.expose().to_owned(),
            },
        )
    }

    async fn get_team(&self, request: Request<pb::TeamRef>) -> Answer<pb::Team> {
        let caller = self.caller(&request).await?;
        answer(
            self.admin.get_team(&caller, &request.get_ref().team).await,
            convert::team,
        )
    }

    async fn update_team(&self, request: Request<pb::UpdateTeamRequest>) -> Answer<pb::Team> {
        let caller = self.caller(&request).await?;
        let mut req = request.into_inner();
        let (team, budget) = (req.team.clone(), req.budget_id.take());
        let write = self
            .admin
            .update_team(&caller, &team, convert::team_update(req));
        let change = convert::budget_change(budget.as_deref());
        answer(
            self.admin.with_budget(&caller, change, write).await,
            convert::team,
        )
    }

    async fn block_team(&self, request: Request<pb::TeamRef>) -> Answer<pb::Team> {
        let caller = self.caller(&request).await?;
        answer(
            self.admin
                .set_team_blocked(&caller, &request.get_ref().team, true)
                .await,
            convert::team,
        )
    }

    async fn unblock_team(&self, request: Request<pb::TeamRef>) -> Answer<pb::Team> {
        let caller = self.caller(&request).await?;
        answer(
            self.admin
                .set_team_blocked(&caller, &request.get_ref().team, false)
                .await,
            convert::team,
        )
    }

    async fn get_key(&self, request: Request<pb::KeyRef>) -> Answer<pb::Key> {
        let caller = self.caller(&request).await?;
        answer(
            self.admin.get_key(&caller, &request.get_ref().key).await,
            convert::key,
        )
    }

    async fn update_key(&self, request: Request<pb::UpdateKeyRequest>) -> Answer<pb::Key> {
        let caller = self.caller(&request).await?;
        let mut req = request.into_inner();
        let (key, budget) = (req.key.clone(), req.budget_id.take());
        let write = self
            .admin
            .update_key(&caller, &key, convert::key_update(req));
        let change = convert::budget_change(budget.as_deref());
        answer(
            self.admin.with_budget(&caller, change, write).await,
            convert::key,
        )
    }

    async fn block_key(&self, request: Request<pb::KeyRef>) -> Answer<pb::Key> {
        let caller = self.caller(&request).await?;
        answer(
            self.admin
                .set_key_blocked(&caller, &request.get_ref().key, true)
                .await,
            convert::key,
        )
    }

    async fn unblock_key(&self, request: Request<pb::KeyRef>) -> Answer<pb::Key> {
        let caller = self.caller(&request).await?;
        answer(
            self.admin
                .set_key_blocked(&caller, &request.get_ref().key, false)
                .await,
            convert::key,
        )
    }

    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Answer<pb::User> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let write =
            self.admin
                .create_user(&caller, &req.user_id, convert::limits_input(req.limits));
        let change = convert::budget_change(req.budget_id.as_deref());
        answer(
            self.admin.with_budget(&caller, change, write).await,
            convert::user,
        )
    }

    async fn update_user(&self, request: Request<pb::UpdateUserRequest>) -> Answer<pb::User> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let write = self.admin.update_user(
            &caller,
            &req.user_id,
            convert::limits_input(req.limits),
            req.team.as_deref(),
            &req.clear,
        );
        let change = convert::budget_change(req.budget_id.as_deref());
        answer(
            self.admin.with_budget(&caller, change, write).await,
            convert::user,
        )
    }

    async fn get_user(&self, request: Request<pb::UserRef>) -> Answer<pb::User> {
        let caller = self.caller(&request).await?;
        answer(
            self.admin
                .get_user(&caller, &request.get_ref().user_id)
                .await,
            convert::user,
        )
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Answer<pb::ListUsersResponse> {
        let caller = self.caller(&request).await?;
        answer(self.admin.list_users(&caller).await, |users| {
            pb::ListUsersResponse {
                users: users.iter().map(convert::user).collect(),
            }
        })
    }

    async fn create_model(&self, request: Request<pb::CreateModelRequest>) -> Answer<pb::Model> {
        let caller = self.caller(&request).await?;
        let input = convert::model_input(request.into_inner());
        answer(
            self.admin.create_model(&caller, input).await,
            convert::model,
        )
    }

    async fn update_model(&self, request: Request<pb::UpdateModelRequest>) -> Answer<pb::Model> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let name = req.name.clone();
        answer(
            self.admin
                .update_model(&caller, &name, convert::model_update(req))
                .await,
            convert::model,
        )
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Answer<pb::ListModelsResponse> {
        let caller = self.caller(&request).await?;
        answer(self.admin.list_models(&caller).await, |models| {
            pb::ListModelsResponse {
                models: models.iter().map(convert::model).collect(),
            }
        })
    }

    async fn delete_model(&self, request: Request<pb::ModelRef>) -> Answer<pb::Model> {
        let caller = self.caller(&request).await?;
        answer(
            self.admin
                .delete_model(&caller, &request.get_ref().name)
                .await,
            convert::model,
        )
    }

    async fn get_spend(&self, request: Request<pb::GetSpendRequest>) -> Answer<pb::SpendReport> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let scope = match req.scope {
            Some(pb::get_spend_request::Scope::Key(k)) => SpendScope::Key(k),
            Some(pb::get_spend_request::Scope::Team(t)) => SpendScope::Team(t),
            Some(pb::get_spend_request::Scope::UserId(u)) => SpendScope::User(u),
            None => {
                return Err(Status::invalid_argument(
                    "name one scope: key, team or user_id",
                ))
            }
        };
        answer(
            self.admin.spend(&caller, scope, req.history_days).await,
            convert::spend_report,
        )
    }

    async fn create_data_plane_token(
        &self,
        request: Request<pb::CreateDataPlaneTokenRequest>,
    ) -> Answer<pb::CreateDataPlaneTokenResponse> {
        let caller = self.caller(&request).await?;
        let action = Action::ManageDataPlanes;
        let name = request.get_ref().name.clone();
        self.permit(&caller, action, Target::new("data_plane_token", &name))
            .await?;
        let created = dataplane::create(&self.data_planes, request.into_inner()).await?;
        let public_id = created
            .get_ref()
            .token
            .as_ref()
            .map(|t| t.public_id.clone());
        let target = Target::new("data_plane_token", public_id.as_deref().unwrap_or(&name));
        self.record_write(&caller, action, target).await;
        Ok(created)
    }

    async fn list_data_plane_tokens(
        &self,
        request: Request<pb::ListDataPlaneTokensRequest>,
    ) -> Answer<pb::ListDataPlaneTokensResponse> {
        let caller = self.caller(&request).await?;
        self.permit(&caller, Action::ManageDataPlanes, Target::NONE)
            .await?;
        dataplane::list(&self.data_planes, request.into_inner()).await
    }

    async fn revoke_data_plane_token(
        &self,
        request: Request<pb::RevokeDataPlaneTokenRequest>,
    ) -> Answer<pb::DataPlaneToken> {
        let caller = self.caller(&request).await?;
        let action = Action::ManageDataPlanes;
        let token = request.get_ref().token.clone();
        self.permit(&caller, action, Target::new("data_plane_token", &token))
            .await?;
        let revoked = dataplane::revoke(&self.data_planes, request.into_inner()).await?;
        let public_id = revoked.get_ref().public_id.clone();
        self.record_write(&caller, action, Target::new("data_plane_token", &public_id))
            .await;
        Ok(revoked)
    }

    async fn create_identity_provider(
        &self,
        request: Request<pb::CreateIdentityProviderRequest>,
    ) -> Answer<pb::IdentityProviderInfo> {
        let caller = self.caller(&request).await?;
        let action = Action::ManageIdentityProviders;
        let issuer = request.get_ref().issuer.clone();
        let target = Target::new("identity_provider", &issuer);
        self.permit(&caller, action, target).await?;
        let input = identity::input(request.into_inner());
        let created = answer(self.identity.create(input).await, identity::info)?;
        self.record_write(&caller, action, target).await;
        Ok(created)
    }

    async fn update_identity_provider(
        &self,
        request: Request<pb::UpdateIdentityProviderRequest>,
    ) -> Answer<pb::IdentityProviderInfo> {
        let caller = self.caller(&request).await?;
        let action = Action::ManageIdentityProviders;
        let req = request.into_inner();
        let issuer = req.issuer.clone();
        let target = Target::new("identity_provider", &issuer);
        self.permit(&caller, action, target).await?;
        let updated = answer(
            self.identity.update(&issuer, identity::update(req)).await,
            identity::info,
        )?;
        self.record_write(&caller, action, target).await;
        Ok(updated)
    }

    async fn list_identity_providers(
        &self,
        request: Request<pb::ListIdentityProvidersRequest>,
    ) -> Answer<pb::ListIdentityProvidersResponse> {
        let caller = self.caller(&request).await?;
        self.permit(&caller, Action::ManageIdentityProviders, Target::NONE)
            .await?;
        answer(self.identity.list().await, |providers| {
            pb::ListIdentityProvidersResponse {
                identity_providers: providers.iter().map(identity::info).collect(),
            }
        })
    }

    async fn delete_identity_provider(
        &self,
        request: Request<pb::IdentityProviderRef>,
    ) -> Answer<pb::IdentityProviderInfo> {
        let caller = self.caller(&request).await?;
        let action = Action::ManageIdentityProviders;
        let issuer = request.get_ref().issuer.clone();
        let target = Target::new("identity_provider", &issuer);
        self.permit(&caller, action, target).await?;
        let deleted = answer(self.identity.delete(&issuer).await, identity::info)?;
        self.record_write(&caller, action, target).await;
        Ok(deleted)
    }

    async fn create_admin_key(
        &self,
        request: Request<pb::CreateAdminKeyRequest>,
    ) -> Answer<pb::CreateAdminKeyResponse> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let input = AdminKeyInput {
            user_id: req.user_id,
            role: req.role,
            teams: req.teams,
        };
        answer(
            self.admin.create_admin_key(&caller, input).await,
            |created| pb::CreateAdminKeyResponse {
                key: Some(admin_key(&created.key)),
                secret: created.secret.expose().to_owned(),
            },
        )
    }

    async fn list_admin_keys(
        &self,
        request: Request<pb::ListAdminKeysRequest>,
    ) -> Answer<pb::ListAdminKeysResponse> {
        let caller = self.caller(&request).await?;
        let include_revoked = request.get_ref().include_revoked;
        answer(
            self.admin.list_admin_keys(&caller, include_revoked).await,
            |keys| pb::ListAdminKeysResponse {
                keys: keys.iter().map(admin_key).collect(),
            },
        )
    }

    async fn revoke_admin_key(
        &self,
        request: Request<pb::RevokeAdminKeyRequest>,
    ) -> Answer<pb::AdminKey> {
        let caller = self.caller(&request).await?;
        answer(
            self.admin
                .revoke_admin_key(&caller, &request.get_ref().public_id)
                .await,
            admin_key,
        )
    }

    async fn create_budget(
        &self,
        request: Request<pb::CreateBudgetRequest>,
    ) -> Answer<pb::BudgetObject> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let id = Some(req.budget_id.as_str()).filter(|id| !id.trim().is_empty());
        let input = convert::budget_input(req.settings);
        answer(
            self.admin.create_budget(&caller, id, input).await,
            convert::budget,
        )
    }

    async fn update_budget(
        &self,
        request: Request<pb::UpdateBudgetRequest>,
    ) -> Answer<pb::BudgetObject> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let input = convert::budget_input(req.settings)
            .clearing(&req.clear)
            .map_err(|e| admin_status(e.into()))?;
        answer(
            self.admin
                .update_budget(&caller, &req.budget_id, input)
                .await,
            convert::budget,
        )
    }

    async fn get_budget(&self, request: Request<pb::BudgetRef>) -> Answer<pb::BudgetObject> {
        let caller = self.caller(&request).await?;
        let id = &request.get_ref().budget_id;
        answer(self.admin.get_budget(&caller, id).await, convert::budget)
    }

    async fn list_budgets(
        &self,
        request: Request<pb::ListBudgetsRequest>,
    ) -> Answer<pb::ListBudgetsResponse> {
        let caller = self.caller(&request).await?;
        answer(self.admin.list_budgets(&caller).await, |budgets| {
            pb::ListBudgetsResponse {
                budgets: budgets.iter().map(convert::budget).collect(),
            }
        })
    }

    async fn delete_budget(&self, request: Request<pb::BudgetRef>) -> Answer<pb::BudgetObject> {
        let caller = self.caller(&request).await?;
        let id = &request.get_ref().budget_id;
        answer(self.admin.delete_budget(&caller, id).await, convert::budget)
    }
}

fn admin_key(k: &crate::admin_key::AdminKey) -> pb::AdminKey {
    pb::AdminKey {
        public_id: k.public_id.clone(),
        user_id: k.user_id.clone(),
        role: k.role.as_str().to_owned(),
        teams: k.teams.clone(),
        created_at_ms: k.created_at.as_millis(),
        revoked_at_ms: k.revoked_at.map_or(0, |at| at.as_millis()),
        last_used_at_ms: k.last_used_at.map_or(0, |at| at.as_millis()),
    }
}
