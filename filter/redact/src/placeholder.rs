//! Per-request placeholders for reversible redaction: `<PERSON_1>` stands for one value, the
//! same value always gets the same placeholder, and `restore` puts the values back.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::entity::EntityType;

/// Most distinct values one request may map; beyond it values are masked instead, so a hostile
/// prompt cannot grow the filter's memory without bound.
pub const MAX_PLACEHOLDERS: usize = 4096;
/// Most bytes of original values kept per request.
pub const MAX_PLACEHOLDER_BYTES: usize = 1 << 20;
/// Longest placeholder text (`<` + name + `_` + number + `>`).
pub(crate) const MAX_PLACEHOLDER_LEN: usize = 48;

#[derive(Debug, Default, Clone)]
pub struct PlaceholderMap {
    /// Per entity type (a handful per policy, so a list), each value's placeholder; a type's
    /// next number is its count plus one. Looked up by `&str`, so a value seen again costs no
    /// allocation.
    by_value: Vec<(EntityType, HashMap<String, String>)>,
    by_placeholder: HashMap<String, String>,
    bytes: usize,
}

impl PlaceholderMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.by_placeholder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_placeholder.is_empty()
    }

    /// The placeholder for `value`, numbering a new one if needed; `None` once the map is full.
    pub(crate) fn placeholder(&mut self, entity: &EntityType, value: &str) -> Option<&str> {
        let full = self.by_placeholder.len() >= MAX_PLACEHOLDERS
            || self.bytes + value.len() > MAX_PLACEHOLDER_BYTES;
        let i = match self.by_value.iter().position(|(t, _)| t == entity) {
            Some(i) => i,
            None => {
                self.by_value.push((entity.clone(), HashMap::new()));
                self.by_value.len() - 1
            }
        };
        let values = &mut self.by_value.get_mut(i)?.1;
        if !values.contains_key(value) {
            if full {
                return None;
            }
            let ph = format!("<{}_{}>", entity.as_str(), values.len() + 1);
            self.bytes += value.len();
            self.by_placeholder.insert(ph.clone(), value.to_owned());
            values.insert(value.to_owned(), ph);
        }
        values.get(value).map(String::as_str)
    }

    /// The original value behind a placeholder.
    pub fn value(&self, placeholder: &str) -> Option<&str> {
        self.by_placeholder.get(placeholder).map(String::as_str)
    }

    /// `text` with every known placeholder replaced by its value; unknown ones stay.
    pub fn restore<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.restore_as(text, false)
    }

    /// Like [`Self::restore`] for JSON source text (streamed tool-call arguments): a value is
    /// written escaped as inside a JSON string, so a quote or backslash in it keeps the JSON
    /// valid.
    pub fn restore_in_json<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.restore_as(text, true)
    }

    fn restore_as<'t>(&self, text: &'t str, json: bool) -> Cow<'t, str> {
        if self.is_empty() || !text.contains('<') {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for lt in memchr::memchr_iter(b'<', text.as_bytes()) {
            if lt < last {
                continue;
            }
            let Some(len) = placeholder_len(&text[lt..]) else {
                continue;
            };
            if let Some(v) = self.value(&text[lt..lt + len]) {
                out.push_str(&text[last..lt]);
                match serde_json::to_string(v) {
                    Ok(quoted) if json => out.push_str(&quoted[1..quoted.len() - 1]),
                    _ => out.push_str(v),
                }
                last = lt + len;
            }
        }
        if last == 0 {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }
}

/// Length of a `<NAME_N>` placeholder at the start of `s`.
pub(crate) fn placeholder_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') || !b.get(1).is_some_and(u8::is_ascii_uppercase) {
        return None;
    }
    let close = b
        .iter()
        .take(MAX_PLACEHOLDER_LEN)
        .position(|&c| c == b'>')?;
    let inner = &b[1..close];
    let us = inner.iter().rposition(|&c| c == b'_')?;
    let (name, num) = (&inner[..us], &inner[us + 1..]);
    let ok = !name.is_empty()
        && name
            .iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        && !num.is_empty()
        && num.iter().all(u8::is_ascii_digit);
    ok.then_some(close + 1)
}

/// Whether `s` (starting at `<`) could still grow into a placeholder.
pub(crate) fn placeholder_prefix(s: &str) -> bool {
    let b = s.as_bytes();
    b.first() == Some(&b'<')
        && b.len() < MAX_PLACEHOLDER_LEN
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}
