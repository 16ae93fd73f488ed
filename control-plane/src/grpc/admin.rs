//! `modelgate.v1.AdminService`: teams, keys, users, model routes and spend, for holders of
//! the master key. Each call maps its message onto [`crate::admin::Admin`].

use std::sync::Arc;

use modelgate_proto::v1 as pb;
use modelgate_proto::v1::admin_service_server::AdminService;
use tonic::{Request, Response, Status};

use super::{convert, dataplane, identity, store_status};
use crate::admin::{Admin, AdminError, SpendScope};
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

    /// Admits the master key (see [`Admin::authorize`]).
    pub(super) async fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let value = match request.metadata().get("authorization") {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                Status::unauthenticated("malformed authorization: expected 'Bearer <master key>'")
            })?),
        };
        self.admin
            .authorize(value, &peer)
            .await
            .map_err(admin_status)
    }
}

/// Maps an admin failure to a status a person can act on.
pub(super) fn admin_status(e: AdminError) -> Status {
    match e {
        AdminError::Invalid(e) => Status::invalid_argument(e.to_string()),
        AdminError::Store(e) => store_status(e),
        AdminError::Unauthenticated(msg) => Status::unauthenticated(msg),
        AdminError::PermissionDenied => Status::permission_denied(e.to_string()),
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
        self.authorize(&request).await?;
        let input = convert::team_input(request.into_inner());
        answer(self.admin.create_team(input).await, convert::team)
    }

    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Answer<pb::ListTeamsResponse> {
        self.authorize(&request).await?;
        answer(self.admin.list_teams().await, |teams| {
            pb::ListTeamsResponse {
                teams: teams.iter().map(convert::team).collect(),
            }
        })
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Answer<pb::CreateKeyResponse> {
        self.authorize(&request).await?;
        let input = convert::key_input(request.into_inner());
        answer(self.admin.create_key(input).await, |created| {
            pb::CreateKeyResponse {
                key: Some(convert::key(&created.view)),
                secret: created.secret.expose().to_owned(),
            }
        })
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Answer<pb::ListKeysResponse> {
        self.authorize(&request).await?;
        let query = convert::key_query(request.into_inner());
        answer(self.admin.list_keys(query).await, |keys| {
            pb::ListKeysResponse {
                keys: keys.iter().map(convert::key).collect(),
            }
        })
    }

    async fn revoke_key(&self, request: Request<pb::RevokeKeyRequest>) -> Answer<pb::Key> {
        self.authorize(&request).await?;
        // The field names a public id: a whole key here is refused, not looked up.
        let public_id = crate::domain::parse_public_id(&request.get_ref().public_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        answer(self.admin.revoke_key(&public_id).await, convert::key)
    }

    async fn get_team(&self, request: Request<pb::TeamRef>) -> Answer<pb::Team> {
        self.authorize(&request).await?;
        answer(
            self.admin.get_team(&request.get_ref().team).await,
            convert::team,
        )
    }

    async fn update_team(&self, request: Request<pb::UpdateTeamRequest>) -> Answer<pb::Team> {
        self.authorize(&request).await?;
        let req = request.into_inner();
        let team = req.team.clone();
        answer(
            self.admin
                .update_team(&team, convert::team_update(req))
                .await,
            convert::team,
        )
    }

    async fn block_team(&self, request: Request<pb::TeamRef>) -> Answer<pb::Team> {
        self.authorize(&request).await?;
        answer(
            self.admin
                .set_team_blocked(&request.get_ref().team, true)
                .await,
            convert::team,
        )
    }

    async fn unblock_team(&self, request: Request<pb::TeamRef>) -> Answer<pb::Team> {
        self.authorize(&request).await?;
        answer(
            self.admin
                .set_team_blocked(&request.get_ref().team, false)
                .await,
            convert::team,
        )
    }

    async fn get_key(&self, request: Request<pb::KeyRef>) -> Answer<pb::Key> {
        self.authorize(&request).await?;
        answer(
            self.admin.get_key(&request.get_ref().key).await,
            convert::key,
        )
    }

    async fn update_key(&self, request: Request<pb::UpdateKeyRequest>) -> Answer<pb::Key> {
        self.authorize(&request).await?;
        let req = request.into_inner();
        let key = req.key.clone();
        answer(
            self.admin.update_key(&key, convert::key_update(req)).await,
            convert::key,
        )
    }

    async fn block_key(&self, request: Request<pb::KeyRef>) -> Answer<pb::Key> {
        self.authorize(&request).await?;
        answer(
            self.admin
                .set_key_blocked(&request.get_ref().key, true)
                .await,
            convert::key,
        )
    }

    async fn unblock_key(&self, request: Request<pb::KeyRef>) -> Answer<pb::Key> {
        self.authorize(&request).await?;
        answer(
            self.admin
                .set_key_blocked(&request.get_ref().key, false)
                .await,
            convert::key,
        )
    }

    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Answer<pb::User> {
        self.authorize(&request).await?;
        let req = request.into_inner();
        answer(
            self.admin
                .create_user(&req.user_id, convert::limits_input(req.limits))
                .await,
            convert::user,
        )
    }

    async fn update_user(&self, request: Request<pb::UpdateUserRequest>) -> Answer<pb::User> {
        self.authorize(&request).await?;
        let req = request.into_inner();
        answer(
            self.admin
                .update_user(
                    &req.user_id,
                    convert::limits_input(req.limits),
                    req.team.as_deref(),
                    &req.clear,
                )
                .await,
            convert::user,
        )
    }

    async fn get_user(&self, request: Request<pb::UserRef>) -> Answer<pb::User> {
        self.authorize(&request).await?;
        answer(
            self.admin.get_user(&request.get_ref().user_id).await,
            convert::user,
        )
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Answer<pb::ListUsersResponse> {
        self.authorize(&request).await?;
        answer(self.admin.list_users().await, |users| {
            pb::ListUsersResponse {
                users: users.iter().map(convert::user).collect(),
            }
        })
    }

    async fn create_model(&self, request: Request<pb::CreateModelRequest>) -> Answer<pb::Model> {
        self.authorize(&request).await?;
        let input = convert::model_input(request.into_inner());
        answer(self.admin.create_model(input).await, convert::model)
    }

    async fn update_model(&self, request: Request<pb::UpdateModelRequest>) -> Answer<pb::Model> {
        self.authorize(&request).await?;
        let req = request.into_inner();
        let name = req.name.clone();
        answer(
            self.admin
                .update_model(&name, convert::model_update(req))
                .await,
            convert::model,
        )
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Answer<pb::ListModelsResponse> {
        self.authorize(&request).await?;
        answer(self.admin.list_models().await, |models| {
            pb::ListModelsResponse {
                models: models.iter().map(convert::model).collect(),
            }
        })
    }

    async fn delete_model(&self, request: Request<pb::ModelRef>) -> Answer<pb::Model> {
        self.authorize(&request).await?;
        answer(
            self.admin.delete_model(&request.get_ref().name).await,
            convert::model,
        )
    }

    async fn get_spend(&self, request: Request<pb::GetSpendRequest>) -> Answer<pb::SpendReport> {
        self.authorize(&request).await?;
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
            self.admin.spend(scope, req.history_days).await,
            convert::spend_report,
        )
    }

    async fn create_data_plane_token(
        &self,
        request: Request<pb::CreateDataPlaneTokenRequest>,
    ) -> Answer<pb::CreateDataPlaneTokenResponse> {
        self.authorize(&request).await?;
        dataplane::create(&self.data_planes, request.into_inner()).await
    }

    async fn list_data_plane_tokens(
        &self,
        request: Request<pb::ListDataPlaneTokensRequest>,
    ) -> Answer<pb::ListDataPlaneTokensResponse> {
        self.authorize(&request).await?;
        dataplane::list(&self.data_planes, request.into_inner()).await
    }

    async fn revoke_data_plane_token(
        &self,
        request: Request<pb::RevokeDataPlaneTokenRequest>,
    ) -> Answer<pb::DataPlaneToken> {
        self.authorize(&request).await?;
        dataplane::revoke(&self.data_planes, request.into_inner()).await
    }

    async fn create_identity_provider(
        &self,
        request: Request<pb::CreateIdentityProviderRequest>,
    ) -> Answer<pb::IdentityProviderInfo> {
        self.authorize(&request).await?;
        let input = identity::input(request.into_inner());
        answer(self.identity.create(input).await, identity::info)
    }

    async fn update_identity_provider(
        &self,
        request: Request<pb::UpdateIdentityProviderRequest>,
    ) -> Answer<pb::IdentityProviderInfo> {
        self.authorize(&request).await?;
        let req = request.into_inner();
        let issuer = req.issuer.clone();
        answer(
            self.identity.update(&issuer, identity::update(req)).await,
            identity::info,
        )
    }

    async fn list_identity_providers(
        &self,
        request: Request<pb::ListIdentityProvidersRequest>,
    ) -> Answer<pb::ListIdentityProvidersResponse> {
        self.authorize(&request).await?;
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
        self.authorize(&request).await?;
        answer(
            self.identity.delete(&request.get_ref().issuer).await,
            identity::info,
        )
    }
}
