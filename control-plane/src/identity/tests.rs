use std::time::Duration;

use super::jwks::{Jwks, JwksError};
use super::refresh::{self, UnknownKidLimiter};
use super::*;

const RSA_PUBLIC: &str =
    r#"{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"sXch","e":"AQAB"}"#;

#[test]
fn issuers_are_https_urls_or_loopback_http() {
    for ok in [
        "https://idp.example.com",
        "https://login.microsoftonline.com/tenant/v2.0",
        "http://127.0.0.1:8080/realms/x",
        "http://localhost:9000",
        "http://[::1]:9000",
    ] {
        assert_eq!(parse_issuer(ok).as_deref(), Ok(ok), "{ok}");
    }
    for bad in [
        "idp.example.com",
        "http://idp.example.com",
        "ftp://idp.example.com",
        "https://",
        "https://user:pw@idp.example.com",
        "https://idp.example.com/#frag",
        "",
    ] {
        assert!(
            matches!(parse_issuer(bad), Err(IdentityError::Issuer(_))),
            "{bad}"
        );
    }
}

#[test]
fn audiences_groups_claims_and_skew_are_checked() {
    assert_eq!(
        parse_audiences([" modelgate ", "", "modelgate", "api"]).unwrap(),
        ["modelgate", "api"]
    );
    assert_eq!(parse_audiences([" "]), Err(IdentityError::NoAudience));
    assert!(matches!(
        parse_names("group", ["a,b"]),
        Err(IdentityError::Name { .. })
    ));
    let many: Vec<String> = (0..101).map(|i| format!("g{i}")).collect();
    assert_eq!(
        parse_names("group", &many),
        Err(IdentityError::TooMany("group"))
    );
    assert_eq!(parse_claim("user", "email").unwrap(), "email");
    assert_eq!(parse_claim("user", "").unwrap(), "");
    assert!(parse_claim("user", "a b").is_err());
    assert_eq!(parse_clock_skew(None), Ok(DEFAULT_CLOCK_SKEW_S));
    assert_eq!(parse_clock_skew(Some(600)), Ok(600));
    assert_eq!(
        parse_clock_skew(Some(86_400)),
        Err(IdentityError::ClockSkew(86_400))
    );
}

#[test]
fn a_jwks_is_normalised_and_lists_its_kids() {
    let text = format!(
        "{{ \"keys\": [ {RSA_PUBLIC}, {{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11\"}} ] }}"
    );
    let jwks = Jwks::parse(&text).unwrap();
    assert_eq!(jwks.kids, ["k1", ""]);
    assert!(!jwks.json.contains(' '), "{}", jwks.json);
    assert_eq!(Jwks::parse(&jwks.json).unwrap(), jwks);
}

#[test]
fn things_that_are_not_public_jwks_are_refused() {
    let refused = |text: &str| Jwks::parse(text).unwrap_err();
    assert!(matches!(refused("not json"), JwksError::NotJson(_)));
    assert_eq!(refused(r#"{"kty":"RSA"}"#), JwksError::NoKeysArray);
    assert_eq!(refused(r#"{"keys":{}}"#), JwksError::NoKeysArray);
    assert_eq!(refused(r#"{"keys":[]}"#), JwksError::Empty);
    assert_eq!(
        refused(r#"{"keys":[{"kid":"a"}]}"#),
        JwksError::NoKeyType(0)
    );
    assert_eq!(refused(r#"{"keys":["x"]}"#), JwksError::KeyNotObject(0));
    assert_eq!(
        refused(r#"{"keys":[{"kty":"RSA","kid":"a","n":"1","e":"AQAB","d":"secret"}]}"#),
        JwksError::PrivateKey {
            index: 0,
            kid: "a".into(),
            member: "d"
        }
    );
    assert_eq!(
        refused(&format!(
            r#"{{"keys":[{RSA_PUBLIC},{{"kty":"EC","kid":"b","crv":"P-256","x":"1","y":"2","d":"3"}}]}}"#
        )),
        JwksError::PrivateKey {
            index: 1,
            kid: "b".into(),
            member: "d"
        }
    );
    assert_eq!(
        refused(r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#),
        JwksError::SymmetricKey {
            index: 0,
            kid: "h".into()
        }
    );
    let too_many = format!(
        r#"{{"keys":[{}]}}"#,
        vec![RSA_PUBLIC; jwks::MAX_KEYS + 1].join(",")
    );
    assert_eq!(refused(&too_many), JwksError::TooManyKeys);
    // The error names the member, never its value.
    let shown =
        refused(r#"{"keys":[{"kty":"RSA","n":"1","e":"AQAB","p":"topsecret"}]}"#).to_string();
    assert!(!shown.contains("topsecret"), "{shown}");
}

#[test]
fn refresh_follows_max_age_within_bounds() {
    assert_eq!(refresh::max_age("public, max-age=3600"), Some(3600));
    assert_eq!(
        refresh::max_age("Max-Age=\"60\", must-revalidate"),
        Some(60)
    );
    assert_eq!(refresh::max_age("no-store"), Some(0));
    assert_eq!(refresh::max_age("private"), None);
    assert_eq!(refresh::max_age("max-age=soon"), None);

    let interval = |cc| refresh::refresh_interval(cc);
    assert_eq!(interval(None), refresh::DEFAULT_REFRESH);
    assert_eq!(interval(Some("max-age=7200")), Duration::from_secs(7200));
    assert_eq!(interval(Some("max-age=10")), refresh::MIN_REFRESH);
    assert_eq!(interval(Some("no-cache")), refresh::MIN_REFRESH);
    assert_eq!(interval(Some("max-age=31536000")), refresh::MAX_REFRESH);
    assert_eq!(
        refresh::next_refresh(Timestamp::from_millis(1_000), Duration::from_secs(300)),
        Timestamp::from_millis(301_000)
    );
}

#[test]
fn unknown_kids_trigger_at_most_one_fetch_per_issuer_per_interval() {
    let mut limiter = UnknownKidLimiter::default();
    let at = Timestamp::from_millis;
    assert!(limiter.admit("https://a", at(10_000)));
    assert!(!limiter.admit("https://a", at(10_001)));
    assert!(!limiter.admit("https://a", at(14_999)));
    // Another issuer has its own allowance.
    assert!(limiter.admit("https://b", at(14_999)));
    assert!(limiter.admit("https://a", at(15_000)));
    assert!(!limiter.admit("https://a", at(19_999)));

    limiter.retain(|issuer| issuer == "https://b");
    assert!(limiter.admit("https://a", at(20_000)));
}

fn provider() -> IdentityProvider {
    IdentityProvider {
        issuer: "https://idp.example.com".into(),
        audiences: vec!["modelgate".into()],
        allowed_groups: vec![],
        source: JwksSource::Discovery,
        user_claim: String::new(),
        groups_claim: String::new(),
        clock_skew_s: 60,
        default_user_limits: Limits::default(),
        admin_roles: Vec::new(),
        created_at: Timestamp::from_millis(1),
        keys: JwksState {
            jwks_json: Some(r#"{"keys":[]}"#.into()),
            fetched_at: Some(Timestamp::from_millis(2)),
            next_refresh_at: Some(Timestamp::from_millis(3_600_002)),
            last_error: Some("GET …: HTTP 500".into()),
            ..JwksState::default()
        },
    }
}

#[test]
fn patches_keep_what_they_do_not_name() {
    let now = Timestamp::from_millis(50);
    let p = provider();
    assert_eq!(IdentityProviderPatch::default().apply(&p, now).unwrap(), p);

    let patch = IdentityProviderPatch {
        audiences: Some(vec!["api".into()]),
        limits: LimitsInput {
            rpm: Some(30),
            ..LimitsInput::default()
        },
        ..IdentityProviderPatch::default()
    };
    let changed = patch.apply(&p, now).unwrap();
    assert_eq!(changed.audiences, ["api"]);
    assert_eq!(changed.default_user_limits.rpm, Some(30));
    assert_eq!(changed.keys, p.keys);
}

#[test]
fn switching_source_keeps_the_last_good_keys_until_a_fetch() {
    let now = Timestamp::from_millis(50);
    let p = provider();
    let to_url = IdentityProviderPatch {
        source: Some((JwksSource::Url("https://idp.example.com/keys".into()), None)),
        ..IdentityProviderPatch::default()
    }
    .apply(&p, now)
    .unwrap();
    assert_eq!(to_url.keys.jwks_json, p.keys.jwks_json);
    assert_eq!(to_url.keys.next_refresh_at, Some(now), "due at once");
    assert_eq!(to_url.keys.last_error, None);

    let uploaded = Jwks::parse(&format!(r#"{{"keys":[{RSA_PUBLIC}]}}"#)).unwrap();
    let to_file = IdentityProviderPatch {
        source: Some((JwksSource::File, Some(uploaded.clone()))),
        ..IdentityProviderPatch::default()
    }
    .apply(&p, now)
    .unwrap();
    assert_eq!(to_file.keys.jwks_json, Some(uploaded.json));
    assert_eq!(to_file.keys.fetched_at, Some(now));
    assert_eq!(
        to_file.keys.next_refresh_at, None,
        "uploaded keys are never fetched"
    );
    assert_eq!(to_file.key_ids(), ["k1"]);
}

#[test]
fn admin_roles_parse_from_group_role_pairs() {
    let pairs = ["mg-admins=admin", " audit = auditor ", "a=b=team_admin"]
        .into_iter()
        .map(|p| split_admin_role(p).unwrap());
    let roles = parse_admin_roles(pairs).unwrap();
    let shown: Vec<(&str, Role)> = roles.iter().map(|m| (m.group.as_str(), m.role)).collect();
    assert_eq!(
        shown,
        [
            ("mg-admins", Role::Admin),
            ("audit", Role::Auditor),
            ("a=b", Role::TeamAdmin)
        ]
    );
}

#[test]
fn bad_admin_roles_are_refused_with_the_pair() {
    assert!(
        matches!(split_admin_role("no-role"), Err(IdentityError::AdminRole(p)) if p == "no-role")
    );
    assert!(matches!(
        parse_admin_roles([("g", "root")]),
        Err(IdentityError::AdminRole(p)) if p == "g=root"
    ));
    assert!(matches!(
        parse_admin_roles([("", "admin")]),
        Err(IdentityError::AdminRole(_))
    ));
    assert!(matches!(
        parse_admin_roles([("g", "admin"), ("g", "auditor")]),
        Err(IdentityError::AdminRoleTwice(g)) if g == "g"
    ));
    assert!(matches!(
        parse_admin_roles([("a,b", "admin")]),
        Err(IdentityError::Name { .. })
    ));
}

#[test]
fn the_role_of_a_token_is_the_first_its_groups_map_to() {
    let mut p = provider();
    p.admin_roles = parse_admin_roles([
        ("readers", "auditor"),
        ("leads", "team_admin"),
        ("ops", "admin"),
        ("staff", "member"),
    ])
    .unwrap();
    assert_eq!(p.admin_role(&["staff", "readers"]), Some(Role::Auditor));
    assert_eq!(p.admin_role(&["readers", "leads"]), Some(Role::TeamAdmin));
    assert_eq!(p.admin_role(&["staff", "ops", "leads"]), Some(Role::Admin));
    assert_eq!(p.admin_role(&["staff"]), Some(Role::Member));
    assert_eq!(
        p.admin_role(&["Ops", "other"]),
        None,
        "groups match exactly"
    );
    assert_eq!(p.admin_role::<&str>(&[]), None);
}

#[test]
fn a_patch_replaces_or_keeps_the_admin_roles() {
    let now = Timestamp::from_millis(50);
    let mut p = provider();
    p.admin_roles = parse_admin_roles([("ops", "admin")]).unwrap();
    let kept = IdentityProviderPatch::default().apply(&p, now).unwrap();
    assert_eq!(kept.admin_roles, p.admin_roles);
    let cleared = IdentityProviderPatch {
        admin_roles: Some(Vec::new()),
        ..IdentityProviderPatch::default()
    }
    .apply(&p, now)
    .unwrap();
    assert!(cleared.admin_roles.is_empty());
}
