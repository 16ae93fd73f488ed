//! Credentials: provider key formats, PEM private keys, JWTs, and long random tokens written
//! next to a word like "token" or "password".

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

use super::{Candidate, Found};

/// Every alternative starts with a literal, so the regex crate scans with a literal prefilter.
/// An unterminated PEM block is a secret up to where its base64 body stops.
const FORMATS: &str = r"(?x)
    (?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)
  | (?-u:\b)gh[pousr]_[A-Za-z0-9]{36,251}(?-u:\b)
  | (?-u:\b)github_pat_[A-Za-z0-9_]{22,255}(?-u:\b)
  | (?-u:\b)sk-[A-Za-z0-9][A-Za-z0-9_\-]{19,250}
  | (?-u:\b)xox[abprs]-[A-Za-z0-9\-]{10,250}
  | -----BEGIN\ [A-Z0-9\ ]{0,40}PRIVATE\ KEY-----
      (?: [A-Za-z0-9+/=\s:,.\-]*?-----END\ [A-Z0-9\ ]{0,40}PRIVATE\ KEY-----
        | [A-Za-z0-9+/=\s]* [A-Za-z0-9+/=] )
  | (?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}
";

/// Words after which a long random token is a credential.
pub(super) const KEYWORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "bearer",
    "credential",
    "auth",
];

const MIN_TOKEN: usize = 16;
const MAX_TOKEN: usize = 512;
/// Bytes between the keyword and the token: rest of an identifier, quotes, `=`, `:`.
const MAX_GAP: usize = 40;

pub(crate) struct SecretDetector {
    formats: Regex,
    keywords: AhoCorasick,
}

impl SecretDetector {
    pub(crate) fn new() -> Result<Self, crate::policy::PolicyError> {
        let formats =
            Regex::new(FORMATS).map_err(|e| crate::policy::PolicyError::Builtin(e.to_string()))?;
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(KEYWORDS)
            .map_err(|e| crate::policy::PolicyError::Builtin(e.to_string()))?;
        Ok(SecretDetector { formats, keywords })
    }

    pub(crate) fn scan(&self, text: &str, out: &mut Vec<Candidate>) {
        for m in self.formats.find_iter(text) {
            out.push(Candidate::new(m.start(), m.end(), Found::Secret));
        }
        // Long random tokens are rare and always hold a digit, keywords are common: find
        // digits, take the token around each, then look back for a keyword.
        let b = text.as_bytes();
        let mut i = 0;
        loop {
            i = super::bytes::next_digit(b, i);
            if i >= b.len() {
                break;
            }
            let mut s = i;
            while s > 0 && i - s < MAX_TOKEN && token_byte(b[s - 1]) {
                s -= 1;
            }
            while i < b.len() && token_byte(b[i]) {
                i += 1;
            }
            // Base64 padding.
            while i < b.len() && b[i] == b'=' && i - s < MAX_TOKEN {
                i += 1;
            }
            let mut e = i;
            while e > s && matches!(b[e - 1], b'.' | b'-' | b'_') {
                e -= 1;
            }
            let tok = &b[s..e];
            if (MIN_TOKEN..MAX_TOKEN).contains(&tok.len())
                && random_looking(tok)
                && self.keyword_before(b, s)
            {
                out.push(Candidate::new(s, e, Found::Secret));
            }
        }
    }

    /// A keyword ends within `MAX_GAP` bytes before `start`, with nothing but the rest of an
    /// identifier, quotes, `=`, `:`, spaces or "is"/"was" in between.
    fn keyword_before(&self, b: &[u8], start: usize) -> bool {
        let from = start.saturating_sub(MAX_GAP + 12);
        let window = &b[from..start];
        self.keywords.find_iter(window).any(|m| {
            let gap = &window[m.end()..];
            gap.len() <= MAX_GAP
                && gap.iter().all(|&c| {
                    c.is_ascii_alphanumeric()
                        || matches!(
                            c,
                            b'_' | b' ' | b'\t' | b':' | b'=' | b'"' | b'\'' | b'`' | b'>'
                        )
                })
                && gap_words_ok(gap)
        })
    }
}

/// Between keyword and token at most the word "is" or "was" (and the identifier's tail).
fn gap_words_ok(gap: &[u8]) -> bool {
    let words = gap
        .split(|&c| !c.is_ascii_alphanumeric() && c != b'_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>();
    match words.as_slice() {
        [] => true,
        [w] => {
            gap.first()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                || *w == b"is"
                || *w == b"was"
        }
        [first, w] => {
            gap.first()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                && first.len() <= 32
                && (*w == b"is" || *w == b"was")
        }
        _ => false,
    }
}

/// Token characters; `=` only pads the end, so `password=X` splits at it.
fn token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'_' | b'-' | b'.' | b'~')
}

/// Mixed letters and digits with high per-character entropy: rules out words, paths, and
/// identifiers such as `get_user_by_name`.
fn random_looking(tok: &[u8]) -> bool {
    let digits = tok.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = tok.iter().filter(|c| c.is_ascii_alphabetic()).count();
    if digits == 0 || letters == 0 {
        return false;
    }
    let mut counts = [0u32; 128];
    for &c in tok {
        counts[usize::from(c & 0x7f)] += 1;
    }
    let n = tok.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    entropy >= 3.5
}
