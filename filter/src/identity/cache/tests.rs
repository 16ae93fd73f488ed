//! The token cache on its own, with made-up entries (no signing, so its bounds can be filled
//! quickly): exact matches only, and the count and byte bounds.

use super::*;

const NOW_S: u64 = 1_700_000_000;

fn entry(text: &str, expires_at_s: u64) -> Entry {
    let token = VerifiedToken {
        issuer: "https://idp.example.com".to_owned(),
        user_id: "alice".to_owned(),
        groups: vec!["ai-users".to_owned()],
        expires_at_s,
    };
    let first_seen = Rc::new(UserPolicy::default());
    Entry::new(text, Rc::new(token), [7; 32], first_seen, (1, Rc::from([])))
}

/// A token-shaped text whose end (a signature's place) is unique to `i`.
fn text(i: usize) -> String {
    format!("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.{i:043}")
}

#[test]
fn only_the_exact_bytes_verified_are_found() {
    let mut cache = TokenCache::default();
    let genuine = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS1pZHA";
    cache.insert(entry(genuine, NOW_S + 60), NOW_S);
    assert!(cache.get_mut(genuine).is_some());

    // Same length and signature, another payload (`{"sub":"mally"}`): the same probe, so it
    // reaches the genuine entry, and is not taken for it.
    let forged = genuine.replacen("eyJzdWIiOiJhbGljZSJ9", "eyJzdWIiOiJtYWxseSJ9", 1);
    assert_eq!(forged.len(), genuine.len());
    assert_eq!(Probe::of(&forged), Probe::of(genuine));
    assert_ne!(forged, genuine);
    assert!(cache.get_mut(&forged).is_none());
    for near in [genuine[1..].to_owned(), format!("x{}", &genuine[1..])] {
        assert!(cache.get_mut(&near).is_none(), "one byte off: {near}");
    }

    // Forgetting the forged token keeps the genuine one.
    cache.remove(&forged);
    assert_eq!((cache.len(), cache.bytes), (1, genuine.len()));
    cache.remove(genuine);
    assert_eq!((cache.len(), cache.bytes), (0, 0));
}

#[test]
fn past_the_count_bound_expired_tokens_go_first_then_all() {
    let mut cache = TokenCache::default();
    for i in 0..MAX_CACHED_TOKENS {
        // Every other token has expired by `NOW_S`.
        let expires = if i % 2 == 0 { NOW_S - 1 } else { NOW_S + 60 };
        cache.insert(entry(&text(i), expires), NOW_S - 100);
    }
    assert_eq!(cache.len(), MAX_CACHED_TOKENS);
    cache.insert(entry(&text(MAX_CACHED_TOKENS), NOW_S + 60), NOW_S);
    assert_eq!(
        cache.len(),
        MAX_CACHED_TOKENS / 2 + 1,
        "the expired half went"
    );
    assert!(cache.get_mut(&text(1)).is_some(), "a live token stays");
    assert!(cache.get_mut(&text(0)).is_none());
    assert_eq!(cache.bytes, cache.len() * text(0).len());

    let mut next = MAX_CACHED_TOKENS + 1;
    while cache.len() < MAX_CACHED_TOKENS {
        cache.insert(entry(&text(next), NOW_S + 60), NOW_S);
        next += 1;
    }
    let last = text(next);
    cache.insert(entry(&last, NOW_S + 60), NOW_S);
    assert_eq!(cache.len(), 1, "full of live tokens: all went");
    assert!(cache.get_mut(&last).is_some());
    assert_eq!(cache.bytes, last.len());
}

#[test]
fn the_byte_bound_holds_whatever_the_tokens_size() {
    let mut cache = TokenCache::default();
    let big = |i: usize| format!("{}.{i:043}", "e".repeat(64 << 10));
    let fit = MAX_CACHED_TOKEN_BYTES / big(0).len();
    for i in 0..fit {
        cache.insert(entry(&big(i), NOW_S + 60), NOW_S);
    }
    assert_eq!(cache.len(), fit);
    assert!(cache.bytes <= MAX_CACHED_TOKEN_BYTES);
    cache.insert(entry(&big(fit), NOW_S + 60), NOW_S);
    assert_eq!((cache.len(), cache.bytes), (1, big(fit).len()));

    // A single token above the bound is never kept (and what was kept stays).
    let huge = "e".repeat(MAX_CACHED_TOKEN_BYTES + 1);
    cache.insert(entry(&huge, NOW_S + 60), NOW_S);
    assert!(cache.get_mut(&huge).is_none());
    assert_eq!((cache.len(), cache.bytes), (1, big(fit).len()));
}
