//! `modelgate.v1.PolicyService`: what every Envoy's filter polls and reports to.

use std::sync::Arc;

use modelgate_proto::v1 as pb;
use modelgate_proto::v1::policy_service_server::PolicyService;
use prost::Message;
use tonic::{Request, Response, Status};

use super::store_status;
use crate::clock::Timestamp;
use crate::domain::{UsageBatch, UsageEntry, UsageReceipt, ValidationError};
use crate::snapshot::{SnapshotAnswer, SnapshotCache};
use crate::store::Store;

const MAX_ID_LEN: usize = 128;

pub struct PolicyApi<S> {
    store: S,
    snapshots: Arc<SnapshotCache<S>>,
}

impl<S: Store> PolicyApi<S> {
    pub fn new(store: S, snapshots: Arc<SnapshotCache<S>>) -> Self {
        Self { store, snapshots }
    }
}

fn usage_entry(record: &pb::UsageRecord) -> UsageEntry {
    UsageEntry {
        request_id: record.request_id.clone(),
        timestamp: Timestamp::from_millis(record.timestamp_ms),
        key_id: record.key_id.clone(),
        team_id: record.team_id.clone(),
        user_id: record.user_id.clone(),
        model: if record.model_resolved.is_empty() {
            record.model_requested.clone()
        } else {
            record.model_resolved.clone()
        },
        tokens_in: i64::try_from(record.tokens_in).unwrap_or(i64::MAX),
        tokens_out: i64::try_from(record.tokens_out).unwrap_or(i64::MAX),
        spend: record.spend,
        encoded: record.encode_to_vec(),
    }
}

#[tonic::async_trait]
impl<S: Store> PolicyService for PolicyApi<S> {
    async fn get_snapshot(
        &self,
        request: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<pb::GetSnapshotResponse>, Status> {
        let req = request.into_inner();
        let answer = self
            .snapshots
            .answer(req.known_version)
            .await
            .map_err(store_status)?;
        let (version, snapshot) = match answer {
            SnapshotAnswer::Unchanged { version } => (version, None),
            SnapshotAnswer::Changed(s) => {
                tracing::debug!(node_id = %req.node_id, from = req.known_version, to = s.version, "sending snapshot");
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
        let batch = UsageBatch {
            batch_id: batch_id.to_owned(),
            node_id: req.node_id.clone(),
            received_at: Timestamp::now(),
            entries: req.records.iter().map(usage_entry).collect(),
        };
        let receipt = self
            .store
            .record_usage(&batch)
            .await
            .map_err(store_status)?;
        let response = match receipt {
            UsageReceipt::Stored { records } => {
                tracing::debug!(batch_id, node_id = %req.node_id, records, "usage batch stored");
                pb::ReportUsageResponse {
                    accepted: records,
                    duplicate: false,
                }
            }
            UsageReceipt::Duplicate { records } => {
                tracing::info!(batch_id, node_id = %req.node_id, "duplicate usage batch ignored");
                pb::ReportUsageResponse {
                    accepted: records,
                    duplicate: true,
                }
            }
        };
        Ok(Response::new(response))
    }
}
