//! Request ids: Envoy's `x-request-id` when it is a sane token, else a fresh UUIDv4.

use crate::host::{Host, HostError};

/// Longest id accepted from the request; anything longer is replaced rather than stored.
const MAX_LEN: usize = 128;

/// `value` if it can be echoed in a header and stored in an audit row as it is.
pub fn accept(value: &[u8]) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| String::from_utf8_lossy(value).into_owned())
}

/// A random UUIDv4 (RFC 9562 layout) from the host's random source.
pub fn generate(host: &impl Host) -> Result<String, HostError> {
    let mut bytes = [0u8; 16];
    host.fill_random(&mut bytes)?;
    Ok(format_uuid_v4(bytes))
}

fn format_uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::host::os_random;

    #[test]
    fn accepts_envoy_ids_and_refuses_odd_ones() {
        assert_eq!(
            accept(b"7c9e6679-7425-40de-944b-e07fc1f90ae7").as_deref(),
            Some("7c9e6679-7425-40de-944b-e07fc1f90ae7")
        );
        assert_eq!(accept(b""), None);
        assert_eq!(accept(b"has space"), None);
        assert_eq!(accept(b"line\nbreak"), None);
        assert_eq!(accept(&[b'a'; 129]), None);
        assert!(accept(&[b'a'; 128]).is_some());
    }

    #[test]
    fn formats_version_and_variant_bits() {
        assert_eq!(
            format_uuid_v4([0xff; 16]),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        assert_eq!(
            format_uuid_v4([0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
    }

    // The platform's real random source, as `wasm/` uses it: WASI `random_get` on wasm32.
    #[test]
    fn ids_from_the_real_random_source_are_unique_uuids() {
        let ids: HashSet<String> = (0..10_000)
            .map(|_| {
                let mut bytes = [0u8; 16];
                os_random(&mut bytes).unwrap();
                format_uuid_v4(bytes)
            })
            .collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(50) {
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4");
            assert!(accept(id.as_bytes()).is_some(), "{id}");
        }
    }
}
