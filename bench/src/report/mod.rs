//! `target/bench/report.md` and `latency.svg`: machine facts, the Criterion micro results,
//! the whole-path table, the scale measurements, the ratios to Envoy alone, and issue 7's
//! targets marked met or missed with the measured values.

mod criterion;
mod svg;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::results::{Point, WholePath};

pub use criterion::MicroResult;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not the JSON the report expects")]
    Format(String),
    #[error("write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl ReportError {
    fn read(path: &Path, source: std::io::Error) -> Self {
        ReportError::Read {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Where the inputs are.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// `target/bench`: whole-path.json and scale.json; the report is written here.
    pub bench_dir: PathBuf,
    /// Criterion's output directory (`$CARGO_TARGET_DIR/criterion`).
    pub criterion_dir: PathBuf,
    pub envoy_bin: PathBuf,
}

/// Writes `report.md` and `latency.svg` into `bench_dir`; returns the report's path.
pub fn write(inputs: &Inputs) -> Result<PathBuf, ReportError> {
    let micro = criterion::read_all(&inputs.criterion_dir)?;
    let whole_path_file = inputs.bench_dir.join("whole-path.json");
    let whole_path: Option<WholePath> = if whole_path_file.is_file() {
        Some(
            serde_json::from_value(read_json(&whole_path_file)?)
                .map_err(|_| ReportError::Format(whole_path_file.display().to_string()))?,
        )
    } else {
        None
    };
    let scale_file = inputs.bench_dir.join("scale.json");
    let scale = if scale_file.is_file() {
        Some(read_json(&scale_file)?)
    } else {
        None
    };

    let mut md = String::from("# Modelgate benchmarks\n\n");
    let _ = writeln!(
        md,
        "Written by `make bench` (or `make bench-smoke`) into `target/bench/` of the checkout \
         (not under `CARGO_TARGET_DIR`, which lives outside it). Everything ran on loopback \
         on this one machine, in one sitting.\n"
    );
    machine(&mut md, inputs, whole_path.as_ref());
    micro_section(&mut md, &micro, &inputs.criterion_dir);
    match &whole_path {
        Some(results) => {
            whole_path_section(&mut md, results);
            ratios_section(&mut md, results);
            jwt_section(&mut md, results);
            targets_section(&mut md, results);
            let svg_path = inputs.bench_dir.join("latency.svg");
            std::fs::write(&svg_path, svg::latency_plot(results)).map_err(|source| {
                ReportError::Write {
                    path: svg_path.display().to_string(),
                    source,
                }
            })?;
        }
        None => {
            let _ = writeln!(
                md,
                "## Whole path\n\nNo `{}`: the whole-path run did not happen.\n",
                whole_path_file.display()
            );
        }
    }
    scale_section(&mut md, scale.as_ref(), &scale_file);

    let out = inputs.bench_dir.join("report.md");
    std::fs::write(&out, md).map_err(|source| ReportError::Write {
        path: out.display().to_string(),
        source,
    })?;
    Ok(out)
}

fn read_json(path: &Path) -> Result<Value, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::read(path, e))?;
    serde_json::from_str(&text).map_err(|_| ReportError::Format(path.display().to_string()))
}

fn machine(md: &mut String, inputs: &Inputs, whole_path: Option<&WholePath>) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or_else(
            || "unknown".into(),
            |kib| format!("{:.1} GiB", kib / 1048576.0),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let envoy = command_line(Command::new(&inputs.envoy_bin).arg("--version"));
    // "<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL": the path says nothing here.
    let envoy = envoy
        .split_once("version: ")
        .map_or(envoy.clone(), |(_, version)| version.to_string());
    let rustc = command_line(Command::new("rustc").arg("--version"));
    let date = command_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]));
    let _ = writeln!(md, "## Machine\n\n| | |\n|---|---|");
    let _ = writeln!(
        md,
        "| CPU | {cpu} |\n| cores | {cores} |\n| RAM | {ram_gib} |"
    );
    let _ = writeln!(
        md,
        "| kernel | {kernel} |\n| Envoy | {envoy} |\n| rustc | {rustc} |"
    );
    let _ = writeln!(md, "| report written | {date} |");
    if let Some(results) = whole_path {
        let started = command_line(Command::new("date").args([
            "-u",
            "-d",
            &format!("@{}", results.started_at),
            "+%Y-%m-%d %H:%M UTC",
        ]));
        let _ = writeln!(md, "| whole-path run started | {started} |");
        let _ = writeln!(
            md,
            "| load average at its start | {} |",
            results.load_average_at_start
        );
    }
    md.push('\n');
}

/// The last line a command printed (Envoy prints its version after a blank line), or why not.
fn command_line(cmd: &mut Command) -> String {
    match cmd.output() {
        Ok(output) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .to_string(),
        Err(e) => format!("unavailable ({e})"),
    }
}

fn micro_section(md: &mut String, micro: &[MicroResult], dir: &Path) {
    let _ = writeln!(md, "## Micro benchmarks (Criterion, native)\n");
    if micro.is_empty() {
        let _ = writeln!(
            md,
            "No Criterion results under `{}` (a smoke run executes each bench once and saves none).\n",
            dir.display()
        );
        return;
    }
    let _ = writeln!(
        md,
        "| benchmark | time | 95% interval | throughput |\n|---|---:|---:|---:|"
    );
    for result in micro {
        let _ = writeln!(
            md,
            "| {} | {} | {} – {} | {} |",
            result.id,
            duration(result.time_ns),
            duration(result.low_ns),
            duration(result.high_ns),
            result.throughput_text().unwrap_or_default()
        );
    }
    md.push('\n');
}

fn duration(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn whole_path_section(md: &mut String, results: &WholePath) {
    let _ = writeln!(
        md,
        "## Whole path\n\nSame upstream for all: nginx answering a fixed ~600 B chat completion \
         with usage (SSE for (d)). Envoy `--concurrency {}` in every configuration. Each point: \
         {:.1} s warm-up, then {:.1} s measured{}. Closed loop: each connection sends when \
         its previous answer is read. Open loop: requests due at a fixed rate over up to 64 \
         connections, latency counted from each request's intended send time (so waiting for \
         a connection counts). CPU is the gateway's own (all threads, and LiteLLM's worker \
         processes) per answered request; RSS after the point.\n",
        results.envoy_concurrency,
        results.warmup_s,
        results.duration_s,
        if results.smoke {
            " (**smoke run**: too short to quote)"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "| | configuration | request bytes |\n|---|---|---:|");
    for c in &results.configurations {
        let _ = writeln!(
            md,
            "| ({}) | {} | {} |",
            c.id, c.description, c.request_bytes
        );
    }
    let _ = writeln!(
        md,
        "\n| config | load | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | CPU µs/req | RSS MiB |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for p in &results.points {
        let _ = writeln!(
            md,
            "| ({}) | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} |",
            p.config,
            p.label(),
            p.requests_per_s,
            p.p50_us / 1000.0,
            p.p90_us / 1000.0,
            p.p99_us / 1000.0,
            p.max_us / 1000.0,
            if p.errors == 0 {
                "0".to_string()
            } else {
                format!("{} {:?}", p.errors, p.error_kinds)
            },
            p.cpu_us_per_request
                .map_or_else(|| "–".into(), |v| format!("{v:.1}")),
            p.rss_kib
                .map_or_else(|| "–".into(), |v| format!("{:.1}", v as f64 / 1024.0)),
        );
    }
    let _ = writeln!(md, "\n![latency percentiles](latency.svg)\n");
    for note in &results.notes {
        let _ = writeln!(md, "- {note}");
    }
    md.push('\n');
}

fn find<'a>(results: &'a WholePath, config: &str, label: &str) -> Option<&'a Point> {
    results
        .points
        .iter()
        .find(|p| p.config == config && p.label() == label)
}

const CLOSED_16: &str = "closed 16";
const OPEN_1000: &str = "open 1000/s";

fn ratios_section(md: &mut String, results: &WholePath) {
    let _ = writeln!(
        md,
        "## Ratios to (a), Envoy alone\n\n| | CPU µs/req (closed 16) | req/s (closed 16) | p50 (open 1000/s) |\n|---|---:|---:|---:|"
    );
    let ratio = |config: &str, label: &str, value: fn(&Point) -> Option<f64>| {
        let a = find(results, "a", label).and_then(value);
        let x = find(results, config, label).and_then(value);
        match (x, a) {
            (Some(x), Some(a)) if a > 0.0 => format!("{:.2}", x / a),
            _ => "not measured".into(),
        }
    };
    for config in ["b", "b-jwt", "c", "e"] {
        let _ = writeln!(
            md,
            "| ({config})/(a) | {} | {} | {} |",
            ratio(config, CLOSED_16, |p| p.cpu_us_per_request),
            ratio(config, CLOSED_16, |p| Some(p.requests_per_s)),
            ratio(config, OPEN_1000, |p| Some(p.p50_us)),
        );
    }
    md.push('\n');
}

/// A cached IdP token should cost Envoy no more than a key lookup: (b-jwt) against (b) at
/// every closed-loop point both measured.
fn jwt_section(md: &mut String, results: &WholePath) {
    let _ = writeln!(
        md,
        "## IdP token (b-jwt) against key (b)\n\nThe same request; the token is verified once \
         per worker, then found in the worker's cache.\n\n| load | (b) CPU µs/req | (b-jwt) CPU µs/req | difference | (b-jwt) req/s / (b) |\n|---|---:|---:|---:|---:|"
    );
    let mut rows = 0;
    for jwt in results
        .points
        .iter()
        .filter(|p| p.config == "b-jwt" && p.rate.is_none())
    {
        let label = jwt.label();
        let Some(key) = find(results, "b", &label) else {
            continue;
        };
        let cpu = |p: &Point| p.cpu_us_per_request.map_or(f64::NAN, |v| v);
        let _ = writeln!(
            md,
            "| {label} | {:.1} | {:.1} | {:+.1} µs | {:.2} |",
            cpu(key),
            cpu(jwt),
            cpu(jwt) - cpu(key),
            jwt.requests_per_s / key.requests_per_s
        );
        rows += 1;
    }
    if rows == 0 {
        let _ = writeln!(md, "| not measured | | | | |");
    }
    md.push('\n');
}

fn targets_section(md: &mut String, results: &WholePath) {
    let _ = writeln!(
        md,
        "## Issue 7 targets (whole path)\n\n| target | measured | verdict |\n|---|---|---|"
    );
    let verdict = |met: bool| if met { "met" } else { "**missed**" };
    let mut row = |target: &str, measured: Option<(String, bool)>| {
        let (text, status) = match measured {
            Some((text, met)) => (text, verdict(met)),
            None => ("not measured".to_string(), "–"),
        };
        let _ = writeln!(md, "| {target} | {text} | {status} |");
    };
    let a16 = find(results, "a", CLOSED_16);
    let c16 = find(results, "c", CLOSED_16);
    row(
        "(c) − (a) ≤ 25 µs Envoy CPU per request (closed 16)",
        a16.zip(c16).and_then(|(a, c)| {
            let extra = c.cpu_us_per_request? - a.cpu_us_per_request?;
            Some((format!("{extra:.1} µs"), extra <= 25.0))
        }),
    );
    row(
        "(c) ≥ 75% of (a)'s req/s at 16 connections",
        a16.zip(c16).map(|(a, c)| {
            let share = c.requests_per_s / a.requests_per_s;
            (format!("{:.0}%", share * 100.0), share >= 0.75)
        }),
    );
    row(
        "(c) p50 within 0.1 ms of (a) at 1,000 req/s open loop",
        find(results, "a", OPEN_1000)
            .zip(find(results, "c", OPEN_1000))
            .map(|(a, c)| {
                let extra_ms = (c.p50_us - a.p50_us) / 1000.0;
                (format!("{extra_ms:+.3} ms"), extra_ms <= 0.1)
            }),
    );
    for e in results
        .points
        .iter()
        .filter(|p| p.config == "e" && p.rate.is_none())
    {
        let label = e.label();
        row(
            &format!("(c) ≥ 100× LiteLLM's req/s ({label})"),
            find(results, "c", &label).map(|c| {
                let times = c.requests_per_s / e.requests_per_s;
                (format!("{times:.0}×"), times >= 100.0)
            }),
        );
    }
    if !results.points.iter().any(|p| p.config == "e") {
        row("≥ 100× LiteLLM's req/s at equal concurrency", None);
    }
    md.push('\n');
}

/// `scale.json`: `{"measurements": [{"name", "value", "unit", "target", "met"}], "notes": []}`.
fn scale_section(md: &mut String, scale: Option<&Value>, file: &Path) {
    let _ = writeln!(md, "## Scale\n");
    let Some(scale) = scale else {
        let _ = writeln!(
            md,
            "No `{}`: the scale run did not happen.\n",
            file.display()
        );
        return;
    };
    let _ = writeln!(
        md,
        "| measurement | value | target | verdict |\n|---|---:|---|---|"
    );
    for m in scale["measurements"].as_array().into_iter().flatten() {
        let value = m["value"]
            .as_f64()
            .map_or_else(|| "–".into(), |v| format!("{v:.3}"));
        let _ = writeln!(
            md,
            "| {} | {} {} | {} | {} |",
            m["name"].as_str().unwrap_or_default(),
            value,
            m["unit"].as_str().unwrap_or_default(),
            m["target"].as_str().unwrap_or("–"),
            match m["met"].as_bool() {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "–",
            }
        );
    }
    md.push('\n');
    for note in scale["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(md, "- {}", note.as_str().unwrap_or_default());
    }
    md.push('\n');
}
