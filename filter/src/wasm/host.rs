//! [`Host`] and [`ServiceHost`] over proxy-wasm hostcalls. Only the `hostcalls` functions are
//! used (they return errors); the SDK's trait helpers unwrap them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MetricType, Status};

use crate::host::{
    envoy_grpc_target, os_random, unix_micros, unix_ms, GrpcCall, Host, HostError, ServiceHost,
    SharedValue,
};

/// Envoy, as seen from one VM. Caches the ids of queues and counters it has resolved.
#[derive(Debug, Default)]
pub(super) struct EnvoyHost {
    queues: RefCell<HashMap<String, u32>>,
    counters: RefCell<HashMap<&'static str, u32>>,
}

/// Envoy's clock (nanosecond resolution).
fn host_time() -> SystemTime {
    hostcalls::get_current_time().unwrap_or_else(|_| SystemTime::now())
}

fn failed(call: &'static str) -> impl Fn(Status) -> HostError {
    move |status| HostError::Call {
        call,
        status: format!("{status:?}"),
    }
}

impl EnvoyHost {
    /// Registering is idempotent per (vm_id, name) and returns the same queue for every VM of
    /// the `vm_id`, so workers and the service both register instead of depending on who
    /// starts first. (The last registrant receives `on_queue_ready`; nobody needs it: the
    /// service drains on its tick.)
    pub(super) fn queue_id(&self, name: &str) -> Result<u32, HostError> {
        if let Some(id) = self.queues.borrow().get(name) {
            return Ok(*id);
        }
        let id = hostcalls::register_shared_queue(name).map_err(failed("register_shared_queue"))?;
        self.queues.borrow_mut().insert(name.to_owned(), id);
        Ok(id)
    }

    /// Defines the counter now, so the stat exists (at 0) before the first increment.
    pub(super) fn declare_counter(&self, name: &'static str) -> Result<(), HostError> {
        self.counter_id(name).map(|_| ())
    }

    fn counter_id(&self, name: &'static str) -> Result<u32, HostError> {
        if let Some(id) = self.counters.borrow().get(name) {
            return Ok(*id);
        }
        let id =
            hostcalls::define_metric(MetricType::Counter, name).map_err(failed("define_metric"))?;
        self.counters.borrow_mut().insert(name, id);
        Ok(id)
    }
}

impl Host for EnvoyHost {
    fn now_ms(&self) -> i64 {
        unix_ms(host_time())
    }

    fn now_micros(&self) -> i64 {
        unix_micros(host_time())
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        os_random(buf)
    }

    fn get_shared_data(&self, key: &str) -> Result<SharedValue, HostError> {
        let (bytes, cas) = hostcalls::get_shared_data(key).map_err(failed("get_shared_data"))?;
        Ok(SharedValue { bytes, cas })
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|status| match status {
            Status::CasMismatch => HostError::CasMismatch,
            other => failed("set_shared_data")(other),
        })
    }

    fn enqueue(&self, queue: &str, message: &[u8]) -> Result<(), HostError> {
        let id = self.queue_id(queue)?;
        match hostcalls::enqueue_shared_queue(id, Some(message)) {
            // The queue went away with every VM of its vm_id (e.g. a reload): register anew.
            Err(Status::NotFound) => {
                self.queues.borrow_mut().remove(queue);
                let id = self.queue_id(queue)?;
                hostcalls::enqueue_shared_queue(id, Some(message))
                    .map_err(failed("enqueue_shared_queue"))
            }
            other => other.map_err(failed("enqueue_shared_queue")),
        }
    }

    fn increment_counter(&self, name: &'static str, by: u64) {
        let result = self.counter_id(name).and_then(|id| {
            hostcalls::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX))
                .map_err(failed("increment_metric"))
        });
        if let Err(err) = result {
            log::warn!("counter {name} not incremented by {by}: {err}");
        }
    }
}

impl ServiceHost for EnvoyHost {
    fn dequeue(&self, queue: &str) -> Result<Option<Vec<u8>>, HostError> {
        let id = self.queue_id(queue)?;
        hostcalls::dequeue_shared_queue(id).map_err(failed("dequeue_shared_queue"))
    }

    fn dispatch_grpc(&self, call: &GrpcCall<'_>) -> Result<u32, HostError> {
        let target = envoy_grpc_target(call.cluster).ok_or(HostError::Call {
            call: "dispatch_grpc_call",
            status: "cluster name too long".to_owned(),
        })?;
        hostcalls::dispatch_grpc_call(
            &target,
            call.service,
            call.method,
            call.initial_metadata.to_vec(),
            Some(call.message),
            Duration::from_millis(u64::from(call.timeout_ms)),
        )
        .map_err(failed("dispatch_grpc_call"))
    }
}
