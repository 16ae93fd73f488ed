//! Child processes of a test: output into a log file, killed on drop, and the log's tail
//! printed when the test is failing, so a red test shows what Envoy or the control plane said.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Lines of a log shown when a test fails.
const TAIL_LINES: usize = 60;

/// A running child process.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    stdout_lines: mpsc::Receiver<String>,
    /// Signals go to the whole process group (the process and everything it started).
    group: bool,
}

impl Process {
    /// Starts `cmd`, appending its stderr and stdout to `log`. Stdout lines are also kept for
    /// [`Process::wait_for_line`].
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> Process {
        Self::start(name, cmd, log, false)
    }

    /// Like [`Process::spawn`], in a new process group: [`Process::interrupt`] then acts like
    /// Ctrl-C in a terminal, and kill on drop also reaches the processes it started.
    pub fn spawn_group(name: &str, mut cmd: Command, log: &Path) -> Process {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Self::start(name, cmd, log, true)
    }

    fn start(name: &str, mut cmd: Command, log: &Path, group: bool) -> Process {
        let log_file = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap_or_else(|e| panic!("open {}: {e}", log.display()))
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, stdout_lines) = mpsc::channel();
        let mut copy = log_file();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(copy, "{line}");
                // Nobody listening any more is fine: the line is in the log.
                let _ = tx.send(line);
            }
        });
        Process {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            stdout_lines,
            group,
        }
    }

    /// Waits for a stdout line for which `pick` returns something, and returns that.
    pub fn wait_for_line<T>(
        &self,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(found) = pick(&line) {
                        return found;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: expected line not printed within {timeout:?}\n{}",
                        self.name,
                        self.tail()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{}: exited before printing the expected line\n{}",
                        self.name,
                        self.tail()
                    )
                }
            }
        }
    }

    /// Polls `url` until it answers 200; fails the test, with the log, if the process exits
    /// or `timeout` passes first.
    pub async fn wait_ready(&mut self, url: &str, timeout: Duration) {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("HTTP client");
        let what = format!("{} answers 200 on {url}", self.name);
        crate::poll::eventually(&what, timeout, || {
            self.assert_running();
            let response = http.get(url).send();
            async move {
                let status = response.await.map_err(|e| e.to_string())?.status();
                if status == 200 {
                    Ok(())
                } else {
                    Err(format!("status {status}"))
                }
            }
        })
        .await;
    }

    /// The operating system's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails the test, with the log, when the process is no longer running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("{} exited ({status})\n{}", self.name, self.tail());
        }
    }

    /// SIGKILL (to the group, if it has one), then reap.
    pub fn kill(&mut self) {
        if self.group {
            self.signal_group("KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT to the process group, as Ctrl-C in a terminal sends it.
    pub fn interrupt(&self) {
        assert!(
            self.group,
            "{} was not started in its own process group",
            self.name
        );
        self.signal_group("INT");
    }

    /// True while any process of the group is alive.
    pub fn group_alive(&self) -> bool {
        self.group && self.signal_group("0")
    }

    /// `kill -SIG -- -PGID` (bash's builtin: std has no safe kill(2) for groups).
    fn signal_group(&self, signal: &str) -> bool {
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "kill -{signal} -- -{} 2>/dev/null",
                self.child.id()
            ))
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} still running after {timeout:?}\n{}",
                    self.name,
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(TAIL_LINES);
        format!(
            "--- last {} lines of {} ({}) ---\n{}\n---",
            lines.len() - from,
            self.name,
            self.log.display(),
            lines[from..].join("\n")
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.tail());
        }
    }
}

/// Runs a command to completion, fails the test unless it succeeded, returns its stdout.
pub fn run_to_success(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A loopback port that was free a moment ago, for the rare process that cannot bind port 0
/// and report the port (e.g. a control plane that must come back on the address Envoy knows).
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr")
}

/// Creates (truncates) a file for a process log.
pub fn new_log(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    path
}
