//! The forwarded user of a service key: plain headers, the signed form and every refusal.

use jwt_simple::prelude::{Claims, Duration, HS256Key, MACLike, UnixTimeStamp};
use serde::Serialize;

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
/// 2026-01-01T00:00:00Z.
const NOW_S: u64 = 1_767_225_600;

#[derive(Serialize)]
struct Custom {
    email: String,
    name: String,
    role: String,
}

/// A token as Open WebUI mints it, `exp_in_s` from `NOW_S` (negative: already expired).
fn open_webui_token(secret: &[u8], issuer: &str, email: &str, exp_in_s: i64) -> String {
    let custom = Custom {
        email: email.to_owned(),
        name: "Ana".to_owned(),
        role: "user".to_owned(),
    };
    let mut claims = Claims::with_custom_claims(custom, Duration::from_secs(300))
        .with_issuer(issuer)
        .with_subject("6b1f3c1e-uuid");
    claims.issued_at = Some(UnixTimeStamp::from_secs(NOW_S - 10));
    claims.invalid_before = None;
    claims.expires_at = Some(UnixTimeStamp::from_secs(
        NOW_S.saturating_add_signed(exp_in_s),
    ));
    HS256Key::from_bytes(secret).authenticate(claims).unwrap()
}

fn trust(secret: Option<&[u8]>) -> ServiceKeyTrust<'_> {
    ServiceKeyTrust {
        secret,
        max_token_bytes: 4096,
        now_ms: i64::try_from(NOW_S * 1000).unwrap(),
    }
}

fn plain<'a>(id: Option<&'a str>, email: Option<&'a str>) -> ForwardedUser<'a> {
    ForwardedUser {
        user_id: id.map(str::as_bytes),
        user_email: email.map(str::as_bytes),
        user_jwt: None,
    }
}

fn signed(token: &str) -> ForwardedUser<'_> {
    ForwardedUser {
        user_jwt: Some(token.as_bytes()),
        ..ForwardedUser::default()
    }
}

#[test]
fn plain_headers_name_the_user_by_email_else_by_id() {
    assert_eq!(
        asserted_user(
            plain(Some("uuid-1"), Some(" ana@corp.example ")),
            trust(None)
        ),
        Ok(Some("ana@corp.example".to_owned()))
    );
    assert_eq!(
        asserted_user(plain(Some("uuid-1"), Some("")), trust(None)),
        Ok(Some("uuid-1".to_owned()))
    );
    assert_eq!(asserted_user(plain(None, None), trust(None)), Ok(None));
}

#[test]
fn unusable_plain_users_are_refused() {
    let long = "a".repeat(MAX_USER_ID_BYTES + 1);
    for (id, email) in [(None, Some(long.as_str())), (Some("a\u{7}b"), None)] {
        assert_eq!(
            asserted_user(plain(id, email), trust(None)),
            Err(AssertionError::InvalidUser)
        );
    }
    let not_utf8 = ForwardedUser {
        user_id: Some(b"\xff\xfe"),
        ..ForwardedUser::default()
    };
    assert_eq!(
        asserted_user(not_utf8, trust(None)),
        Err(AssertionError::InvalidUser)
    );
}

#[test]
fn the_signed_form_names_the_user_when_it_verifies() {
    let token = open_webui_token(SECRET, OPEN_WEBUI_ISSUER, "ana@corp.example", 300);
    assert_eq!(
        asserted_user(signed(&token), trust(Some(SECRET))),
        Ok(Some("ana@corp.example".to_owned()))
    );
    let no_email = open_webui_token(SECRET, OPEN_WEBUI_ISSUER, "", 300);
    assert_eq!(
        asserted_user(signed(&no_email), trust(Some(SECRET))),
        Ok(Some("6b1f3c1e-uuid".to_owned()))
    );
}

#[test]
fn signed_form_refusals_have_their_own_codes() {
    let other_secret = open_webui_token(
        b"another-secret-of-32-bytes-long!",
        OPEN_WEBUI_ISSUER,
        "a@b",
        300,
    );
    let expired = open_webui_token(SECRET, OPEN_WEBUI_ISSUER, "a@b", -3600);
    let foreign = open_webui_token(SECRET, "someone-else", "a@b", 300);
    let future = {
        let custom = Custom {
            email: "a@b".to_owned(),
            name: String::new(),
            role: String::new(),
        };
        let mut claims = Claims::with_custom_claims(custom, Duration::from_secs(300))
            .with_issuer(OPEN_WEBUI_ISSUER);
        claims.issued_at = Some(UnixTimeStamp::from_secs(NOW_S + 3600));
        claims.invalid_before = None;
        claims.expires_at = Some(UnixTimeStamp::from_secs(NOW_S + 3900));
        HS256Key::from_bytes(SECRET).authenticate(claims).unwrap()
    };
    for (token, why) in [
        (other_secret.as_str(), AssertionError::InvalidSignature),
        (expired.as_str(), AssertionError::Expired),
        (foreign.as_str(), AssertionError::Malformed),
        (future.as_str(), AssertionError::NotYetValid),
        ("not.a.token", AssertionError::Malformed),
    ] {
        assert_eq!(
            asserted_user(signed(token), trust(Some(SECRET))),
            Err(why),
            "{}",
            why.code()
        );
    }
    let huge = "a".repeat(5000);
    assert_eq!(
        asserted_user(signed(&huge), trust(Some(SECRET))),
        Err(AssertionError::TooLarge(4096))
    );
}

#[test]
fn a_key_with_a_secret_refuses_plain_headers_and_a_key_without_one_ignores_tokens() {
    assert_eq!(
        asserted_user(plain(Some("uuid-1"), Some("ana@corp")), trust(Some(SECRET))),
        Err(AssertionError::SignatureRequired)
    );
    assert_eq!(
        asserted_user(plain(None, None), trust(Some(SECRET))),
        Ok(None)
    );
    // Without a secret nothing can check a token: it names nobody.
    let token = open_webui_token(SECRET, OPEN_WEBUI_ISSUER, "ana@corp", 300);
    assert_eq!(asserted_user(signed(&token), trust(None)), Ok(None));
}

#[test]
fn errors_never_show_what_was_sent() {
    let token = open_webui_token(
        b"another-secret-of-32-bytes-long!",
        OPEN_WEBUI_ISSUER,
        "ana@corp",
        300,
    );
    let err = asserted_user(signed(&token), trust(Some(SECRET))).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("ana@corp"));
}
