//! Regenerates the checked-in protobuf code and fails when it differs from `src/gen/`.

// A generator that cannot write its output fails loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "modelgate/v1/policy.proto",
    "modelgate/v1/admin.proto",
    "modelgate/v1/audit.proto",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate(out: &Path) {
    let fds = protox::compile(PROTOS, [crate_dir()]).expect("protos compile");
    std::fs::write(out.join("modelgate.v1.descriptor.bin"), fds.encode_to_vec()).unwrap();

    let messages = out.join("messages");
    std::fs::create_dir_all(&messages).unwrap();
    prost_build::Config::new()
        .out_dir(&messages)
        .compile_fds(fds.clone())
        .expect("messages generate");
    std::fs::rename(
        messages.join("modelgate.v1.rs"),
        out.join("modelgate.v1.rs"),
    )
    .unwrap();

    // Services only: the messages are "extern" so they are not generated twice.
    let services = out.join("services");
    std::fs::create_dir_all(&services).unwrap();
    tonic_prost_build::configure()
        .out_dir(&services)
        .extern_path(".modelgate.v1", "crate::v1")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)
        .expect("services generate");
    std::fs::rename(
        services.join("modelgate.v1.rs"),
        out.join("modelgate.v1.services.rs"),
    )
    .unwrap();
}

#[test]
fn checked_in_code_matches_the_protos() {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path());
    let checked_in = crate_dir().join("src/gen");
    let regen = std::env::var_os("MODELGATE_REGEN").is_some();
    let mut stale = Vec::new();
    for name in [
        "modelgate.v1.rs",
        "modelgate.v1.services.rs",
        "modelgate.v1.descriptor.bin",
    ] {
        let fresh = std::fs::read(tmp.path().join(name)).unwrap();
        let path = checked_in.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(fresh.as_slice()) {
            if regen {
                std::fs::write(&path, &fresh).unwrap();
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated code is stale: {stale:?}; run MODELGATE_REGEN=1 cargo test -p modelgate-proto --test codegen"
    );
}
