//! `modelgate.v1.AuditService`: the audit log, for callers whose role may read it (pruning:
//! admins only).

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use modelgate_proto::v1 as pb;
use modelgate_proto::v1::audit_service_server::AuditService;
use prost::Message;
use tonic::{Request, Response, Status};

use super::{store_status, AdminApi};
use crate::admin::Target;
use crate::audit::{
    AuditError, AuditFilter, AuditLog, Failure, GroupBy, QueryCursor, RecordKind, RecordStatus,
    ReportRow, StoredRecord, VerifyReport,
};
use crate::authz::Action;
use crate::clock::Timestamp;
use crate::store::Store;

pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1_000;

pub struct AuditApi<S> {
    log: Arc<AuditLog<S>>,
    /// Checks the caller the same way the admin API does.
    admin: AdminApi<S>,
}

impl<S: Store> AuditApi<S> {
    pub fn new(log: Arc<AuditLog<S>>, admin: AdminApi<S>) -> Self {
        Self { log, admin }
    }
}

/// Empty strings, zero times and an unspecified status mean "any".
pub fn filter_from_proto(f: Option<&pb::AuditFilter>) -> AuditFilter {
    let Some(f) = f else {
        return AuditFilter::default();
    };
    let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let time = |ms: i64| (ms != 0).then(|| Timestamp::from_millis(ms));
    AuditFilter {
        from: time(f.from_ms),
        to: time(f.to_ms),
        user_id: text(&f.user_id),
        key_id: text(&f.key_id),
        team_id: text(&f.team_id),
        model: text(&f.model),
        status: match f.status() {
            pb::RequestStatus::Unspecified => None,
            s => Some(RecordStatus::from_proto(s)),
        },
        kind: RecordKind::parse(f.kind.trim()),
    }
}

pub fn filter_to_proto(f: &AuditFilter) -> pb::AuditFilter {
    pb::AuditFilter {
        from_ms: f.from.map_or(0, Timestamp::as_millis),
        to_ms: f.to.map_or(0, Timestamp::as_millis),
        user_id: f.user_id.clone().unwrap_or_default(),
        key_id: f.key_id.clone().unwrap_or_default(),
        team_id: f.team_id.clone().unwrap_or_default(),
        model: f.model.clone().unwrap_or_default(),
        status: f
            .status
            .map_or(pb::RequestStatus::Unspecified, RecordStatus::to_proto)
            .into(),
        kind: f
            .kind
            .map(RecordKind::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

pub fn group_by_from_proto(g: pb::AuditGroupBy) -> Option<GroupBy> {
    match g {
        pb::AuditGroupBy::Unspecified => None,
        pb::AuditGroupBy::Key => Some(GroupBy::Key),
        pb::AuditGroupBy::Team => Some(GroupBy::Team),
        pb::AuditGroupBy::User => Some(GroupBy::User),
        pb::AuditGroupBy::Model => Some(GroupBy::Model),
    }
}

pub fn group_by_to_proto(g: GroupBy) -> pb::AuditGroupBy {
    match g {
        GroupBy::Key => pb::AuditGroupBy::Key,
        GroupBy::Team => pb::AuditGroupBy::Team,
        GroupBy::User => pb::AuditGroupBy::User,
        GroupBy::Model => pb::AuditGroupBy::Model,
    }
}

pub fn entry_to_proto(stored: &StoredRecord) -> Result<pb::AuditEntry, prost::DecodeError> {
    Ok(pb::AuditEntry {
        seq: stored.seq,
        record: Some(pb::UsageRecord::decode(stored.record.as_slice())?),
    })
}

pub fn report_row_to_proto(r: &ReportRow) -> pb::AuditReportRow {
    pb::AuditReportRow {
        group: r.group.clone(),
        requests: r.requests,
        success: r.success,
        blocked: r.blocked,
        errored: r.errored,
        cancelled: r.cancelled,
        tokens_in: r.tokens_in,
        tokens_out: r.tokens_out,
        spend: r.spend,
    }
}

pub fn report_row_from_proto(r: &pb::AuditReportRow) -> ReportRow {
    ReportRow {
        group: r.group.clone(),
        requests: r.requests,
        success: r.success,
        blocked: r.blocked,
        errored: r.errored,
        cancelled: r.cancelled,
        tokens_in: r.tokens_in,
        tokens_out: r.tokens_out,
        spend: r.spend,
    }
}

pub fn verify_to_proto(result: &Result<VerifyReport, Failure>) -> pb::AuditVerifyResponse {
    match result {
        Ok(r) => pb::AuditVerifyResponse {
            ok: true,
            records: r.records,
            checkpoints: r.checkpoints,
            first_seq: r.first_seq.unwrap_or(0),
            last_seq: r.last_seq.unwrap_or(0),
            unsigned_records: r.unsigned_records,
            failure: None,
        },
        Err(f) => pb::AuditVerifyResponse {
            ok: false,
            failure: Some(pb::AuditFailure {
                seq: f.seq.unwrap_or(0),
                checkpoint_no: f.checkpoint.unwrap_or(0),
                reason: f.reason.clone(),
            }),
            ..Default::default()
        },
    }
}

fn audit_status(e: AuditError) -> Status {
    match e {
        AuditError::Store(e) => store_status(e),
        e => {
            tracing::error!(error = %e, "audit failure");
            Status::internal("internal audit error (see the control plane's log)")
        }
    }
}

#[tonic::async_trait]
impl<S: Store> AuditService for AuditApi<S> {
    async fn query(
        &self,
        request: Request<pb::AuditQueryRequest>,
    ) -> Result<Response<pb::AuditQueryResponse>, Status> {
        let caller = self.admin.caller(&request).await?;
        self.admin
            .permit(&caller, Action::ReadAudit, Target::NONE)
            .await?;
        let req = request.into_inner();
        let filter = filter_from_proto(req.filter.as_ref());
        let limit = match req.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            Some(
                QueryCursor::parse_token(&req.page_token)
                    .ok_or_else(|| Status::invalid_argument("invalid page_token"))?,
            )
        };
        let page = self
            .log
            .store()
            .query_records(&filter, after, limit)
            .await
            .map_err(store_status)?;
        let entries = page
            .iter()
            .map(entry_to_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                tracing::error!(error = %e, "an audit record does not decode");
                Status::data_loss("an audit record does not decode; run `modelgate audit verify`")
            })?;
        let next_page_token = match page.last() {
            Some(last) if page.len() == limit as usize => last.cursor().to_token(),
            _ => String::new(),
        };
        Ok(Response::new(pb::AuditQueryResponse {
            entries,
            next_page_token,
        }))
    }

    async fn report(
        &self,
        request: Request<pb::AuditReportRequest>,
    ) -> Result<Response<pb::AuditReportResponse>, Status> {
        let caller = self.admin.caller(&request).await?;
        self.admin
            .permit(&caller, Action::ReadAudit, Target::NONE)
            .await?;
        let req = request.into_inner();
        let by = group_by_from_proto(req.group_by())
            .ok_or_else(|| Status::invalid_argument("group_by is required"))?;
        let rows = self
            .log
            .store()
            .report(&filter_from_proto(req.filter.as_ref()), by)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::AuditReportResponse {
            rows: rows.iter().map(report_row_to_proto).collect(),
        }))
    }

    async fn verify(
        &self,
        request: Request<pb::AuditVerifyRequest>,
    ) -> Result<Response<pb::AuditVerifyResponse>, Status> {
        let caller = self.admin.caller(&request).await?;
        self.admin
            .permit(&caller, Action::ReadAudit, Target::NONE)
            .await?;
        let keys = request
            .get_ref()
            .trusted_public_keys
            .iter()
            .map(|k| {
                <[u8; 32]>::try_from(k.as_slice())
                    .ok()
                    .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                    .ok_or_else(|| {
                        Status::invalid_argument(
                            "trusted_public_keys must be Ed25519 keys (32 bytes)",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let result = self.log.verify(&keys).await.map_err(audit_status)?;
        if let Err(f) = &result {
            tracing::error!(failure = %f, "audit log verification failed");
        }
        Ok(Response::new(verify_to_proto(&result)))
    }

    async fn prune(
        &self,
        request: Request<pb::AuditPruneRequest>,
    ) -> Result<Response<pb::AuditPruneResponse>, Status> {
        let caller = self.admin.caller(&request).await?;
        self.admin
            .permit(&caller, Action::PruneAudit, Target::NONE)
            .await?;
        let cutoff = Timestamp::from_millis(request.get_ref().older_than_ms);
        if cutoff.as_millis() <= 0 || cutoff > Timestamp::now() {
            return Err(Status::invalid_argument(
                "older_than_ms must be a time in the past (milliseconds since the Unix epoch)",
            ));
        }
        let outcome = self.log.prune(cutoff).await.map_err(audit_status)?;
        tracing::info!(
            cutoff = %cutoff.to_rfc3339(),
            records = outcome.records_deleted,
            checkpoints = outcome.checkpoints_deleted,
            "audit log pruned"
        );
        self.admin
            .record_write(&caller, Action::PruneAudit, Target::NONE)
            .await;
        let (anchor_checkpoint_no, anchor_seq) = outcome.anchor.unwrap_or((0, 0));
        Ok(Response::new(pb::AuditPruneResponse {
            records_deleted: outcome.records_deleted,
            checkpoints_deleted: outcome.checkpoints_deleted,
            anchor_checkpoint_no,
            anchor_seq,
        }))
    }

    async fn get_public_key(
        &self,
        request: Request<pb::GetAuditPublicKeyRequest>,
    ) -> Result<Response<pb::GetAuditPublicKeyResponse>, Status> {
        let caller = self.admin.caller(&request).await?;
        self.admin
            .permit(&caller, Action::ReadAudit, Target::NONE)
            .await?;
        Ok(Response::new(pb::GetAuditPublicKeyResponse {
            public_key: self.log.public_key().to_vec(),
        }))
    }
}
