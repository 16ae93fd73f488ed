//! `modelgate redact`: tries a team's redaction policy on text before it is turned on, with
//! the engine the filter runs (`modelgate-redact`). Offline: no control plane, no master key.

mod explain;

pub use explain::format_help as policy_format_help;

use std::io::{self, Read, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use modelgate_redact::jsonl::{self, JsonlError};
use modelgate_redact::{Phase, PlaceholderMap, RedactionPolicy, Redactor, Verdict};

#[derive(Args)]
pub struct RedactArgs {
    /// Team redaction policy (the JSON stored as the team's redaction policy).
    /// Default: mask every built-in entity type in requests. `--help` shows the format.
    #[arg(long, value_name = "FILE", long_help = policy_format_help())]
    pub policy: Option<PathBuf>,
    /// Print the effective policy (defaults filled in; per detector its action, direction,
    /// checks and cues) instead of redacting stdin.
    #[arg(long, conflicts_with_all = ["jsonl", "show_entities", "direction"])]
    pub explain: bool,
    /// With --explain: print it as one JSON object.
    #[arg(long, requires = "explain")]
    pub json: bool,
    /// Read JSON lines {"id", "text"}; write {"id", "redacted", "entities"} with character
    /// offsets. The first bad line stops the run with its line number.
    #[arg(long)]
    pub jsonl: bool,
    /// Which side of the exchange the text is: a prompt or a model's answer.
    #[arg(long, value_enum, default_value_t = DirectionArg::Request)]
    pub direction: DirectionArg,
    /// Also list each entity's type and character offsets on stderr (never its value).
    #[arg(long, conflicts_with = "jsonl")]
    pub show_entities: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DirectionArg {
    Request,
    Response,
}

impl From<DirectionArg> for Phase {
    fn from(d: DirectionArg) -> Phase {
        match d {
            DirectionArg::Request => Phase::Request,
            DirectionArg::Response => Phase::Response,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("cannot read policy file {path}: {source}")]
    ReadPolicy { path: String, source: io::Error },
    #[error("invalid policy {origin}: {reason}")]
    Policy { origin: String, reason: String },
    #[error("cannot read stdin: {0}")]
    Stdin(#[source] io::Error),
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
    #[error(transparent)]
    Jsonl(#[from] JsonlError),
}

pub fn run(args: RedactArgs) -> Result<(), RedactError> {
    let (origin, policy, redactor) = load_policy(args.policy)?;
    if args.explain {
        let explanation = explain::explain(&origin, &policy);
        let mut out = io::stdout().lock();
        let written = if args.json {
            serde_json::to_writer(&mut out, &explanation)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            explanation.write_text(&mut out)
        };
        return written
            .and_then(|()| out.flush())
            .map_err(RedactError::Output);
    }
    let phase = Phase::from(args.direction);
    if args.jsonl {
        jsonl::redact_jsonl(&redactor, phase, io::stdin().lock(), io::stdout().lock())?;
        return Ok(());
    }
    let mut text = String::new();
    io::stdin()
        .lock()
        .read_to_string(&mut text)
        .map_err(RedactError::Stdin)?;
    let r = redactor.redact(&text, phase, &mut PlaceholderMap::new());
    let mut out = io::stdout().lock();
    out.write_all(r.text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(RedactError::Output)?;
    let mut err = io::stderr().lock();
    let mut notes = Vec::new();
    if args.show_entities {
        notes.extend(
            r.entities
                .iter()
                .map(|e| format!("{} {}..{}", e.entity_type, e.start, e.end)),
        );
    }
    match &r.verdict {
        Verdict::Allow => {}
        Verdict::Block { entity_types } => {
            let types: Vec<&str> = entity_types.iter().map(|t| t.as_str()).collect();
            notes.push(format!(
                "note: the gateway would refuse this request (400 pii_blocked): {}",
                types.join(", ")
            ));
        }
        Verdict::Bypassed => {
            notes.push("note: high-trust policy: redaction is bypassed".to_owned());
        }
    }
    for note in notes {
        writeln!(err, "{note}").map_err(RedactError::Output)?;
    }
    Ok(())
}

/// The policy file (or the default policy), compiled as the filter compiles it.
fn load_policy(
    policy: Option<PathBuf>,
) -> Result<(String, RedactionPolicy, Redactor), RedactError> {
    let (origin, json) = match policy {
        Some(path) => {
            let origin = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(json) => (origin, json),
                Err(source) => {
                    return Err(RedactError::ReadPolicy {
                        path: origin,
                        source,
                    })
                }
            }
        }
        None => ("(default)".to_owned(), String::new()),
    };
    let invalid = |origin: &str, e: modelgate_redact::PolicyError| RedactError::Policy {
        origin: origin.to_owned(),
        // Regex syntax errors span several lines; the CLI promises one.
        reason: e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    };
    let parsed = RedactionPolicy::from_json(&json).map_err(|e| invalid(&origin, e))?;
    let redactor = Redactor::new(&parsed).map_err(|e| invalid(&origin, e))?;
    Ok((origin, parsed, redactor))
}
