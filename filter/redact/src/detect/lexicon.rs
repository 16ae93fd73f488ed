//! Embedded word lists for the name recogniser, looked up by lower-cased word.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub(crate) const FIRST: u8 = 1;
pub(crate) const LAST: u8 = 2;
/// A name that is also a common word, place or product ("Will", "Brown", "Paris"): never a
/// name on its own.
pub(crate) const AMBIG: u8 = 4;
/// A capitalised word that is never part of a name ("Please", "Monday", "Kubernetes").
pub(crate) const STOP: u8 = 8;
pub(crate) const TITLE: u8 = 16;
/// Words right before a name: "Dear", "Hi", "Thanks", "signed".
pub(crate) const CUE: u8 = 32;
/// Words often before a name ("ask", "from", "with"): they make a lone surname a name.
pub(crate) const WEAK_CUE: u8 = 128;
/// Lower-case joiners inside names: "van", "de", "bin".
pub(crate) const PARTICLE: u8 = 64;

const FIRST_NAMES: &str = include_str!("../../data/first_names.txt");
const SURNAMES: &str = include_str!("../../data/surnames.txt");
const AMBIGUOUS: &str = include_str!("../../data/ambiguous.txt");
const NOT_NAMES: &str = include_str!("../../data/not_names.txt");

const TITLES: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "prof",
    "professor",
    "sir",
    "madam",
    "dame",
    "rev",
    "fr",
    "capt",
    "sgt",
    "lt",
    "col",
    "gen",
    "judge",
    "officer",
    "detective",
    "nurse",
    "coach",
    "uncle",
    "aunt",
    "auntie",
    "grandma",
    "grandpa",
    "señor",
    "señora",
    "herr",
    "frau",
    "mme",
    "mlle",
    "monsieur",
    "madame",
];
const CUES: &[&str] = &[
    "dear",
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "regards",
    "sincerely",
    "signed",
    "cheers",
    "attn",
    "cc",
    "named",
    "called",
    "love",
    "xoxo",
    "yours",
];
const WEAK_CUES: &[&str] = &[
    "from",
    "with",
    "ask",
    "tell",
    "contact",
    "patient",
    "customer",
    "client",
    "employee",
    "colleague",
    "manager",
    "applicant",
    "tenant",
    "by",
    "sender",
    "recipient",
    "to",
    "and",
    "meet",
    "met",
    "for",
    "email",
    "emailed",
    "call",
    "called",
    "cc'd",
    "told",
    "said",
    "says",
    "asked",
    "about",
    "of",
    "mr",
    "ms",
    "mrs",
    "dr",
];
pub(crate) const PARTICLES: &[&str] = &[
    "van", "von", "de", "der", "den", "da", "das", "dos", "del", "della", "di", "du", "la", "le",
    "bin", "binti", "ibn", "al", "el", "ter", "ten", "y", "st",
];

/// Fowler–Noll–Vo: short keys, no need for SipHash's flooding resistance on fixed lists.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub(crate) struct Lexicon {
    words: HashMap<Box<[u8]>, u8, BuildHasherDefault<Fnv>>,
}

impl Lexicon {
    pub(crate) fn embedded() -> Lexicon {
        let mut lex = Lexicon {
            words: HashMap::default(),
        };
        let lines = |s: &'static str| {
            s.lines()
                .filter(|l| !l.starts_with('#'))
                .flat_map(str::split_whitespace)
        };
        for w in lines(FIRST_NAMES) {
            lex.add(w, FIRST);
        }
        for w in lines(SURNAMES) {
            lex.add(w, LAST);
        }
        for w in lines(AMBIGUOUS) {
            lex.add(w, AMBIG);
        }
        for w in lines(NOT_NAMES) {
            lex.add(w, STOP);
        }
        for w in TITLES {
            lex.add(w, TITLE);
        }
        for w in CUES {
            lex.add(w, CUE);
        }
        for w in WEAK_CUES {
            lex.add(w, WEAK_CUE);
        }
        for w in PARTICLES {
            lex.add(w, PARTICLE);
        }
        lex
    }

    fn add(&mut self, word: &str, flag: u8) {
        let key: Box<[u8]> = word.to_lowercase().into_bytes().into_boxed_slice();
        *self.words.entry(key).or_insert(0) |= flag;
    }

    /// Flags of a word in any case.
    pub(crate) fn flags(&self, word: &str) -> u8 {
        let b = word.as_bytes();
        if b.len() <= 32 && b.is_ascii() {
            let mut buf = [0u8; 32];
            for (d, s) in buf.iter_mut().zip(b) {
                *d = s.to_ascii_lowercase();
            }
            return self.words.get(&buf[..b.len()]).copied().unwrap_or(0);
        }
        if b.len() > 64 {
            return 0;
        }
        self.words
            .get(word.to_lowercase().as_bytes())
            .copied()
            .unwrap_or(0)
    }

    /// Listed names and the particles that join them.
    pub(crate) fn is_name_part(&self, word: &str) -> bool {
        self.flags(word) & (FIRST | LAST | PARTICLE) != 0
    }
}
