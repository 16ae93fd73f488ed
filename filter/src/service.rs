//! The singleton service (one per Envoy, on the main thread): on every tick it asks the
//! control plane for the policy snapshot and publishes it for the workers, and it drains the
//! usage queue and ships the records in batches, retrying each batch (same id) until the
//! control plane acknowledges it. Every call carries the data-plane token.

use std::collections::VecDeque;

use modelgate_proto::paths::{GET_SNAPSHOT, POLICY_SERVICE, REPORT_USAGE};
use modelgate_proto::v1::{
    GetSnapshotRequest, ReportUsageRequest, ReportUsageResponse, UsageRecord,
};
use prost::Message;

use crate::audit::USAGE_QUEUE;
use crate::config::ServiceConfig;
use crate::flow::RECORDS_DROPPED_COUNTER;
use crate::host::{GrpcCall, ServiceHost};
use crate::identity::unknown_keys;
use crate::policy::wire::SnapshotReply;
use crate::snapshot::{publish_head, publish_snapshot, SnapshotHead};

mod refusal;

use refusal::TokenRefusal;

/// The answer to a dispatched gRPC call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcReply<'a> {
    Ok(&'a [u8]),
    Failed { status: u32, message: &'a str },
}

/// A call in flight and when it is given up on if the host never answers (it always should,
/// the call has a timeout; this only guards against a lost callback wedging the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    token: u32,
    abandon_at_ms: i64,
}

#[derive(Debug)]
pub struct Service {
    config: ServiceConfig,
    /// Version to send as `known_version`: the one published, or 0 to ask for a whole snapshot.
    known_version: u64,
    published: bool,
    warned_no_snapshot: bool,
    snapshot_call: Option<InFlight>,
    snapshot_failures: FailureStreak,
    token_refusal: TokenRefusal,
    usage: UsageShipper,
}

impl Service {
    pub fn new(config: ServiceConfig, host: &impl ServiceHost) -> Self {
        let mut nonce = [0u8; 4];
        if let Err(err) = host.fill_random(&mut nonce) {
            // Node id and start time still make batch ids unique unless two Envoys share both.
            log::warn!("no random source for usage batch ids: {err}");
        }
        let batch_prefix = format!(
            "{}-{}-{}",
            config.node_id,
            host.now_ms(),
            hex::encode(nonce)
        );
        let usage = UsageShipper::new(&config, batch_prefix);
        Self {
            config,
            known_version: 0,
            published: false,
            warned_no_snapshot: false,
            snapshot_call: None,
            snapshot_failures: FailureStreak::default(),
            token_refusal: TokenRefusal::default(),
            usage,
        }
    }

    pub fn on_tick(&mut self, host: &impl ServiceHost) {
        self.poll_snapshot(host);
        self.ship_usage(host);
        self.usage.report_drops();
    }

    pub fn on_grpc_reply(&mut self, host: &impl ServiceHost, token: u32, reply: GrpcReply<'_>) {
        self.token_refusal.observe(reply, refusal::log_change);
        if self.snapshot_call.is_some_and(|call| call.token == token) {
            self.snapshot_call = None;
            self.on_snapshot_reply(host, reply);
        } else if self.usage.owns(token) {
            if self.usage.on_reply(reply) {
                // Acknowledged: keep going while records wait rather than one batch per tick.
                self.ship_usage(host);
            }
        } else {
            log::debug!("reply to an abandoned call {token} ignored");
        }
    }

    /// Records held for shipping (queued, and in the batch in flight).
    #[cfg(any(test, feature = "test-util"))]
    pub fn held_records(&self) -> usize {
        self.usage.held()
    }

    fn poll_snapshot(&mut self, host: &impl ServiceHost) {
        let now = host.now_ms();
        if let Some(call) = self.snapshot_call {
            if now < call.abandon_at_ms {
                return;
            }
            log::warn!(
                "GetSnapshot call {} never answered; calling again",
                call.token
            );
        }
        // Signing keys tokens named since the last poll that the snapshot lacks: the control
        // plane refetches those issuers' JWKS.
        let unknown_signing_keys = unknown_keys::take(host).unwrap_or_else(|err| {
            log::warn!("unknown signing keys not read: {err}");
            Vec::new()
        });
        let request = GetSnapshotRequest {
            known_version: self.known_version,
            node_id: self.config.node_id.clone(),
            unknown_signing_keys,
        }
        .encode_to_vec();
        self.snapshot_call = match self.dispatch(host, GET_SNAPSHOT, &request) {
            Ok(call) => Some(call),
            Err(why) => {
                self.snapshot_failures.failed(|n| {
                    log::warn!("GetSnapshot not sent ({n} in a row): {why}");
                });
                None
            }
        };
    }

    fn on_snapshot_reply(&mut self, host: &impl ServiceHost, reply: GrpcReply<'_>) {
        let response = match reply {
            GrpcReply::Ok(body) => {
                SnapshotReply::parse(body).map_err(|err| format!("undecodable response: {err}"))
            }
            GrpcReply::Failed { status, message } => {
                Err(format!("gRPC status {status}: {message}"))
            }
        };
        let response = match response {
            Ok(response) => response,
            Err(why) => {
                self.snapshot_failures.failed(|n| {
                    log::warn!(
                        "GetSnapshot failed ({n} in a row); enforcing the last snapshot until it is stale: {why}"
                    );
                });
                return;
            }
        };
        self.snapshot_failures.succeeded(|n| {
            log::info!("control plane reachable again after {n} failed GetSnapshot calls");
        });
        let head = SnapshotHead {
            version: response.version,
            last_contact_ms: host.now_ms(),
        };
        let published = match response.snapshot {
            // Published as received: each worker indexes these bytes itself (and refuses a
            // malformed snapshot), so decoding and re-encoding it here would only add a full
            // pass over every key to each new version's way to enforcement.
            Some(encoded) => {
                let published = publish_snapshot(host, encoded, head);
                if published.is_ok() {
                    log::info!(
                        "policy snapshot v{} published ({} bytes)",
                        head.version,
                        encoded.len()
                    );
                    self.known_version = head.version;
                    self.published = true;
                }
                published
            }
            None if self.published && response.version == self.known_version => {
                publish_head(host, head)
            }
            None if self.published => {
                log::warn!(
                    "control plane says v{} is current but this Envoy holds v{}; asking for the whole snapshot",
                    response.version,
                    self.known_version
                );
                self.known_version = 0;
                Ok(())
            }
            None => {
                // Once: a control plane that never sends a snapshot would repeat it every tick.
                if !std::mem::replace(&mut self.warned_no_snapshot, true) {
                    log::warn!(
                        "control plane reports v{} unchanged, but no snapshot was ever received; \
                         still failing closed",
                        response.version
                    );
                }
                Ok(())
            }
        };
        if let Err(err) = published {
            log::error!("could not publish the policy snapshot to the workers: {err}");
        }
    }

    fn ship_usage(&mut self, host: &impl ServiceHost) {
        self.usage.drain(host);
        let Some(message) = self.usage.next_message(host.now_ms()) else {
            return;
        };
        let call = self.dispatch(host, REPORT_USAGE, &message);
        self.usage.dispatched(call);
    }

    fn dispatch(
        &self,
        host: &impl ServiceHost,
        method: &str,
        message: &[u8],
    ) -> Result<InFlight, String> {
        let authorization = self.config.control_plane_token.bearer();
        let call = GrpcCall {
            cluster: &self.config.control_plane_cluster,
            service: POLICY_SERVICE,
            method,
            message,
            timeout_ms: self.config.grpc_timeout_ms,
            initial_metadata: &[("authorization", authorization.as_bytes())],
        };
        match host.dispatch_grpc(&call) {
            Ok(token) => Ok(InFlight {
                token,
                abandon_at_ms: host.now_ms()
                    + i64::from(self.config.grpc_timeout_ms)
                    + 2 * i64::from(self.config.tick_ms),
            }),
            Err(err) => Err(format!(
                "cluster {}: {err}",
                self.config.control_plane_cluster
            )),
        }
    }
}

/// Usage records on their way to the control plane, bounded.
#[derive(Debug)]
struct UsageShipper {
    batch_records: usize,
    capacity: usize,
    pending: VecDeque<UsageRecord>,
    batch: Option<Batch>,
    batch_prefix: String,
    next_seq: u64,
    node_id: String,
    dropped_unreported: u64,
    failures: FailureStreak,
}

/// One `ReportUsage` batch; its id stays the same across retries so the control plane can
/// de-duplicate.
#[derive(Debug)]
struct Batch {
    id: String,
    message: Vec<u8>,
    records: usize,
    call: Option<InFlight>,
}

impl UsageShipper {
    fn new(config: &ServiceConfig, batch_prefix: String) -> Self {
        Self {
            batch_records: usize::try_from(config.usage_batch_records).unwrap_or(usize::MAX),
            capacity: usize::try_from(config.usage_buffer_records).unwrap_or(usize::MAX),
            pending: VecDeque::new(),
            batch: None,
            batch_prefix,
            next_seq: 0,
            node_id: config.node_id.clone(),
            dropped_unreported: 0,
            failures: FailureStreak::default(),
        }
    }

    fn held(&self) -> usize {
        self.pending.len() + self.batch.as_ref().map_or(0, |batch| batch.records)
    }

    fn owns(&self, token: u32) -> bool {
        self.batch
            .as_ref()
            .and_then(|batch| batch.call)
            .is_some_and(|call| call.token == token)
    }

    /// Moves every queued record into the bounded buffer; beyond the bound, records are
    /// dropped and counted.
    fn drain(&mut self, host: &impl ServiceHost) {
        loop {
            let message = match host.dequeue(USAGE_QUEUE) {
                Ok(Some(message)) => message,
                Ok(None) => return,
                Err(err) => {
                    log::warn!("usage queue unreadable: {err}");
                    return;
                }
            };
            if self.held() >= self.capacity {
                self.drop_records(host, 1);
                continue;
            }
            match UsageRecord::decode(message.as_slice()) {
                Ok(record) => self.pending.push_back(record),
                Err(err) => {
                    log::warn!("undecodable usage record dropped: {err}");
                    self.drop_records(host, 1);
                }
            }
        }
    }

    fn drop_records(&mut self, host: &impl ServiceHost, count: u64) {
        self.dropped_unreported += count;
        host.increment_counter(RECORDS_DROPPED_COUNTER, count);
    }

    /// Drops are logged once per tick, not once per record.
    fn report_drops(&mut self) {
        if self.dropped_unreported > 0 {
            log::warn!(
                "{} usage records dropped: buffer of {} full while the control plane is unreachable",
                self.dropped_unreported,
                self.capacity
            );
            self.dropped_unreported = 0;
        }
    }

    /// The message to send now, if any: the unacknowledged batch again, or a new one.
    fn next_message(&mut self, now_ms: i64) -> Option<Vec<u8>> {
        if let Some(batch) = &self.batch {
            match batch.call {
                Some(call) if now_ms < call.abandon_at_ms => return None,
                Some(call) => {
                    log::warn!("ReportUsage call {} never answered; resending", call.token)
                }
                None => {}
            }
        } else {
            if self.pending.is_empty() {
                return None;
            }
            let take = self.pending.len().min(self.batch_records);
            let records: Vec<UsageRecord> = self.pending.drain(..take).collect();
            let id = format!("{}-{}", self.batch_prefix, self.next_seq);
            self.next_seq += 1;
            let message = ReportUsageRequest {
                batch_id: id.clone(),
                node_id: self.node_id.clone(),
                records,
            }
            .encode_to_vec();
            self.batch = Some(Batch {
                id,
                message,
                records: take,
                call: None,
            });
        }
        self.batch.as_ref().map(|batch| batch.message.clone())
    }

    fn dispatched(&mut self, call: Result<InFlight, String>) {
        let Some(batch) = &mut self.batch else {
            return;
        };
        match call {
            Ok(call) => batch.call = Some(call),
            Err(why) => {
                batch.call = None;
                let id = &batch.id;
                self.failures.failed(|n| {
                    log::warn!("usage batch {id} not sent ({n} in a row): {why}");
                });
            }
        }
    }

    /// Returns whether the batch was acknowledged (and is gone).
    fn on_reply(&mut self, reply: GrpcReply<'_>) -> bool {
        let Some(batch) = self.batch.take() else {
            return false;
        };
        let acknowledged = match reply {
            GrpcReply::Ok(body) => ReportUsageResponse::decode(body)
                .map_err(|err| format!("undecodable response: {err}")),
            GrpcReply::Failed { status, message } => {
                Err(format!("gRPC status {status}: {message}"))
            }
        };
        match acknowledged {
            Ok(response) => {
                self.failures.succeeded(|n| {
                    log::info!("usage reporting recovered after {n} failed attempts");
                });
                if response.duplicate {
                    log::info!("usage batch {} was already stored", batch.id);
                }
                true
            }
            Err(why) => {
                let (id, held) = (batch.id.clone(), self.pending.len() + batch.records);
                self.failures.failed(|n| {
                    log::warn!(
                        "usage batch {id} not acknowledged ({n} in a row; {held} records held, retrying): {why}"
                    );
                });
                self.batch = Some(Batch {
                    call: None,
                    ..batch
                });
                false
            }
        }
    }
}

/// Consecutive failures of one kind of call, so logs say when trouble starts, now and then
/// while it lasts, and when it ends, instead of once per tick.
#[derive(Debug, Default)]
struct FailureStreak {
    count: u64,
}

impl FailureStreak {
    const LOG_EVERY: u64 = 60;

    fn failed(&mut self, log: impl FnOnce(u64)) {
        self.count += 1;
        if self.count == 1 || self.count.is_multiple_of(Self::LOG_EVERY) {
            log(self.count);
        }
    }

    fn succeeded(&mut self, log: impl FnOnce(u64)) {
        if self.count > 0 {
            log(self.count);
        }
        self.count = 0;
    }
}

#[cfg(test)]
mod tests;
