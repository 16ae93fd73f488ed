//! The JSONL sink a SIEM agent tails: `<data dir>/audit/audit-YYYY-MM-DD.jsonl`, one file per
//! UTC day (the day a line was written), only ever appended to.
//!
//! The sink follows the chain in the database rather than the calls that fed it: it remembers
//! the last position it wrote (the `seq` of the last line on disk) and appends every record
//! after it. So a crash between a commit and a write loses no line, a restart does not repeat
//! one, and every replica's sink holds every record, whichever replica accepted it.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use modelgate_proto::v1 as pb;
use prost::Message;
use tokio::sync::watch;

use super::log::AuditLog;
use super::record::RecordJson;
use super::store::{AuditStore, PAGE};
use crate::clock::Timestamp;
use crate::store::StoreError;

pub const SINK_DIR: &str = "audit";
const PREFIX: &str = "audit-";
const SUFFIX: &str = ".jsonl";
/// Enough to hold the last whole line of any file.
const TAIL_BYTES: u64 = 1 << 20;
/// Catch up at least this often, even without a wake-up (e.g. records another replica took).
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("audit sink {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn sink_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SINK_DIR)
}

fn file_for(dir: &Path, at: Timestamp) -> PathBuf {
    let rfc = at.to_rfc3339();
    let day = rfc.get(..10).unwrap_or("unknown-day");
    dir.join(format!("{PREFIX}{day}{SUFFIX}"))
}

/// The day of a sink file, `YYYY-MM-DD`, from its name.
fn day_of(name: &str) -> Option<&str> {
    let day = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    (day.len() == 10).then_some(day)
}

/// Sink files, oldest first (the names sort by day).
fn files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(day_of)
                    .is_some()
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    out.sort();
    Ok(out)
}

/// The `seq` of the last whole line of `path`; a torn last line (a crash mid-write) is ended
/// with a newline first, so the next line starts clean.
fn last_seq_in(path: &Path) -> io::Result<Option<u64>> {
    let mut f = OpenOptions::new().read(true).append(true).open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    if tail.last().is_some_and(|&b| b != b'\n') {
        f.write_all(b"\n")?;
    }
    let seq = tail
        .split(|&b| b == b'\n')
        .rev()
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .find_map(|v| v.get("seq").and_then(serde_json::Value::as_u64));
    Ok(seq)
}

#[derive(Debug)]
pub struct JsonlSink {
    dir: PathBuf,
    last_seq: u64,
}

impl JsonlSink {
    /// Opens (creating) the sink directory and finds where the files end.
    pub fn open(dir: &Path) -> Result<Self, SinkError> {
        let io_err = |source| SinkError::Io {
            path: dir.to_owned(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(io_err)?;
        let mut last_seq = 0;
        for path in files(dir).map_err(io_err)?.iter().rev() {
            let found = last_seq_in(path).map_err(|source| SinkError::Io {
                path: path.clone(),
                source,
            })?;
            if let Some(seq) = found {
                last_seq = seq;
                break;
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            last_seq,
        })
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Appends every record after the last one written; returns how many lines it wrote.
    pub async fn catch_up<S: AuditStore>(&mut self, store: &S) -> Result<u64, SinkError> {
        let mut written = 0;
        loop {
            let page = store.records_after(self.last_seq, PAGE).await?;
            let Some(last) = page.last().map(|r| r.seq) else {
                return Ok(written);
            };
            let mut text = String::new();
            for stored in &page {
                // A record the chain holds but that does not decode is written as what it is.
                let line = pb::UsageRecord::decode(stored.record.as_slice())
                    .ok()
                    .and_then(|r| RecordJson::new(stored.seq, &r).to_line().ok())
                    .unwrap_or_else(|| {
                        format!("{{\"seq\":{},\"undecodable\":true}}\n", stored.seq)
                    });
                text.push_str(&line);
            }
            let path = file_for(&self.dir, Timestamp::now());
            let write_path = path.clone();
            tokio::task::spawn_blocking(move || append(&write_path, text.as_bytes()))
                .await
                .map_err(|e| SinkError::Io {
                    path: path.clone(),
                    source: io::Error::other(e),
                })?
                .map_err(|source| SinkError::Io { path, source })?;
            written += page.len() as u64;
            self.last_seq = last;
            if page.len() < PAGE as usize {
                return Ok(written);
            }
        }
    }
}

fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    f.write_all(bytes)?;
    f.flush()
}

/// Follows the log until `stop`: after every append, and every second for records other
/// replicas accepted. Write failures are logged and retried; records are safe in the database.
pub async fn run<S: AuditStore>(
    log: Arc<AuditLog<S>>,
    mut sink: JsonlSink,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = sink.catch_up(log.store()).await {
            tracing::warn!(error = %e, "audit JSONL sink is behind; retrying");
        }
        tokio::select! {
            () = log.appended().notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    // Whatever was accepted before the stop.
    if let Err(e) = sink.catch_up(log.store()).await {
        tracing::warn!(error = %e, "audit JSONL sink could not catch up before stopping");
    }
}

/// Deletes the files of days before `cutoff`'s day; returns how many.
pub fn remove_days_before(dir: &Path, cutoff: Timestamp) -> usize {
    let cutoff_rfc = cutoff.to_rfc3339();
    let cutoff_day = cutoff_rfc.get(..10).unwrap_or_default();
    let Ok(all) = files(dir) else {
        return 0;
    };
    all.iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(day_of)
                .is_some_and(|day| day < cutoff_day)
        })
        .filter(|p| match fs::remove_file(p) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove an old audit file");
                false
            }
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_utc_day() {
        let dir = Path::new("/x");
        let t = Timestamp::parse_rfc3339("2026-01-02T23:59:59.999-01:00").unwrap();
        assert_eq!(file_for(dir, t), Path::new("/x/audit-2026-01-03.jsonl"));
        assert_eq!(day_of("audit-2026-01-03.jsonl"), Some("2026-01-03"));
        assert_eq!(day_of("audit-witness.json"), None);
    }

    #[test]
    fn the_last_whole_line_gives_the_position_and_a_torn_line_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit-2026-01-01.jsonl");
        fs::write(&path, "{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3,\"tor").unwrap();
        assert_eq!(last_seq_in(&path).unwrap(), Some(2));
        assert!(fs::read_to_string(&path).unwrap().ends_with("tor\n"));

        let sink = JsonlSink::open(dir.path()).unwrap();
        assert_eq!(sink.last_seq(), 2);
    }

    #[test]
    fn old_days_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for day in ["2026-01-01", "2026-01-02", "2026-01-03"] {
            fs::write(dir.path().join(format!("audit-{day}.jsonl")), "").unwrap();
        }
        fs::write(dir.path().join("notes.txt"), "").unwrap();
        let cutoff = Timestamp::parse_rfc3339("2026-01-02T12:00:00Z").unwrap();
        assert_eq!(remove_days_before(dir.path(), cutoff), 1);
        assert_eq!(files(dir.path()).unwrap().len(), 2);
        assert!(dir.path().join("notes.txt").exists());
    }
}
