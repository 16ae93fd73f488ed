//! An Envoy reaches the control plane's policy service only with a live data-plane token:
//! revoking its token cuts it off (it fails closed once its snapshot is stale), and an Envoy
//! with a token the control plane does not know never gets policy. Either way its log says
//! what to do, without the token.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use modelgate_e2e::poll::eventually;
use modelgate_e2e::{ControlPlane, ControlPlaneAccess, Envoy, EnvoyConfig, Stack, Upstream};

const REFUSED_HINT: &str = "the data-plane token was refused";

/// Waits until Envoy's log has `needle`.
async fn log_shows(envoy: &Envoy, needle: &str) {
    eventually(
        &format!("Envoy's log shows {needle:?}"),
        Duration::from_secs(10),
        || async {
            if envoy.log().contains(needle) {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn revoking_an_envoys_token_cuts_it_off_from_policy() {
    const MAX_STALENESS: Duration = Duration::from_secs(3);
    let stack = Stack::start(EnvoyConfig::default().max_staleness_s(MAX_STALENESS.as_secs())).await;
    let key = stack.control_plane.team_with_key("team");
    // A valid token: the Envoy gets policy and serves.
    stack.gateway().wait_for_status(&key.key, 200).await;

    stack
        .control_plane
        .revoke_data_plane_token(Stack::DATA_PLANE);
    let revoked = Instant::now();
    stack.gateway().wait_for_status(&key.key, 503).await;
    let closed_after = revoked.elapsed();
    println!("with max_staleness {MAX_STALENESS:?}: 503 {closed_after:?} after the revocation");
    // The refused polls leave the last snapshot to go stale, as if the control plane were gone.
    assert!(
        closed_after >= MAX_STALENESS - Duration::from_secs(1),
        "failed closed too early: {closed_after:?}"
    );
    let reached = stack.upstream.requests().len();
    stack
        .gateway()
        .chat(Some(&key.key))
        .await
        .assert_error(503, "policy_unavailable");
    assert_eq!(
        stack.upstream.requests().len(),
        reached,
        "a request reached the upstream after failing closed"
    );

    log_shows(&stack.envoy, REFUSED_HINT).await;
    let log = stack.envoy.log();
    assert_eq!(
        log.matches(REFUSED_HINT).count(),
        1,
        "the refusal is logged once, not on every poll"
    );
    assert!(log.contains("modelgate dataplane token create"));
    assert!(
        !log.contains(&stack.access.token),
        "the token reached Envoy's log"
    );
}

#[tokio::test]
async fn an_envoy_with_an_unknown_token_never_gets_policy() {
    let upstream = Upstream::start();
    let control_plane = ControlPlane::start().await;
    let key = control_plane.team_with_key("team");
    let access = ControlPlaneAccess {
        addr: control_plane.grpc_addr(),
        token: format!("mgdp-abcdefghijkl-{}", "B".repeat(43)),
        http_addr: control_plane.http_addr(),
    };
    let envoy = Envoy::start(upstream.addr(), &access, EnvoyConfig::default()).await;

    log_shows(&envoy, REFUSED_HINT).await;
    envoy
        .gateway()
        .chat(Some(&key.key))
        .await
        .assert_error(503, "policy_unavailable");
    assert!(
        upstream.requests().is_empty(),
        "a request reached the upstream"
    );
    let log = envoy.log();
    // The control plane's reason, as Envoy hands it over: percent-encoded (gRPC's
    // grpc-message encoding).
    assert!(log.contains("unknown%20data-plane%20token"), "{log}");
    assert!(
        !log.contains(&access.token),
        "the token reached Envoy's log"
    );
}
