//! The filter's per-request steps, natively and single-threaded: key lookup, body parse with
//! the allowlist, limit admission, SSE usage, the audit record, snapshot decode, and whole
//! requests through `RequestFlow` with the fake host, and IdP JWTs (first sight per
//! algorithm; a cached token next to a key, alone and in whole requests). `cargo bench -p modelgate-filter`
//! measures; `cargo test --benches -p modelgate-filter` runs each once (CI's smoke).

// A fixture that does not build or a request the filter refuses would make every number
// below meaningless: the bench stops loudly instead.
#![allow(clippy::expect_used)]

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use modelgate_filter::audit::{Outcome, RecordDraft};
use modelgate_filter::credential::{self, Credential, KeyDigest};
use modelgate_filter::exchange::ResponseStream;
use modelgate_filter::host::fake::FakeHost;
use modelgate_filter::host::Host;
use modelgate_filter::identity::fixture::{self as idp_fixture, TestIdp, ALGORITHMS};
use modelgate_filter::identity::jwks::Algorithm;
use modelgate_filter::identity::{jwt, IdentityCache, Issuers};
use modelgate_filter::limits::{self, Actual, Demand, Plan};
use modelgate_filter::models::{self, request::ModelRequest, Allowlist};
use modelgate_filter::policy::PolicyIndex;
use modelgate_filter::sse::DEFAULT_MAX_RECORD_BYTES;
use modelgate_filter::usage::{StreamFormat, TokenUsage};
use prost::Message;
use support::Worker;

const SIZES: [(&str, usize); 2] = [("10k", 10_000), ("100k", 100_000)];
/// Distinct keys looked up in turn, so a lookup is not always the same cache line.
const PROBES: usize = 1024;

fn key_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("key_lookup");
    group.throughput(Throughput::Elements(1));
    for (label, size) in SIZES {
        let index = PolicyIndex::from_snapshot(support::snapshot(size, ""));
        let now = FakeHost::START_MS;
        let hits: Vec<KeyDigest> = (0..PROBES)
            .map(|i| KeyDigest::of(&support::secret(i * size / PROBES)))
            .collect();
        let misses: Vec<KeyDigest> = (0..PROBES)
            .map(|i| KeyDigest::of(&support::secret(size + i)))
            .collect();
        assert!(hits.iter().all(|d| index.authorize(d, now).is_ok()));
        assert!(misses.iter().all(|d| index.authorize(d, now).is_err()));
        for (kind, probes) in [("hit", &hits), ("miss", &misses)] {
            group.bench_function(BenchmarkId::new(kind, label), |b| {
                let mut next = probes.iter().cycle();
                b.iter(|| {
                    let digest = next.next().expect("cycle of a non-empty list");
                    black_box(index.authorize(digest, now).is_ok())
                })
            });
        }
    }
    group.finish();
}

/// The body as admission reads it: parse, then the model against the key ∩ team allowlist.
fn body_allowlist(c: &mut Criterion) {
    let snapshot = support::snapshot(1, "");
    let index = PolicyIndex::from_snapshot(snapshot.clone());
    let allowlist = Allowlist::of(&snapshot.keys[0], Some(&snapshot.teams[0]));
    let body = support::chat_body();
    let mut group = c.benchmark_group("body");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_allowlist_1KB", |b| {
        b.iter(|| {
            let request = ModelRequest::parse(black_box(&body)).expect("valid body");
            black_box(models::resolve(&index, &allowlist, &request.model).is_ok())
        })
    });
    group.finish();
}

/// rpm/tpm/parallel in the key, team and user scopes: the plan built from the snapshot,
/// the reservation at the body, settle and release at the log, each a CAS update of shared
/// data (the fake host copies values in and out as Envoy does).
fn limit_check(c: &mut Criterion) {
    let index = PolicyIndex::from_snapshot(support::snapshot(1, ""));
    let digest = KeyDigest::of(&support::secret(0));
    let host = FakeHost::new();
    let mut group = c.benchmark_group("limits");
    group.throughput(Throughput::Elements(1));
    group.bench_function("admit_settle_release", |b| {
        b.iter(|| {
            host.advance(1);
            let now = host.now_ms();
            let principal = index.authorize(&digest, now).expect("active key");
            let plan = Plan::new(
                index.version(),
                &principal.key,
                principal.team,
                index.user(&principal.key.user_id),
            );
            let demand = Demand {
                tokens: 300,
                cost_nano: 40_000,
            };
            let mut admission = limits::admit(&host, now, &plan, demand).expect("admitted");
            let used = Actual {
                tokens: 57,
                cost_nano: 8_000,
            };
            admission.settle(&host, now, used);
            admission.release(&host, now);
            black_box(admission.headers().len())
        })
    });
    group.finish();
}

/// A recorded llama-server stream (usage chunk included, hidden from the client), fed in
/// the chunks the server wrote (one event each).
fn sse_usage(c: &mut Criterion) {
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut rest = support::STREAM;
    while let Some(at) = rest.windows(2).position(|w| w == b"\n\n") {
        let (event, tail) = rest.split_at(at + 2);
        chunks.push(event);
        rest = tail;
    }
    if !rest.is_empty() {
        chunks.push(rest);
    }
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(support::STREAM.len() as u64));
    group.bench_function("parse_usage_recorded_stream", |b| {
        b.iter(|| {
            let mut stream =
                ResponseStream::new(StreamFormat::Sse, true, None, DEFAULT_MAX_RECORD_BYTES);
            let mut sent = 0;
            for chunk in &chunks {
                sent += stream.push(chunk).len();
            }
            sent += stream.finish().len();
            let usage = stream.usage().usage(35);
            assert!(!usage.estimated && usage.completion_tokens > 0);
            black_box((sent, usage))
        })
    });
    group.finish();
}

/// The record `on_log` builds and queues: classify the outcome, then protobuf-encode it.
fn audit_record(c: &mut Criterion) {
    let draft = RecordDraft {
        request_id: "6f1c2a0e-8d43-4b7a-9a51-2c0d5e7f9b13".to_owned(),
        started_ms: FakeHost::START_MS,
        path: "/v1/chat/completions".to_owned(),
        client_ip: "10.0.0.7".to_owned(),
        key_id: "bench0000000".to_owned(),
        team_id: "team-bench".to_owned(),
        user_id: "user0@example.com".to_owned(),
        model_requested: support::MODEL.to_owned(),
        model_resolved: support::MODEL.to_owned(),
        prompt_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            .to_owned(),
        response_sha256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
            .to_owned(),
        tokens: Some(TokenUsage {
            prompt_tokens: 35,
            completion_tokens: 22,
            estimated: false,
        }),
        spend: 0.000_008,
        redactions: vec![("EMAIL_ADDRESS".to_owned(), 2), ("PERSON".to_owned(), 1)],
        ..RecordDraft::default()
    };
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("record_build_encode", |b| {
        b.iter(|| {
            let outcome = Outcome::Finished {
                http_status: Some(200),
                code_details: Some("via_upstream"),
                body: Default::default(),
            };
            let record = black_box(&draft)
                .clone()
                .finish(outcome, FakeHost::START_MS + 420);
            black_box(record.encode_to_vec())
        })
    });
    group.finish();
}

/// What a worker does once per snapshot version: decode and index it.
fn snapshot_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_decode");
    group.sample_size(10);
    for (label, size) in SIZES {
        let bytes = support::snapshot(size, "").encode_to_vec();
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &bytes, |b, bytes| {
            b.iter(|| {
                let index = PolicyIndex::decode(bytes.clone()).expect("decodes");
                black_box(index.key_count())
            })
        });
    }
    group.finish();
}

/// One request through the whole filter logic (headers, body, response, log) in a worker
/// holding a 10k-key snapshot: keys + allowlist + limits, then also masking a 4 KB prompt.
fn whole_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(1));
    let configs = [
        ("keys_allowlist_limits", "", support::chat_body()),
        (
            "redaction_4KB_prompt",
            support::MASK_POLICY,
            support::chat_with_prompt(&support::pii_prompt()),
        ),
    ];
    for (label, policy, body) in configs {
        let mut worker = Worker::new(&support::snapshot(10_000, policy)).expect("worker");
        let key = support::secret(0);
        worker
            .request(&key, &body, support::ANSWER)
            .expect("the bench request goes through");
        group.bench_function(label, |b| {
            b.iter(|| black_box(worker.request(&key, &body, support::ANSWER).is_ok()))
        });
    }
    group.finish();
}

/// A JWT seen for the first time (shape, claims, issuer, key, signature, claims checks), per
/// algorithm; then a token this worker verified before next to a key, both in a 10k-key
/// snapshot that also lists the IdP: the credential step alone, and whole requests.
fn jwt_verification(c: &mut Criterion) {
    const MAX_TOKEN_BYTES: usize = 16 * 1024;
    let idp = TestIdp::new();
    let mut snapshot = support::snapshot(10_000, "");
    snapshot.identity_providers = vec![idp.provider()];
    let index = PolicyIndex::from_snapshot(snapshot.clone());
    let issuers = Issuers::of(&index, &Issuers::default());
    let now = FakeHost::START_MS;
    let claims = token_claims(now);

    let mut group = c.benchmark_group("jwt_first_sight");
    group.throughput(Throughput::Elements(1));
    for algorithm in ALGORITHMS {
        let token = idp.sign(algorithm, claims.clone());
        jwt::verify(&token, &issuers, now, MAX_TOKEN_BYTES).expect("the bench token verifies");
        group.bench_function(algorithm.name(), |b| {
            b.iter(|| black_box(jwt::verify(&token, &issuers, now, MAX_TOKEN_BYTES).is_ok()))
        });
    }
    group.finish();

    // What each request pays from the `Authorization` value to a known caller: a key is
    // hashed and looked up (its policy decoded from the snapshot), a token is found in the
    // worker's cache (RS256, the common default, and the longest signature of the usual
    // algorithms).
    let token = idp.sign(Algorithm::Rs256, claims);
    let mut group = c.benchmark_group("credential_cached");
    group.throughput(Throughput::Elements(1));
    let cache = IdentityCache::new();
    let known = |header: &str| match credential::extract(Some(header.as_bytes()), None) {
        Ok(Credential::Key(digest)) => index.authorize(&digest, now).is_ok(),
        Ok(Credential::Jwt(jwt)) => cache
            .verify(&index, jwt.as_str(), now, MAX_TOKEN_BYTES)
            .is_ok(),
        Err(_) => false,
    };
    let bearers = [
        ("jwt", format!("Bearer {token}")),
        ("key", format!("Bearer {}", support::secret(0))),
    ];
    for (label, bearer) in &bearers {
        assert!(known(bearer), "the bench {label} is accepted");
        group.bench_function(*label, |b| b.iter(|| black_box(known(black_box(bearer)))));
    }
    group.finish();

    // Whole requests (headers, body, answer, log) with the same limit scopes, team and
    // user: a key with no limits of its own, owned by user0, and user0's cached token.
    snapshot.keys[0].limits = None;
    snapshot.teams[0].idp_groups = vec![GROUP.to_owned()];
    let mut worker = Worker::new(&snapshot).expect("worker");
    let body = support::chat_body();
    let mut group = c.benchmark_group("credential_cached_request");
    group.throughput(Throughput::Elements(1));
    for (label, bearer) in [("jwt", token), ("key", support::secret(0))] {
        worker
            .request(&bearer, &body, support::ANSWER)
            .expect("the bench request goes through");
        group.bench_function(label, |b| {
            b.iter(|| black_box(worker.request(&bearer, &body, support::ANSWER).is_ok()))
        });
    }
    group.finish();
}

/// The IdP group the bench team maps.
const GROUP: &str = "ai-users";

/// Claims of the size IdPs issue (a 1 KB token with RS256): the fixture's, for the user of
/// key 0, plus the usual OpenID extras, valid for ten days of the fake clock (every whole
/// request moves it 1 ms).
fn token_claims(now_ms: i64) -> serde_json::Value {
    let mut claims = idp_fixture::claims(now_ms, "user0@example.com", &[GROUP, "platform"]);
    claims["exp"] = (now_ms / 1000 + 10 * 24 * 3600).into();
    claims["email"] = "user0@example.com".into();
    claims["name"] = "User Zero".into();
    claims["azp"] = "open-webui".into();
    claims["scope"] = "openid email profile groups offline_access".into();
    claims["jti"] = "8d1c0b4e-2f5a-4c1e-9b7d-3a6e5f4d2c1b".into();
    claims["sid"] = "f3a9c2d1-7b6e-4a5f-8c3d-2e1b0a9f8e7d".into();
    claims["auth_time"] = (now_ms / 1000 - 600).into();
    claims
}

criterion_group!(
    benches,
    key_lookup,
    body_allowlist,
    limit_check,
    sse_usage,
    audit_record,
    snapshot_decode,
    whole_request,
    jwt_verification
);
criterion_main!(benches);
