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
pub(super) const CUES: &[&str] = &[
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

/// Longest key the packed table holds; every ASCII word of the embedded lists fits.
const PACKED_LEN: usize = 16;

/// A short ASCII word, lower-cased and zero-padded into two machine words, so the key is
/// hashed and compared in a handful of instructions instead of byte by byte (no NUL byte ever
/// occurs in a word, so the padding cannot collide). `None` for a longer or non-ASCII word.
fn pack(word: &[u8]) -> Option<[u64; 2]> {
    if word.len() > PACKED_LEN {
        return None;
    }
    // Byte folds rather than a copy into a buffer: no call to memcpy for a word of a few bytes.
    let (lo, hi) = word.split_at(word.len().min(8));
    let fold = |b: &[u8]| b.iter().rev().fold(0u64, |acc, &c| acc << 8 | u64::from(c));
    let (lo, hi) = (fold(lo), fold(hi));
    ((lo | hi) & 0x8080_8080_8080_8080 == 0).then(|| [ascii_lower(lo), ascii_lower(hi)])
}

/// Lower-cases the ASCII capitals of eight bytes at once: each byte strictly between `@` and
/// `[` gets its 0x20 bit set. Exact per byte for ASCII input (no carries between bytes).
fn ascii_lower(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let low = x & (ONES * 127);
    let capitals =
        (ONES * (127 + 0x5B)).wrapping_sub(low) & !x & low.wrapping_add(ONES * (127 - 0x40));
    x | ((capitals & (ONES * 0x80)) >> 2)
}

/// Open addressing with linear probing over packed keys, at most half full.
struct PackedTable {
    keys: Vec<[u64; 2]>,
    flags: Vec<u8>,
    mask: usize,
}

impl PackedTable {
    fn with_capacity(words: usize) -> PackedTable {
        let slots = (words * 2).next_power_of_two().max(16);
        PackedTable {
            keys: vec![[0; 2]; slots],
            flags: vec![0; slots],
            mask: slots - 1,
        }
    }

    fn slot(&self, key: [u64; 2]) -> usize {
        let h = (key[0] ^ key[1].rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The high bits are the well-mixed ones; usize is at least 32 bits on every target.
        (h >> 32) as usize & self.mask
    }

    /// The slot holding `key`, or the empty one where it would go.
    fn find(&self, key: [u64; 2]) -> usize {
        let mut i = self.slot(key);
        loop {
            match self.keys.get(i) {
                Some(k) if *k != key && *k != [0; 2] => i = (i + 1) & self.mask,
                _ => return i,
            }
        }
    }

    fn add(&mut self, key: [u64; 2], flag: u8) {
        let i = self.find(key);
        if let (Some(k), Some(f)) = (self.keys.get_mut(i), self.flags.get_mut(i)) {
            *k = key;
            *f |= flag;
        }
    }

    fn get(&self, key: [u64; 2]) -> u8 {
        let i = self.find(key);
        match self.keys.get(i) {
            Some(k) if *k == key => self.flags.get(i).copied().unwrap_or(0),
            _ => 0,
        }
    }
}

pub(crate) struct Lexicon {
    /// Short ASCII words: nearly every list entry and every word a prompt asks about.
    packed: PackedTable,
    /// The rest (non-ASCII or long words).
    words: HashMap<Box<[u8]>, u8, BuildHasherDefault<Fnv>>,
}

impl Lexicon {
    pub(crate) fn embedded() -> Lexicon {
        let lines = |s: &'static str| {
            s.lines()
                .filter(|l| !l.starts_with('#'))
                .flat_map(str::split_whitespace)
        };
        let lists: [(&[&str], u8); 4] = [
            (TITLES, TITLE),
            (CUES, CUE),
            (WEAK_CUES, WEAK_CUE),
            (PARTICLES, PARTICLE),
        ];
        let total = [FIRST_NAMES, SURNAMES, AMBIGUOUS, NOT_NAMES]
            .iter()
            .map(|s| lines(s).count())
            .sum::<usize>()
            + lists.iter().map(|(l, _)| l.len()).sum::<usize>();
        let mut lex = Lexicon {
            packed: PackedTable::with_capacity(total),
            words: HashMap::default(),
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
        for (list, flag) in lists {
            for w in list {
                lex.add(w, flag);
            }
        }
        lex
    }

    fn add(&mut self, word: &str, flag: u8) {
        let key = word.to_lowercase();
        if let Some(packed) = pack(key.as_bytes()) {
            self.packed.add(packed, flag);
        } else {
            *self
                .words
                .entry(key.into_bytes().into_boxed_slice())
                .or_insert(0) |= flag;
        }
    }

    /// Flags of an already lower-cased key.
    fn get(&self, key: &[u8]) -> u8 {
        if let Some(packed) = pack(key) {
            self.packed.get(packed)
        } else {
            self.words.get(key).copied().unwrap_or(0)
        }
    }

    /// Flags of a word in any case.
    pub(crate) fn flags(&self, word: &str) -> u8 {
        let b = word.as_bytes();
        if let Some(packed) = pack(b) {
            // `pack` lower-cases ASCII itself.
            return self.packed.get(packed);
        }
        if b.len() <= 32 && b.is_ascii() {
            let mut buf = [0u8; 32];
            for (d, s) in buf.iter_mut().zip(b) {
                *d = s.to_ascii_lowercase();
            }
            return self.get(&buf[..b.len()]);
        }
        if b.len() > 64 {
            return 0;
        }
        self.get(word.to_lowercase().as_bytes())
    }

    /// Listed names and the particles that join them.
    pub(crate) fn is_name_part(&self, word: &str) -> bool {
        self.flags(word) & (FIRST | LAST | PARTICLE) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_keys_lower_case_like_the_standard_library() {
        for c in 0u8..0x80 {
            for pos in 0..PACKED_LEN {
                let mut word = [b'x'; PACKED_LEN];
                word[pos] = c;
                let lower = word.map(|c| c.to_ascii_lowercase());
                assert_eq!(
                    pack(&word),
                    Some(pack_plain(&lower)),
                    "byte {c:#x} at {pos}"
                );
            }
        }
    }

    /// `pack` without the lower-casing, for input already lower case.
    fn pack_plain(word: &[u8]) -> [u64; 2] {
        let mut buf = [0u8; PACKED_LEN];
        buf[..word.len()].copy_from_slice(word);
        let (lo, hi) = buf.split_at(8);
        let word = |b: &[u8]| b.iter().rev().fold(0u64, |acc, &c| acc << 8 | u64::from(c));
        [word(lo), word(hi)]
    }

    #[test]
    fn every_listed_word_is_found_in_any_case() {
        let lex = Lexicon::embedded();
        for w in FIRST_NAMES
            .lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(str::split_whitespace)
        {
            assert_ne!(lex.flags(w) & FIRST, 0, "{w}");
            assert_ne!(lex.flags(&w.to_uppercase()) & FIRST, 0, "{w}");
        }
        assert_eq!(lex.flags("zzqx"), 0);
        assert_eq!(pack("josé".as_bytes()), None);
        assert_eq!(pack(b"seventeen letters"), None);
        assert_eq!(lex.flags(""), 0);
    }
}
