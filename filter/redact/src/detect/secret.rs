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
const KEYWORDS: &[&str] = &[
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
        let b = text.as_bytes();
        let mut resume = 0;
        for m in self.keywords.find_iter(b) {
            if m.end() < resume {
                continue;
            }
            if let Some((s, e)) = token_after(b, m.end()) {
                out.push(Candidate::new(s, e, Found::Secret));
                resume = e;
            }
        }
    }
}

fn token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-' | b'.' | b'~')
}

/// The token that follows a keyword, if it is long and random enough.
fn token_after(b: &[u8], mut i: usize) -> Option<(usize, usize)> {
    let limit = (i + MAX_GAP).min(b.len());
    // The rest of an identifier such as `api_key_prod` or `TOKEN`.
    while i < limit && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    let mut gap_words = 0;
    while i < limit {
        match b[i] {
            b' ' | b'\t' | b':' | b'=' | b'"' | b'\'' | b'`' | b'>' => i += 1,
            // "the token is X", "password was X"
            b'i' | b'w'
                if gap_words < 1 && (b[i..].starts_with(b"is ") || b[i..].starts_with(b"was ")) =>
            {
                gap_words += 1;
                i += if b[i] == b'i' { 3 } else { 4 };
            }
            _ => break,
        }
    }
    let s = i;
    while i < b.len() && i - s < MAX_TOKEN && token_byte(b[i]) {
        i += 1;
    }
    let mut e = i;
    while e > s && matches!(b[e - 1], b'.' | b'-' | b'_') {
        e -= 1;
    }
    let tok = &b[s..e];
    (tok.len() >= MIN_TOKEN && tok.len() < MAX_TOKEN && random_looking(tok)).then_some((s, e))
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
