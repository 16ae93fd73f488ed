//! Streaming equals whole-text redaction for every split point; redaction is idempotent and
//! leaves no detected value verbatim; restoration survives any split.

#![cfg(test)]

use std::sync::OnceLock;

use modelgate_redact::{Phase, PlaceholderMap, Redactor, StreamRedactor, StreamRestorer};
use proptest::prelude::*;

const POLICY: &str = r#"{"default_action": "reversible", "entities": {"IP_ADDRESS": "mask"},
  "deny_terms": [{"name": "CODENAME", "terms": ["Blue Falcon"]}]}"#;

fn redactor() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(|| Redactor::from_json(POLICY).unwrap())
}

const PIECES: &[&str] = &[
    "Dear Priya Raman,",
    "Mr. Okonkwo",
    "Will Smith",
    "my name is john smith",
    "Ludwig van Beethoven",
    "José García",
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "4111 1111 1111 1112",
    "123-45-6789",
    "(415) 555-2671",
    "+44 20 7946 0958",
    "DE89 3704 0044 0532 0130 00",
    "account 004512398877",
    "192.168.1.20",
    "fe80::1ff:fe23:4567:890a",
    "AKIAIOSFODNN7EXAMPLE",
    "token: a8F3kL9qZ2xW7vB1nM4pR6tY0u",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0==\n-----END PRIVATE KEY-----",
    "Blue Falcon",
    "the",
    "report",
    "Monday",
    "version 1.2.3",
    "at 10:30:00",
    "Grant access",
    "ünïcödé 🙂",
    "こんにちは",
    "<PERSON_1>",
    ".",
    ",",
    "\n",
];

fn text_strategy() -> impl Strategy<Value = String> {
    pieces(vec![" ", " ", "  ", "\n", ", ", ""])
}

/// Pieces always apart: a value glued to a word ("2671Dear") is not detected there, so the same
/// value elsewhere would stay visible in the output.
fn spaced_text_strategy() -> impl Strategy<Value = String> {
    pieces(vec![" ", "  ", "\n", ", "])
}

fn pieces(seps: Vec<&'static str>) -> impl Strategy<Value = String> {
    prop::collection::vec((0..PIECES.len(), prop::sample::select(seps)), 1..14).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(i, sep)| format!("{}{sep}", PIECES[i]))
            .collect()
    })
}

fn stream_redact(chunks: &[&str]) -> (String, PlaceholderMap, Vec<modelgate_redact::Entity>) {
    let r = redactor();
    let mut map = PlaceholderMap::new();
    let mut s = StreamRedactor::new(Phase::Request);
    let mut out = String::new();
    for c in chunks {
        out.push_str(&s.push(r, c, &mut map));
    }
    out.push_str(&s.finish(r, &mut map));
    (out, map, s.entities().to_vec())
}

fn char_boundaries(text: &str) -> Vec<usize> {
    (0..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect()
}

/// 96 by default; `PROPTEST_CASES` overrides it (`with_cases` alone would ignore it).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn every_split_point_matches_whole(text in text_strategy()) {
        let whole = redactor().redact(&text, Phase::Request, &mut PlaceholderMap::new());
        for i in char_boundaries(&text) {
            let (out, _, entities) = stream_redact(&[&text[..i], &text[i..]]);
            prop_assert_eq!(&out, &whole.text, "split at {}", i);
            prop_assert_eq!(&entities, &whole.entities);
        }
    }

    #[test]
    fn many_small_chunks_match_whole(text in text_strategy(), sizes in prop::collection::vec(1usize..7, 1..64)) {
        let whole = redactor().redact(&text, Phase::Request, &mut PlaceholderMap::new());
        let bounds = char_boundaries(&text);
        let mut chunks = Vec::new();
        let mut at = 0;
        for s in sizes.iter().cycle() {
            if at >= text.len() { break; }
            let next = bounds.iter().copied().find(|&b| b >= at + s).unwrap_or(text.len());
            chunks.push(&text[at..next]);
            at = next;
        }
        let (out, _, _) = stream_redact(&chunks);
        prop_assert_eq!(out, whole.text);
    }

    #[test]
    fn idempotent_and_no_value_left(text in spaced_text_strategy()) {
        let r = redactor();
        let once = r.redact(&text, Phase::Request, &mut PlaceholderMap::new());
        let twice = r.redact(&once.text, Phase::Request, &mut PlaceholderMap::new());
        prop_assert_eq!(&twice.text, &once.text);
        let chars: Vec<char> = text.chars().collect();
        for e in &once.entities {
            let value: String = chars[e.start..e.end].iter().collect();
            prop_assert!(!once.text.contains(&value), "{:?} left in {:?}", value, once.text);
        }
    }

    #[test]
    fn restore_round_trips_for_any_split(text in text_strategy(), cut in 0usize..400) {
        let r = redactor();
        let mut map = PlaceholderMap::new();
        let red = r.redact(&text, Phase::Request, &mut map);
        let restored = map.restore(&red.text).into_owned();
        let bounds = char_boundaries(&red.text);
        let at = bounds[cut % bounds.len()];
        let mut s = StreamRestorer::new();
        let mut out = s.push(&red.text[..at], &map);
        out.push_str(&s.push(&red.text[at..], &map));
        out.push_str(&s.finish(&map));
        prop_assert_eq!(out, restored);
    }
}

#[test]
fn nothing_of_a_removed_value_is_emitted_early() {
    let r = redactor();
    let mut map = PlaceholderMap::new();
    let mut s = StreamRedactor::new(Phase::Request);
    let mut out = String::new();
    for c in ["card 41", "11 1111 ", "1111 11", "11 ok"] {
        let piece = s.push(r, c, &mut map);
        assert!(!piece.contains("41") && !piece.contains("11"), "{piece:?}");
        out.push_str(&piece);
    }
    out.push_str(&s.finish(r, &mut map));
    assert_eq!(out, "card <CREDIT_CARD_1> ok");
}

#[test]
fn ordinary_prose_is_not_held_back_long() {
    let r = redactor();
    let mut map = PlaceholderMap::new();
    let mut s = StreamRedactor::new(Phase::Request);
    let mut emitted = String::new();
    for word in "the answer to your question is that it depends on the load".split_inclusive(' ') {
        emitted.push_str(&s.push(r, word, &mut map));
    }
    // Only the last word is held.
    assert_eq!(
        emitted,
        "the answer to your question is that it depends on the "
    );
}

#[test]
fn split_placeholder_is_restored() {
    let mut map = PlaceholderMap::new();
    let red = redactor().redact("hi Priya Raman", Phase::Request, &mut map);
    assert_eq!(red.text, "hi <PERSON_1>");
    let mut s = StreamRestorer::new();
    let mut out = s.push("Hello <PERS", &map);
    assert_eq!(out, "Hello ");
    out.push_str(&s.push("ON_1>, welcome", &map));
    out.push_str(&s.finish(&map));
    assert_eq!(out, "Hello Priya Raman, welcome");
}

/// Values glued to punctuation or CJK text ("the,Ludwig", "こんにちはBlue"): the detectors'
/// words end there, so the stream must hold the tail of such a token back. Found by proptest.
#[test]
fn value_after_punctuation_or_cjk_matches_whole() {
    for text in [
        "the,Ludwig van Beethoven ",
        "my name is john smith,Will Smith ",
        "こんにちはBlue Falcon ",
        "the.Priya Raman ",
        "report(Blue Falcon) ",
        "ünïcödé 🙂Will Smith ",
    ] {
        let whole = redactor().redact(text, Phase::Request, &mut PlaceholderMap::new());
        let bounds = char_boundaries(text);
        // One character at a time.
        let chars: Vec<&str> = bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect();
        let (out, _, entities) = stream_redact(&chars);
        assert_eq!(out, whole.text, "{text:?} by characters");
        assert_eq!(entities, whole.entities, "{text:?} by characters");
        for &i in &bounds {
            let (out, _, entities) = stream_redact(&[&text[..i], &text[i..]]);
            assert_eq!(out, whole.text, "{text:?} split at {i}");
            assert_eq!(entities, whole.entities, "{text:?} split at {i}");
        }
    }
}

#[test]
fn deny_term_after_cjk_never_leaks() {
    let r = redactor();
    let mut map = PlaceholderMap::new();
    let mut s = StreamRedactor::new(Phase::Request);
    let mut out = String::new();
    for c in ["こんにちはBlue", " ", "Fal", "con", " "] {
        let piece = s.push(r, c, &mut map);
        assert!(!piece.contains("Blue"), "{piece:?}");
        out.push_str(&piece);
    }
    out.push_str(&s.finish(r, &mut map));
    assert_eq!(out, "こんにちは<CODENAME> ");
}
