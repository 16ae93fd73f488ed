//! Admission against shared data: several workers interleaving their compare-and-swap steps
//! (scripted on the fake host, and with real threads natively), rollback across scopes, and
//! slots released exactly once on every ending.

use std::cell::RefCell;
use std::collections::VecDeque;

use super::plan::{Budget, ScopeLimits, ScopePlan};
use super::record::ScopeRecord;
use super::*;
use crate::host::fake::FakeHost;
use crate::host::{Host, HostError, SharedValue};
use prost::Message;

const T0: i64 = FakeHost::START_MS;

fn scope(kind: ScopeKind, id: &str, limits: ScopeLimits) -> ScopePlan {
    ScopePlan {
        scope: Scope {
            kind,
            id: id.to_owned(),
        },
        limits,
    }
}

fn key_plan(limits: ScopeLimits) -> Plan {
    Plan {
        scopes: vec![scope(ScopeKind::Key, "key1", limits)],
    }
}

fn parallel(cap: u64) -> ScopeLimits {
    ScopeLimits {
        parallel: Some(cap),
        ..ScopeLimits::default()
    }
}

fn rpm(limit: u64) -> ScopeLimits {
    ScopeLimits {
        rpm: Some(limit),
        ..ScopeLimits::default()
    }
}

fn one() -> Demand {
    Demand {
        tokens: 10,
        cost_nano: 0,
    }
}

fn record(host: &FakeHost, key: &str) -> ScopeRecord {
    ScopeRecord::decode(host.shared(key).unwrap().as_slice()).unwrap()
}

fn in_flight(host: &FakeHost) -> u64 {
    record(host, "modelgate.v1.limits.key.key1")
        .in_flight
        .map_or(0, |w| w.total())
}

fn hit(refusal: Refusal) -> LimitHit {
    match refusal {
        Refusal::Limited(hit) => *hit,
        other => panic!("expected a limit, got {other:?}"),
    }
}

/// What another worker does between this worker's read and its write.
type Interference<'a> = Box<dyn FnOnce(&FakeHost) + 'a>;

/// A worker whose writes are preceded by whatever other workers were scripted to do at that
/// moment: the interleavings that make a compare-and-swap fail.
struct Interleaved<'a> {
    inner: &'a FakeHost,
    before_write: RefCell<VecDeque<Interference<'a>>>,
    writes_attempted: RefCell<u32>,
}

impl<'a> Interleaved<'a> {
    fn new(inner: &'a FakeHost) -> Self {
        Self {
            inner,
            before_write: RefCell::default(),
            writes_attempted: RefCell::new(0),
        }
    }

    fn then_before_a_write(self, other: impl FnOnce(&FakeHost) + 'a) -> Self {
        self.before_write.borrow_mut().push_back(Box::new(other));
        self
    }
}

impl Host for Interleaved<'_> {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        self.inner.fill_random(buf)
    }
    fn get_shared_data(&self, key: &str) -> Result<SharedValue, HostError> {
        self.inner.get_shared_data(key)
    }
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        *self.writes_attempted.borrow_mut() += 1;
        let other = self.before_write.borrow_mut().pop_front();
        if let Some(other) = other {
            other(self.inner);
        }
        self.inner.set_shared_data(key, value, cas)
    }
    fn enqueue(&self, queue: &str, message: &[u8]) -> Result<(), HostError> {
        self.inner.enqueue(queue, message)
    }
    fn increment_counter(&self, name: &'static str, by: u64) {
        self.inner.increment_counter(name, by);
    }
}

#[test]
fn a_write_that_lost_the_race_is_retried_on_the_winners_record() {
    let host = FakeHost::new();
    let plan = key_plan(rpm(2));
    admit(&host, T0, &plan, one()).unwrap();
    // Between this worker's read and write, another worker takes the last request.
    let worker = Interleaved::new(&host).then_before_a_write(|other| {
        admit(other, T0, &key_plan(rpm(2)), one()).unwrap();
    });
    let refused = hit(admit(&worker, T0, &plan, one()).unwrap_err());
    assert_eq!(refused.exceeded.kind, LimitKind::Requests);
    assert_eq!(
        *worker.writes_attempted.borrow(),
        1,
        "the retry read a full window"
    );
    assert_eq!(
        record(&host, "modelgate.v1.limits.key.key1")
            .requests
            .unwrap()
            .total(),
        2
    );
}

#[test]
fn two_workers_creating_the_same_record_do_not_overwrite_each_other() {
    let host = FakeHost::new();
    let plan = key_plan(parallel(1));
    // Both read "absent"; the other one creates the record first.
    let worker = Interleaved::new(&host).then_before_a_write(|other| {
        admit(other, T0, &key_plan(parallel(1)), one()).unwrap();
    });
    let refused = hit(admit(&worker, T0, &plan, one()).unwrap_err());
    assert_eq!(refused.exceeded.kind, LimitKind::ParallelRequests);
    assert_eq!(in_flight(&host), 1);
}

#[test]
fn every_interleaving_of_many_workers_keeps_the_cap() {
    let host = FakeHost::new();
    let plan = key_plan(parallel(3));
    // Worker k is interrupted before each of its writes by worker k+1, five deep.
    fn nested<'a>(host: &'a FakeHost, plan: &'a Plan, depth: u32, admitted: &'a RefCell<u32>) {
        let worker = if depth == 0 {
            Interleaved::new(host)
        } else {
            Interleaved::new(host)
                .then_before_a_write(move |_| nested(host, plan, depth - 1, admitted))
        };
        if admit(&worker, T0, plan, one()).is_ok() {
            *admitted.borrow_mut() += 1;
        }
    }
    let admitted = RefCell::new(0);
    nested(&host, &plan, 5, &admitted);
    assert_eq!(*admitted.borrow(), 3);
    assert_eq!(in_flight(&host), 3);
}

/// Every write fails: another worker always wins.
struct AlwaysContended(FakeHost);

impl Host for AlwaysContended {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        self.0.fill_random(buf)
    }
    fn get_shared_data(&self, key: &str) -> Result<SharedValue, HostError> {
        self.0.get_shared_data(key)
    }
    fn set_shared_data(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<(), HostError> {
        Err(HostError::CasMismatch)
    }
    fn enqueue(&self, queue: &str, message: &[u8]) -> Result<(), HostError> {
        self.0.enqueue(queue, message)
    }
    fn increment_counter(&self, name: &'static str, by: u64) {
        self.0.increment_counter(name, by);
    }
}

#[test]
fn endless_contention_refuses_instead_of_admitting_unchecked() {
    let host = AlwaysContended(FakeHost::new());
    let refusal = admit(&host, T0, &key_plan(rpm(5)), one()).unwrap_err();
    assert!(matches!(refusal, Refusal::Unavailable(ref why) if why.contains("contended")));
}

#[test]
fn a_later_scope_refusing_takes_back_the_earlier_reservations() {
    let host = FakeHost::new();
    let plan = Plan {
        scopes: vec![
            scope(
                ScopeKind::Key,
                "key1",
                ScopeLimits {
                    rpm: Some(10),
                    tpm: Some(1_000),
                    parallel: Some(5),
                    budget: None,
                },
            ),
            scope(ScopeKind::Team, "team1", rpm(1)),
        ],
    };
    admit(&host, T0, &plan, one()).unwrap();
    let key_before = record(&host, "modelgate.v1.limits.key.key1");
    let refused = hit(admit(&host, T0, &plan, one()).unwrap_err());
    assert_eq!(refused.scope.kind, ScopeKind::Team);
    assert_eq!(refused.scope.id, "team1");
    assert_eq!(record(&host, "modelgate.v1.limits.key.key1"), key_before);
    // The headers show the team's exhausted requests, the key's tokens.
    let headers = refused.headers();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("x-ratelimit-limit-requests").as_deref(), Some("1"));
    assert_eq!(get("x-ratelimit-remaining-requests").as_deref(), Some("0"));
    assert_eq!(get("x-ratelimit-limit-tokens").as_deref(), Some("1000"));
    assert_eq!(get("x-ratelimit-remaining-tokens").as_deref(), Some("990"));
    assert_eq!(get("retry-after").as_deref(), Some("61"));
}

#[test]
fn the_slot_is_released_exactly_once_whatever_the_ending() {
    let host = FakeHost::new();
    let plan = key_plan(parallel(2));
    // Success with usage, an upstream error without usage, a client that cancelled: each
    // ending reaches `release` (on_log), maybe twice.
    for settle_first in [true, false] {
        let mut a = admit(&host, T0, &plan, one()).unwrap();
        let mut b = admit(&host, T0, &plan, one()).unwrap();
        assert!(admit(&host, T0, &plan, one()).is_err());
        if settle_first {
            a.settle(&host, T0, Actual::default());
            assert_eq!(in_flight(&host), 2, "settling does not free the slot");
        }
        a.release(&host, T0);
        a.release(&host, T0);
        assert_eq!(in_flight(&host), 1);
        b.release(&host, T0);
        b.settle(&host, T0, Actual::default());
        assert_eq!(in_flight(&host), 0);
    }
}

#[test]
fn settling_reconciles_tokens_and_an_ending_without_usage_keeps_the_estimate() {
    let host = FakeHost::new();
    let plan = key_plan(ScopeLimits {
        tpm: Some(1_000),
        ..ScopeLimits::default()
    });
    let demand = Demand {
        tokens: 500,
        cost_nano: 0,
    };
    let tokens = |host: &FakeHost| {
        record(host, "modelgate.v1.limits.key.key1")
            .tokens
            .map_or(0, |w| w.total())
    };
    let mut done = admit(&host, T0, &plan, demand).unwrap();
    let mut unknown = admit(&host, T0, &plan, demand).unwrap();
    assert!(admit(&host, T0, &plan, demand).is_err());
    done.settle(
        &host,
        T0 + 1_000,
        Actual {
            tokens: 120,
            cost_nano: 0,
        },
    );
    done.settle(&host, T0 + 1_000, Actual::default());
    assert_eq!(tokens(&host), 620, "the second settle is ignored");
    unknown.release(&host, T0 + 1_000);
    assert_eq!(
        tokens(&host),
        620,
        "released without usage: the estimate stays"
    );
    assert!(admit(&host, T0 + 1_000, &plan, demand).is_err());
    let mut small = admit(
        &host,
        T0 + 1_000,
        &plan,
        Demand {
            tokens: 300,
            cost_nano: 0,
        },
    )
    .unwrap();
    assert_eq!(
        small.headers(),
        [
            ("x-ratelimit-limit-tokens", "1000".to_owned()),
            ("x-ratelimit-remaining-tokens", "80".to_owned()),
            ("x-ratelimit-reset-tokens", "1m1s".to_owned()),
        ]
    );
    small.release(&host, T0 + 2_000);
}

#[test]
fn fifty_concurrent_requests_against_a_budget_that_fits_ten() {
    let host = FakeHost::new();
    let plan = key_plan(ScopeLimits {
        budget: Some(Budget {
            max_nano: 10_000,
            spent_nano: 0,
            exhausted: false,
            window_start_ms: T0,
            reset_at_ms: 0,
            snapshot_version: 1,
        }),
        ..ScopeLimits::default()
    });
    let cost = Actual {
        tokens: 0,
        cost_nano: 1_000,
    };
    let demand = Demand {
        tokens: 0,
        cost_nano: 1_000,
    };
    let mut running: Vec<Admission> = (0..50)
        .filter_map(|_| admit(&host, T0, &plan, demand).ok())
        .collect();
    assert_eq!(running.len(), 10);
    for admission in &mut running {
        admission.settle(&host, T0 + 1, cost);
        admission.release(&host, T0 + 1);
    }
    let refused = hit(admit(&host, T0 + 2, &plan, demand).unwrap_err());
    assert_eq!(refused.exceeded.kind, LimitKind::Budget);
    assert_eq!(refused.exceeded.used, 10_000);
}

#[test]
fn an_unreadable_record_starts_over() {
    let host = FakeHost::new().with_shared("modelgate.v1.limits.key.key1", b"\xff\xff\xff");
    assert!(admit(&host, T0, &key_plan(rpm(1)), one()).is_ok());
    assert!(admit(&host, T0, &key_plan(rpm(1)), one()).is_err());
}

/// Real threads on one shared store: the proxy-wasm host's semantics (a global CAS counter,
/// conditional writes, creation ignores the token) under a real scheduler.
#[cfg(not(target_arch = "wasm32"))]
mod threads {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Values with their CAS tokens, and the last token handed out.
    #[derive(Default)]
    struct Entries {
        values: HashMap<String, (Vec<u8>, u32)>,
        last_cas: u32,
    }

    #[derive(Default)]
    struct Store {
        data: Mutex<Entries>,
        now_ms: AtomicI64,
        random: AtomicU64,
    }

    #[derive(Clone)]
    struct ThreadHost(Arc<Store>);

    impl Host for ThreadHost {
        fn now_ms(&self) -> i64 {
            self.0.now_ms.load(Ordering::SeqCst)
        }
        fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
            let value = self
                .0
                .random
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::SeqCst);
            for (byte, from) in buf.iter_mut().zip(value.to_le_bytes().iter().cycle()) {
                *byte = *from;
            }
            Ok(())
        }
        fn get_shared_data(&self, key: &str) -> Result<SharedValue, HostError> {
            let data = self.0.data.lock().unwrap();
            Ok(match data.values.get(key) {
                Some((bytes, cas)) => SharedValue {
                    bytes: Some(bytes.clone()),
                    cas: Some(*cas),
                },
                None => SharedValue::default(),
            })
        }
        fn set_shared_data(
            &self,
            key: &str,
            value: &[u8],
            cas: Option<u32>,
        ) -> Result<(), HostError> {
            let mut data = self.0.data.lock().unwrap();
            let current = data.values.get(key).map(|(_, cas)| *cas);
            if let (Some(current), Some(expected)) = (current, cas.filter(|c| *c != 0)) {
                if current != expected {
                    return Err(HostError::CasMismatch);
                }
            }
            data.last_cas = data.last_cas.wrapping_add(1).max(1);
            let token = data.last_cas;
            data.values.insert(key.to_owned(), (value.to_vec(), token));
            Ok(())
        }
        fn enqueue(&self, _: &str, _: &[u8]) -> Result<(), HostError> {
            Ok(())
        }
        fn increment_counter(&self, _: &'static str, _: u64) {}
    }

    #[test]
    fn eight_threads_never_exceed_the_parallel_cap_or_the_rpm() {
        let store = Arc::new(Store::default());
        store.now_ms.store(T0, Ordering::SeqCst);
        let plan = Arc::new(Plan {
            scopes: vec![
                scope(ScopeKind::Key, "key1", parallel(4)),
                scope(ScopeKind::Team, "team1", rpm(700)),
            ],
        });
        let holding = Arc::new(AtomicI64::new(0));
        let most = Arc::new(AtomicI64::new(0));
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (host, plan) = (ThreadHost(Arc::clone(&store)), Arc::clone(&plan));
                let (holding, most, admitted) = (
                    Arc::clone(&holding),
                    Arc::clone(&most),
                    Arc::clone(&admitted),
                );
                std::thread::spawn(move || {
                    // Until the team's minute is used up; the clock stands still.
                    loop {
                        let now = host.now_ms();
                        match admit(&host, now, &plan, one()) {
                            Ok(mut admission) => {
                                let held = holding.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(held, Ordering::SeqCst);
                                admitted.fetch_add(1, Ordering::SeqCst);
                                std::thread::yield_now();
                                holding.fetch_sub(1, Ordering::SeqCst);
                                admission.release(&host, now);
                            }
                            Err(Refusal::Limited(hit))
                                if hit.exceeded.kind == LimitKind::Requests =>
                            {
                                break
                            }
                            Err(Refusal::Limited(_)) => std::thread::yield_now(),
                            Err(other) => panic!("{other:?}"),
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 4, "{most:?} held at once");
        assert_eq!(
            admitted.load(Ordering::SeqCst),
            700,
            "the team's rpm, exactly (all within one minute)"
        );
        let host = ThreadHost(store);
        let key = host
            .get_shared_data("modelgate.v1.limits.key.key1")
            .unwrap();
        let record = ScopeRecord::decode(key.bytes.unwrap().as_slice()).unwrap();
        assert_eq!(
            record.in_flight.map_or(0, |w| w.total()),
            0,
            "every slot back"
        );
    }
}
