//! The `modelgate.v1` protocol shared by the wasm filter and the control plane.
//!
//! Messages are always compiled and have no I/O, so the filter can use them on
//! `wasm32-wasip1`. The tonic service stubs sit behind the `client` and `server` features.
//! The generated code under `src/gen/` is checked in so that builds need no `protoc`;
//! `tests/codegen.rs` regenerates it and fails on any difference
//! (`MODELGATE_REGEN=1 cargo test -p modelgate-proto --test codegen` rewrites it).

/// Messages and services of the `modelgate.v1` package.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    include!("gen/modelgate.v1.rs");

    #[cfg(any(feature = "client", feature = "server"))]
    include!("gen/modelgate.v1.services.rs");

    /// Encoded `FileDescriptorSet` of the package, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/modelgate.v1.descriptor.bin");
}

/// gRPC paths, so the filter (which dispatches calls by name) and the server cannot drift.
pub mod paths {
    /// Fully qualified name of the data-plane service.
    pub const POLICY_SERVICE: &str = "modelgate.v1.PolicyService";
    /// Method that returns the current policy snapshot.
    pub const GET_SNAPSHOT: &str = "GetSnapshot";
    /// Method that delivers usage/audit batches.
    pub const REPORT_USAGE: &str = "ReportUsage";
    /// Fully qualified name of the admin service.
    pub const ADMIN_SERVICE: &str = "modelgate.v1.AdminService";
}

/// Field numbers of the messages the filter scans without decoding them whole (its snapshot
/// index reads the encoded bytes), so a renumbering here cannot go unnoticed there:
/// `tests/fields.rs` checks every one against the compiled descriptor.
pub mod fields {
    /// `modelgate.v1.PolicySnapshot`.
    pub mod policy_snapshot {
        pub const VERSION: u32 = 1;
        pub const KEYS: u32 = 3;
        pub const TEAMS: u32 = 4;
        pub const USERS: u32 = 5;
        pub const MODELS: u32 = 6;
        pub const IDENTITY_PROVIDERS: u32 = 7;
    }

    /// `modelgate.v1.KeyPolicy`.
    pub mod key_policy {
        pub const KEY_SHA256: u32 = 1;
        pub const PREVIOUS_KEY_SHA256: u32 = 11;
    }

    /// `modelgate.v1.GetSnapshotResponse`.
    pub mod get_snapshot_response {
        pub const VERSION: u32 = 1;
        pub const SNAPSHOT: u32 = 2;
    }
}
