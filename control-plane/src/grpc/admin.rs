//! `modelgate.v1.AdminService`: teams and keys, for holders of the master key.

use modelgate_proto::v1 as pb;
use modelgate_proto::v1::admin_service_server::AdminService;
use tonic::{Request, Response, Status};

use super::{convert, store_status};
use crate::clock::Timestamp;
use crate::domain::{self, KeyFilter, KeyStatus, NewKey, Team, TeamAlias, ValidationError};
use crate::keys::{self, MintedKey};
use crate::master_key::MasterKey;
use crate::store::{Store, StoreError};

/// Drawing a taken public id twice in a row (62 bits each) means something else is wrong.
const MINT_ATTEMPTS: usize = 3;

pub struct AdminApi<S> {
    store: S,
    master_key: MasterKey,
}

impl<S: Store> AdminApi<S> {
    pub fn new(store: S, master_key: MasterKey) -> Self {
        Self { store, master_key }
    }

    /// Admits the master key. A valid virtual key is a known caller without the admin role
    /// (PERMISSION_DENIED); anything else is UNAUTHENTICATED.
    pub(super) async fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let Some(value) = request.metadata().get("authorization") else {
            tracing::warn!(%peer, "admin call without authorization");
            return Err(Status::unauthenticated(
                "missing authorization: send metadata 'authorization: Bearer <master key>'",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                Status::unauthenticated("malformed authorization: expected 'Bearer <master key>'")
            })?;
        if self.master_key.matches(token) {
            return Ok(());
        }
        if keys::public_id_of(token).is_some() {
            let known = self
                .store
                .find_key_by_hash(&keys::hash_key(token))
                .await
                .map_err(store_status)?;
            if known.is_some_and(|k| k.status == KeyStatus::Active) {
                tracing::warn!(%peer, "admin call with a virtual key");
                return Err(Status::permission_denied(
                    "virtual keys cannot call the admin API; use the master key",
                ));
            }
        }
        tracing::warn!(%peer, "admin call with an invalid master key");
        Err(Status::unauthenticated("invalid master key"))
    }
}

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

#[tonic::async_trait]
impl<S: Store> AdminService for AdminApi<S> {
    async fn create_team(
        &self,
        request: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::Team>, Status> {
        self.authorize(&request).await?;
        let req = request.into_inner();
        let alias = TeamAlias::parse(&req.alias).map_err(invalid)?;
        let team = Team {
            id: domain::new_team_id().map_err(|e| Status::internal(e.to_string()))?,
            alias: alias.as_str().to_owned(),
            models: domain::parse_models(&req.models).map_err(invalid)?,
            blocked: false,
            created_at: Timestamp::now(),
        };
        self.store.create_team(&team).await.map_err(store_status)?;
        tracing::info!(team_id = %team.id, alias = %team.alias, "team created");
        Ok(Response::new(convert::team(&team)))
    }

    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        self.authorize(&request).await?;
        let teams = self.store.list_teams().await.map_err(store_status)?;
        Ok(Response::new(pb::ListTeamsResponse {
            teams: teams.iter().map(convert::team).collect(),
        }))
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        self.authorize(&request).await?;
        let req = request.into_inner();
        let team = req.team.trim();
        if team.is_empty() {
            return Err(invalid(ValidationError::MissingTeam));
        }
        let now = Timestamp::now();
        let user_id = domain::parse_user_id(&req.user_id).map_err(invalid)?;
        let alias = domain::parse_key_alias(&req.key_alias).map_err(invalid)?;
        let models = domain::parse_models(&req.models).map_err(invalid)?;
        let expires_at = keys::parse_expiry(&req.expires, now).map_err(invalid)?;

        for _ in 0..MINT_ATTEMPTS {
            let minted = MintedKey::generate().map_err(|e| Status::internal(e.to_string()))?;
            let new_key = NewKey {
                team: team.to_owned(),
                public_id: minted.public_id.clone(),
                key_sha256: minted.sha256,
                last4: minted.last4.clone(),
                user_id: user_id.clone(),
                alias: alias.clone(),
                models: models.clone(),
                created_at: now,
                expires_at,
            };
            match self.store.create_key(&new_key).await {
                Ok(key) => {
                    tracing::info!(public_id = %key.public_id, team_id = %key.team_id, "key created");
                    return Ok(Response::new(pb::CreateKeyResponse {
                        key: Some(convert::key(&key)),
                        secret: minted.secret.expose().to_owned(),
                    }));
                }
                Err(StoreError::KeyIdTaken) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(store_status(StoreError::KeyIdTaken))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        self.authorize(&request).await?;
        let req = request.into_inner();
        let team = req.team.trim();
        let filter = KeyFilter {
            team: (!team.is_empty()).then(|| team.to_owned()),
            include_revoked: req.include_revoked,
        };
        let keys = self.store.list_keys(&filter).await.map_err(store_status)?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.iter().map(convert::key).collect(),
        }))
    }

    async fn revoke_key(
        &self,
        request: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        self.authorize(&request).await?;
        let public_id = domain::parse_public_id(&request.get_ref().public_id).map_err(invalid)?;
        let key = self
            .store
            .revoke_key(&public_id, Timestamp::now())
            .await
            .map_err(store_status)?;
        tracing::info!(public_id = %key.public_id, "key revoked");
        Ok(Response::new(convert::key(&key)))
    }

    async fn get_team(&self, _request: Request<pb::TeamRef>) -> Result<Response<pb::Team>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn update_team(&self, _request: Request<pb::UpdateTeamRequest>) -> Result<Response<pb::Team>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn block_team(&self, _request: Request<pb::TeamRef>) -> Result<Response<pb::Team>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn unblock_team(&self, _request: Request<pb::TeamRef>) -> Result<Response<pb::Team>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn get_key(&self, _request: Request<pb::KeyRef>) -> Result<Response<pb::Key>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn update_key(&self, _request: Request<pb::UpdateKeyRequest>) -> Result<Response<pb::Key>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn block_key(&self, _request: Request<pb::KeyRef>) -> Result<Response<pb::Key>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn unblock_key(&self, _request: Request<pb::KeyRef>) -> Result<Response<pb::Key>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn create_user(&self, _request: Request<pb::CreateUserRequest>) -> Result<Response<pb::User>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn update_user(&self, _request: Request<pb::UpdateUserRequest>) -> Result<Response<pb::User>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn get_user(&self, _request: Request<pb::UserRef>) -> Result<Response<pb::User>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn list_users(&self, _request: Request<pb::ListUsersRequest>) -> Result<Response<pb::ListUsersResponse>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn create_model(&self, _request: Request<pb::CreateModelRequest>) -> Result<Response<pb::Model>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn update_model(&self, _request: Request<pb::UpdateModelRequest>) -> Result<Response<pb::Model>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn list_models(&self, _request: Request<pb::ListModelsRequest>) -> Result<Response<pb::ListModelsResponse>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn delete_model(&self, _request: Request<pb::ModelRef>) -> Result<Response<pb::Model>, Status> {
        Err(Status::unimplemented("in progress"))
    }

    async fn get_spend(&self, _request: Request<pb::GetSpendRequest>) -> Result<Response<pb::SpendReport>, Status> {
        Err(Status::unimplemented("in progress"))
    }
}
