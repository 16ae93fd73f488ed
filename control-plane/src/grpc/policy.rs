//! `modelgate.v1.PolicyService`: what every Envoy's filter polls and reports to. Every call
//! first presents a data-plane token ([`PolicyApi::authenticate`]).

use std::sync::Arc;

use modelgate_proto::v1 as pb;
use modelgate_proto::v1::policy_service_server::PolicyService;
use tonic::{Request, Response, Status};

use super::store_status;
use crate::audit::{entry_from_record, AuditLog};
use crate::clock::Timestamp;
use crate::dataplane::{AuthenticatedDataPlane, DataPlaneRefusal, DataPlanes};
use crate::domain::{UsageBatch, UsageReceipt, ValidationError};
use crate::identity::refresher::JwksRefresher;
use crate::snapshot::{SnapshotAnswer, SnapshotCache};
use crate::store::{Store, StoreError};

const MAX_ID_LEN: usize = 128;

pub struct PolicyApi<S> {
    audit: Arc<AuditLog<S>>,
    snapshots: Arc<SnapshotCache<S>>,
    data_planes: DataPlanes<S>,
    jwks: Arc<JwksRefresher<S>>,
}

impl<S: Store> PolicyApi<S> {
    pub fn new(
        audit: Arc<AuditLog<S>>,
        snapshots: Arc<SnapshotCache<S>>,
        data_planes: DataPlanes<S>,
        jwks: Arc<JwksRefresher<S>>,
    ) -> Self {
        Self {
            audit,
            snapshots,
            data_planes,
            jwks,
        }
    }

    /// The one check at the top of every call: nothing is read or stored for a caller
    /// without a live data-plane token. Refusals are logged with the peer, never the token.
    async fn authenticate<T>(
        &self,
        request: &Request<T>,
    ) -> Result<AuthenticatedDataPlane, Status> {
        let value =
            match request.metadata().get("authorization") {
                None => None,
                Some(v) => Some(v.to_str().map_err(|_| {
                    Status::unauthenticated(DataPlaneRefusal::Malformed.to_string())
                })?),
            };
        self.data_planes
            .authenticate(value)
            .await
            .map_err(|refusal| {
                let peer = request
                    .remote_addr()
                    .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
                match refusal {
                    DataPlaneRefusal::Store(e) => store_status(e),
                    refusal => {
                        tracing::warn!(%peer, reason = %refusal, "policy call refused");
                        Status::unauthenticated(refusal.to_string())
                    }
                }
            })
    }
}

#[tonic::async_trait]
impl<S: Store> PolicyService for PolicyApi<S> {
    async fn get_snapshot(
        &self,
        request: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<pb::GetSnapshotResponse>, Status> {
        let data_plane = self.authenticate(&request).await?;
        let req = request.into_inner();
        if !req.unknown_signing_keys.is_empty() {
            self.jwks.report_unknown_kids(&req.unknown_signing_keys);
        }
        let answer = self
            .snapshots
            .answer(req.known_version)
            .await
            .map_err(store_status)?;
        let (version, snapshot) = match answer {
            SnapshotAnswer::Unchanged { version } => (version, None),
            SnapshotAnswer::Changed(s) => {
                tracing::debug!(data_plane = %data_plane.name, node_id = %req.node_id, from = req.known_version, to = s.version, "sending snapshot");
                (s.version, Some(pb::PolicySnapshot::clone(&s)))
            }
        };
        Ok(Response::new(pb::GetSnapshotResponse {
            version,
            snapshot,
            server_time_ms: Timestamp::now().as_millis(),
        }))
    }

    async fn report_usage(
        &self,
        request: Request<pb::ReportUsageRequest>,
    ) -> Result<Response<pb::ReportUsageResponse>, Status> {
        let data_plane = self.authenticate(&request).await?;
        let req = request.into_inner();
        let batch_id = req.batch_id.trim();
        if batch_id.is_empty() {
            return Err(Status::invalid_argument(
                ValidationError::MissingBatchId.to_string(),
            ));
        }
        if batch_id.len() > MAX_ID_LEN || req.node_id.len() > MAX_ID_LEN {
            return Err(Status::invalid_argument(format!(
                "batch_id and node_id must be at most {MAX_ID_LEN} bytes"
            )));
        }
        // Admin records are appended by the control plane alone: a data plane cannot forge one.
        if req.records.iter().any(|r| r.admin.is_some()) {
            return Err(Status::invalid_argument(
                "usage records cannot carry an admin action",
            ));
        }
        let batch = UsageBatch {
            batch_id: batch_id.to_owned(),
            node_id: req.node_id.clone(),
            data_plane: data_plane.name.clone(),
            received_at: Timestamp::now(),
            entries: req.records.iter().map(entry_from_record).collect(),
        };
        // Appended to the audit chain, and signed when a checkpoint is due, before the ack:
        // an acknowledged batch is durable, an unacknowledged one is retried and de-duplicated.
        let receipt = self.audit.append(&batch).await.map_err(|e| {
            if matches!(e, StoreError::BatchFromAnotherDataPlane(_)) {
                tracing::warn!(batch_id, data_plane = %data_plane.name, "usage batch id replayed by another data plane refused");
            }
            store_status(e)
        })?;
        let response = match receipt {
            UsageReceipt::Stored { records } => {
                tracing::debug!(batch_id, data_plane = %data_plane.name, node_id = %req.node_id, records, "usage batch stored");
                pb::ReportUsageResponse {
                    accepted: records,
                    duplicate: false,
                }
            }
            UsageReceipt::Duplicate { records } => {
                tracing::info!(batch_id, data_plane = %data_plane.name, node_id = %req.node_id, "duplicate usage batch ignored");
                pb::ReportUsageResponse {
                    accepted: records,
                    duplicate: true,
                }
            }
        };
        Ok(Response::new(response))
    }
}
