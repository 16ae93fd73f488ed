//! Criterion's saved results: every `<dir>/**/new/benchmark.json` with its `estimates.json`
//! (whatever benches exist; nothing here knows their names).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ReportError;

/// One benchmark's latest estimate.
#[derive(Clone, Debug)]
pub struct MicroResult {
    pub id: String,
    /// Nanoseconds per iteration: Criterion's slope estimate when it has one, else the mean.
    pub time_ns: f64,
    pub low_ns: f64,
    pub high_ns: f64,
    /// Bytes or elements per iteration, as the bench declared.
    pub throughput: Option<(u64, Unit)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Elements,
}

impl MicroResult {
    /// "412 MB/s" or "2.1 M elem/s", from the point estimate.
    pub fn throughput_text(&self) -> Option<String> {
        let (per_iteration, unit) = self.throughput?;
        let per_second = per_iteration as f64 / (self.time_ns / 1e9);
        Some(match unit {
            Unit::Bytes => format!("{:.1} MB/s", per_second / 1e6),
            Unit::Elements => format!("{:.3} M elem/s", per_second / 1e6),
        })
    }
}

/// Reads every result under `dir`, sorted by id; an absent `dir` has none.
pub fn read_all(dir: &Path) -> Result<Vec<MicroResult>, ReportError> {
    let mut found = Vec::new();
    if dir.is_dir() {
        walk(dir, &mut found)?;
    }
    let mut results = Vec::new();
    for new_dir in found {
        results.push(read_one(&new_dir)?);
    }
    results.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(results)
}

/// Directories named `new` holding a `benchmark.json` (Criterion's latest run; `base` and
/// `change` hold comparisons with older runs).
fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    for entry in std::fs::read_dir(dir).map_err(|e| ReportError::read(dir, e))? {
        let path = entry.map_err(|e| ReportError::read(dir, e))?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") && path.join("benchmark.json").is_file() {
            found.push(path);
        } else {
            walk(&path, found)?;
        }
    }
    Ok(())
}

fn read_one(dir: &Path) -> Result<MicroResult, ReportError> {
    let benchmark = super::read_json(&dir.join("benchmark.json"))?;
    let estimates_path = dir.join("estimates.json");
    let estimates = super::read_json(&estimates_path)?;
    let id = benchmark["full_id"]
        .as_str()
        .or_else(|| benchmark["title"].as_str())
        .unwrap_or_default()
        .to_string();
    let estimate = if estimates["slope"].is_object() {
        &estimates["slope"]
    } else {
        &estimates["mean"]
    };
    let number = |value: &Value| {
        value
            .as_f64()
            .ok_or_else(|| ReportError::Format(estimates_path.display().to_string()))
    };
    let throughput = match &benchmark["throughput"] {
        Value::Object(map) => map.iter().find_map(|(kind, n)| {
            let unit = match kind.as_str() {
                "Bytes" | "BytesDecimal" => Unit::Bytes,
                "Elements" => Unit::Elements,
                _ => return None,
            };
            Some((n.as_u64()?, unit))
        }),
        _ => None,
    };
    Ok(MicroResult {
        id,
        time_ns: number(&estimate["point_estimate"])?,
        low_ns: number(&estimate["confidence_interval"]["lower_bound"])?,
        high_ns: number(&estimate["confidence_interval"]["upper_bound"])?,
        throughput,
    })
}
