//! The `AdminService` calls for data-plane tokens: proto <-> [`crate::dataplane`], after the
//! caller was authorized like every admin call.

use modelgate_proto::v1 as pb;
use tonic::{Response, Status};

use super::store_status;
use crate::dataplane::{DataPlaneError, DataPlaneToken, DataPlanes};
use crate::store::Store;

type Answer<T> = Result<Response<T>, Status>;

fn status(e: DataPlaneError) -> Status {
    match e {
        DataPlaneError::InvalidName(_) => Status::invalid_argument(e.to_string()),
        DataPlaneError::Store(e) => store_status(e),
        DataPlaneError::Random(e) => {
            tracing::error!(error = %e, "cannot mint a data-plane token");
            Status::internal("cannot draw random bytes for a token")
        }
    }
}

fn token(t: &DataPlaneToken) -> pb::DataPlaneToken {
    pb::DataPlaneToken {
        name: t.name.clone(),
        public_id: t.public_id.clone(),
        created_at_ms: t.created_at.as_millis(),
        revoked_at_ms: t.revoked_at.map_or(0, |at| at.as_millis()),
        last_used_at_ms: t.last_used_at.map_or(0, |at| at.as_millis()),
    }
}

pub(super) async fn create<S: Store>(
    data_planes: &DataPlanes<S>,
    request: pb::CreateDataPlaneTokenRequest,
) -> Answer<pb::CreateDataPlaneTokenResponse> {
    let created = data_planes.create(&request.name).await.map_err(status)?;
    Ok(Response::new(pb::CreateDataPlaneTokenResponse {
        token: Some(token(&created.token)),
        secret: created.secret.expose().to_owned(),
    }))
}

pub(super) async fn list<S: Store>(
    data_planes: &DataPlanes<S>,
    request: pb::ListDataPlaneTokensRequest,
) -> Answer<pb::ListDataPlaneTokensResponse> {
    let tokens = data_planes
        .list(request.include_revoked)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::ListDataPlaneTokensResponse {
        tokens: tokens.iter().map(token).collect(),
    }))
}

pub(super) async fn revoke<S: Store>(
    data_planes: &DataPlanes<S>,
    request: pb::RevokeDataPlaneTokenRequest,
) -> Answer<pb::DataPlaneToken> {
    let revoked = data_planes.revoke(&request.token).await.map_err(status)?;
    Ok(Response::new(token(&revoked)))
}
