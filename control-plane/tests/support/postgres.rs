//! A fresh PostgreSQL database per test.
//!
//! `MODELGATE_TEST_POSTGRES_URL` (a role allowed to CREATE DATABASE) selects an existing
//! server. Otherwise a throwaway cluster is started from the machine's PostgreSQL binaries in a
//! temp dir, listening on a unix socket only, run as the `postgres` user when we are root
//! (initdb refuses root). Tests running at the same time share that cluster; it stops when the
//! last of them drops it. If PostgreSQL cannot start, the test fails: it is never skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

const URL_ENV: &str = "MODELGATE_TEST_POSTGRES_URL";
const BIN_ENV: &str = "MODELGATE_PG_BIN";
const PORT: u16 = 5432;

static LOCAL: Mutex<Weak<LocalCluster>> = Mutex::new(Weak::new());

/// A database that exists for the life of this value.
pub struct TestDatabase {
    pub url: String,
    name: String,
    server: Server,
}

enum Server {
    Local(Arc<LocalCluster>),
    External(String),
}

impl TestDatabase {
    pub async fn create() -> Self {
        let (server, admin_url) = match std::env::var(URL_ENV) {
            Ok(url) if !url.trim().is_empty() => (Server::External(url.clone()), url),
            _ => {
                let cluster = LocalCluster::shared();
                let url = cluster.url("postgres");
                (Server::Local(cluster), url)
            }
        };
        let name = unique_name();
        let mut admin = connect(&admin_url).await;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        let url = match &server {
            Server::Local(cluster) => cluster.url(&name),
            Server::External(url) => with_database(url, &name),
        };
        Self { url, name, server }
    }

    pub fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url).expect("test database URL")
    }

    pub async fn connect(&self) -> PgConnection {
        connect(&self.url).await
    }
}

impl Drop for TestDatabase {
    /// A local cluster disappears with its temp dir; on an external server, drop what we made.
    fn drop(&mut self) {
        let Server::External(admin_url) = &self.server else {
            return;
        };
        let admin_url = admin_url.clone();
        let name = self.name.clone();
        // Drop cannot await, and may run inside a runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut c) = PgConnection::connect(&admin_url).await {
                    let _ =
                        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut c)
                            .await;
                }
            });
        })
        .join();
    }
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL for tests: {e}"))
}

fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "mg_test_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Replaces the database of a `postgres://…/db?params` URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

struct LocalCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

impl LocalCluster {
    fn shared() -> Arc<Self> {
        let mut slot = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = slot.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Self::start().unwrap_or_else(|e| {
            panic!(
                "PostgreSQL tests need a PostgreSQL server and could not start one: {e}\n\
                 Install PostgreSQL (initdb, pg_ctl), set {BIN_ENV} to its bin directory, \
                 or set {URL_ENV} to a server where the role may CREATE DATABASE."
            )
        }));
        *slot = Arc::downgrade(&cluster);
        cluster
    }

    fn start() -> Result<Self, String> {
        let bin = find_bin_dir()?;
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("mg-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        if as_postgres {
            chown_to_postgres(dir.path())?;
        }
        let cluster = Self {
            dir,
            bin,
            as_postgres,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )?;
        let socket_dir = path_str(cluster.dir.path())?.to_owned();
        let server_opts = format!(
            "-k {socket_dir} -c listen_addresses= -p {PORT} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        );
        let log = cluster.dir.path().join("server.log");
        let started = cluster.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-l",
                path_str(&log)?,
                "-o",
                &server_opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if let Err(e) = started {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{e}\nserver log:\n{tail}"));
        }
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost/{db}?host={}&port={PORT}",
            self.dir.path().display()
        )
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<Output, String> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "{tool} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        if let Some(data) = data.to_str() {
            let _ = self.run("pg_ctl", &["-D", data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("non-UTF-8 path {}", p.display()))
}

fn find_bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var(BIN_ENV) {
        return Ok(PathBuf::from(dir));
    }
    // Debian/Ubuntu keep server binaries out of PATH, one directory per major version.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .map_err(|_| "no PostgreSQL found under /usr/lib/postgresql and no pg_config in PATH")?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if dir.join("initdb").exists() {
        Ok(dir)
    } else {
        Err(format!("no initdb in {}", dir.display()))
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn chown_to_postgres(dir: &Path) -> Result<(), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| format!("cannot run id: {e}"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| "there is no `postgres` user to run PostgreSQL as".to_owned())
    };
    std::os::unix::fs::chown(dir, Some(id("-u")?), Some(id("-g")?))
        .map_err(|e| format!("cannot chown {}: {e}", dir.display()))
}
