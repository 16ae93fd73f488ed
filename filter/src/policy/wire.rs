//! Just enough of the protobuf wire format to find fields without decoding messages: where
//! each key of a snapshot lies, and the snapshot inside a `GetSnapshotResponse`. A snapshot
//! of 100k keys is ~10 MB; decoding every key into owned strings once per version (and again
//! in the singleton) cost far more than indexing the bytes and decoding the one key a request
//! presents.

use std::ops::Range;

use modelgate_proto::fields::get_snapshot_response;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("varint too long at byte {0}")]
    VarintOverflow(usize),
    #[error("unsupported wire type {wire_type} at byte {at}")]
    WireType { wire_type: u64, at: usize },
    #[error("field number 0 at byte {0}")]
    FieldZero(usize),
}

/// One field's value: a varint, or where a length-delimited payload lies in the scanned
/// buffer. Fixed-width values are only skipped (no field this filter indexes has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Varint(u64),
    Len(Range<usize>),
    Fixed,
}

/// The fields of one message, in wire order; stops at the first malformed one.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            failed: false,
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or(WireError::Truncated(start))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintOverflow(start))
    }

    fn take(&mut self, len: u64) -> Result<Range<usize>, WireError> {
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError::Truncated(start))?;
        self.pos = end;
        Ok(start..end)
    }

    fn field(&mut self) -> Result<(u32, Value), WireError> {
        let at = self.pos;
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).map_err(|_| WireError::VarintOverflow(at))?;
        if number == 0 {
            return Err(WireError::FieldZero(at));
        }
        let value = match tag & 0x7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let len = self.varint()?;
                Value::Len(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            // Groups (3, 4) are deprecated and never produced by prost for these messages.
            wire_type => return Err(WireError::WireType { wire_type, at }),
        };
        Ok((number, value))
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<(u32, Value), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

/// The last occurrence of a length-delimited field (protobuf's rule for a non-repeated
/// field), checking the whole message's framing on the way.
pub fn last_len(message: &[u8], number: u32) -> Result<Option<Range<usize>>, WireError> {
    let mut found = None;
    for field in Fields::new(message) {
        if let (n, Value::Len(range)) = field? {
            if n == number {
                found = Some(range);
            }
        }
    }
    Ok(found)
}

/// The parts of a `GetSnapshotResponse` the singleton needs, with the snapshot left encoded:
/// it is published to the workers as the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotReply<'a> {
    pub version: u64,
    /// Absent when the caller already holds `version`.
    pub snapshot: Option<&'a [u8]>,
}

impl<'a> SnapshotReply<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut reply = SnapshotReply {
            version: 0,
            snapshot: None,
        };
        for field in Fields::new(body) {
            match field? {
                (get_snapshot_response::VERSION, Value::Varint(version)) => reply.version = version,
                (get_snapshot_response::SNAPSHOT, Value::Len(range)) => {
                    // The framing of the snapshot's own fields is checked here, so a damaged
                    // snapshot never replaces the good one the workers enforce.
                    let snapshot = body.get(range).unwrap_or_default();
                    Fields::new(snapshot).try_for_each(|field| field.map(drop))?;
                    reply.snapshot = Some(snapshot);
                }
                _ => {}
            }
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_proto::v1::{GetSnapshotResponse, KeyPolicy, PolicySnapshot};
    use prost::Message;

    #[test]
    fn finds_the_fields_prost_wrote() {
        let key = KeyPolicy {
            key_sha256: vec![7; 32],
            public_id: "abc".to_owned(),
            status: 1,
            expires_at_ms: -5,
            ..KeyPolicy::default()
        };
        let bytes = key.encode_to_vec();
        let fields: Vec<_> = Fields::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[2], (6, Value::Varint(1)));
        assert_eq!(fields[3], (7, Value::Varint(-5i64 as u64)));
        let hash = last_len(&bytes, 1).unwrap().unwrap();
        assert_eq!(&bytes[hash], &[7; 32]);
        assert_eq!(last_len(&bytes, 3).unwrap(), None);
    }

    #[test]
    fn the_last_occurrence_wins_as_in_prost() {
        let mut bytes = KeyPolicy {
            key_sha256: vec![1; 32],
            ..KeyPolicy::default()
        }
        .encode_to_vec();
        bytes.extend(
            KeyPolicy {
                key_sha256: vec![2; 32],
                ..KeyPolicy::default()
            }
            .encode_to_vec(),
        );
        let hash = last_len(&bytes, 1).unwrap().unwrap();
        assert_eq!(&bytes[hash.clone()], &[2; 32]);
        assert_eq!(
            KeyPolicy::decode(bytes.as_slice()).unwrap().key_sha256,
            bytes[hash].to_vec()
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let bytes = KeyPolicy {
            key_sha256: vec![7; 32],
            public_id: "abc".to_owned(),
            ..KeyPolicy::default()
        }
        .encode_to_vec();
        // Every cut inside a field (byte 34 is the boundary between the two) is truncation.
        for cut in (1..bytes.len()).filter(|&cut| cut != 34) {
            assert!(last_len(&bytes[..cut], 1).is_err(), "cut at {cut}");
        }
        assert!(last_len(&bytes[..34], 1).is_ok());
        assert_eq!(last_len(&[0x00], 1), Err(WireError::FieldZero(0)));
        assert_eq!(
            last_len(&[0x0b], 1),
            Err(WireError::WireType {
                wire_type: 3,
                at: 0
            })
        );
        let mut endless = vec![0x08];
        endless.extend([0xff; 10]);
        assert_eq!(last_len(&endless, 1), Err(WireError::VarintOverflow(1)));
        // A length beyond the buffer, and one beyond usize on 32-bit targets.
        assert!(last_len(&[0x0a, 0x05, 1, 2], 1).is_err());
        assert!(last_len(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x7f], 1).is_err());
    }

    #[test]
    fn a_reply_yields_its_snapshot_bytes_unchanged() {
        let snapshot = PolicySnapshot {
            version: 9,
            keys: vec![KeyPolicy::default()],
            ..PolicySnapshot::default()
        };
        let body = GetSnapshotResponse {
            version: 9,
            snapshot: Some(snapshot.clone()),
            server_time_ms: 77,
        }
        .encode_to_vec();
        let reply = SnapshotReply::parse(&body).unwrap();
        assert_eq!(reply.version, 9);
        assert_eq!(reply.snapshot, Some(snapshot.encode_to_vec().as_slice()));

        // A snapshot whose last key is cut short (the reply's own framing intact).
        let mut encoded = snapshot.encode_to_vec();
        encoded.extend([0x1a, 0x05, 0x0a]);
        let mut damaged = vec![0x12, encoded.len() as u8];
        damaged.extend(encoded);
        assert!(SnapshotReply::parse(&damaged).is_err());

        let unchanged = GetSnapshotResponse {
            version: 9,
            snapshot: None,
            server_time_ms: 77,
        }
        .encode_to_vec();
        assert_eq!(
            SnapshotReply::parse(&unchanged).unwrap(),
            SnapshotReply {
                version: 9,
                snapshot: None
            }
        );
    }
}
