//! Unknown signing keys, from the workers to the singleton: a worker that meets a token whose
//! `kid` the issuer's JWKS lacks adds (issuer, kid) to a small de-duplicated list in shared
//! data; the singleton takes the list on its next poll and sends it with `GetSnapshot`, so
//! the control plane refetches that issuer's JWKS (an IdP key rotation reaches the filter in
//! about one poll instead of one scheduled refresh). The list is an encoded
//! `GetSnapshotRequest` holding only `unknown_signing_keys`.

use modelgate_proto::v1::{GetSnapshotRequest, UnknownSigningKey};
use prost::Message;

use crate::host::{Host, HostError};

/// Shared-data key of the pending list.
pub const UNKNOWN_KEYS_KEY: &str = "modelgate.v1.unknown_signing_keys";
/// Entries held until the next poll; a flood of made-up `kid`s fills it and stops there.
pub const MAX_PENDING: usize = 32;
/// Attempts of a write that lost a race with another worker.
const CAS_ATTEMPTS: usize = 3;

fn read(host: &impl Host) -> Result<(Vec<UnknownSigningKey>, Option<u32>), HostError> {
    let value = host.get_shared_data(UNKNOWN_KEYS_KEY)?;
    // A value this module did not write (or a damaged one) is replaced, not trusted.
    let pending = value
        .bytes
        .and_then(|bytes| GetSnapshotRequest::decode(bytes.as_slice()).ok())
        .map(|request| request.unknown_signing_keys)
        .unwrap_or_default();
    Ok((pending, value.cas))
}

fn encode(pending: Vec<UnknownSigningKey>) -> Vec<u8> {
    GetSnapshotRequest {
        unknown_signing_keys: pending,
        ..GetSnapshotRequest::default()
    }
    .encode_to_vec()
}

/// A worker met `kid` of `issuer`: adds it to the pending list unless it is already there or
/// the list is full.
pub fn report(host: &impl Host, issuer: &str, kid: &str) -> Result<(), HostError> {
    for _ in 0..CAS_ATTEMPTS {
        let (mut pending, cas) = read(host)?;
        if pending.len() >= MAX_PENDING
            || pending
                .iter()
                .any(|key| key.issuer == issuer && key.kid == kid)
        {
            return Ok(());
        }
        pending.push(UnknownSigningKey {
            issuer: issuer.to_owned(),
            kid: kid.to_owned(),
        });
        match host.set_shared_data(UNKNOWN_KEYS_KEY, &encode(pending), cas) {
            Err(HostError::CasMismatch) => continue,
            other => return other,
        }
    }
    Err(HostError::CasMismatch)
}

/// The singleton's poll: takes every pending entry, leaving the list empty.
pub fn take(host: &impl Host) -> Result<Vec<UnknownSigningKey>, HostError> {
    for _ in 0..CAS_ATTEMPTS {
        let (pending, cas) = read(host)?;
        if pending.is_empty() {
            return Ok(pending);
        }
        match host.set_shared_data(UNKNOWN_KEYS_KEY, &[], cas) {
            Ok(()) => return Ok(pending),
            Err(HostError::CasMismatch) => continue,
            Err(err) => return Err(err),
        }
    }
    Err(HostError::CasMismatch)
}
