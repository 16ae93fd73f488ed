//! The load generator: keep-alive HTTP/1.1 connections sending one prepared request, either
//! closed loop (each connection sends its next request when the previous answer is read) or
//! open loop (requests are due at a fixed rate whatever the answers do).
//!
//! Open-loop latency is measured from each request's *intended* send time, so time spent
//! waiting for a free connection behind a slow answer counts (no coordinated omission).

mod conn;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, Mutex};

pub use conn::{Connection, RequestTemplate};

/// Latencies are recorded in nanoseconds, 3 significant digits, up to a minute.
const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

/// How the load is offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// `connections` connections, each sending back to back.
    Closed { connections: usize },
    /// `rate` requests per second spread over up to `connections` connections.
    Open { rate: u32, connections: usize },
}

/// What one run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Answers read with a 2xx status; only these are in `latency`.
    pub ok: u64,
    /// Non-2xx answers and failed sends, by kind ("status 429", "connection: ...").
    pub errors: BTreeMap<String, u64>,
    /// Nanoseconds.
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("request: {0}")]
    Request(String),
    #[error("histogram: {0}")]
    Histogram(String),
    #[error("worker task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Offers `load` for `duration`; returns once every request sent has been answered.
pub async fn run(
    template: &RequestTemplate,
    load: Load,
    duration: Duration,
) -> Result<Outcome, LoadError> {
    let template = Arc::new(template.clone());
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    match load {
        Load::Closed { connections } => {
            for _ in 0..connections {
                let template = template.clone();
                workers.push(tokio::spawn(async move {
                    let mut worker = Worker::new(&template).await?;
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        worker.send(&template, sent).await;
                    }
                    Ok::<_, LoadError>(worker.stats)
                }));
            }
        }
        Load::Open { rate, connections } => {
            let due = schedule(started, deadline, rate);
            for _ in 0..connections {
                let template = template.clone();
                let due = due.clone();
                workers.push(tokio::spawn(async move {
                    let mut worker = Worker::new(&template).await?;
                    loop {
                        // The lock is held only while waiting for the next due time, so
                        // idle connections take requests in turn.
                        let next = due.lock().await.recv().await;
                        let Some(intended) = next else { break };
                        worker.send(&template, intended).await;
                    }
                    Ok::<_, LoadError>(worker.stats)
                }));
            }
        }
    }
    let mut total = Stats::new()?;
    for worker in workers {
        total.merge(worker.await??)?;
    }
    Ok(Outcome {
        ok: total.ok,
        errors: total.errors,
        latency: total.latency,
        elapsed: started.elapsed(),
    })
}

/// Due times of an open-loop run, one every 1/rate s from `start` until `deadline`. A plain
/// thread paces them: its sleep wakes within tens of microseconds, where the async runtime's
/// timer rounds to milliseconds, which would shift every measured latency at 1,000 req/s.
fn schedule(
    start: Instant,
    deadline: Instant,
    rate: u32,
) -> Arc<Mutex<mpsc::UnboundedReceiver<Instant>>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let interval = Duration::from_secs(1) / rate.max(1);
    std::thread::spawn(move || {
        let mut intended = start;
        while intended < deadline {
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            if tx.send(intended).is_err() {
                break;
            }
            intended += interval;
        }
    });
    Arc::new(Mutex::new(rx))
}

/// One connection and what it measured.
struct Worker {
    connection: Option<Connection>,
    addr: std::net::SocketAddr,
    stats: Stats,
}

impl Worker {
    async fn new(template: &RequestTemplate) -> Result<Self, LoadError> {
        Ok(Worker {
            connection: Some(Connection::open(template.addr).await?),
            addr: template.addr,
            stats: Stats::new()?,
        })
    }

    /// Sends once; latency counts from `since`. A failed send is an error and the next send
    /// opens a new connection (the gateway closing one must not end the run).
    async fn send(&mut self, template: &RequestTemplate, since: Instant) {
        let result = match self.connection.as_mut() {
            Some(connection) => connection.send(template).await,
            None => match Connection::open(self.addr).await {
                Ok(connection) => self.connection.insert(connection).send(template).await,
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(status) if status.is_success() => {
                self.stats.ok += 1;
                let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.stats.latency.saturating_record(nanos.max(1));
            }
            Ok(status) => self.stats.error(format!("status {}", status.as_u16())),
            Err(e) => {
                self.connection = None;
                self.stats.error(e.to_string());
                // A refused connection fails at once; do not spin on it.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

struct Stats {
    ok: u64,
    errors: BTreeMap<String, u64>,
    latency: Histogram<u64>,
}

impl Stats {
    fn new() -> Result<Self, LoadError> {
        Ok(Stats {
            ok: 0,
            errors: BTreeMap::new(),
            latency: Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3)
                .map_err(|e| LoadError::Histogram(e.to_string()))?,
        })
    }

    fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Stats) -> Result<(), LoadError> {
        self.ok += other.ok;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.latency
            .add(&other.latency)
            .map_err(|e| LoadError::Histogram(e.to_string()))
    }
}
