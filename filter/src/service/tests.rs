use modelgate_proto::v1::{GetSnapshotResponse, PolicySnapshot, RequestStatus};

use super::*;
use crate::config::PluginConfig;
use crate::host::fake::{DispatchedCall, FakeHost};
use crate::policy::tests::snapshot;
use crate::snapshot::{HEAD_KEY, SNAPSHOT_KEY};

fn config(extra: &str) -> ServiceConfig {
    let json = format!(
        r#"{{"role": "service", "control_plane_cluster": "cp", "control_plane_token": "mgdp-abcdefghijkl-secret", "node_id": "envoy-a", "tick_ms": 1000, "grpc_timeout_ms": 2000{extra}}}"#
    );
    match PluginConfig::parse(json.as_bytes()).unwrap() {
        PluginConfig::Service(config) => config,
        other => panic!("not a service config: {other:?}"),
    }
}

fn started(extra: &str) -> (FakeHost, Service) {
    let host = FakeHost::new();
    let service = Service::new(config(extra), &host);
    (host, service)
}

fn calls_to(host: &FakeHost, method: &str) -> Vec<DispatchedCall> {
    host.take_calls()
        .into_iter()
        .filter(|c| c.method == method)
        .collect()
}

fn only_call(host: &FakeHost, method: &str) -> DispatchedCall {
    let mut calls = calls_to(host, method);
    assert_eq!(calls.len(), 1, "expected one {method} call");
    calls.remove(0)
}

fn snapshot_reply(version: u64, snapshot: Option<PolicySnapshot>) -> Vec<u8> {
    GetSnapshotResponse {
        version,
        snapshot,
        server_time_ms: 0,
    }
    .encode_to_vec()
}

fn head(host: &FakeHost) -> Option<SnapshotHead> {
    SnapshotHead::decode(&host.shared(HEAD_KEY)?)
}

fn record(id: &str) -> Vec<u8> {
    UsageRecord {
        request_id: id.to_owned(),
        status: RequestStatus::Success as i32,
        ..UsageRecord::default()
    }
    .encode_to_vec()
}

fn ack() -> Vec<u8> {
    ReportUsageResponse {
        accepted: 1,
        duplicate: false,
    }
    .encode_to_vec()
}

fn batch(call: &DispatchedCall) -> ReportUsageRequest {
    ReportUsageRequest::decode(call.message.as_slice()).unwrap()
}

fn ids(batch: &ReportUsageRequest) -> Vec<&str> {
    batch
        .records
        .iter()
        .map(|r| r.request_id.as_str())
        .collect()
}

const FAILED: GrpcReply<'static> = GrpcReply::Failed {
    status: 14,
    message: "upstream connect error",
};

#[test]
fn polls_the_policy_service_once_per_tick_without_piling_up_calls() {
    let (host, mut service) = started("");
    service.on_tick(&host);
    let call = only_call(&host, GET_SNAPSHOT);
    assert_eq!(
        (call.cluster.as_str(), call.service.as_str()),
        ("cp", "modelgate.v1.PolicyService")
    );
    assert_eq!(call.timeout_ms, 2000);
    let request = GetSnapshotRequest::decode(call.message.as_slice()).unwrap();
    assert_eq!(
        (request.known_version, request.node_id.as_str()),
        (0, "envoy-a")
    );

    host.advance(1000);
    service.on_tick(&host);
    assert!(
        calls_to(&host, GET_SNAPSHOT).is_empty(),
        "still waiting for the first answer"
    );
}

#[test]
fn every_call_carries_the_data_plane_token() {
    let (host, mut service) = started("");
    host.push_queue(USAGE_QUEUE, &record("r1"));
    service.on_tick(&host);
    let calls = host.take_calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, [GET_SNAPSHOT, REPORT_USAGE]);
    for call in &calls {
        assert_eq!(
            call.initial_metadata,
            [(
                "authorization".to_owned(),
                b"Bearer mgdp-abcdefghijkl-secret".to_vec()
            )],
            "{} without the token",
            call.method
        );
    }
}

#[test]
fn publishes_a_new_snapshot_then_only_refreshes_contact() {
    let (host, mut service) = started("");
    service.on_tick(&host);
    let call = only_call(&host, GET_SNAPSHOT);
    service.on_grpc_reply(
        &host,
        call.token,
        GrpcReply::Ok(&snapshot_reply(4, Some(snapshot(4)))),
    );
    assert_eq!(
        host.shared(SNAPSHOT_KEY).unwrap(),
        snapshot(4).encode_to_vec()
    );
    assert_eq!(
        head(&host),
        Some(SnapshotHead {
            version: 4,
            last_contact_ms: FakeHost::START_MS
        })
    );

    host.advance(1000);
    service.on_tick(&host);
    let call = only_call(&host, GET_SNAPSHOT);
    assert_eq!(
        GetSnapshotRequest::decode(call.message.as_slice())
            .unwrap()
            .known_version,
        4
    );
    host.put_shared(SNAPSHOT_KEY, b"untouched");
    service.on_grpc_reply(&host, call.token, GrpcReply::Ok(&snapshot_reply(4, None)));
    assert_eq!(host.shared(SNAPSHOT_KEY).unwrap(), b"untouched");
    assert_eq!(
        head(&host).unwrap().last_contact_ms,
        FakeHost::START_MS + 1000
    );
}

#[test]
fn failures_leave_the_last_contact_alone() {
    let (host, mut service) = started("");
    service.on_tick(&host);
    let call = only_call(&host, GET_SNAPSHOT);
    service.on_grpc_reply(
        &host,
        call.token,
        GrpcReply::Ok(&snapshot_reply(1, Some(snapshot(1)))),
    );
    for _ in 0..3 {
        host.advance(1000);
        service.on_tick(&host);
        let call = only_call(&host, GET_SNAPSHOT);
        service.on_grpc_reply(&host, call.token, FAILED);
    }
    host.advance(1000);
    service.on_tick(&host);
    let call = only_call(&host, GET_SNAPSHOT);
    service.on_grpc_reply(&host, call.token, GrpcReply::Ok(b"\xff\xff"));
    assert_eq!(head(&host).unwrap().last_contact_ms, FakeHost::START_MS);
}

#[test]
fn unchanged_without_a_snapshot_publishes_nothing() {
    let (host, mut service) = started("");
    service.on_tick(&host);
    let call = only_call(&host, GET_SNAPSHOT);
    service.on_grpc_reply(&host, call.token, GrpcReply::Ok(&snapshot_reply(0, None)));
    assert_eq!(head(&host), None, "workers keep failing closed");
}

#[test]
fn a_version_mismatch_asks_for_the_whole_snapshot() {
    let (host, mut service) = started("");
    service.on_tick(&host);
    let call = only_call(&host, GET_SNAPSHOT);
    service.on_grpc_reply(
        &host,
        call.token,
        GrpcReply::Ok(&snapshot_reply(9, Some(snapshot(9)))),
    );
    host.advance(1000);
    service.on_tick(&host);
    let call = only_call(&host, GET_SNAPSHOT);
    service.on_grpc_reply(&host, call.token, GrpcReply::Ok(&snapshot_reply(3, None)));
    assert_eq!(
        head(&host).unwrap().last_contact_ms,
        FakeHost::START_MS,
        "not trusted as contact"
    );
    host.advance(1000);
    service.on_tick(&host);
    let call = only_call(&host, GET_SNAPSHOT);
    assert_eq!(
        GetSnapshotRequest::decode(call.message.as_slice())
            .unwrap()
            .known_version,
        0
    );
}

#[test]
fn a_call_that_never_returns_is_abandoned_and_made_again() {
    let (host, mut service) = started("");
    service.on_tick(&host);
    let first = only_call(&host, GET_SNAPSHOT);
    host.advance(3999);
    service.on_tick(&host);
    assert!(calls_to(&host, GET_SNAPSHOT).is_empty());
    host.advance(1);
    service.on_tick(&host);
    let second = only_call(&host, GET_SNAPSHOT);
    assert_ne!(first.token, second.token);
    // A late answer to the abandoned call changes nothing.
    service.on_grpc_reply(
        &host,
        first.token,
        GrpcReply::Ok(&snapshot_reply(2, Some(snapshot(2)))),
    );
    assert_eq!(head(&host), None);
}

#[test]
fn a_refused_dispatch_is_tried_again_next_tick() {
    let host = FakeHost::new().refusing_dispatch();
    let mut service = Service::new(config(""), &host);
    service.on_tick(&host);
    assert!(host.take_calls().is_empty());
    host.set_refuse_dispatch(false);
    service.on_tick(&host);
    only_call(&host, GET_SNAPSHOT);
}

#[test]
fn usage_batches_are_retried_with_the_same_id_until_acknowledged() {
    let (host, mut service) = started("");
    for id in ["r1", "r2", "r3"] {
        host.push_queue(USAGE_QUEUE, &record(id));
    }
    service.on_tick(&host);
    let first = only_call(&host, REPORT_USAGE);
    let sent = batch(&first);
    assert_eq!(ids(&sent), ["r1", "r2", "r3"]);
    assert_eq!(sent.node_id, "envoy-a");
    assert!(
        sent.batch_id.starts_with("envoy-a-1700000000000-"),
        "{}",
        sent.batch_id
    );

    service.on_grpc_reply(&host, first.token, FAILED);
    host.push_queue(USAGE_QUEUE, &record("r4"));
    host.advance(1000);
    service.on_tick(&host);
    let retry = only_call(&host, REPORT_USAGE);
    assert_eq!(batch(&retry).batch_id, sent.batch_id);
    assert_eq!(
        ids(&batch(&retry)),
        ["r1", "r2", "r3"],
        "a retry resends exactly the batch"
    );

    service.on_grpc_reply(&host, retry.token, GrpcReply::Ok(&ack()));
    let next = only_call(&host, REPORT_USAGE);
    assert_ne!(batch(&next).batch_id, sent.batch_id);
    assert_eq!(ids(&batch(&next)), ["r4"]);
    service.on_grpc_reply(&host, next.token, GrpcReply::Ok(&ack()));
    assert_eq!(service.held_records(), 0);
}

#[test]
fn a_backlog_is_shipped_batch_after_batch_without_waiting_for_ticks() {
    let (host, mut service) = started(r#", "usage_batch_records": 2"#);
    for i in 0..5 {
        host.push_queue(USAGE_QUEUE, &record(&format!("r{i}")));
    }
    service.on_tick(&host);
    let mut shipped = Vec::new();
    let mut batch_ids = Vec::new();
    while let Some(call) = calls_to(&host, REPORT_USAGE).pop() {
        let sent = batch(&call);
        shipped.extend(ids(&sent).into_iter().map(str::to_owned));
        batch_ids.push(sent.batch_id);
        service.on_grpc_reply(&host, call.token, GrpcReply::Ok(&ack()));
    }
    assert_eq!(shipped, ["r0", "r1", "r2", "r3", "r4"]);
    assert_eq!(batch_ids.len(), 3);
    batch_ids.dedup();
    assert_eq!(batch_ids.len(), 3, "every batch has its own id");
}

#[test]
fn the_buffer_is_bounded_and_drops_are_counted() {
    let (host, mut service) = started(r#", "usage_batch_records": 2, "usage_buffer_records": 3"#);
    host.set_refuse_dispatch(true);
    for i in 0..10 {
        host.push_queue(USAGE_QUEUE, &record(&format!("r{i}")));
    }
    service.on_tick(&host);
    assert_eq!(service.held_records(), 3);
    assert_eq!(host.counter(RECORDS_DROPPED_COUNTER), 7);
    assert!(
        host.queued(USAGE_QUEUE).is_empty(),
        "the host queue is always drained"
    );

    host.set_refuse_dispatch(false);
    service.on_tick(&host);
    let call = only_call(&host, REPORT_USAGE);
    assert_eq!(
        ids(&batch(&call)),
        ["r0", "r1"],
        "the oldest records are kept"
    );
}

#[test]
fn undecodable_records_are_dropped_and_counted() {
    let (host, mut service) = started("");
    host.push_queue(USAGE_QUEUE, b"\xff\xff\xff");
    host.push_queue(USAGE_QUEUE, &record("ok"));
    service.on_tick(&host);
    assert_eq!(host.counter(RECORDS_DROPPED_COUNTER), 1);
    assert_eq!(ids(&batch(&only_call(&host, REPORT_USAGE))), ["ok"]);
}

#[test]
fn batch_ids_differ_between_service_starts() {
    let host = FakeHost::new();
    let prefix = |service: &mut Service| {
        host.push_queue(USAGE_QUEUE, &record("x"));
        service.on_tick(&host);
        batch(&only_call(&host, REPORT_USAGE)).batch_id
    };
    let first = prefix(&mut Service::new(config(""), &host));
    let second = prefix(&mut Service::new(config(""), &host));
    assert_ne!(
        first, second,
        "a restarted service must not reuse batch ids"
    );
}

#[test]
fn unknown_signing_keys_the_workers_met_go_out_with_the_next_poll_once() {
    let (host, mut service) = started("");
    crate::identity::unknown_keys::report(&host, "https://idp.example.com", "k2").unwrap();
    service.on_tick(&host);
    let call = only_call(&host, GET_SNAPSHOT);
    let sent = GetSnapshotRequest::decode(call.message.as_slice())
        .unwrap()
        .unknown_signing_keys;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].issuer.as_str(), sent[0].kid.as_str()),
        ("https://idp.example.com", "k2")
    );
    service.on_grpc_reply(&host, call.token, GrpcReply::Ok(&snapshot_reply(1, None)));
    service.on_tick(&host);
    let again = only_call(&host, GET_SNAPSHOT);
    assert!(GetSnapshotRequest::decode(again.message.as_slice())
        .unwrap()
        .unknown_signing_keys
        .is_empty());
}
