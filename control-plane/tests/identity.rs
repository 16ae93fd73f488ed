//! IdP issuers on the real `modelgate serve`: the CLI and gRPC (add, list, update, remove,
//! validation), team IdP groups, and JWKS fetching from a stand-in IdP on loopback (OIDC
//! discovery, Cache-Control bounds, refetch on a reported unknown kid and its rate limit,
//! fail static with the error in `idp list`).

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modelgate_proto::v1 as pb;
use modelgate_proto::v1::admin_service_client::AdminServiceClient;
use serde_json::{json, Value};
use support::control_plane::ControlPlane;
use support::rest::{error, Rest};
use tonic::{Code, Request};

fn jwks(kids: &[&str]) -> String {
    let keys: Vec<Value> = kids
        .iter()
        .map(|kid| json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"}))
        .collect();
    json!({ "keys": keys }).to_string()
}

/// What the stand-in IdP serves, changed by tests as they go.
struct IdpState {
    issuer: String,
    /// The `issuer` its discovery document names (the real one unless a test lies).
    discovery_issuer: Option<String>,
    jwks: String,
    jwks_status: u16,
    cache_control: Option<String>,
    jwks_hits: u32,
}

/// A tiny IdP on loopback: `/.well-known/openid-configuration` and `/jwks`, on its own
/// thread and runtime so a test blocked on the CLI never stalls it.
#[derive(Clone)]
struct Idp {
    state: Arc<Mutex<IdpState>>,
    addr: SocketAddr,
}

async fn discovery(State(state): State<Arc<Mutex<IdpState>>>) -> Response {
    let s = state.lock().unwrap();
    let issuer = s
        .discovery_issuer
        .clone()
        .unwrap_or_else(|| s.issuer.clone());
    axum::Json(json!({"issuer": issuer, "jwks_uri": format!("{}/jwks", s.issuer)})).into_response()
}

async fn jwks_document(State(state): State<Arc<Mutex<IdpState>>>) -> Response {
    let mut s = state.lock().unwrap();
    s.jwks_hits += 1;
    let status = StatusCode::from_u16(s.jwks_status).unwrap();
    let mut response = (status, s.jwks.clone()).into_response();
    if let Some(cc) = &s.cache_control {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, cc.parse().unwrap());
    }
    response
}

impl Idp {
    fn start(kids: &[&str]) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(IdpState {
            issuer: format!("http://{addr}"),
            discovery_issuer: None,
            jwks: jwks(kids),
            jwks_status: 200,
            cache_control: None,
            jwks_hits: 0,
        }));
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks_document))
            .with_state(Arc::clone(&state));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Self { state, addr }
    }

    fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn hits(&self) -> u32 {
        self.state.lock().unwrap().jwks_hits
    }

    fn set(&self, change: impl FnOnce(&mut IdpState)) {
        change(&mut self.state.lock().unwrap());
    }
}

fn start_cp() -> (tempfile::TempDir, ControlPlane) {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    (dir, cp)
}

fn master_key(cp: &ControlPlane) -> String {
    std::fs::read_to_string(cp.data_dir.join("master.key"))
        .unwrap()
        .trim()
        .to_owned()
}

async fn snapshot(cp: &ControlPlane, unknown: Vec<pb::UnknownSigningKey>) -> pb::PolicySnapshot {
    let mut policy = cp.policy_client().await;
    policy
        .get_snapshot(pb::GetSnapshotRequest {
            known_version: 0,
            node_id: "test".into(),
            unknown_signing_keys: unknown,
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap()
}

fn unknown_kid(issuer: &str, kid: &str) -> Vec<pb::UnknownSigningKey> {
    vec![pb::UnknownSigningKey {
        issuer: issuer.into(),
        kid: kid.into(),
    }]
}

fn snapshot_kids(s: &pb::PolicySnapshot, issuer: &str) -> Vec<String> {
    s.identity_providers
        .iter()
        .find(|p| p.issuer == issuer)
        .map(|p| {
            let doc: Value = serde_json::from_str(&p.jwks_json).unwrap();
            doc["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn listed(cp: &ControlPlane) -> Vec<Value> {
    cp.cli(&["idp", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuers_are_added_listed_updated_and_removed_through_the_cli() {
    let idp = Idp::start(&["k1"]);
    let (_dir, cp) = start_cp();
    let issuer = idp.issuer();

    let added = cp
        .cli(&[
            "idp",
            "add",
            "--issuer",
            &issuer,
            "--audience",
            "modelgate",
            "--audience",
            "api",
            "--user-claim",
            "email",
            "--allowed-groups",
            "ai-users,ai-admins",
            "--clock-skew",
            "30",
            "--default-rpm",
            "20",
            "--default-max-budget",
            "5",
            "--json",
        ])
        .json();
    assert_eq!(added["issuer"], issuer.as_str());
    assert_eq!(added["audiences"], json!(["modelgate", "api"]));
    assert_eq!(added["jwks_source"], "discovery");
    assert_eq!(added["jwks_url"], format!("{issuer}/jwks"));
    assert_eq!(added["key_ids"], json!(["k1"]));
    assert_eq!(added["key_count"], 1);
    assert!(added["last_error"].is_null(), "{added}");
    assert_eq!(added["user_claim"], "email");
    assert_eq!(added["groups_claim"], "groups");
    assert_eq!(added["allowed_groups"], json!(["ai-users", "ai-admins"]));
    assert_eq!(added["clock_skew_s"], 30);
    assert_eq!(added["default_user_limits"]["rpm_limit"], 20);
    assert_eq!(added["default_user_limits"]["max_budget"], 5.0);
    assert_eq!(idp.hits(), 1, "fetched once, at once");

    let table = cp.cli(&["idp", "list"]).ok().to_owned();
    assert!(table.starts_with("ISSUER"), "{table}");
    assert!(
        table.contains(&issuer) && table.contains("1 (k1)"),
        "{table}"
    );

    let s = snapshot(&cp, vec![]).await;
    assert_eq!(s.identity_providers.len(), 1);
    let p = &s.identity_providers[0];
    assert_eq!(p.audiences, ["modelgate", "api"]);
    assert_eq!(p.user_claim, "email");
    assert_eq!(p.clock_skew_s, 30);
    assert_eq!(p.default_user_limits.as_ref().unwrap().rpm, Some(20));
    assert_eq!(snapshot_kids(&s, &issuer), ["k1"]);

    let updated = cp
        .cli(&[
            "idp",
            "update",
            &issuer,
            "--audience",
            "other",
            "--any-group",
            "--clear",
            "max_budget",
            "--json",
        ])
        .json();
    assert_eq!(updated["audiences"], json!(["other"]));
    assert_eq!(updated["allowed_groups"], json!([]));
    assert!(updated["default_user_limits"]["max_budget"].is_null());
    assert_eq!(updated["default_user_limits"]["rpm_limit"], 20);
    let s = snapshot(&cp, vec![]).await;
    assert_eq!(s.identity_providers[0].audiences, ["other"]);

    // Uploaded keys replace fetched ones and are never fetched.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&["uploaded"])).unwrap();
    let uploaded = cp
        .cli(&[
            "idp",
            "update",
            &issuer,
            "--jwks-file",
            file.to_str().unwrap(),
            "--json",
        ])
        .json();
    assert_eq!(uploaded["jwks_source"], "file");
    assert_eq!(uploaded["key_ids"], json!(["uploaded"]));
    assert!(uploaded["next_refresh_at"].is_null());
    assert_eq!(
        snapshot_kids(&snapshot(&cp, vec![]).await, &issuer),
        ["uploaded"]
    );

    let removed = cp.cli(&["idp", "remove", &issuer]).ok().to_owned();
    assert!(
        removed.starts_with(&format!("Removed identity provider {issuer}")),
        "{removed}"
    );
    assert!(listed(&cp).is_empty());
    assert!(snapshot(&cp, vec![]).await.identity_providers.is_empty());
    let again = cp.cli(&["idp", "remove", &issuer]);
    assert!(again.fails().contains("not found"), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_issuer_settings_are_refused_with_clear_errors() {
    let (dir, cp) = start_cp();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let add = |extra: &[&str]| {
        let mut args = vec!["idp", "add", "--audience", "modelgate"];
        args.extend_from_slice(extra);
        cp.cli(&args)
    };
    let private = write(
        "private.json",
        r#"{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB","d":"c2VjcmV0LWV4cG9uZW50"}]}"#,
    );
    let not_jwks = write("not.json", r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#);
    let no_kty = write("nokty.json", r#"{"keys":[{"kid":"a","n":"AQAB"}]}"#);
    let symmetric = write("oct.json", r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#);
    let cases: [(&[&str], &str); 7] = [
        (&["--issuer", "http://idp.example.com"], "use an https URL"),
        (&["--issuer", "idp.example.com"], "use an https URL"),
        (
            &[
                "--issuer",
                "https://idp.example.com",
                "--jwks-file",
                &private,
            ],
            "private key material (\"d\")",
        ),
        (
            &[
                "--issuer",
                "https://idp.example.com",
                "--jwks-file",
                &not_jwks,
            ],
            "expected a JSON object with a \"keys\" array",
        ),
        (
            &[
                "--issuer",
                "https://idp.example.com",
                "--jwks-file",
                &no_kty,
            ],
            "key 0 has no \"kty\"",
        ),
        (
            &[
                "--issuer",
                "https://idp.example.com",
                "--jwks-file",
                &symmetric,
            ],
            "symmetric key",
        ),
        (
            &[
                "--issuer",
                "https://idp.example.com",
                "--jwks-url",
                "https://idp.example.com/k",
                "--clock-skew",
                "86400",
            ],
            "clock skew 86400 s is too large",
        ),
    ];
    for (args, expected) in cases {
        let out = add(args);
        let line = out.fails();
        assert!(line.contains(expected), "{args:?}: {line}");
        assert!(
            !line.contains("c2VjcmV0"),
            "never echo key material: {line}"
        );
    }
    // Caught by the argument parser: no audience, two JWKS sources.
    let out = cp.cli(&["idp", "add", "--issuer", "https://idp.example.com"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("--audience"), "{out:?}");
    let out = add(&[
        "--issuer",
        "https://idp.example.com",
        "--jwks-url",
        "https://x.example.com",
        "--jwks-file",
        &private,
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(listed(&cp).is_empty(), "nothing stored after refusals");

    // gRPC says the same, with INVALID_ARGUMENT; an empty audience list too.
    let mut admin = AdminServiceClient::connect(cp.grpc_url()).await.unwrap();
    let mut req = Request::new(pb::CreateIdentityProviderRequest {
        issuer: "https://idp.example.com".into(),
        audiences: vec![" ".into()],
        jwks_json: jwks(&["a"]),
        ..Default::default()
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", master_key(&cp)).parse().unwrap(),
    );
    let status = admin.create_identity_provider(req).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("at least one audience"),
        "{status:?}"
    );

    let mut req = Request::new(pb::CreateIdentityProviderRequest {
        issuer: "https://idp.example.com".into(),
        audiences: vec!["modelgate".into()],
        jwks_json: jwks(&["a"]),
        ..Default::default()
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", master_key(&cp)).parse().unwrap(),
    );
    let created = admin
        .create_identity_provider(req)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.key_ids, ["a"]);
    let again = add(&[
        "--issuer",
        "https://idp.example.com",
        "--jwks-file",
        &write("ok.json", &jwks(&["b"])),
    ]);
    assert!(again.fails().contains("already registered"), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_idp_groups_are_set_replaced_and_cleared() {
    let (_dir, cp) = start_cp();
    let team = cp
        .cli(&[
            "team",
            "create",
            "--alias",
            "engineering",
            "--models",
            "llama3",
            "--idp-groups",
            "ai-engineering,platform",
            "--json",
        ])
        .json();
    assert_eq!(team["idp_groups"], json!(["ai-engineering", "platform"]));
    let shown = cp.cli(&["team", "show", "engineering"]).ok().to_owned();
    assert!(
        shown.contains("idp groups: ai-engineering,platform"),
        "{shown}"
    );
    let s = snapshot(&cp, vec![]).await;
    assert_eq!(s.teams[0].idp_groups, ["ai-engineering", "platform"]);

    let replaced = cp
        .cli(&[
            "team",
            "update",
            "engineering",
            "--idp-groups",
            "ml",
            "--json",
        ])
        .json();
    assert_eq!(replaced["idp_groups"], json!(["ml"]));
    // Other updates leave the groups alone.
    let other = cp
        .cli(&["team", "update", "engineering", "--rpm", "10", "--json"])
        .json();
    assert_eq!(other["idp_groups"], json!(["ml"]));
    let cleared = cp
        .cli(&["team", "update", "engineering", "--no-idp-groups", "--json"])
        .json();
    assert_eq!(cleared["idp_groups"], json!([]));
    assert!(snapshot(&cp, vec![]).await.teams[0].idp_groups.is_empty());

    let bad = cp.cli(&[
        "team",
        "update",
        "engineering",
        "--idp-groups",
        &"g".repeat(300),
    ]);
    assert!(bad.fails().contains("IdP group"), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_must_name_the_configured_issuer() {
    let idp = Idp::start(&["k1"]);
    idp.set(|s| s.discovery_issuer = Some("https://evil.example.com".into()));
    let (_dir, cp) = start_cp();
    let issuer = idp.issuer();
    let added = cp
        .cli(&[
            "idp",
            "add",
            "--issuer",
            &issuer,
            "--audience",
            "modelgate",
            "--json",
        ])
        .json();
    let error = added["last_error"].as_str().unwrap();
    assert!(
        error.contains("names issuer \"https://evil.example.com\""),
        "{error}"
    );
    assert_eq!(added["key_ids"], json!([]));
    assert_eq!(idp.hits(), 0, "the other issuer's keys are never fetched");
    assert!(
        snapshot(&cp, vec![]).await.identity_providers.is_empty(),
        "an issuer without keys verifies nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_sets_the_next_refresh_within_bounds() {
    let idp = Idp::start(&["k1"]);
    let (_dir, cp) = start_cp();
    let issuer = idp.issuer();
    let jwks_url = format!("{issuer}/jwks");
    let refresh_after = |v: &Value| {
        let at = |f: &str| {
            modelgate_control_plane::clock::Timestamp::parse_rfc3339(v[f].as_str().unwrap())
                .unwrap()
                .as_millis()
        };
        (at("next_refresh_at") - at("jwks_fetched_at")) / 1000
    };
    let added = cp
        .cli(&[
            "idp",
            "add",
            "--issuer",
            &issuer,
            "--audience",
            "m",
            "--jwks-url",
            &jwks_url,
            "--json",
        ])
        .json();
    assert_eq!(added["jwks_source"], "url");
    assert_eq!(refresh_after(&added), 3600, "default without Cache-Control");

    for (cache_control, seconds) in [
        ("public, max-age=7200", 7200),
        ("max-age=10", 300),
        ("no-store", 300),
        ("max-age=31536000", 86_400),
    ] {
        idp.set(|s| s.cache_control = Some(cache_control.into()));
        // Picking the source again fetches at once.
        let v = cp
            .cli(&["idp", "update", &issuer, "--jwks-url", &jwks_url, "--json"])
            .json();
        assert_eq!(refresh_after(&v), seconds, "{cache_control}");
    }
}

/// Polls the snapshot (as a filter would, reporting `unknown`) until `done` or 10 s.
async fn poll_until(
    cp: &ControlPlane,
    unknown: Vec<pb::UnknownSigningKey>,
    done: impl Fn(&pb::PolicySnapshot) -> bool,
) -> pb::PolicySnapshot {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = snapshot(cp, unknown.clone()).await;
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_refetch_at_most_once_per_interval_and_failures_keep_the_keys() {
    let idp = Idp::start(&["k1"]);
    let (_dir, cp) = start_cp();
    let issuer = idp.issuer();
    cp.cli(&["idp", "add", "--issuer", &issuer, "--audience", "modelgate"])
        .ok();
    assert_eq!(idp.hits(), 1);

    // The IdP rotates: a filter sees a token signed with k2 and reports it.
    idp.set(|s| s.jwks = jwks(&["k1", "k2"]));
    let s = poll_until(&cp, unknown_kid(&issuer, "k2"), |s| {
        snapshot_kids(s, &issuer).len() == 2
    })
    .await;
    assert_eq!(snapshot_kids(&s, &issuer), ["k1", "k2"]);
    assert_eq!(idp.hits(), 2);

    // A flood of made-up kids (and of unconfigured issuers) within the interval: no fetch.
    for i in 0..20 {
        let mut reported = unknown_kid(&issuer, &format!("made-up-{i}"));
        reported.extend(unknown_kid("https://not-configured.example.com", "x"));
        snapshot(&cp, reported).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        idp.hits(),
        2,
        "rate limited to one fetch per 5 s per issuer"
    );

    // The IdP fails: the next allowed refetch keeps the last good keys and records why.
    idp.set(|s| s.jwks_status = 503);
    let deadline = Instant::now() + Duration::from_secs(15);
    let listed_error = loop {
        snapshot(&cp, unknown_kid(&issuer, "k3")).await;
        let list = listed(&cp);
        if let Some(error) = list[0]["last_error"].as_str() {
            break (error.to_owned(), list[0].clone());
        }
        assert!(
            Instant::now() < deadline,
            "no fetch after the interval: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (error, entry) = listed_error;
    assert!(error.contains("HTTP 503"), "{error}");
    assert!(entry["last_error_at"].is_string(), "{entry}");
    assert_eq!(entry["key_ids"], json!(["k1", "k2"]), "fail static");
    assert_eq!(idp.hits(), 3);
    assert_eq!(
        snapshot_kids(&snapshot(&cp, vec![]).await, &issuer),
        ["k1", "k2"]
    );
    let table = cp.cli(&["idp", "list"]).ok().to_owned();
    assert!(table.contains("HTTP 503"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuers_are_managed_over_rest_too() {
    let (_dir, cp) = start_cp();
    let master = master_key(&cp);
    let rest = Rest {
        addr: cp.http_addr,
        key: &master,
    };
    let issuer = "https://idp.rest.example.com";
    let document: Value = serde_json::from_str(&jwks(&["r1", "r2"])).unwrap();

    // An uploaded JWKS (as the IdP publishes it), default user limits, an audience.
    let added = rest.ok(rest.post(
        "/idp/new",
        json!({"issuer": issuer, "audiences": ["modelgate"], "jwks": document,
               "groups_claim": "roles", "rpm_limit": 7}),
    ));
    assert_eq!(added["issuer"], issuer);
    assert_eq!(added["jwks_source"], "file");
    assert_eq!(added["key_ids"], json!(["r1", "r2"]));
    assert_eq!(added["groups_claim"], "roles");
    assert_eq!(added["rpm_limit"], 7);
    assert!(
        !added.to_string().contains("\"kty\""),
        "keys echoed: {added}"
    );
    assert_eq!(
        snapshot_kids(&snapshot(&cp, Vec::new()).await, issuer),
        ["r1", "r2"]
    );

    // Bad input is refused by name and changes nothing.
    let (status, body) = rest.post(
        "/idp/new",
        json!({"issuer": "https://other.example.com", "jwks": document, "colour": 1}),
    );
    assert!(error(status, 400, &body).contains("colour"), "{body}");
    assert_eq!(body["error"]["param"], "colour");
    let (status, body) = rest.post("/idp/update", json!({"audiences": ["x"]}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "issuer");
    let (status, body) = rest.post(
        "/idp/update",
        json!({"issuer": issuer, "clock_skew_s": "soon"}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "clock_skew_s");
    let (status, body) = rest.post(
        "/idp/delete",
        json!({"issuer": "https://nobody.example.com"}),
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = rest.post(
        "/idp/new",
        json!({"issuer": issuer, "audiences": ["modelgate"], "jwks": document}),
    );
    assert_eq!(status, 409, "{body}");

    // An update keeps what it does not name; null unsets a default limit.
    let updated = rest.ok(rest.post(
        "/idp/update",
        json!({"issuer": issuer, "audiences": ["modelgate", "webui"], "rpm_limit": null}),
    ));
    assert_eq!(updated["audiences"], json!(["modelgate", "webui"]));
    assert_eq!(updated["groups_claim"], "roles");
    assert!(updated["rpm_limit"].is_null(), "{updated}");

    // The refused creation added nothing.
    let list = rest.ok(rest.get("/idp/list"));
    assert_eq!(
        list["identity_providers"].as_array().unwrap().len(),
        1,
        "{list}"
    );

    // Every change is an admin record in the audit chain.
    let admin_records = cp
        .cli(&[
            "audit", "query", "--kind", "admin", "--limit", "0", "--json",
        ])
        .json();
    let on_issuer = admin_records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["admin"]["object_id"] == issuer && r["admin"]["allowed"] == true)
        .count();
    assert_eq!(on_issuer, 2, "{admin_records}");

    let removed = rest.ok(rest.post("/idp/delete", json!({"issuer": issuer})));
    assert_eq!(removed["issuer"], issuer);
    let list = rest.ok(rest.get("/idp/list"));
    assert_eq!(list["identity_providers"], json!([]));
    assert!(snapshot(&cp, Vec::new())
        .await
        .identity_providers
        .is_empty());
}
