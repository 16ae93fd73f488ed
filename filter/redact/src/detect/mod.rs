//! Detectors and overlap resolution. Offsets here are byte offsets; the public API converts them
//! to character offsets.

mod about;
mod bytes;
mod email;
mod iban;
mod ipv6;
pub(crate) mod lexicon;
mod numeric;
pub(crate) mod person;
mod secret;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder};

use crate::entity::EntityType;
use crate::policy::{PolicyError, MAX_PATTERN_BYTES};

pub use about::Detection;
pub(crate) use numeric::CONTEXT_BYTES;

/// A built-in detector's finding; custom ones carry their rule index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Email,
    Ssn,
    Card,
    Phone,
    Iban,
    Bank,
    Ip,
    Secret,
    Person,
    Itin,
    Custom(u16),
}

/// Index of a rule: built-ins first (in `EntityType::BUILTIN` order), then custom rules.
pub(crate) type Slot = usize;

impl Found {
    pub(crate) fn slot(self) -> Slot {
        match self {
            Found::Email => 0,
            Found::Ssn => 1,
            Found::Card => 2,
            Found::Phone => 3,
            Found::Iban => 4,
            Found::Bank => 5,
            Found::Ip => 6,
            Found::Secret => 7,
            Found::Person => 8,
            Found::Itin => 9,
            Found::Custom(i) => EntityType::BUILTIN.len() + usize::from(i),
        }
    }
}

/// Which of two overlapping equally long findings wins: the team's own rules, then the most
/// specific validated formats, then the looser ones.
fn priority(slot: Slot) -> u8 {
    match slot {
        7 => 90,
        0 => 80,
        2 => 75,
        4 => 70,
        1 | 9 => 65,
        3 => 60,
        5 => 55,
        6 => 50,
        8 => 10,
        _ => 100,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub start: usize,
    pub end: usize,
    pub slot: Slot,
}

impl Candidate {
    pub(crate) fn new(start: usize, end: usize, found: Found) -> Self {
        Candidate {
            start,
            end,
            slot: found.slot(),
        }
    }
}

pub(crate) fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Whether one of `words` (lower case) occurs as a whole word in the `CONTEXT_BYTES` before
/// `start`, with no other number or mask in between: the context belongs to the nearest value.
/// That also keeps redaction idempotent, since masks (ending in `>`) and values never move a
/// context word closer. Whole words only, so `<US_BANK_NUMBER>` is not context either.
pub(crate) fn context_has(text: &str, start: usize, words: &[&str]) -> bool {
    let b = text.as_bytes();
    let mut from = start.saturating_sub(CONTEXT_BYTES);
    if let Some(k) = b[from..start]
        .iter()
        .rposition(|&c| c.is_ascii_digit() || c == b'>')
    {
        from += k + 1;
    }
    let window = &b[from..start];
    words.iter().any(|w| {
        let w = w.as_bytes();
        window.len() >= w.len()
            && window.windows(w.len()).enumerate().any(|(i, x)| {
                x.eq_ignore_ascii_case(w)
                    && (i == 0 || !is_word_byte(window[i - 1]))
                    && window.get(i + w.len()).is_none_or(|&c| !is_word_byte(c))
            })
    })
}

/// Which built-in detectors run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Enabled(pub [bool; EntityType::BUILTIN.len()]);

impl Enabled {
    fn has(&self, f: Found) -> bool {
        self.0.get(f.slot()).copied().unwrap_or(false)
    }
}

pub(crate) struct CustomRegex {
    pub regex: Regex,
    pub slot_index: u16,
}

pub(crate) struct DenyList {
    pub matcher: AhoCorasick,
    /// Slot index per pattern id.
    pub slots: Vec<u16>,
}

/// Every detector, compiled once per policy.
pub(crate) struct Detectors {
    pub person: person::PersonDetector,
    secret: secret::SecretDetector,
    customs: Vec<CustomRegex>,
    deny: Vec<DenyList>,
}

impl Detectors {
    pub(crate) fn new() -> Result<Self, PolicyError> {
        Ok(Detectors {
            person: person::PersonDetector::new()?,
            secret: secret::SecretDetector::new()?,
            customs: Vec::new(),
            deny: Vec::new(),
        })
    }

    pub(crate) fn add_custom(
        &mut self,
        name: &str,
        pattern: &str,
        index: u16,
    ) -> Result<(), PolicyError> {
        let regex = RegexBuilder::new(pattern)
            .size_limit(MAX_PATTERN_BYTES)
            .dfa_size_limit(MAX_PATTERN_BYTES)
            .build()
            .map_err(|e| PolicyError::Pattern {
                name: name.to_owned(),
                source: Box::new(e),
            })?;
        if regex.is_match("") {
            return Err(PolicyError::EmptyMatch(name.to_owned()));
        }
        self.customs.push(CustomRegex {
            regex,
            slot_index: index,
        });
        Ok(())
    }

    pub(crate) fn add_deny(
        &mut self,
        name: &str,
        terms: &[String],
        case_sensitive: bool,
        index: u16,
    ) -> Result<(), PolicyError> {
        if terms.iter().any(|t| t.trim().is_empty()) {
            return Err(PolicyError::EmptyTerm(name.to_owned()));
        }
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(!case_sensitive)
            .match_kind(MatchKind::LeftmostLongest)
            .build(terms.iter().map(|t| t.trim()))
            .map_err(|e| PolicyError::Pattern {
                name: name.to_owned(),
                source: Box::new(regex::Error::Syntax(e.to_string())),
            })?;
        self.deny.push(DenyList {
            matcher,
            slots: vec![index; terms.len()],
        });
        Ok(())
    }

    /// All findings, overlaps not yet resolved.
    pub(crate) fn find(&self, text: &str, on: Enabled, out: &mut Vec<Candidate>) {
        if on.has(Found::Email) {
            email::scan(text, out);
        }
        let cfg = numeric::NumericConfig {
            ssn: on.has(Found::Ssn),
            itin: on.has(Found::Itin),
            card: on.has(Found::Card),
            phone: on.has(Found::Phone),
            bank: on.has(Found::Bank),
            ipv4: on.has(Found::Ip),
            iban: on.has(Found::Iban),
        };
        if cfg.ssn || cfg.itin || cfg.card || cfg.phone || cfg.bank || cfg.ipv4 || cfg.iban {
            numeric::scan(text, cfg, out);
        }
        if on.has(Found::Ip) {
            ipv6::scan(text, out);
        }
        if on.has(Found::Secret) {
            self.secret.scan(text, out);
        }
        if on.has(Found::Person) {
            self.person.scan(text, out);
        }
        for c in &self.customs {
            for m in c.regex.find_iter(text) {
                if m.start() < m.end() {
                    out.push(Candidate::new(
                        m.start(),
                        m.end(),
                        Found::Custom(c.slot_index),
                    ));
                }
            }
        }
        let b = text.as_bytes();
        for d in &self.deny {
            for m in d.matcher.find_iter(b) {
                let bounded = (m.start() == 0 || !is_word_byte(b[m.start() - 1]))
                    && (m.end() == b.len() || !is_word_byte(b[m.end()]));
                if bounded {
                    let slot = d.slots.get(m.pattern().as_usize()).copied().unwrap_or(0);
                    out.push(Candidate::new(m.start(), m.end(), Found::Custom(slot)));
                }
            }
        }
    }
}

/// Keeps non-overlapping findings: longer first, then higher priority, then earlier. Returns
/// them sorted by start. Works cluster by cluster (runs of overlapping findings), so the cost
/// stays near-linear when most findings overlap nothing.
pub(crate) fn resolve(cands: &mut Vec<Candidate>) {
    if cands.len() <= 1 {
        return;
    }
    cands.sort_by_key(|c| (c.start, c.end));
    let mut kept: Vec<Candidate> = Vec::with_capacity(cands.len());
    let mut cluster: Vec<Candidate> = Vec::new();
    let mut i = 0;
    while i < cands.len() {
        let mut reach = cands[i].end;
        let mut j = i + 1;
        while j < cands.len() && cands[j].start < reach {
            reach = reach.max(cands[j].end);
            j += 1;
        }
        if j == i + 1 {
            kept.push(cands[i]);
        } else {
            cluster.clear();
            cluster.extend_from_slice(&cands[i..j]);
            cluster.sort_by(|a, b| {
                (b.end - b.start)
                    .cmp(&(a.end - a.start))
                    .then(priority(b.slot).cmp(&priority(a.slot)))
                    .then(a.start.cmp(&b.start))
            });
            let base = kept.len();
            for c in &cluster {
                let won = &kept[base..];
                if won.iter().all(|k| k.end <= c.start || c.end <= k.start) {
                    kept.push(*c);
                }
            }
            kept[base..].sort_by_key(|c| c.start);
        }
        i = j;
    }
    *cands = kept;
}
