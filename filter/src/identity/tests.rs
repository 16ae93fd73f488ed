use modelgate_proto::v1::{IdentityProvider, PolicySnapshot, TeamPolicy};
use serde_json::{json, Value};

use super::fixture::{self, claims, kid, TestIdp, ALGORITHMS, AUDIENCE, ISSUER};
use super::jwks::{Algorithm, KeySet, MAX_KEYS};
use super::*;

const NOW_MS: i64 = 1_700_000_000_000;
const MAX_BYTES: usize = 16 * 1024;

fn policy(version: u64, providers: Vec<IdentityProvider>) -> PolicyIndex {
    PolicyIndex::from_snapshot(PolicySnapshot {
        version,
        identity_providers: providers,
        ..PolicySnapshot::default()
    })
}

fn verify(cache: &IdentityCache, policy: &PolicyIndex, token: &str) -> Result<Caller, TokenError> {
    cache.verify(policy, token, NOW_MS, MAX_BYTES)
}

#[test]
fn every_accepted_algorithm_verifies_with_the_key_its_kid_names() {
    let idp = TestIdp::new();
    let policy = policy(1, vec![idp.provider()]);
    let cache = IdentityCache::new();
    for algorithm in ALGORITHMS {
        let token = idp.sign(algorithm, claims(NOW_MS, "alice@corp", &["ai-users"]));
        let caller = verify(&cache, &policy, &token)
            .unwrap_or_else(|err| panic!("{}: {err}", algorithm.name()));
        assert_eq!(caller.token.user_id, "alice@corp");
        assert_eq!(caller.token.groups, ["ai-users"]);
        assert_eq!(caller.token.issuer, ISSUER);
        assert_eq!(caller.issuer.name, ISSUER);
    }
}

#[test]
fn each_refusal_has_its_own_code() {
    let idp = TestIdp::new();
    let mut provider = idp.provider();
    provider.clock_skew_s = 0;
    let policy = policy(1, vec![provider]);
    let cache = IdentityCache::new();
    let now_s = NOW_MS / 1000;
    let valid = claims(NOW_MS, "alice@corp", &[]);
    let with = |key: &str, value: Value| {
        let mut claims = valid.clone();
        claims[key] = value;
        claims
    };
    let es = |claims: Value| idp.sign(Algorithm::Es256, claims);
    let cases: Vec<(String, &str)> = vec![
        (
            fixture::unsigned(&json!({"alg": "none"}), &valid, b""),
            "token_algorithm_not_allowed",
        ),
        (
            fixture::unsigned(&json!({"alg": "HS256", "kid": "rs256"}), &valid, b"mac"),
            "token_algorithm_not_allowed",
        ),
        (
            fixture::unsigned(&json!({"alg": "ES512"}), &valid, b"sig"),
            "token_algorithm_not_allowed",
        ),
        (
            es(with("iss", json!("https://evil.example"))),
            "token_unknown_issuer",
        ),
        (
            es(with("aud", json!("another-app"))),
            "token_invalid_audience",
        ),
        (es(with("aud", json!(["a", "b"]))), "token_invalid_audience"),
        (es(with("exp", json!(now_s - 1))), "token_expired"),
        (es(with("nbf", json!(now_s + 60))), "token_not_yet_valid"),
        (es(with("iat", json!(now_s + 60))), "token_not_yet_valid"),
        (
            TestIdp::forger().sign(Algorithm::Rs256, valid.clone()),
            "token_invalid_signature",
        ),
        (
            TestIdp::forger().sign(Algorithm::EdDsa, valid.clone()),
            "token_invalid_signature",
        ),
        (es(with("exp", json!("tomorrow"))), "token_malformed"),
        (
            es(with("sub", json!({"nested": ["object"]}))),
            "token_malformed",
        ),
        (es(with("sub", json!(["alice", "bob"]))), "token_malformed"),
        (es(with("sub", json!("alice\u{7}"))), "token_malformed"),
        (es(with("sub", json!("a".repeat(300)))), "token_malformed"),
        (es(with("iss", json!(42))), "token_malformed"),
        (
            es(json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice"})),
            "token_malformed",
        ),
        (
            fixture::with_raw_claims(b"\xff\xfe{not utf-8"),
            "token_malformed",
        ),
        (fixture::with_raw_claims(b"[1, 2, 3]"), "token_malformed"),
        ("e30.e30.".to_owned(), "token_malformed"),
        (
            format!("{}.{}", "e".repeat(MAX_BYTES), "e30.sig"),
            "token_too_large",
        ),
    ];
    for (token, code) in cases {
        let err = verify(&cache, &policy, &token).unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(
            !err.to_string().contains(&token),
            "errors never carry the token"
        );
    }
    assert_eq!(cache.cached_tokens(), 0, "refused tokens are not cached");
}

#[test]
fn the_skew_admits_a_token_just_expired_or_just_issued() {
    let idp = TestIdp::new();
    let policy = policy(1, vec![idp.provider()]); // 30 s of skew
    let now_s = NOW_MS / 1000;
    let mut claims = claims(NOW_MS, "alice", &[]);
    claims["exp"] = json!(now_s - 20);
    claims["iat"] = json!(now_s + 20);
    let token = idp.sign(Algorithm::Es256, claims);
    assert!(verify(&IdentityCache::new(), &policy, &token).is_ok());
}

#[test]
fn an_unknown_kid_is_named_so_the_singleton_can_report_it() {
    let idp = TestIdp::new();
    let mut provider = idp.provider();
    // The JWKS as it was before the IdP added its Ed25519 key.
    let keys: Vec<Value> = ALGORITHMS[..6].iter().map(|&a| idp.jwk(a)).collect();
    provider.jwks_json = json!({ "keys": keys }).to_string();
    let policy = policy(1, vec![provider]);
    let token = idp.sign(Algorithm::EdDsa, claims(NOW_MS, "alice", &[]));
    assert_eq!(
        verify(&IdentityCache::new(), &policy, &token).unwrap_err(),
        TokenError::UnknownKey {
            issuer: ISSUER.to_owned(),
            kid: Some(kid(Algorithm::EdDsa)),
        }
    );
}

#[test]
fn a_token_without_kid_uses_the_only_key_of_its_algorithm() {
    let idp = TestIdp::new();
    let token = idp.sign_without_kid(claims(NOW_MS, "alice", &[]));
    let mut provider = idp.provider();
    assert!(verify(
        &IdentityCache::new(),
        &policy(1, vec![provider.clone()]),
        &token
    )
    .is_ok());
    // Two Ed25519 keys: which one is meant is unknown (and there is no kid to report).
    let mut other = TestIdp::forger().jwk(Algorithm::EdDsa);
    other["kid"] = json!("second");
    provider.jwks_json = json!({ "keys": [idp.jwk(Algorithm::EdDsa), other] }).to_string();
    assert_eq!(
        verify(&IdentityCache::new(), &policy(1, vec![provider]), &token).unwrap_err(),
        TokenError::UnknownKey {
            issuer: ISSUER.to_owned(),
            kid: None
        }
    );
}

#[test]
fn a_verified_token_is_cached_until_its_issuer_changes_or_it_expires() {
    let idp = TestIdp::new();
    let cache = IdentityCache::new();
    let v1 = policy(1, vec![idp.provider()]);
    let token = idp.sign(Algorithm::Rs256, claims(NOW_MS, "alice", &["g"]));
    let first = verify(&cache, &v1, &token).unwrap();
    assert_eq!(cache.cached_tokens(), 1);
    let again = verify(&cache, &v1, &token).unwrap();
    assert!(
        Rc::ptr_eq(&first.token, &again.token),
        "served from the cache"
    );

    // Another snapshot with the same issuer entry: still cached.
    let v2 = policy(2, vec![idp.provider()]);
    let same = verify(&cache, &v2, &token).unwrap();
    assert!(Rc::ptr_eq(&first.token, &same.token));

    // The issuer's keys change (rotation that drops this key): verified anew, and refused.
    let mut rotated = idp.provider();
    rotated.jwks_json = json!({ "keys": [idp.jwk(Algorithm::Es256)] }).to_string();
    let v3 = policy(3, vec![rotated]);
    assert_eq!(
        verify(&cache, &v3, &token).unwrap_err().code(),
        "token_unknown_key"
    );
    assert_eq!(cache.cached_tokens(), 0);

    // The issuer disappears: its cached tokens go with it.
    verify(&cache, &v1, &token).unwrap();
    assert_eq!(
        verify(&cache, &policy(4, vec![]), &token)
            .unwrap_err()
            .code(),
        "token_unknown_issuer"
    );

    // Past `exp` + skew a cached token is checked again, and refused.
    verify(&cache, &v1, &token).unwrap();
    let later = NOW_MS + 3_600_000 + 31_000;
    assert_eq!(
        cache
            .verify(&v1, &token, later, MAX_BYTES)
            .unwrap_err()
            .code(),
        "token_expired"
    );
}

/// `token` with the payload of `other` (its own header and signature kept).
fn with_payload_of(token: &str, other: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = other.split('.').nth(1).unwrap();
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[test]
fn a_cached_tokens_signature_under_another_payload_is_refused() {
    let idp = TestIdp::new();
    let policy = policy(1, vec![idp.provider()]);
    let cache = IdentityCache::new();
    for algorithm in [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa] {
        let genuine = idp.sign(algorithm, claims(NOW_MS, "alice", &["ai-users"]));
        // Another user and group of the same lengths: the forged token has the genuine
        // one's length and signature, so it is looked for where the genuine one is cached.
        let other = idp.sign(algorithm, claims(NOW_MS, "mally", &["ai-admin"]));
        let forged = with_payload_of(&genuine, &other);
        assert_eq!(forged.len(), genuine.len());
        let first = verify(&cache, &policy, &genuine).unwrap();
        let err = verify(&cache, &policy, &forged).unwrap_err();
        assert_eq!(
            err.code(),
            "token_invalid_signature",
            "{}",
            algorithm.name()
        );
        let again = verify(&cache, &policy, &genuine).unwrap();
        assert!(
            Rc::ptr_eq(&first.token, &again.token),
            "the genuine token stays cached"
        );
    }
    assert_eq!(cache.cached_tokens(), 3);
}

#[test]
fn a_cached_tokens_teams_follow_the_snapshot_and_its_issuer() {
    let idp = TestIdp::new();
    let team = |id: &str, groups: &[&str]| TeamPolicy {
        team_id: id.to_owned(),
        idp_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..TeamPolicy::default()
    };
    let with_teams = |version, provider: IdentityProvider, teams: Vec<TeamPolicy>| {
        PolicyIndex::from_snapshot(PolicySnapshot {
            version,
            identity_providers: vec![provider],
            teams,
            ..PolicySnapshot::default()
        })
    };
    let cache = IdentityCache::new();
    let token = idp.sign(
        Algorithm::EdDsa,
        claims(NOW_MS, "alice", &["ml", "ai-users"]),
    );
    let v1 = with_teams(1, idp.provider(), vec![team("research", &["ml"])]);
    let first = verify(&cache, &v1, &token).unwrap();
    assert_eq!(&*first.teams, ["research"]);

    // A team that maps another of the token's groups appears with the next snapshot; the
    // token itself is not verified again.
    let teams = vec![team("research", &["ml"]), team("apps", &["ai-users"])];
    let v2 = with_teams(2, idp.provider(), teams.clone());
    let second = verify(&cache, &v2, &token).unwrap();
    assert!(Rc::ptr_eq(&first.token, &second.token));
    assert_eq!(&*second.teams, ["apps", "research"], "in id order");

    // The issuer now lets only `ai-admins` in: verified anew, mapped to no team.
    let mut strict = idp.provider();
    strict.allowed_groups = vec!["ai-admins".to_owned()];
    let third = verify(&cache, &with_teams(3, strict, teams), &token).unwrap();
    assert!(!Rc::ptr_eq(&first.token, &third.token));
    assert!(third.teams.is_empty());
    assert_eq!(cache.cached_tokens(), 1);
}

#[test]
fn groups_are_a_list_or_one_string_and_bounded() {
    let idp = TestIdp::new();
    let policy = policy(1, vec![idp.provider()]);
    let cache = IdentityCache::new();
    let mut many = claims(NOW_MS, "alice", &[]);
    let groups: Vec<Value> = (0..1_500)
        .map(|i| {
            if i % 3 == 0 {
                json!(i)
            } else {
                json!(format!("g{i}"))
            }
        })
        .collect();
    many["groups"] = json!(groups);
    // 1,500 groups do not fit the default cap; this test allows a bigger token.
    let token = idp.sign(Algorithm::EdDsa, many);
    let caller = cache.verify(&policy, &token, NOW_MS, 64 << 10).unwrap();
    assert_eq!(
        caller.token.groups.len(),
        666,
        "non-strings ignored, first 1,000 entries"
    );
    assert_eq!(caller.token.groups[0], "g1");

    let mut one = claims(NOW_MS, "bob", &[]);
    one["groups"] = json!("ai-users");
    let caller = verify(&cache, &policy, &idp.sign(Algorithm::EdDsa, one)).unwrap();
    assert_eq!(caller.token.groups, ["ai-users"]);

    let mut nested = claims(NOW_MS, "carol", &[]);
    nested["groups"] = json!({"a": ["b"]});
    let caller = verify(&cache, &policy, &idp.sign(Algorithm::EdDsa, nested)).unwrap();
    assert!(caller.token.groups.is_empty());
}

#[test]
fn configured_claims_name_the_user_and_groups() {
    let idp = TestIdp::new();
    let mut provider = idp.provider();
    provider.user_claim = "email".to_owned();
    provider.groups_claim = "roles".to_owned();
    let policy = policy(1, vec![provider]);
    let mut claims = claims(NOW_MS, "0b1c-subject-id", &["ignored"]);
    claims["email"] = json!("alice@corp.example");
    claims["roles"] = json!(["ai-admins"]);
    let caller = verify(
        &IdentityCache::new(),
        &policy,
        &idp.sign(Algorithm::Ps256, claims),
    )
    .unwrap();
    assert_eq!(caller.token.user_id, "alice@corp.example");
    assert_eq!(caller.token.groups, ["ai-admins"]);
}

#[test]
fn a_jwks_of_100_keys_and_one_with_junk_are_handled() {
    let idp = TestIdp::new();
    let mut keys: Vec<Value> = (0..99)
        .map(|i| {
            let mut jwk = TestIdp::forger().jwk(Algorithm::EdDsa);
            jwk["kid"] = json!(format!("old-{i}"));
            jwk
        })
        .collect();
    keys.push(idp.jwk(Algorithm::EdDsa));
    keys.extend([
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "RSA", "n": "not base64!", "e": "AQAB"}),
        json!("a string"),
        json!({"kty": ["RSA"]}),
    ]);
    let jwks = json!({ "keys": keys }).to_string();
    let (set, skipped) = KeySet::parse(&jwks).unwrap();
    assert_eq!((set.len(), skipped), (100, 5));
    let mut provider = idp.provider();
    provider.jwks_json = jwks;
    let policy = policy(1, vec![provider]);
    let token = idp.sign(Algorithm::EdDsa, claims(NOW_MS, "alice", &[]));
    assert!(verify(&IdentityCache::new(), &policy, &token).is_ok());

    assert!(KeySet::parse("not json").is_err());
    assert!(KeySet::parse(r#"{"keys": 7}"#).is_err());
    let huge: Vec<Value> = (0..MAX_KEYS + 10)
        .map(|_| idp.jwk(Algorithm::EdDsa))
        .collect();
    let (set, skipped) = KeySet::parse(&json!({ "keys": huge }).to_string()).unwrap();
    assert_eq!((set.len(), skipped), (MAX_KEYS, 10));
}

#[test]
fn an_issuer_with_a_broken_jwks_refuses_its_tokens_and_others_still_work() {
    let idp = TestIdp::new();
    let broken = IdentityProvider {
        issuer: "https://broken.example".to_owned(),
        audiences: vec![AUDIENCE.to_owned()],
        jwks_json: "{".to_owned(),
        ..IdentityProvider::default()
    };
    let policy = policy(1, vec![broken, idp.provider()]);
    let mut claims = claims(NOW_MS, "alice", &[]);
    let good = idp.sign(Algorithm::Es384, claims.clone());
    claims["iss"] = json!("https://broken.example");
    let bad = idp.sign(Algorithm::Es384, claims);
    let cache = IdentityCache::new();
    assert!(verify(&cache, &policy, &good).is_ok());
    assert_eq!(
        verify(&cache, &policy, &bad).unwrap_err().code(),
        "token_unknown_key"
    );
}
