//! Streaming redaction and restoration with a bounded hold-back window.
//!
//! `StreamRedactor` is fed text deltas (SSE `content` pieces or raw chunks) and returns the
//! text that is safe to emit: everything except the tail that could still be part of a value
//! (the last word, a run of capitalised words or digit groups before it, an unterminated PEM
//! block, a partial placeholder). Words are split at whitespace, but a run may also begin inside
//! a token, after punctuation or non-ASCII text ("the,Ludwig", "こんにちはBlue"), since the
//! detectors' word boundaries fall there too. Already-emitted text is kept as left context (at most
//! `CONTEXT_KEEP` bytes) so cue words and context words before a value still count. The
//! concatenated output equals `Redactor::redact` of the whole text, whatever the split points,
//! as long as no single value is longer than `MAX_HOLD`.

use crate::detect::{Candidate, CONTEXT_BYTES};
use crate::entity::{Entity, EntityType};
use crate::placeholder::{placeholder_prefix, PlaceholderMap};
use crate::policy::Phase;
use crate::redactor::{count_types, verdict, Redactor, Verdict};

/// Bytes of already-emitted text kept as context for the detectors.
pub const CONTEXT_KEEP: usize = 4 * CONTEXT_BYTES;
/// The most bytes held back: past this the held text is redacted as if the stream ended there,
/// so memory stays bounded (values longer than this may be split).
pub const MAX_HOLD: usize = 32 * 1024;

const PEM_BEGIN: &str = "-----BEGIN";
const PEM_END: &str = "-----END";

#[derive(Debug)]
pub struct StreamRedactor {
    phase: Phase,
    /// Emitted original text kept for context (a suffix of everything emitted).
    context: String,
    /// Received, not yet emitted.
    pending: String,
    emitted_chars: usize,
    entities: Vec<Entity>,
    blocked: Vec<EntityType>,
}

impl StreamRedactor {
    pub fn new(phase: Phase) -> Self {
        StreamRedactor {
            phase,
            context: String::new(),
            pending: String::new(),
            emitted_chars: 0,
            entities: Vec::new(),
            blocked: Vec::new(),
        }
    }

    /// Feeds a delta; returns the redacted text that can be sent now (possibly empty).
    pub fn push(&mut self, redactor: &Redactor, delta: &str, map: &mut PlaceholderMap) -> String {
        if redactor.bypasses() || !redactor.active(self.phase) {
            let mut out = std::mem::take(&mut self.pending);
            out.push_str(delta);
            return out;
        }
        self.pending.push_str(delta);
        self.advance(redactor, map, false)
    }

    /// Ends the stream: redacts and returns everything still held.
    pub fn finish(&mut self, redactor: &Redactor, map: &mut PlaceholderMap) -> String {
        if redactor.bypasses() || !redactor.active(self.phase) {
            return std::mem::take(&mut self.pending);
        }
        self.advance(redactor, map, true)
    }

    /// Entities found so far, in character offsets into the whole stream's original text.
    pub fn entities(&self) -> &[Entity] {
        &self.entities
    }

    pub fn counts(&self) -> Vec<(EntityType, u32)> {
        count_types(&self.entities)
    }

    pub fn verdict(&self) -> Verdict {
        verdict(self.blocked.clone())
    }

    fn advance(&mut self, redactor: &Redactor, map: &mut PlaceholderMap, end: bool) -> String {
        let ctx = self.context.len();
        let mut text = String::with_capacity(ctx + self.pending.len());
        text.push_str(&self.context);
        text.push_str(&self.pending);
        let mut cut = if end {
            text.len()
        } else {
            hold_from(redactor, &text, ctx)
        };
        if text.len() - cut > MAX_HOLD {
            cut = text.len();
        }
        if cut <= ctx {
            // Everything received is held (a word still growing, a PEM block without its END
            // line): nothing would be emitted, so the detectors need not scan the held text
            // again on every delta. The context is unchanged, as it is at most CONTEXT_KEEP.
            self.pending = text.split_off(ctx);
            return String::new();
        }
        let spans = redactor.spans(&text, self.phase);
        // Never cut through a value.
        for c in &spans {
            if c.start < cut && cut < c.end {
                cut = c.start;
            }
        }
        let cut = cut.max(ctx);
        let fresh: Vec<Candidate> = spans
            .into_iter()
            // Only spans with some part in the emitted range `ctx..cut`: a value that began in
            // the context is not masked again (or counted again) for an empty range.
            .filter(|c| c.end.min(cut) > c.start.max(ctx))
            .collect();
        let mut out = String::with_capacity(cut - ctx);
        redactor.apply(
            &text,
            ctx,
            cut,
            &fresh,
            self.phase,
            map,
            &mut out,
            &mut self.blocked,
        );
        self.entities
            .extend(redactor.to_entities(&text, ctx, self.emitted_chars, &fresh));
        self.emitted_chars += text[ctx..cut].chars().count();
        self.pending = text[cut..].to_owned();
        let mut keep = cut.saturating_sub(CONTEXT_KEEP);
        while !text.is_char_boundary(keep) {
            keep += 1;
        }
        self.context = text[keep..cut].to_owned();
        out
    }
}

/// Where the held-back tail of `text` starts (never before `floor`).
fn hold_from(redactor: &Redactor, text: &str, floor: usize) -> usize {
    let b = text.as_bytes();
    let mut hold = b.len();
    // The last word (and the whitespace after it) may still grow or be joined by the next one.
    let mut i = b.len();
    while i > floor && b[i - 1].is_ascii_whitespace() {
        i -= 1;
    }
    let mut first = true;
    loop {
        let end = i;
        while i > floor && !b[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        if end == i {
            break;
        }
        if !first && !redactor.chainable(&text[i..end]) {
            // The detectors' words also end at punctuation and non-ASCII text ("the,Ludwig",
            // "こんにちはBlue"), so a value can start inside this whitespace-delimited token:
            // hold its longest chainable tail and end the chain there.
            if let Some(k) = chainable_tail(redactor, text, i, end) {
                hold = k;
            }
            break;
        }
        first = false;
        hold = i;
        while i > floor && b[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
    }
    // A PEM block is a value until its END line arrives.
    if let Some(begin) = text[floor..].rfind(PEM_BEGIN) {
        let begin = floor + begin;
        if !text[begin..].contains(PEM_END) {
            hold = hold.min(begin);
        }
    }
    hold.max(floor)
}

/// The start of the longest tail of `text[from..end]` that begins after a character the
/// detectors do not count as part of an ASCII word (punctuation, CJK, other non-ASCII) and is
/// itself chainable. Over-approximates the detectors' word starts, so it may hold a little more
/// than needed but never less.
fn chainable_tail(redactor: &Redactor, text: &str, from: usize, end: usize) -> Option<usize> {
    let mut prev_breaks = false;
    for (off, c) in text[from..end].char_indices() {
        let k = from + off;
        if prev_breaks && redactor.chainable(&text[k..end]) {
            return Some(k);
        }
        prev_breaks = !c.is_ascii_alphanumeric();
    }
    None
}

/// Restores placeholders in a streamed answer, holding back a partial `<PERSON_` until it is
/// complete.
#[derive(Debug, Default)]
pub struct StreamRestorer {
    pending: String,
    /// The stream is JSON source text (tool-call arguments): values are restored escaped.
    json: bool,
}

impl StreamRestorer {
    pub fn new() -> Self {
        Self::default()
    }

    /// For JSON source text streamed in pieces (tool-call argument deltas).
    pub fn in_json() -> Self {
        Self {
            pending: String::new(),
            json: true,
        }
    }

    fn restore(&self, text: &str, map: &PlaceholderMap) -> String {
        if self.json {
            map.restore_in_json(text).into_owned()
        } else {
            map.restore(text).into_owned()
        }
    }

    pub fn push(&mut self, delta: &str, map: &PlaceholderMap) -> String {
        self.pending.push_str(delta);
        let split = match self.pending.rfind('<') {
            Some(lt) if placeholder_prefix(&self.pending[lt..]) => lt,
            _ => self.pending.len(),
        };
        let rest = self.pending.split_off(split);
        let ready = std::mem::replace(&mut self.pending, rest);
        self.restore(&ready, map)
    }

    pub fn finish(&mut self, map: &PlaceholderMap) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.restore(&rest, map)
    }
}
