//! Values made of digit groups: card numbers, SSNs and ITINs, phone numbers, bank account
//! numbers, IPv4 addresses and IBANs. One pass finds each run of digits and separators, then validates it.

use super::iban::iban_at;
use super::{context_has, is_word_byte, Candidate, Found};

/// Words that make a bare 8-17 digit number a bank account number.
pub(super) const BANK_CONTEXT: &[&str] = &[
    "account", "acct", "a/c", "routing", "aba", "bank", "checking", "savings", "deposit", "wire",
];
/// Words that make a bare 9 digit number an SSN (or ITIN).
pub(super) const SSN_CONTEXT: &[&str] = &[
    "ssn",
    "social security",
    "social sec",
    "ss#",
    "ss #",
    "tin",
    "itin",
];
/// Words right before an SSN-shaped number that say it is some other reference.
pub(super) const NOT_SSN_CONTEXT: &[&str] = &[
    "order",
    "invoice",
    "tracking",
    "part",
    "ref",
    "reference",
    "sku",
    "item",
    "ticket",
    "confirmation",
    "po",
];
/// Words between such a word and the number ("order no. 900-12-3456").
const NUMBER_WORDS: &[&str] = &["no", "nr", "number", "num", "id"];
/// Words that make an unformatted or national number a phone number.
pub(super) const PHONE_CONTEXT: &[&str] = &[
    "phone", "call", "tel", "mobile", "cell", "fax", "text me", "whatsapp", "reach me", "dial",
    "contact",
];

/// Bytes looked at before a run for context words: fits inside the stream context window.
pub(crate) const CONTEXT_BYTES: usize = 48;

/// The longest digit run worth classifying (19-digit cards with separators, phone numbers).
const MAX_RUN: usize = 40;

#[derive(Clone, Copy)]
pub(crate) struct NumericConfig {
    pub ssn: bool,
    pub itin: bool,
    pub card: bool,
    pub phone: bool,
    pub bank: bool,
    pub ipv4: bool,
    pub iban: bool,
}

pub(crate) fn scan(text: &str, cfg: NumericConfig, out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = 0;
    loop {
        i = super::bytes::next_digit(b, i);
        if i >= n {
            break;
        }
        // Digits glued to a word: an IBAN starts with two capitals, anything else is an
        // identifier ("v1.2", "sha256", "abc123").
        if i > 0 && is_word_byte(b[i - 1]) {
            if cfg.iban && i >= 2 {
                if let Some(end) = iban_at(text, i - 2) {
                    out.push(Candidate::new(i - 2, end, Found::Iban));
                    i = end;
                    continue;
                }
            }
            while i < n && is_word_byte(b[i]) {
                i += 1;
            }
            continue;
        }
        let mut start = i;
        if i > 0 && matches!(b[i - 1], b'+' | b'(') && (i < 2 || !is_word_byte(b[i - 2])) {
            start = i - 1;
            if b[i - 1] == b'(' && i >= 2 && b[i - 2] == b'+' {
                start = i - 2;
            }
        }
        let end = run_end(b, i);
        // Glued to a following word ("123abc", "10x"), or more of a dotted/colon chain
        // ("1.2.3.4.5", "10:30"): not a value.
        let glued = end < n
            && (is_word_byte(b[end])
                || (matches!(b[end], b'.' | b':' | b'/' | b',')
                    && end + 1 < n
                    && b[end + 1].is_ascii_digit()));
        let prev_glued =
            start > 0 && matches!(b[start - 1], b'.' | b':' | b'/' | b'-' | b'$' | b'#' | b',');
        // A glued group belongs to the chain beside it, but a value may follow or precede it
        // after a space ("10:30:00 123-45-6789"): only the space-separated part next to the
        // chain is dropped, never the rest of the run.
        let (lo, hi) = unglued_span(b, start, end, prev_glued, glued);
        // Every value has at least four digits (an IPv4 address); most runs are years and counts.
        let digits = b[lo..hi].iter().filter(|c| c.is_ascii_digit()).count();
        if digits >= 4 {
            classify(text, lo, hi, cfg, out);
        }
        i = end.max(i + 1);
    }
}

/// The part of the run `start..end` left once the space-separated piece glued to a chain
/// before it (`prev_glued`) or after it (`glued`) is cut off; empty when nothing is left.
fn unglued_span(
    b: &[u8],
    start: usize,
    end: usize,
    prev_glued: bool,
    glued: bool,
) -> (usize, usize) {
    let mut lo = start;
    let mut hi = end;
    if prev_glued {
        lo = match b[start..end].iter().position(|&c| c == b' ') {
            Some(k) => start + k + 1,
            None => end,
        };
    }
    if glued && lo < hi {
        hi = match b[lo..hi].iter().rposition(|&c| c == b' ') {
            Some(k) => lo + k,
            None => lo,
        };
    }
    // Separators left at either edge are not part of a value.
    while lo < hi && !b[lo].is_ascii_digit() && !matches!(b[lo], b'+' | b'(') {
        lo += 1;
    }
    while hi > lo && !b[hi - 1].is_ascii_digit() {
        hi -= 1;
    }
    (lo, hi.max(lo))
}

/// End of the run that starts at digit `i`: digits joined by at most two separators.
fn run_end(b: &[u8], mut i: usize) -> usize {
    let n = b.len();
    let start = i;
    let mut end = i;
    while i < n && i - start <= MAX_RUN * 2 {
        if b[i].is_ascii_digit() {
            i += 1;
            end = i;
            continue;
        }
        // Up to two separator bytes, then a digit or an opening parenthesis.
        let mut j = i;
        while j < n && j - i < 2 && matches!(b[j], b' ' | b'-' | b'.' | b'(' | b')') {
            j += 1;
        }
        if j > i && j < n && (b[j].is_ascii_digit() || (b[j] == b'(' && j - i < 2)) {
            i = j;
            continue;
        }
        break;
    }
    end
}

/// Groups of digits and the separators between them.
struct Shape {
    groups: [u8; 24],
    seps: [u8; 24],
    count: usize,
    digits: [u8; MAX_RUN],
    ndigits: usize,
    parens: bool,
    plus: bool,
}

impl Shape {
    fn of(run: &[u8]) -> Option<Shape> {
        let mut s = Shape {
            groups: [0; 24],
            seps: [0; 24],
            count: 0,
            digits: [0; MAX_RUN],
            ndigits: 0,
            parens: false,
            plus: false,
        };
        let mut in_group = false;
        let mut sep = 0u8;
        for &c in run {
            if c.is_ascii_digit() {
                if s.ndigits == MAX_RUN {
                    return None;
                }
                s.digits[s.ndigits] = c - b'0';
                s.ndigits += 1;
                if !in_group {
                    if s.count == s.groups.len() {
                        return None;
                    }
                    s.seps[s.count] = sep;
                    s.count += 1;
                    in_group = true;
                    sep = 0;
                }
                s.groups[s.count - 1] += 1;
            } else {
                in_group = false;
                match c {
                    b'+' => s.plus = true,
                    b'(' | b')' => s.parens = true,
                    // A space next to a parenthesis or dash is not its own separator kind.
                    b' ' if sep != 0 => {}
                    _ => sep = c,
                }
            }
        }
        Some(s)
    }

    fn groups(&self) -> &[u8] {
        &self.groups[..self.count]
    }

    fn digits(&self) -> &[u8] {
        &self.digits[..self.ndigits]
    }

    /// Separators between groups (the first group has none).
    fn inner_seps(&self) -> &[u8] {
        if self.count > 1 {
            &self.seps[1..self.count]
        } else {
            &[]
        }
    }

    fn uniform_sep(&self) -> Option<u8> {
        let seps = self.inner_seps();
        let first = *seps.first()?;
        seps.iter().all(|&s| s == first).then_some(first)
    }
}

fn classify(text: &str, start: usize, end: usize, cfg: NumericConfig, out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    if let Some(found) = classify_exact(text, start, end, cfg) {
        out.push(Candidate::new(start, end, found));
        return;
    }
    // Several values in a row separated by spaces ("4111 1111 1111 1111 and 555 123 4567" never
    // reaches here, but "call 555 123 4567 2024" does): try the longest space-separated windows.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut s = start;
    for (k, &c) in b.iter().enumerate().take(end).skip(start) {
        if c == b' ' {
            if k > s {
                cuts.push((s, k));
            }
            s = k + 1;
        }
    }
    // A spaced value has at least eight digits (the shortest E.164 number).
    if cuts.is_empty() || b[start..end].iter().filter(|c| c.is_ascii_digit()).count() < 8 {
        return;
    }
    cuts.push((s, end));
    let g = cuts.len();
    let mut i = 0;
    while i < g {
        let mut matched = None;
        for j in (i..g).rev() {
            if j == i && g == 1 {
                break;
            }
            let (ws, we) = (cuts[i].0, cuts[j].1);
            if ws == start && we == end {
                continue;
            }
            if !b[ws].is_ascii_digit() && !matches!(b[ws], b'+' | b'(') {
                continue;
            }
            if !b[we - 1].is_ascii_digit() {
                continue;
            }
            if let Some(found) = classify_exact(text, ws, we, cfg) {
                matched = Some((ws, we, found, j));
                break;
            }
        }
        match matched {
            Some((ws, we, found, j)) => {
                out.push(Candidate::new(ws, we, found));
                i = j + 1;
            }
            None => i += 1,
        }
    }
}

fn classify_exact(text: &str, start: usize, end: usize, cfg: NumericConfig) -> Option<Found> {
    let run = &text.as_bytes()[start..end];
    let shape = Shape::of(run)?;
    let groups = shape.groups();
    let digits = shape.digits();
    let sep = shape.uniform_sep();

    if cfg.ipv4 && sep == Some(b'.') && groups.len() == 4 && !shape.plus && !shape.parens {
        return ipv4_valid(run).then_some(Found::Ip);
    }
    if (cfg.ssn || cfg.itin) && !shape.plus && !shape.parens {
        let formatted = groups == [3, 2, 4] && matches!(sep, Some(b'-') | Some(b' '));
        let bare = groups == [9] && context_has(text, start, SSN_CONTEXT);
        let found = if itin_valid(digits) {
            Found::Itin
        } else {
            Found::Ssn
        };
        let on = if found == Found::Itin {
            cfg.itin
        } else {
            cfg.ssn
        };
        if (formatted || bare) && on {
            if ssn_valid(digits) && !negated(text, start) {
                return Some(found);
            }
            if formatted {
                // An impossible or negated SSN shape is not a phone or card number either.
                return None;
            }
        }
    }
    if cfg.card
        && !shape.plus
        && !shape.parens
        && (13..=19).contains(&digits.len())
        && (sep.is_none() || matches!(sep, Some(b' ') | Some(b'-')))
        && groups.iter().all(|&g| g >= 3 || groups.len() == 1)
        && card_valid(digits)
    {
        return Some(Found::Card);
    }
    if cfg.phone && phone_valid(text, start, &shape) {
        return Some(Found::Phone);
    }
    if cfg.bank
        && !shape.plus
        && !shape.parens
        && (8..=17).contains(&digits.len())
        && (groups.len() == 1 || sep == Some(b'-') || sep == Some(b' '))
        && context_has(text, start, BANK_CONTEXT)
    {
        return Some(Found::Bank);
    }
    None
}

fn ipv4_valid(run: &[u8]) -> bool {
    run.split(|&c| c == b'.').all(|octet| {
        !octet.is_empty()
            && octet.len() <= 3
            && octet.iter().all(u8::is_ascii_digit)
            && !(octet.len() > 1 && octet[0] == b'0')
            && octet
                .iter()
                .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
                <= 255
    })
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x))
}

/// Area 000 and 666, group 00 and serial 0000 are structurally impossible. Area 900-999 is
/// never an issued SSN, but it is what ITINs and the test numbers benchmarks use look like:
/// personal either way, so it is kept.
pub(crate) fn ssn_valid(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = num(&d[..3]);
    let group = num(&d[3..5]);
    let serial = num(&d[5..]);
    area != 0 && area != 666 && group != 0 && serial != 0
}

/// An ITIN: area 900-999 with a group the IRS assigns to ITINs.
fn itin_valid(d: &[u8]) -> bool {
    d.len() == 9
        && num(&d[..3]) >= 900
        && matches!(num(&d[3..5]), 50..=65 | 70..=88 | 90..=92 | 94..=99)
}

/// Whether the words right before `start` call the number something else ("order", "invoice
/// no.", "part #"): those are references, not taxpayer ids. Looks only inside the context
/// window, so a stream split anywhere decides the same.
fn negated(text: &str, start: usize) -> bool {
    let from = start.saturating_sub(CONTEXT_BYTES);
    let before = text.as_bytes().get(from..start).unwrap_or_default();
    let is_gap = |c: &u8| matches!(c, b' ' | b':' | b'#' | b'.' | b'-' | b'\t');
    let mut words = before
        .split(|c| is_gap(c) || !is_word_byte(*c))
        .rev()
        .filter(|w| !w.is_empty());
    let trailing_gap = before.iter().rev().take_while(|c| is_gap(c)).count();
    if trailing_gap == 0 && !before.is_empty() {
        return false;
    }
    let is =
        |word: &[u8], list: &[&str]| list.iter().any(|w| word.eq_ignore_ascii_case(w.as_bytes()));
    match words.next() {
        Some(word) if is(word, NOT_SSN_CONTEXT) => true,
        Some(word) if is(word, NUMBER_WORDS) => {
            words.next().is_some_and(|w| is(w, NOT_SSN_CONTEXT))
        }
        _ => false,
    }
}

pub(crate) fn luhn_valid(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Luhn plus an issuer prefix: Luhn alone accepts one random number in ten.
pub(crate) fn card_valid(d: &[u8]) -> bool {
    let len = d.len();
    let p2 = num(&d[..2]);
    let p3 = num(&d[..3]);
    let p4 = num(&d[..4]);
    let issuer = match d[0] {
        4 => matches!(len, 13 | 16 | 19),
        5 => (51..=55).contains(&p2) && len == 16,
        2 => (2221..=2720).contains(&p4) && len == 16,
        3 => {
            (matches!(p2, 34 | 37) && len == 15)
                || (p2 == 35 && (16..=19).contains(&len))
                || ((matches!(p2, 36 | 38 | 39) || (300..=305).contains(&p3))
                    && (14..=16).contains(&len))
        }
        6 => {
            (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || p2 == 62)
                && (16..=19).contains(&len)
        }
        _ => false,
    };
    issuer && luhn_valid(d)
}

/// US numbers (NXX-NXX-XXXX in the usual layouts) and international numbers written with a
/// leading `+` (E.164: 8-15 digits, country code not starting with 0).
fn phone_valid(text: &str, start: usize, s: &Shape) -> bool {
    let groups = s.groups();
    let d = s.digits();
    let seps_ok = s
        .inner_seps()
        .iter()
        .all(|&c| matches!(c, b' ' | b'-' | b'.' | b')' | b'('));
    if !seps_ok {
        return false;
    }
    let nanp = |d: &[u8]| d.len() == 10 && d[0] >= 2 && d[3] >= 2;
    if s.plus {
        if d.first() == Some(&0) || !(8..=15).contains(&d.len()) {
            return false;
        }
        if d[0] == 1 {
            return nanp(&d[1..]);
        }
        // A bare "+4930901820" is E.164 too; grouped numbers need groups of 1-8 digits.
        return groups.len() == 1 || groups.iter().all(|&g| (1..=8).contains(&g));
    }
    let us_layout = groups == [3, 3, 4] || groups == [1, 3, 3, 4];
    if us_layout {
        let local = if groups.len() == 4 {
            if d[0] != 1 {
                return false;
            }
            &d[1..]
        } else {
            d
        };
        // "(555) 123-4567" or "555-123-4567", never a dotted-then-dashed mix like versions.
        return nanp(local);
    }
    // Unformatted or national layouts ("5551234567", "020 7946 0958") need a phone word nearby.
    (10..=12).contains(&d.len())
        && (groups.len() == 1 || groups.iter().all(|&g| (2..=5).contains(&g)))
        && !(groups.len() == 1 && d.len() != 10)
        && (groups.len() > 1 || nanp(d))
        && context_has(text, start, PHONE_CONTEXT)
}
