//! The plain-HTTP side: liveness and readiness for orchestrators and test harnesses, and the
//! admin REST API ([`crate::rest`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::admin::Admin;
use crate::identity::admin::IdentityAdmin;
use crate::store::Store;

pub fn router<S: Store>(store: S, admin: Arc<Admin<S>>, identity: Arc<IdentityAdmin<S>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/ready", get(ready::<S>))
        .with_state(store)
        .merge(crate::rest::router(admin, identity))
}

/// Ready while the store answers, so a load balancer stops sending admin traffic to a replica
/// that lost its database.
async fn ready<S: Store>(State(store): State<S>) -> (StatusCode, &'static str) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}
