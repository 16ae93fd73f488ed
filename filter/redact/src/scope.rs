//! Redaction scope: which kinds of request text a policy redacts (`"scope"` in the policy
//! JSON). The default is everything the model can read; a team may narrow it explicitly.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A kind of string value in a request (and of text in its answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldKind {
    /// Message text: `messages[].content` (and text parts, `refusal`, reasoning), `prompt`,
    /// `input`, `system`, `instructions`, `suffix`; in answers every generated text field.
    Messages,
    /// Tool-call arguments (`tool_calls[].function.arguments`, legacy `function_call`), JSON
    /// inside a string; in answers their (streamed) argument text.
    ToolCalls,
    /// Tool and output schemas: `tools[]`/`functions[]` descriptions and every text value of
    /// their JSON schemas (descriptions, titles, enums, defaults, examples), `response_format`
    /// and Ollama's `format` schemas.
    Tools,
    /// `name` of a message (the participant's name).
    Names,
    /// Every other string: unknown fields at any depth, `user`, `metadata`, `stop`, image URLs.
    Other,
}

impl FieldKind {
    pub const ALL: [FieldKind; 5] = [
        FieldKind::Messages,
        FieldKind::ToolCalls,
        FieldKind::Tools,
        FieldKind::Names,
        FieldKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Messages => "messages",
            FieldKind::ToolCalls => "tool_calls",
            FieldKind::Tools => "tools",
            FieldKind::Names => "names",
            FieldKind::Other => "other",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The kinds a policy redacts. Serialized as `"full"`, or as the list of kind names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct Scope {
    kinds: u8,
}

impl Default for Scope {
    fn default() -> Self {
        Self::FULL
    }
}

impl Scope {
    /// Everything the model can read.
    pub const FULL: Scope = Scope { kinds: 0b1_1111 };
    /// Message text only (what redaction covered before scopes existed).
    pub const MESSAGES: Scope = Scope { kinds: 1 };

    pub fn covers(self, kind: FieldKind) -> bool {
        self.kinds & kind.bit() != 0
    }

    /// For the audit record: `full`, or the kind names joined by commas.
    pub fn label(self) -> String {
        if self == Self::FULL {
            return "full".to_owned();
        }
        self.names().collect::<Vec<_>>().join(",")
    }

    fn names(self) -> impl Iterator<Item = &'static str> {
        FieldKind::ALL
            .into_iter()
            .filter(move |k| self.covers(*k))
            .map(FieldKind::as_str)
    }
}

/// The message a policy with a bad `scope` is refused with (serde wraps it with a position).
const EXPECTED: &str =
    "expected \"full\", a kind, or a non-empty list of kinds: messages, tool_calls, tools, names, other";

impl TryFrom<Value> for Scope {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        let one = |name: &str| -> Result<u8, String> {
            match name {
                "full" => Ok(Scope::FULL.kinds),
                _ => FieldKind::parse(name)
                    .map(FieldKind::bit)
                    .ok_or_else(|| format!("unknown redaction scope {name:?}: {EXPECTED}")),
            }
        };
        let kinds = match &value {
            Value::String(name) => one(name)?,
            Value::Array(items) if !items.is_empty() => {
                let mut kinds = 0;
                for item in items {
                    let Value::String(name) = item else {
                        return Err(format!("redaction scope {item} is not a name: {EXPECTED}"));
                    };
                    kinds |= one(name)?;
                }
                kinds
            }
            other => return Err(format!("redaction scope {other} is invalid: {EXPECTED}")),
        };
        Ok(Scope { kinds })
    }
}

impl From<Scope> for Value {
    fn from(scope: Scope) -> Value {
        if scope == Scope::FULL {
            return Value::String("full".to_owned());
        }
        scope
            .names()
            .map(|name| Value::String(name.to_owned()))
            .collect()
    }
}
