//! Which string values of a request are text the model reads, and of which kind: every string
//! except structural fields (model, roles, ids, enum-like switches, schema keywords, base64
//! payloads). The README's "Redaction scope" section lists them; this is their one home.

use serde_json::Value;

use crate::scope::FieldKind;

/// What a value is, which decides which of its keys are structural.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ctx {
    /// The body object.
    Root,
    /// A message, a content part, or message text (`prompt`, `input`, `system`, …): strings
    /// are message text, objects have message keys.
    Message,
    /// An item of `tool_calls`.
    ToolCall,
    /// A tool call's `function` (or the legacy `function_call`).
    CallFunction,
    /// `arguments`: JSON inside a string (OpenAI) or an object (Ollama).
    Arguments,
    /// An item of `tools` / `functions`, or its `function`.
    ToolDef,
    /// A JSON schema: keywords are structural, text values (descriptions, enums…) are not.
    Schema,
    /// A map from property names to schemas (`properties`, `$defs`, …).
    SchemaMap,
    /// `response_format` (or the Responses API's `text.format`).
    OutputFormat,
    /// Free text of one kind at any depth.
    Free(FieldKind),
}

/// Root keys whose values are switches, ids or numbers the server acts on, never text.
const ROOT_STRUCTURAL: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "tool_choice",
    "parallel_tool_calls",
    "encoding_format",
    "dimensions",
    "input_type",
    "service_tier",
    "reasoning_effort",
    "modalities",
    "logit_bias",
    "store",
    "prompt_cache_key",
    "previous_response_id",
    "truncation",
    "keep_alive",
    "think",
    "raw",
    "context",
    "images",
];

/// Keys of messages and content parts that are roles, ids, enums or binary payloads.
const MESSAGE_STRUCTURAL: &[&str] = &[
    "role",
    "type",
    "id",
    "tool_call_id",
    "tool_name",
    "detail",
    "format",
    "data",
    "file_id",
    "file_data",
    "images",
    "cache_control",
];

/// JSON-schema keywords whose string values are type names, patterns, references or
/// property-name lists.
const SCHEMA_STRUCTURAL: &[&str] = &[
    "type",
    "format",
    "pattern",
    "required",
    "$ref",
    "$schema",
    "$id",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "contentEncoding",
    "contentMediaType",
];

/// JSON-schema keywords whose values are schemas (or lists of them).
const SCHEMA_SUBSCHEMAS: &[&str] = &[
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "anyOf",
    "oneOf",
    "allOf",
    "prefixItems",
];

/// JSON-schema keywords whose values map property names to schemas.
const SCHEMA_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

impl Ctx {
    /// The kind of a string found in this position; `None` when it is structural.
    fn text_kind(self) -> Option<FieldKind> {
        match self {
            Ctx::Message => Some(FieldKind::Messages),
            Ctx::ToolCall | Ctx::CallFunction | Ctx::Arguments => Some(FieldKind::ToolCalls),
            Ctx::ToolDef | Ctx::OutputFormat => Some(FieldKind::Tools),
            Ctx::Free(kind) => Some(kind),
            // A bare string where a schema goes is a keyword (Ollama's `"format": "json"`).
            Ctx::Root | Ctx::Schema | Ctx::SchemaMap => None,
        }
    }

    /// What the value under `key` is; `None` when it is structural.
    fn child(self, key: &str) -> Option<Ctx> {
        let is = |list: &[&str]| list.contains(&key);
        Some(match self {
            Ctx::Root => match key {
                _ if is(ROOT_STRUCTURAL) => return None,
                "messages" | "input" | "prompt" | "system" | "instructions" | "suffix"
                | "template" => Ctx::Message,
                "tools" | "functions" => Ctx::ToolDef,
                "response_format" | "text" => Ctx::OutputFormat,
                // Ollama: "json" or a schema.
                "format" => Ctx::Schema,
                _ => Ctx::Free(FieldKind::Other),
            },
            Ctx::Message => match key {
                _ if is(MESSAGE_STRUCTURAL) => return None,
                "content" | "image_url" | "input_audio" | "file" | "audio" => Ctx::Message,
                "text" | "refusal" | "reasoning" | "reasoning_content" | "thinking" => {
                    Ctx::Free(FieldKind::Messages)
                }
                "name" => Ctx::Free(FieldKind::Names),
                "tool_calls" => Ctx::ToolCall,
                "function_call" => Ctx::CallFunction,
                _ => Ctx::Free(FieldKind::Other),
            },
            Ctx::ToolCall => match key {
                "id" | "type" | "index" => return None,
                "function" => Ctx::CallFunction,
                _ => Ctx::Free(FieldKind::ToolCalls),
            },
            Ctx::CallFunction => match key {
                "name" => return None,
                "arguments" => Ctx::Arguments,
                _ => Ctx::Free(FieldKind::ToolCalls),
            },
            Ctx::Arguments => Ctx::Free(FieldKind::ToolCalls),
            Ctx::ToolDef => match key {
                "type" | "name" | "strict" => return None,
                "function" => Ctx::ToolDef,
                "parameters" | "input_schema" => Ctx::Schema,
                _ => Ctx::Free(FieldKind::Tools),
            },
            Ctx::Schema => match key {
                _ if is(SCHEMA_STRUCTURAL) => return None,
                _ if is(SCHEMA_SUBSCHEMAS) => Ctx::Schema,
                _ if is(SCHEMA_MAPS) => Ctx::SchemaMap,
                _ => Ctx::Free(FieldKind::Tools),
            },
            Ctx::SchemaMap => Ctx::Schema,
            Ctx::OutputFormat => match key {
                "type" | "name" | "strict" => return None,
                "json_schema" | "format" => Ctx::OutputFormat,
                "schema" => Ctx::Schema,
                _ => Ctx::Free(FieldKind::Tools),
            },
            Ctx::Free(kind) => Ctx::Free(kind),
        })
    }
}

/// Calls `f` on every string of `value` read as `ctx`, with its kind. Tool-call arguments
/// that hold JSON are walked inside and written back (still valid JSON) when `f` changed any
/// of their strings; base64 `data:` URLs are skipped.
pub(super) fn walk(value: &mut Value, ctx: Ctx, f: &mut dyn FnMut(FieldKind, &mut String)) {
    match value {
        Value::String(s) if ctx == Ctx::Arguments => embedded_json(s, f),
        Value::String(s) => {
            if let Some(kind) = ctx.text_kind() {
                if !is_data_url(s) {
                    f(kind, s);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| walk(item, ctx, f)),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if let Some(child) = ctx.child(key) {
                    walk(item, child, f);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Tool-call arguments: JSON in a string. Its strings are visited as parsed values (escapes
/// decoded) and it is serialized again only if one changed; text that is not a JSON object,
/// array or string is visited as it stands.
fn embedded_json(s: &mut String, f: &mut dyn FnMut(FieldKind, &mut String)) {
    let parsed = serde_json::from_str::<Value>(s)
        .ok()
        .filter(|v| v.is_object() || v.is_array() || v.is_string());
    let Some(mut inner) = parsed else {
        f(FieldKind::ToolCalls, s);
        return;
    };
    let before = inner.clone();
    walk(&mut inner, Ctx::Free(FieldKind::ToolCalls), f);
    if inner != before {
        match serde_json::to_string(&inner) {
            Ok(text) => *s = text,
            // Never forward the unredacted original: redact the text as it stands.
            Err(_) => f(FieldKind::ToolCalls, s),
        }
    }
}

/// A base64 `data:` URL (an image, audio or file inline): bytes, not text.
fn is_data_url(s: &str) -> bool {
    let head = &s.as_bytes()[..s.len().min(256)];
    head.starts_with(b"data:") && memchr::memmem::find(head, b";base64,").is_some()
}
