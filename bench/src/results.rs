//! `target/bench/whole-path.json`: written by the whole-path run, read by the report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WholePath {
    /// Unix seconds when the run started.
    pub started_at: u64,
    /// `/proc/loadavg`'s first three fields when the run started.
    pub load_average_at_start: String,
    /// `--concurrency` of every Envoy (worker threads).
    pub envoy_concurrency: u32,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub smoke: bool,
    pub configurations: Vec<Configuration>,
    pub points: Vec<Point>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Configuration {
    /// "a" .. "e".
    pub id: String,
    pub description: String,
    pub request_bytes: usize,
    pub streamed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    pub config: String,
    /// "closed" or "open".
    pub load: String,
    pub connections: usize,
    /// Offered requests per second (open loop only).
    pub rate: Option<u32>,
    /// 2xx answers.
    pub ok: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    /// 2xx answers per second.
    pub requests_per_s: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Gateway CPU time (all threads, and child processes) over answers of any status.
    pub cpu_us_per_request: Option<f64>,
    /// Gateway resident memory after the point.
    pub rss_kib: Option<u64>,
}

impl Point {
    /// "closed 16" / "open 1000/s", as tables and the plot name a point.
    pub fn label(&self) -> String {
        match self.rate {
            Some(rate) => format!("open {rate}/s"),
            None => format!("closed {}", self.connections),
        }
    }
}
