//! What the filter logic needs from its host: time, randomness, shared data, the usage queue,
//! gRPC calls and counters. `wasm/` implements it with proxy-wasm hostcalls; tests use
//! [`fake::FakeHost`]. Logging goes through the `log` crate, which `wasm/` routes to Envoy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(any(test, feature = "test-util"))]
pub mod fake;

/// A failed host call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Shared data changed between the read that produced the CAS token and this write.
    #[error("shared data changed since it was read")]
    CasMismatch,
    /// The host refused or failed the call.
    #[error("host call {call} failed: {status}")]
    Call { call: &'static str, status: String },
}

/// A shared-data value and its CAS token (`None` when the key was never set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedValue {
    pub bytes: Option<Vec<u8>>,
    pub cas: Option<u32>,
}

/// A unary gRPC call through an Envoy cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcCall<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub method: &'a str,
    pub message: &'a [u8],
    pub timeout_ms: u32,
    /// gRPC initial metadata (request headers), e.g. the data-plane credential.
    pub initial_metadata: &'a [(&'a str, &'a [u8])],
}

/// What both roles (HTTP filter and singleton service) need.
pub trait Host {
    /// Wall-clock time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Wall-clock time in microseconds since the Unix epoch, for timing work inside one
    /// callback (e.g. a snapshot decode). Hosts with a finer clock than `now_ms` override it.
    fn now_micros(&self) -> i64 {
        self.now_ms().saturating_mul(1000)
    }
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError>;
    fn get_shared_data(&self, key: &str) -> Result<SharedValue, HostError>;
    /// Writes `value`; with `cas`, only if the key still carries that token.
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError>;
    fn enqueue(&self, queue: &str, message: &[u8]) -> Result<(), HostError>;
    /// Adds `by` to the counter `name` (an Envoy stat, shared by all VMs of the plugin).
    fn increment_counter(&self, name: &'static str, by: u64);
}

/// What only the singleton service needs.
pub trait ServiceHost: Host {
    fn dequeue(&self, queue: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// Starts a call; its answer arrives later with the returned token.
    fn dispatch_grpc(&self, call: &GrpcCall<'_>) -> Result<u32, HostError>;
}

/// Milliseconds since the Unix epoch, saturating instead of wrapping for absurd clocks.
pub fn unix_ms(time: SystemTime) -> i64 {
    since_epoch(time, Duration::as_millis)
}

/// Microseconds since the Unix epoch, saturating like [`unix_ms`].
pub fn unix_micros(time: SystemTime) -> i64 {
    since_epoch(time, Duration::as_micros)
}

fn since_epoch(time: SystemTime, unit: fn(&Duration) -> u128) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(unit(&since)).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(unit(&before.duration())).map_or(i64::MIN, |n| -n),
    }
}

/// The `upstream` argument of proxy-wasm `dispatch_grpc_call` for an Envoy cluster: a
/// serialized `envoy.config.core.v3.GrpcService { envoy_grpc { cluster_name } }`. Envoy also
/// accepts a bare cluster name, but only when those bytes fail to parse as that proto, which
/// depends on the name's letters; the serialized form always means what it says.
/// `None` for names too long for single-byte lengths (the ABI takes a `&str`).
pub fn envoy_grpc_target(cluster: &str) -> Option<String> {
    const FIELD_1_LEN_DELIMITED: u8 = 0x0a;
    let name_len = u8::try_from(cluster.len()).ok().filter(|len| *len <= 125)?;
    let mut target = String::with_capacity(cluster.len() + 4);
    // GrpcService.envoy_grpc (field 1) holding EnvoyGrpc.cluster_name (field 1).
    target.push(char::from(FIELD_1_LEN_DELIMITED));
    target.push(char::from(name_len + 2));
    target.push(char::from(FIELD_1_LEN_DELIMITED));
    target.push(char::from(name_len));
    target.push_str(cluster);
    Some(target)
}

/// An integer property as Envoy serializes it (8 bytes, little-endian), e.g. `response.code`.
pub fn property_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Fills `buf` from the platform's secure source (WASI `random_get` on wasm32-wasip1).
pub fn os_random(buf: &mut [u8]) -> Result<(), HostError> {
    getrandom::fill(buf).map_err(|err| HostError::Call {
        call: "random_get",
        status: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_ms_converts_and_saturates() {
        assert_eq!(unix_ms(UNIX_EPOCH), 0);
        assert_eq!(
            unix_ms(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            1_700_000_000_123
        );
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_millis(5)), -5);
        assert_eq!(
            unix_ms(UNIX_EPOCH + Duration::from_secs(u64::MAX / 2)),
            i64::MAX
        );
        assert_eq!(
            unix_micros(UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456)),
            1_700_000_000_123_456
        );
        assert_eq!(unix_micros(UNIX_EPOCH - Duration::from_micros(7)), -7);
    }

    /// Proves which target the suite runs on: under the Node runner, wasm32's 32-bit usize.
    #[test]
    fn runs_on_the_target_it_was_built_for() {
        let expected = if cfg!(target_arch = "wasm32") { 32 } else { 64 };
        assert_eq!(usize::BITS, expected);
    }

    // On wasm32-wasip1 this is WASI `clock_time_get`, provided by the test runner's host.
    #[test]
    fn system_clock_is_plausible_on_this_target() {
        let now = unix_ms(SystemTime::now());
        // 2024-01-01 .. 2100-01-01
        assert!(
            now > 1_704_067_200_000 && now < 4_102_444_800_000,
            "now = {now}"
        );
    }

    #[test]
    fn grpc_target_is_a_serialized_grpc_service() {
        let target = envoy_grpc_target("modelgate_control_plane").unwrap();
        let bytes = target.as_bytes();
        assert_eq!(&bytes[..4], &[0x0a, 25, 0x0a, 23]);
        assert_eq!(&bytes[4..], b"modelgate_control_plane");
        assert_eq!(envoy_grpc_target(&"c".repeat(125)).unwrap().len(), 129);
        assert_eq!(envoy_grpc_target(&"c".repeat(126)), None);
    }

    #[test]
    fn integer_properties_are_little_endian_u64() {
        assert_eq!(property_u64(&200u64.to_le_bytes()), Some(200));
        assert_eq!(property_u64(&[1, 2, 3]), None);
    }

    #[test]
    fn os_random_fills_differently_each_time() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        os_random(&mut a).unwrap();
        os_random(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
