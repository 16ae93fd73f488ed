//! A light name recogniser: capitalised words looked up in embedded first-name and surname
//! lists, with titles and cue phrases ("Dear", "Dr.", "my name is") and first+last adjacency.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::lexicon::{Lexicon, AMBIG, CUE, FIRST, LAST, PARTICLE, STOP, TITLE, WEAK_CUE};
use super::{Candidate, Found};

/// The most tokens one name may have ("Maria de la Cruz Fernández").
const MAX_NAME_TOKENS: usize = 5;
const MAX_SEQUENCE: usize = 12;

/// Phrases after which even lower-case listed names count ("my name is john smith").
const LOWER_CUES: &[&str] = &[
    "my name is ",
    "my name's ",
    "name is ",
    "call me ",
    "i am ",
    "i'm ",
    "this is ",
    "signed ",
    "regards, ",
    "dear ",
    "hi ",
    "hello ",
    "thanks ",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    First,
    FirstAmb,
    Last,
    LastAmb,
    Unknown,
    Initial,
    Particle,
    Title,
    Cue,
    Stop,
}

#[derive(Clone, Copy, Debug)]
struct Token {
    start: usize,
    end: usize,
    kind: Kind,
}

pub(crate) struct PersonDetector {
    lexicon: Lexicon,
    lower_cues: AhoCorasick,
}

/// The word starting at byte `i`, as (end, chars): letters, with `'`/`-` joins before a capital
/// ("O'Brien", "Jean-Luc").
pub(crate) fn word_end(text: &str, i: usize) -> usize {
    let b = text.as_bytes();
    let mut j = i;
    while j < b.len() && b[j].is_ascii_alphabetic() {
        j += 1;
    }
    // Plain ASCII words end here; accents and joins take the general path.
    if j == b.len() || !(b[j] >= 0x80 || b[j] == b'\'' || b[j] == b'-') {
        return j;
    }
    let mut it = text[i..].char_indices().peekable();
    let mut end = i;
    while let Some((off, c)) = it.next() {
        if c.is_alphabetic() {
            end = i + off + c.len_utf8();
            continue;
        }
        if matches!(c, '\'' | '’' | '-') {
            if let Some(&(_, n)) = it.peek() {
                if n.is_uppercase() {
                    continue;
                }
            }
        }
        break;
    }
    end
}

fn prev_char(text: &str, i: usize) -> Option<char> {
    text[..i].chars().next_back()
}

/// A word may start a name only after space or opening punctuation, never inside a URL, path,
/// identifier or address.
fn starts_word(text: &str, i: usize) -> bool {
    match prev_char(text, i) {
        None => true,
        Some(c) => {
            c.is_whitespace()
                || matches!(
                    c,
                    '(' | '"'
                        | '\''
                        | '“'
                        | '‘'
                        | '['
                        | '*'
                        | '>'
                        | ','
                        | ';'
                        | '—'
                        | '–'
                        | '¿'
                        | '¡'
                )
        }
    }
}

/// The word is glued to more of a compound token ("John.Smith@", "Acme_Corp", "Bob/").
fn glued_after(b: &[u8], e: usize) -> bool {
    match b.get(e) {
        Some(b'@' | b'_' | b'/' | b'\\' | b'0'..=b'9') => true,
        Some(b'.' | b'-' | b':') => b.get(e + 1).is_some_and(|c| c.is_ascii_alphanumeric()),
        _ => false,
    }
}

fn is_cap_start(c: u8) -> bool {
    c.is_ascii_uppercase() || c >= 0xC0
}

impl PersonDetector {
    pub(crate) fn new() -> Result<Self, crate::policy::PolicyError> {
        let lower_cues = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(LOWER_CUES)
            .map_err(|e| crate::policy::PolicyError::Builtin(e.to_string()))?;
        Ok(PersonDetector {
            lexicon: Lexicon::embedded(),
            lower_cues,
        })
    }

    pub(crate) fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    pub(crate) fn scan(&self, text: &str, out: &mut Vec<Candidate>) {
        let b = text.as_bytes();
        let n = b.len();
        let mut i = 0;
        let mut seq: Vec<Token> = Vec::new();
        loop {
            i = super::bytes::next_capital(b, i);
            if i >= n {
                break;
            }
            if !is_cap_start(b[i]) || !text.is_char_boundary(i) {
                i += 1;
                continue;
            }
            if !starts_word(text, i) {
                i = skip_word(text, i);
                continue;
            }
            seq.clear();
            let mut j = i;
            while let Some(tok) = self.token_at(text, j) {
                seq.push(tok);
                match self.continuation(text, &seq) {
                    Some(next) if seq.len() < MAX_SEQUENCE => j = next,
                    _ => break,
                }
            }
            match seq.last() {
                Some(last) => {
                    let end = last.end;
                    // Only a run of name-like tokens can be a name; most capitalised words
                    // ("The", "Monday", "API") are not, and need no look at their cues.
                    if seq.iter().any(|t| could_name(t.kind)) {
                        self.decide(text, &seq, out);
                    }
                    i = end.max(i + 1);
                }
                None => i = skip_word(text, i),
            }
        }
        self.scan_lowercase(text, out);
    }

    /// A capitalised word (or a particle, when `allow_particle`) at `i`.
    fn token_at(&self, text: &str, i: usize) -> Option<Token> {
        let b = text.as_bytes();
        let first = text[i..].chars().next()?;
        let end = word_end(text, i);
        if end == i || glued_after(b, end) {
            return None;
        }
        let word = &text[i..end];
        let flags = self.lexicon.flags(word);
        if !first.is_uppercase() {
            return (flags & PARTICLE != 0).then_some(Token {
                start: i,
                end,
                kind: Kind::Particle,
            });
        }
        let single = end - i == first.len_utf8();
        if single {
            // "J." is an initial; "I", "A" are words.
            return Some(Token {
                start: i,
                end,
                kind: if b.get(end) == Some(&b'.') {
                    Kind::Initial
                } else {
                    Kind::Stop
                },
            });
        }
        let all_caps = word.chars().all(|c| !c.is_lowercase());
        let kind = if all_caps {
            Kind::Stop
        } else if flags & TITLE != 0 {
            Kind::Title
        } else if flags & CUE != 0 && flags & (FIRST | LAST) == 0 {
            Kind::Cue
        } else if flags & STOP != 0 {
            Kind::Stop
        } else if flags & FIRST != 0 {
            if flags & AMBIG != 0 {
                Kind::FirstAmb
            } else {
                Kind::First
            }
        } else if flags & LAST != 0 {
            if flags & AMBIG != 0 {
                Kind::LastAmb
            } else {
                Kind::Last
            }
        } else if flags & (AMBIG | CUE | WEAK_CUE | PARTICLE) != 0 {
            Kind::Stop
        } else {
            Kind::Unknown
        };
        Some(Token {
            start: i,
            end,
            kind,
        })
    }

    /// Where the next token of the sequence starts, if the sequence goes on.
    fn continuation(&self, text: &str, seq: &[Token]) -> Option<usize> {
        let b = text.as_bytes();
        let last = seq.last()?;
        let mut j = last.end;
        if b.get(j) == Some(&b'.') && matches!(last.kind, Kind::Initial | Kind::Title) {
            j += 1;
        }
        if b.get(j) != Some(&b' ') {
            return None;
        }
        j += 1;
        let c = *b.get(j)?;
        if is_cap_start(c) {
            return text[j..]
                .chars()
                .next()
                .filter(|c| c.is_uppercase())
                .map(|_| j);
        }
        // A particle only joins when a capitalised word follows it.
        if c.is_ascii_lowercase() && !matches!(last.kind, Kind::Stop | Kind::Cue | Kind::Title) {
            let pe = word_end(text, j);
            if is_particle(&text[j..pe])
                && b.get(pe) == Some(&b' ')
                && b.get(pe + 1).is_some_and(|&c| c.is_ascii_uppercase())
            {
                return Some(j);
            }
        }
        None
    }

    /// Whether the words before `start` make the next capitalised words a name:
    /// (strong, weak).
    fn cue_before(&self, text: &str, start: usize) -> (bool, bool) {
        let Some((w1, s1)) = prev_word(text, start) else {
            return (false, false);
        };
        let f1 = self.lexicon.flags(w1);
        if f1 & (CUE | TITLE) != 0 {
            // "Hi, Meeting notes:" opens a sentence; "Hi Zephyr," and "Regards,\nTsubasa" name.
            let greeting = ["hi", "hello", "hey", "dear"]
                .iter()
                .any(|g| w1.eq_ignore_ascii_case(g));
            let punct = text[s1 + w1.len()..start].contains([',', ':']);
            return (!(greeting && punct), false);
        }
        let is = |w: &str, s: &str| w.eq_ignore_ascii_case(s);
        let prev2_is = |options: &[&str]| {
            prev_word(text, s1).is_some_and(|(p, _)| options.iter().any(|o| is(p, o)))
        };
        let strong = if is(w1, "is") || is(w1, "'s") {
            prev2_is(&["name", "this", "name's"])
        } else if is(w1, "am") {
            prev2_is(&["i"])
        } else if is(w1, "me") {
            prev2_is(&["call"])
        } else {
            is(w1, "i'm") || is(w1, "im") || is(w1, "i’m")
        };
        (strong, f1 & WEAK_CUE != 0)
    }

    fn decide(&self, text: &str, seq: &[Token], out: &mut Vec<Candidate>) {
        let (mut strong, mut weak) = self.cue_before(text, seq[0].start);
        let sentence_start = at_sentence_start(text, seq[0].start);
        let mut k = 0;
        // A capitalised non-name inside the sequence ("The San Francisco office") makes a
        // following lone first name part of a place or product, not a person.
        let mut after_stop = false;
        while k < seq.len() {
            match seq[k].kind {
                Kind::Title | Kind::Cue => {
                    strong = true;
                    k += 1;
                    continue;
                }
                Kind::Stop | Kind::Particle => {
                    strong = false;
                    weak = false;
                    after_stop = k > 0 || !sentence_start;
                    k += 1;
                    continue;
                }
                _ => {}
            }
            let r0 = k;
            while k < seq.len() && k - r0 < MAX_NAME_TOKENS && nameish(seq[k].kind) {
                k += 1;
            }
            let mut run = &seq[r0..k];
            while let Some(last) = run.last() {
                if last.kind == Kind::Particle {
                    run = &run[..run.len() - 1];
                } else {
                    break;
                }
            }
            let first_of_text = r0 == 0 && sentence_start;
            let lone_after_stop = after_stop && run.len() == 1 && !strong;
            if let Some((s, e)) =
                accept(run, strong, weak, first_of_text).filter(|_| !lone_after_stop)
            {
                out.push(Candidate::new(s, e, Found::Person));
            }
            strong = false;
            weak = false;
            after_stop = false;
        }
    }

    /// Lower-case names right after a strong cue phrase: "my name is john smith".
    fn scan_lowercase(&self, text: &str, out: &mut Vec<Candidate>) {
        let b = text.as_bytes();
        for m in self.lower_cues.find_iter(b) {
            let s = m.end();
            if s < b.len() && b[s].is_ascii_uppercase() {
                continue;
            }
            if m.start() > 0 && b[m.start() - 1].is_ascii_alphanumeric() {
                continue;
            }
            let mut j = s;
            let mut end = s;
            let mut count = 0;
            while count < 3 && j < b.len() && b[j].is_ascii_lowercase() {
                let e = word_end(text, j);
                if e == j || glued_after(b, e) {
                    break;
                }
                let f = self.lexicon.flags(&text[j..e]);
                let listed = f & (FIRST | LAST) != 0 && f & (AMBIG | STOP) == 0;
                // A listed first name starts it; surnames only follow.
                if !listed || (count == 0 && f & FIRST == 0) {
                    break;
                }
                end = e;
                count += 1;
                if b.get(e) != Some(&b' ') {
                    break;
                }
                j = e + 1;
            }
            if count > 0 {
                out.push(Candidate::new(s, end, Found::Person));
            }
        }
    }
}

/// Lower-case joiners inside names ("van", "de", "bin"): a short fixed list, checked without a
/// hash lookup because almost every capitalised word is followed by a lower-case one.
fn is_particle(w: &str) -> bool {
    w.len() <= 5 && crate::detect::lexicon::PARTICLES.contains(&w)
}

fn nameish(k: Kind) -> bool {
    matches!(
        k,
        Kind::First
            | Kind::FirstAmb
            | Kind::Last
            | Kind::LastAmb
            | Kind::Unknown
            | Kind::Initial
            | Kind::Particle
    )
}

/// Whether `decide` may report a name for this token: the name-like kinds except a particle,
/// which never starts a run (`decide` passes over it like a stop word).
fn could_name(k: Kind) -> bool {
    nameish(k) && k != Kind::Particle
}

/// The span of a run of name-like tokens that is a name, if any.
fn accept(run: &[Token], strong: bool, weak: bool, sentence_start: bool) -> Option<(usize, usize)> {
    let first = run.first()?;
    let last = run.last()?;
    let whole = Some((first.start, last.end));
    let known = |k: Kind| matches!(k, Kind::First | Kind::Last);
    if run.iter().all(|t| t.kind == Kind::Initial) {
        return None;
    }
    if strong {
        return whole;
    }
    if run.len() == 1 {
        return match first.kind {
            Kind::First => whole,
            Kind::Last if weak => whole,
            _ => None,
        };
    }
    // "Eustace U. Altankhuyag": a middle initial between two capitalised words.
    if run.len() == 3
        && run[1].kind == Kind::Initial
        && run[0].kind != Kind::Initial
        && run[2].kind != Kind::Initial
    {
        return whole;
    }
    let any_known = run.iter().any(|t| known(t.kind));
    let rest = &run[1..];
    let first_like = matches!(first.kind, Kind::First | Kind::FirstAmb | Kind::Initial);
    if first_like && any_known {
        return whole;
    }
    // "Mark Brown" mid-sentence: two ambiguous names together still read as a name.
    if first.kind == Kind::FirstAmb
        && !sentence_start
        && rest
            .iter()
            .any(|t| matches!(t.kind, Kind::LastAmb | Kind::Unknown))
    {
        return whole;
    }
    // An unlisted given name before a listed surname ("Xochitl Hernandez").
    if matches!(first.kind, Kind::Unknown | Kind::LastAmb)
        && rest.iter().any(|t| t.kind == Kind::Last)
    {
        return whole;
    }
    // Otherwise only a lone listed first name inside the run.
    run.iter()
        .find(|t| t.kind == Kind::First)
        .map(|t| (t.start, t.end))
}

fn skip_word(text: &str, i: usize) -> usize {
    let b = text.as_bytes();
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] >= 0x80) {
        j += 1;
    }
    while j < b.len() && !text.is_char_boundary(j) {
        j += 1;
    }
    j
}

/// The word before byte `i`, skipping spaces and a comma or colon: (word, its start).
fn prev_word(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    let mut e = i;
    let mut skipped = 0;
    while e > 0 && matches!(b[e - 1], b' ' | b',' | b':' | b'\t' | b'\n') && skipped < 3 {
        e -= 1;
        skipped += 1;
    }
    // A title's dot: "Dr. Patel".
    if e > 0 && b[e - 1] == b'.' && skipped > 0 {
        e -= 1;
    }
    let mut s = e;
    while s > 0 && e - s < 16 && (b[s - 1].is_ascii_alphabetic() || b[s - 1] == b'\'') {
        s -= 1;
    }
    (s < e).then(|| (&text[s..e], s))
}

/// The first word of a sentence is capitalised anyway, so it is weaker evidence.
fn at_sentence_start(text: &str, i: usize) -> bool {
    let b = text.as_bytes();
    let mut j = i;
    while j > 0 && matches!(b[j - 1], b' ' | b'"' | b'\'' | b'(' | b'*' | b'\t') {
        j -= 1;
    }
    j == 0 || matches!(b[j - 1], b'.' | b'!' | b'?' | b'\n' | b':' | b'>' | b'-')
}
