//! The field numbers in `modelgate_proto::fields` are the ones the `.proto` files declare.

// A schema check fails loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use modelgate_proto::fields::{get_snapshot_response, key_policy, policy_snapshot};
use modelgate_proto::v1::FILE_DESCRIPTOR_SET;
use prost::Message;
use prost_types::FileDescriptorSet;

fn number(message: &str, field: &str) -> u32 {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let found = set
        .file
        .iter()
        .flat_map(|file| &file.message_type)
        .find(|m| m.name() == message)
        .unwrap_or_else(|| panic!("no message {message}"))
        .field
        .iter()
        .find(|f| f.name() == field)
        .unwrap_or_else(|| panic!("no field {message}.{field}"));
    u32::try_from(found.number()).unwrap()
}

#[test]
fn field_numbers_match_the_schema() {
    let cases = [
        ("PolicySnapshot", "version", policy_snapshot::VERSION),
        ("PolicySnapshot", "keys", policy_snapshot::KEYS),
        ("PolicySnapshot", "teams", policy_snapshot::TEAMS),
        ("PolicySnapshot", "users", policy_snapshot::USERS),
        ("PolicySnapshot", "models", policy_snapshot::MODELS),
        (
            "PolicySnapshot",
            "identity_providers",
            policy_snapshot::IDENTITY_PROVIDERS,
        ),
        ("KeyPolicy", "key_sha256", key_policy::KEY_SHA256),
        (
            "KeyPolicy",
            "previous_key_sha256",
            key_policy::PREVIOUS_KEY_SHA256,
        ),
        (
            "GetSnapshotResponse",
            "version",
            get_snapshot_response::VERSION,
        ),
        (
            "GetSnapshotResponse",
            "snapshot",
            get_snapshot_response::SNAPSHOT,
        ),
    ];
    for (message, field, constant) in cases {
        assert_eq!(number(message, field), constant, "{message}.{field}");
    }
}
