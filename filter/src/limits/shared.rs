//! Read-modify-write of a [`ScopeRecord`] in proxy-wasm shared data, shared by every worker
//! VM of the plugin's `vm_id`.
//!
//! Each update reads the value and its CAS token, applies a pure step to the decoded record
//! and writes it back only if nobody wrote in between; on a mismatch it starts over from a
//! fresh read, at most [`MAX_ATTEMPTS`] times (every mismatch means another worker's update
//! went through, so the system as a whole always progresses). A step that refuses writes
//! nothing: refused requests consume nothing.
//!
//! Creating a record: Envoy ignores the CAS token when the key does not exist yet, and checks
//! it when it does. So the first write goes out with a random non-zero token: if another
//! worker created the record in the meantime, the token does not match (1 in 2^32 odds of a
//! clash), and the update starts over on the record that worker wrote, instead of silently
//! replacing it.

use prost::Message;

use super::record::ScopeRecord;
use crate::host::{Host, HostError};

/// Read-modify-write attempts before giving up on a contended record.
pub const MAX_ATTEMPTS: u32 = 32;

/// Why an update did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateError<E> {
    /// The step refused; nothing was written.
    Refused(E),
    /// Shared data could not be read or written.
    Host(HostError),
    /// Other workers won every attempt.
    Contended,
}

/// Applies `step` to the record at `key` atomically with respect to every other worker.
/// `step` may run several times, each time on a freshly read record.
pub fn update<T, E>(
    host: &impl Host,
    key: &str,
    mut step: impl FnMut(&mut ScopeRecord) -> Result<T, E>,
) -> Result<T, UpdateError<E>> {
    for _ in 0..MAX_ATTEMPTS {
        let current = host.get_shared_data(key).map_err(UpdateError::Host)?;
        let mut record = match &current.bytes {
            Some(bytes) => ScopeRecord::decode(bytes.as_slice()).unwrap_or_else(|err| {
                // Only a bug writes an undecodable record; starting over beats locking the
                // scope out for good.
                log::error!("limit record {key} does not decode ({err}); starting it over");
                ScopeRecord::default()
            }),
            None => ScopeRecord::default(),
        };
        let out = step(&mut record).map_err(UpdateError::Refused)?;
        let cas = match (&current.bytes, current.cas) {
            (Some(_), Some(cas)) => cas,
            _ => creation_token(host),
        };
        match host.set_shared_data(key, &record.encode_to_vec(), Some(cas)) {
            Ok(()) => return Ok(out),
            Err(HostError::CasMismatch) => continue,
            Err(err) => return Err(UpdateError::Host(err)),
        }
    }
    Err(UpdateError::Contended)
}

/// A token for creating a key: any non-zero value (zero means "unconditional" to Envoy).
fn creation_token(host: &impl Host) -> u32 {
    let mut bytes = [0u8; 4];
    if host.fill_random(&mut bytes).is_err() {
        // Still conditional: a fixed token only makes a clash likelier, never silent.
        bytes = [0x5a, 0xa5, 0x3c, 0xc3];
    }
    u32::from_le_bytes(bytes).max(1)
}
