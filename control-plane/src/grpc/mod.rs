//! The gRPC surface: proto <-> domain mapping, the admin, audit and policy services, reflection.

mod admin;
pub mod audit;
mod convert;
mod dataplane;
mod identity;
mod policy;

pub use admin::AdminApi;
pub use audit::AuditApi;
pub use policy::PolicyApi;

use tonic::Status;

use crate::store::StoreError;

/// Encoded descriptors of `modelgate.v1`, served by reflection so `grpcurl list` works.
pub fn reflection_services() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(modelgate_proto::v1::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(modelgate_proto::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok((v1, v1alpha))
}

/// Maps a store error to a status a person can act on; internal details go to the log only.
fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::TeamAliasTaken(_)
        | StoreError::TeamIdTaken(_)
        | StoreError::UserExists(_)
        | StoreError::ModelExists(_)
        | StoreError::DataPlaneNameTaken(_)
        | StoreError::BatchFromAnotherDataPlane(_)
        | StoreError::IdentityProviderExists(_)
        | StoreError::BudgetExists(_) => Status::already_exists(e.to_string()),
        StoreError::IdentityProviderNotFound(_)
        | StoreError::TeamNotFound(_)
        | StoreError::KeyNotFound(_)
        | StoreError::UserNotFound(_)
        | StoreError::ModelNotFound(_)
        | StoreError::DataPlaneTokenNotFound(_)
        | StoreError::AdminKeyNotFound(_)
        | StoreError::BudgetNotFound(_) => Status::not_found(e.to_string()),
        StoreError::BudgetInUse { .. } => Status::failed_precondition(e.to_string()),
        StoreError::Invalid(_) => Status::invalid_argument(e.to_string()),
        StoreError::KeyRevoked(_) => Status::failed_precondition(e.to_string()),
        StoreError::KeyIdTaken => Status::aborted("key id collision, please retry"),
        e if e.is_transient() => {
            tracing::warn!(error = %e, "store unavailable");
            Status::unavailable("the database is unavailable, retry later")
        }
        e => {
            tracing::error!(error = %e, "store failure");
            Status::internal("internal storage error (see the control plane's log)")
        }
    }
}
