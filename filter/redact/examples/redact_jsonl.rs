//! Reads JSON lines `{"id": …, "text": …}` on stdin and writes
//! `{"id": …, "redacted": …, "entities": [{"type", "start", "end"}]}` on stdout, with character
//! offsets into `text`. `--policy FILE` applies a team policy (default: mask everything).
//! Used by `eval/score.py`; the `modelgate redact --jsonl` CLI has the same contract.

use std::io::{self, BufRead, BufWriter, Write};

use modelgate_redact::{Phase, PlaceholderMap, Redactor};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let policy = match args.iter().position(|a| a == "--policy") {
        Some(i) => std::fs::read_to_string(args.get(i + 1).ok_or("--policy needs a file")?)?,
        None => String::new(),
    };
    let redactor = Redactor::from_json(&policy)?;
    let stdin = io::stdin();
    let mut out = BufWriter::new(io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(&line)?;
        let text = record
            .get("text")
            .and_then(Value::as_str)
            .ok_or("record without text")?;
        let mut map = PlaceholderMap::new();
        let r = redactor.redact(text, Phase::Request, &mut map);
        let row = json!({"id": record.get("id"), "redacted": r.text, "entities": r.entities});
        serde_json::to_writer(&mut out, &row)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
