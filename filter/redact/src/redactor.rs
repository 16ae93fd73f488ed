//! The compiled engine: a `Redactor` built once per policy, applied per text.

use std::collections::HashSet;

use crate::decode::decode;
use crate::detect::{resolve, Candidate, Detectors, Enabled, Slot};
use crate::entity::{Entity, EntityType};
use crate::placeholder::PlaceholderMap;
use crate::policy::{Action, Direction, Phase, PolicyError, RedactionPolicy};
use crate::scope::Scope;

#[derive(Clone, Debug)]
struct Rule {
    entity: EntityType,
    action: Action,
    direction: Direction,
}

/// The outcome for one text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The policy blocks these types (sorted, de-duplicated); the caller refuses the request
    /// with 400 `pii_blocked`. Never carries values.
    Block {
        entity_types: Vec<EntityType>,
    },
    /// High-trust policy: nothing was looked at or changed.
    Bypassed,
}

/// A redacted text and what was found in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    pub text: String,
    /// Character offsets into the input text.
    pub entities: Vec<Entity>,
    pub verdict: Verdict,
}

impl Redaction {
    /// How many values of each type were found, for the audit record.
    pub fn counts(&self) -> Vec<(EntityType, u32)> {
        count_types(&self.entities)
    }
}

pub(crate) fn count_types(entities: &[Entity]) -> Vec<(EntityType, u32)> {
    let mut counts: Vec<(EntityType, u32)> = Vec::new();
    for e in entities {
        match counts.iter_mut().find(|(t, _)| *t == e.entity_type) {
            Some((_, n)) => *n += 1,
            None => counts.push((e.entity_type.clone(), 1)),
        }
    }
    counts.sort();
    counts
}

/// A policy compiled for use: build once (per snapshot version), share across requests.
pub struct Redactor {
    detectors: Detectors,
    rules: Vec<Rule>,
    high_trust: bool,
    scope: Scope,
    enabled_request: Enabled,
    enabled_response: Enabled,
    customs_request: bool,
    customs_response: bool,
    /// Lower-cased words of deny terms: a stream holds them back like names.
    deny_words: HashSet<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rules)
            .field("high_trust", &self.high_trust)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    pub fn new(policy: &RedactionPolicy) -> Result<Self, PolicyError> {
        policy.validate_names()?;
        let mut detectors = Detectors::new()?;
        let mut rules: Vec<Rule> = EntityType::BUILTIN
            .iter()
            .map(|t| {
                let (action, direction) = policy.builtin_rule(t);
                Rule {
                    entity: t.clone(),
                    action,
                    direction,
                }
            })
            .collect();
        let mut deny_words = HashSet::new();
        let custom_index =
            |rules: &mut Vec<Rule>, name: &str, action, direction: Option<Direction>| {
                let entity = EntityType::Custom(name.into());
                let idx = rules.len() - EntityType::BUILTIN.len();
                rules.push(Rule {
                    entity,
                    action,
                    direction: direction.unwrap_or(policy.direction),
                });
                u16::try_from(idx).unwrap_or(u16::MAX)
            };
        for p in &policy.custom_patterns {
            let idx = custom_index(&mut rules, &p.name, p.action, p.direction);
            if p.action != Action::Off {
                detectors.add_custom(&p.name, &p.pattern, idx)?;
            }
        }
        for d in &policy.deny_terms {
            let idx = custom_index(&mut rules, &d.name, d.action, d.direction);
            if d.action != Action::Off && !d.terms.is_empty() {
                detectors.add_deny(&d.name, &d.terms, d.case_sensitive, idx)?;
                for t in &d.terms {
                    deny_words.extend(t.split_whitespace().map(str::to_lowercase));
                }
            }
        }
        let enabled = |phase: Phase| {
            let mut on = [false; EntityType::BUILTIN.len()];
            for (slot, rule) in rules.iter().take(EntityType::BUILTIN.len()).enumerate() {
                on[slot] = rule.action != Action::Off && rule.direction.covers(phase);
            }
            Enabled(on)
        };
        let customs = |phase: Phase| {
            rules
                .iter()
                .skip(EntityType::BUILTIN.len())
                .any(|r| r.action != Action::Off && r.direction.covers(phase))
        };
        Ok(Redactor {
            enabled_request: enabled(Phase::Request),
            enabled_response: enabled(Phase::Response),
            customs_request: customs(Phase::Request),
            customs_response: customs(Phase::Response),
            detectors,
            rules,
            high_trust: policy.high_trust,
            scope: policy.scope,
            deny_words,
        })
    }

    /// Compiles the JSON stored as `redaction_policy_json`; empty means the default policy.
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        Self::new(&RedactionPolicy::from_json(json)?)
    }

    /// High-trust policies bypass redaction; the caller marks the request in its audit record.
    pub fn bypasses(&self) -> bool {
        self.high_trust
    }

    /// Which kinds of request text the policy redacts.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Whether anything would be looked for in this phase.
    pub fn active(&self, phase: Phase) -> bool {
        !self.high_trust
            && match phase {
                Phase::Request => self.enabled_request.0.contains(&true) || self.customs_request,
                Phase::Response => self.enabled_response.0.contains(&true) || self.customs_response,
            }
    }

    /// What happens to this slot's values in this phase (`Off` when the rule does not apply).
    /// Responses cannot be refused or numbered for the client, so there `block` and
    /// `reversible` mask.
    fn action(&self, slot: Slot, phase: Phase) -> Action {
        let Some(rule) = self.rules.get(slot) else {
            return Action::Off;
        };
        if !rule.direction.covers(phase) {
            return Action::Off;
        }
        match (rule.action, phase) {
            (Action::Block | Action::Reversible, Phase::Response) => Action::Mask,
            (a, _) => a,
        }
    }

    fn entity(&self, slot: Slot) -> &EntityType {
        self.rules
            .get(slot)
            .map(|r| &r.entity)
            .unwrap_or(&EntityType::BUILTIN[0])
    }

    /// Resolved findings (byte offsets) whose rule applies in `phase`.
    pub(crate) fn spans(&self, text: &str, phase: Phase) -> Vec<Candidate> {
        let mut cands = Vec::new();
        if self.active(phase) {
            let on = match phase {
                Phase::Request => self.enabled_request,
                Phase::Response => self.enabled_response,
            };
            self.detectors.find(text, on, &mut cands);
            cands.retain(|c| self.action(c.slot, phase) != Action::Off);
            resolve(&mut cands);
        }
        cands
    }

    /// Like [`Self::spans`], but when `text` holds percent or JSON escapes the detectors read
    /// it decoded, and each finding covers the whole encoded range it came from (so masking
    /// it leaves nothing of the value for a reader who decodes the result).
    fn spans_decoded(&self, text: &str, phase: Phase) -> Vec<Candidate> {
        if !self.active(phase) {
            return Vec::new();
        }
        let Some(decoded) = decode(text) else {
            return self.spans(text, phase);
        };
        let mut spans = self.spans(&decoded.text, phase);
        for c in &mut spans {
            c.start = decoded.origin(c.start);
            c.end = decoded.origin(c.end);
        }
        spans.retain(|c| c.start < c.end && c.end <= text.len());
        spans
    }

    /// The entities in `text` that the policy acts on in `phase`.
    pub fn detect(&self, text: &str, phase: Phase) -> Vec<Entity> {
        let spans = self.spans_decoded(text, phase);
        self.to_entities(text, 0, 0, &spans)
    }

    /// Redacts `text`: masks, numbers reversible values in `map`, and says whether the policy
    /// blocks it.
    pub fn redact(&self, text: &str, phase: Phase, map: &mut PlaceholderMap) -> Redaction {
        if self.high_trust {
            return Redaction {
                text: text.to_owned(),
                entities: Vec::new(),
                verdict: Verdict::Bypassed,
            };
        }
        let spans = self.spans_decoded(text, phase);
        let mut out = String::with_capacity(text.len());
        let mut blocked = Vec::new();
        self.apply(
            text,
            0,
            text.len(),
            &spans,
            phase,
            map,
            &mut out,
            &mut blocked,
        );
        Redaction {
            text: out,
            entities: self.to_entities(text, 0, 0, &spans),
            verdict: verdict(blocked),
        }
    }

    /// Writes `text[from..to]` to `out` with the values of `spans` inside that range replaced.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        &self,
        text: &str,
        from: usize,
        to: usize,
        spans: &[Candidate],
        phase: Phase,
        map: &mut PlaceholderMap,
        out: &mut String,
        blocked: &mut Vec<EntityType>,
    ) {
        let mut last = from;
        for c in spans.iter().filter(|c| c.end > from && c.start < to) {
            let start = c.start.max(from);
            let end = c.end.min(to);
            out.push_str(&text[last..start]);
            let entity = self.entity(c.slot);
            match self.action(c.slot, phase) {
                Action::Reversible => match map.placeholder(entity, &text[c.start..c.end]) {
                    Some(ph) => out.push_str(ph),
                    None => push_mask(out, entity),
                },
                Action::Block => {
                    blocked.push(entity.clone());
                    push_mask(out, entity);
                }
                Action::Mask | Action::Off => push_mask(out, entity),
            }
            last = end;
        }
        out.push_str(&text[last..to]);
    }

    /// Entities with character offsets; `base_bytes`/`base_chars` say where `text` begins in
    /// the caller's numbering (streams).
    pub(crate) fn to_entities(
        &self,
        text: &str,
        from: usize,
        base_chars: usize,
        spans: &[Candidate],
    ) -> Vec<Entity> {
        let mut out = Vec::with_capacity(spans.len());
        if spans.is_empty() {
            return out;
        }
        // In ASCII text byte offsets are character offsets: one fast check over the text
        // instead of counting the characters before every span.
        let ascii = text.as_bytes().get(from..).is_some_and(<[u8]>::is_ascii);
        let count = |s: &str| if ascii { s.len() } else { s.chars().count() };
        let mut byte = from;
        let mut chars = base_chars;
        for c in spans.iter().filter(|c| c.end > from) {
            let start = c.start.max(from);
            chars += count(&text[byte..start]);
            let start_chars = chars;
            chars += count(&text[start..c.end]);
            byte = c.end;
            out.push(Entity {
                entity_type: self.entity(c.slot).clone(),
                start: start_chars,
                end: chars,
            });
        }
        out
    }

    /// Whether a word can be part of a value that spans whitespace (names, digit groups,
    /// deny terms): a stream holds such words back until the value is complete.
    pub(crate) fn chainable(&self, word: &str) -> bool {
        let w = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '+' && c != '(');
        let Some(first) = w.chars().next() else {
            return false;
        };
        if first.is_uppercase() || first.is_ascii_digit() || first == '+' || first == '(' {
            return true;
        }
        if w.bytes().any(|c| c.is_ascii_digit()) {
            return true;
        }
        let letters = w.trim_matches(|c: char| !c.is_alphabetic());
        self.detectors.person.lexicon().is_name_part(letters)
            || (!self.deny_words.is_empty() && self.deny_words.contains(&letters.to_lowercase()))
    }
}

fn push_mask(out: &mut String, entity: &EntityType) {
    out.push('<');
    out.push_str(entity.as_str());
    out.push('>');
}

pub(crate) fn verdict(mut blocked: Vec<EntityType>) -> Verdict {
    if blocked.is_empty() {
        return Verdict::Allow;
    }
    blocked.sort();
    blocked.dedup();
    Verdict::Block {
        entity_types: blocked,
    }
}
