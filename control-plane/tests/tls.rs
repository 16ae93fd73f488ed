//! `modelgate serve` over TLS and mTLS with PolicyService on its own listener (issue 13),
//! through the real binary: the CLI and a policy client with the test CA and a client
//! certificate, clients without one refused at the handshake, REST over https, and startup
//! errors for bad certificate files. Certificates are generated per test.

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use modelgate_control_plane::cli::{connect_channel, ControlPlaneAddr};
use modelgate_control_plane::tls::ClientTlsFiles;
use modelgate_e2e::pki::{CertFiles, TestPki};
use modelgate_proto::v1 as pb;
use modelgate_proto::v1::policy_service_client::PolicyServiceClient;
use support::control_plane::{command, CliOutput, ControlPlane};
use tonic::{Code, Request};

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// A control plane requiring client certificates from `pki`'s CA, with `--policy-addr`.
fn start_mtls(dir: &std::path::Path, pki: &TestPki) -> ControlPlane {
    let server = pki.server("control-plane");
    ControlPlane::start(
        dir,
        &[
            "--tls-cert",
            path(&server.cert),
            "--tls-key",
            path(&server.key),
            "--client-ca",
            path(&pki.ca_cert()),
            "--policy-addr",
            "127.0.0.1:0",
        ],
        &[],
    )
}

fn client_env<'a>(ca: &'a str, client: Option<&'a CertFiles>) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("MODELGATE_CA_CERT", ca)];
    if let Some(client) = client {
        env.push(("MODELGATE_CLIENT_CERT", path(&client.cert)));
        env.push(("MODELGATE_CLIENT_KEY", path(&client.key)));
    }
    env
}

async fn snapshot(
    addr: std::net::SocketAddr,
    pki: &TestPki,
    client: &CertFiles,
    token: &str,
) -> Result<pb::GetSnapshotResponse, tonic::Status> {
    let channel = connect_channel(&ControlPlaneAddr {
        url: format!("https://{addr}"),
        tls: ClientTlsFiles {
            ca_cert: Some(pki.ca_cert()),
            client_cert: Some(client.cert.clone()),
            client_key: Some(client.key.clone()),
        },
    })
    .await
    .unwrap();
    let mut request = Request::new(pb::GetSnapshotRequest {
        node_id: "tls-test".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    PolicyServiceClient::new(channel)
        .get_snapshot(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn mtls_serves_the_cli_and_envoys_and_refuses_clients_without_a_certificate() {
    let pki = TestPki::new("modelgate");
    let admin = pki.client("admin-cli");
    let dir = tempfile::tempdir().unwrap();
    let cp = start_mtls(dir.path(), &pki);
    let ca = path(&pki.ca_cert()).to_owned();

    // The CLI over https with the CA and its certificate.
    let team = cp
        .cli_with_env(
            &[
                "team", "create", "--alias", "eng", "--models", "*", "--json",
            ],
            &client_env(&ca, Some(&admin)),
        )
        .json();
    assert!(team["team_id"].is_string(), "{team}");
    let token = cp
        .cli_with_env(
            &["dataplane", "token", "create", "--name", "edge-1", "--json"],
            &client_env(&ca, Some(&admin)),
        )
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Without a client certificate: refused at the handshake, nothing created.
    let refused = cp.cli_with_env(
        &["team", "create", "--alias", "sneaky", "--json"],
        &client_env(&ca, None),
    );
    let line = refused.fails();
    assert!(line.contains("CertificateRequired"), "{line}");
    // Without the private CA the server's certificate is not trusted.
    let untrusted = cp.cli_with_env(
        &["team", "list", "--json"],
        &[
            ("MODELGATE_CLIENT_CERT", path(&admin.cert)),
            ("MODELGATE_CLIENT_KEY", path(&admin.key)),
        ],
    );
    assert!(untrusted.fails().contains("UnknownIssuer"), "{untrusted:?}");
    // Plain HTTP/2 to a TLS port gets nowhere.
    let plain = cp.cli_with_env(
        &[
            "--addr",
            &format!("http://{}", cp.grpc_addr),
            "team",
            "list",
        ],
        &client_env(&ca, Some(&admin)),
    );
    assert_ne!(plain.code, Some(0), "{plain:?}");
    let teams = cp
        .cli_with_env(&["team", "list", "--json"], &client_env(&ca, Some(&admin)))
        .json();
    assert_eq!(teams.as_array().map(Vec::len), Some(1), "{teams}");

    // An Envoy with a client certificate and its token gets the policy on the policy
    // listener; the admin listener does not serve PolicyService at all.
    let envoy = pki.client("edge-1");
    let policy_addr = cp.policy_addr.expect("policy listener");
    let snap = snapshot(policy_addr, &pki, &envoy, &token).await.unwrap();
    assert!(snap.snapshot.is_some(), "{snap:?}");
    let on_admin = snapshot(cp.grpc_addr, &pki, &envoy, &token)
        .await
        .unwrap_err();
    assert_eq!(on_admin.code(), Code::Unimplemented, "{on_admin:?}");
    // And a client certificate from another CA is as good as none.
    let strangers = TestPki::new("stranger");
    let stranger = strangers.client("edge-1");
    let err = connect_channel(&ControlPlaneAddr {
        url: format!("https://{policy_addr}"),
        tls: ClientTlsFiles {
            ca_cert: Some(pki.ca_cert()),
            client_cert: Some(stranger.cert.clone()),
            client_key: Some(stranger.key.clone()),
        },
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("UnknownCA"), "{err}");
}

#[tokio::test]
async fn rest_is_served_over_https_with_mtls() {
    modelgate_control_plane::tls::install_crypto_provider();
    let pki = TestPki::new("modelgate");
    let dir = tempfile::tempdir().unwrap();
    let cp = start_mtls(dir.path(), &pki);
    let url = format!("https://{}/ready", cp.http_addr);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.ca_cert()).unwrap()).unwrap();
    let client = pki.client("ops");
    let identity = reqwest::Identity::from_pem(
        &[
            std::fs::read(&client.cert).unwrap(),
            std::fs::read(&client.key).unwrap(),
        ]
        .concat(),
    )
    .unwrap();

    let with_cert = reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .identity(identity)
        .build()
        .unwrap();
    let ready = with_cert.get(&url).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let without_cert = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let err = without_cert.get(&url).send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}

#[tokio::test]
async fn serve_refuses_unreadable_or_mismatched_tls_files_in_one_line() {
    let pki = TestPki::new("modelgate");
    let server = pki.server("control-plane");
    let other = pki.server("other");
    let missing = pki.dir().join("missing.pem");
    let dir = tempfile::tempdir().unwrap();
    let serve = |cert: &std::path::Path, key: &std::path::Path, extra: &[&str]| {
        CliOutput::from(
            command()
                .arg("serve")
                .arg("--data-dir")
                .arg(dir.path())
                .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
                .args(["--tls-cert", path(cert), "--tls-key", path(key)])
                .args(extra)
                .output()
                .unwrap(),
        )
    };

    let out = serve(&missing, &server.key, &[]);
    assert!(
        out.fails()
            .contains(&format!("cannot read {}", missing.display())),
        "{out:?}"
    );
    let out = serve(&server.cert, &other.key, &[]);
    assert!(
        out.fails().contains(&format!(
            "the private key {} does not belong to the certificate {}",
            other.key.display(),
            server.cert.display()
        )),
        "{out:?}"
    );
    // A key where the certificate should be.
    let out = serve(&server.key, &server.key, &[]);
    assert!(
        out.fails().contains(&format!(
            "{} holds no PEM certificate",
            server.key.display()
        )),
        "{out:?}"
    );
    let out = serve(&server.cert, &server.key, &["--client-ca", path(&missing)]);
    assert!(out.fails().contains("missing.pem"), "{out:?}");

    assert!(
        !dir.path().join("master.key").exists(),
        "a server that cannot start leaves no key behind"
    );
}
