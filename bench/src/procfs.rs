//! CPU time and memory of a server process (and the processes it started), from /proc.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("unexpected content in {0}")]
    Parse(String),
}

/// CPU time in nanoseconds that `pid` and all its descendants have run so far: the sum of the
/// first field of every thread's `/proc/<pid>/task/<tid>/schedstat` (nanosecond precision,
/// where `stat`'s utime/stime count whole clock ticks).
pub fn cpu_ns(pid: u32) -> Result<u64, ProcError> {
    let mut total = 0;
    for pid in tree(pid)? {
        for task in read_dir(&format!("/proc/{pid}/task"))? {
            let path = format!("/proc/{pid}/task/{task}/schedstat");
            // A thread may exit between listing and reading; it then no longer counts.
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let run_ns = text
                .split_whitespace()
                .next()
                .and_then(|field| field.parse::<u64>().ok())
                .ok_or(ProcError::Parse(path))?;
            total += run_ns;
        }
    }
    Ok(total)
}

/// Resident memory in KiB (`VmRSS`) of `pid` and its descendants.
pub fn rss_kib(pid: u32) -> Result<u64, ProcError> {
    let mut total = 0;
    for pid in tree(pid)? {
        let path = format!("/proc/{pid}/status");
        let text = read(&path)?;
        let kib = text
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .ok_or(ProcError::Parse(path))?;
        total += kib;
    }
    Ok(total)
}

/// `pid` and every process below it (`/proc/<pid>/task/<tid>/children`), e.g. LiteLLM's
/// worker processes; Envoy has none.
fn tree(pid: u32) -> Result<Vec<u32>, ProcError> {
    let mut found = vec![pid];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        next += 1;
        for task in read_dir(&format!("/proc/{parent}/task"))? {
            let Ok(children) =
                std::fs::read_to_string(format!("/proc/{parent}/task/{task}/children"))
            else {
                continue;
            };
            found.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    Ok(found)
}

fn read(path: &str) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.to_string(),
        source,
    })
}

fn read_dir(path: &str) -> Result<Vec<String>, ProcError> {
    let entries = std::fs::read_dir(Path::new(path)).map_err(|source| ProcError::Read {
        path: path.to_string(),
        source,
    })?;
    Ok(entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        let before = cpu_ns(pid).unwrap();
        // Burn a little CPU so the counter must move.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(cpu_ns(pid).unwrap() > before);
        assert!(rss_kib(pid).unwrap() > 0);
    }
}
