//! An in-memory host for tests, set up with builder methods:
//! `FakeHost::new().at(ms).with_shared(key, bytes)`. It keeps what the logic did (queued
//! messages, dispatched gRPC calls, counters) for assertions.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use super::{GrpcCall, Host, HostError, ServiceHost, SharedValue};

/// A gRPC call the logic dispatched, with the token the fake handed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchedCall {
    pub token: u32,
    pub cluster: String,
    pub service: String,
    pub method: String,
    pub message: Vec<u8>,
    pub timeout_ms: u32,
    pub initial_metadata: Vec<(String, Vec<u8>)>,
}

#[derive(Debug)]
pub struct FakeHost {
    now_ms: Cell<i64>,
    random_state: Cell<u64>,
    shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    next_cas: Cell<u32>,
    queues: RefCell<HashMap<String, VecDeque<Vec<u8>>>>,
    counters: RefCell<HashMap<&'static str, u64>>,
    calls: RefCell<Vec<DispatchedCall>>,
    next_token: Cell<u32>,
    refuse_dispatch: Cell<bool>,
    refuse_enqueue: Cell<bool>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    /// 2023-11-14T22:13:20Z, so tests have a realistic clock without depending on the real one.
    pub const START_MS: i64 = 1_700_000_000_000;

    pub fn new() -> Self {
        Self {
            now_ms: Cell::new(Self::START_MS),
            random_state: Cell::new(0x9e37_79b9_7f4a_7c15),
            shared: RefCell::default(),
            next_cas: Cell::new(1),
            queues: RefCell::default(),
            counters: RefCell::default(),
            calls: RefCell::default(),
            next_token: Cell::new(1),
            refuse_dispatch: Cell::new(false),
            refuse_enqueue: Cell::new(false),
        }
    }

    pub fn at(self, now_ms: i64) -> Self {
        self.now_ms.set(now_ms);
        self
    }

    pub fn with_shared(self, key: &str, value: &[u8]) -> Self {
        self.put_shared(key, value);
        self
    }

    pub fn with_queued(self, queue: &str, message: &[u8]) -> Self {
        self.push_queue(queue, message);
        self
    }

    pub fn refusing_dispatch(self) -> Self {
        self.refuse_dispatch.set(true);
        self
    }

    pub fn refusing_enqueue(self) -> Self {
        self.refuse_enqueue.set(true);
        self
    }

    pub fn advance(&self, ms: i64) {
        self.now_ms.set(self.now_ms.get() + ms);
    }

    pub fn set_refuse_dispatch(&self, refuse: bool) {
        self.refuse_dispatch.set(refuse);
    }

    pub fn put_shared(&self, key: &str, value: &[u8]) {
        let cas = self.bump_cas();
        self.shared
            .borrow_mut()
            .insert(key.to_owned(), (value.to_vec(), cas));
    }

    pub fn shared(&self, key: &str) -> Option<Vec<u8>> {
        self.shared
            .borrow()
            .get(key)
            .map(|(value, _)| value.clone())
    }

    pub fn push_queue(&self, queue: &str, message: &[u8]) {
        self.queues
            .borrow_mut()
            .entry(queue.to_owned())
            .or_default()
            .push_back(message.to_vec());
    }

    /// Messages waiting in `queue`, oldest first, without removing them.
    pub fn queued(&self, queue: &str) -> Vec<Vec<u8>> {
        self.queues
            .borrow()
            .get(queue)
            .map(|messages| messages.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// gRPC calls dispatched since the last take.
    pub fn take_calls(&self) -> Vec<DispatchedCall> {
        std::mem::take(&mut *self.calls.borrow_mut())
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.borrow().get(name).copied().unwrap_or(0)
    }

    fn bump_cas(&self) -> u32 {
        let cas = self.next_cas.get();
        self.next_cas.set(cas.wrapping_add(1).max(1));
        cas
    }
}

impl Host for FakeHost {
    fn now_ms(&self) -> i64 {
        self.now_ms.get()
    }

    // Deterministic (xorshift) so ids in failing tests are reproducible.
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        let mut state = self.random_state.get();
        for byte in buf.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state.to_le_bytes()[0];
        }
        self.random_state.set(state);
        Ok(())
    }

    fn get_shared_data(&self, key: &str) -> Result<SharedValue, HostError> {
        Ok(match self.shared.borrow().get(key) {
            Some((value, cas)) => SharedValue {
                bytes: Some(value.clone()),
                cas: Some(*cas),
            },
            None => SharedValue::default(),
        })
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        if let Some(expected) = cas {
            let current = self.shared.borrow().get(key).map(|(_, cas)| *cas);
            if current.is_some_and(|current| current != expected) {
                return Err(HostError::CasMismatch);
            }
        }
        self.put_shared(key, value);
        Ok(())
    }

    fn enqueue(&self, queue: &str, message: &[u8]) -> Result<(), HostError> {
        if self.refuse_enqueue.get() {
            return Err(HostError::Call {
                call: "enqueue_shared_queue",
                status: "NotFound".to_owned(),
            });
        }
        self.push_queue(queue, message);
        Ok(())
    }

    fn increment_counter(&self, name: &'static str, by: u64) {
        *self.counters.borrow_mut().entry(name).or_default() += by;
    }
}

impl ServiceHost for FakeHost {
    fn dequeue(&self, queue: &str) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self
            .queues
            .borrow_mut()
            .get_mut(queue)
            .and_then(VecDeque::pop_front))
    }

    fn dispatch_grpc(&self, call: &GrpcCall<'_>) -> Result<u32, HostError> {
        if self.refuse_dispatch.get() {
            return Err(HostError::Call {
                call: "dispatch_grpc_call",
                status: "InternalFailure".to_owned(),
            });
        }
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        self.calls.borrow_mut().push(DispatchedCall {
            token,
            cluster: call.cluster.to_owned(),
            service: call.service.to_owned(),
            method: call.method.to_owned(),
            message: call.message.to_vec(),
            timeout_ms: call.timeout_ms,
            initial_metadata: call
                .initial_metadata
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
                .collect(),
        });
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_rejects_a_stale_token() {
        let host = FakeHost::new().with_shared("k", b"v1");
        let first = host.get_shared_data("k").unwrap();
        host.set_shared_data("k", b"v2", first.cas).unwrap();
        assert_eq!(
            host.set_shared_data("k", b"v3", first.cas),
            Err(HostError::CasMismatch)
        );
        assert_eq!(host.shared("k").unwrap(), b"v2");
    }

    #[test]
    fn queue_is_fifo() {
        let host = FakeHost::new()
            .with_queued("q", b"a")
            .with_queued("q", b"b");
        assert_eq!(host.dequeue("q").unwrap().unwrap(), b"a");
        assert_eq!(host.dequeue("q").unwrap().unwrap(), b"b");
        assert_eq!(host.dequeue("q").unwrap(), None);
    }
}
