//! A fresh PostgreSQL database per test.
//!
//! `MODELGATE_TEST_POSTGRES_URL` (a role allowed to CREATE DATABASE) selects an existing
//! server. Otherwise a throwaway cluster is started from the machine's PostgreSQL binaries in a
//! temp dir, listening on a unix socket only, run as the `postgres` user when we are root
//! (initdb refuses root). Tests running at the same time share that cluster; it stops when the
//! last of them drops it. If PostgreSQL cannot start, the test fails: it is never skipped.
//!
//! [`TestDatabase::create_tls`] starts a cluster of its own that also listens on 127.0.0.1 and
//! accepts TCP connections only over TLS, with a server certificate from a test CA.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use modelgate_e2e::pki::TestPki;
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

    /// A database on a new cluster that serves TLS with a certificate for `localhost` from
    /// `pki` and refuses plain TCP; `url` asks for `sslmode=verify-full` against `pki`'s CA.
    pub async fn create_tls(pki: &TestPki) -> Self {
        let cluster = Arc::new(
            LocalCluster::start(Some(pki))
                .unwrap_or_else(|e| panic!("could not start a TLS PostgreSQL for tests: {e}")),
        );
        let name = unique_name();
        let mut admin = connect(&cluster.url("postgres")).await;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        Self {
            url: cluster.tls_url(&name, &pki.ca_cert()),
            name,
            server: Server::Local(cluster),
        }
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
    port: u16,
}

impl LocalCluster {
    fn shared() -> Arc<Self> {
        let mut slot = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = slot.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Self::start(None).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL tests need a PostgreSQL server and could not start one: {e}\n\
                 Install PostgreSQL (initdb, pg_ctl), set {BIN_ENV} to its bin directory, \
                 or set {URL_ENV} to a server where the role may CREATE DATABASE."
            )
        }));
        *slot = Arc::downgrade(&cluster);
        cluster
    }

    /// With `tls`: also on 127.0.0.1 (a free port), TLS required there.
    fn start(tls: Option<&TestPki>) -> Result<Self, String> {
        let bin = find_bin_dir()?;
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("mg-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        if as_postgres {
            chown_to_postgres(dir.path())?;
        }
        let port = match tls {
            Some(_) => free_port()?,
            None => PORT,
        };
        let cluster = Self {
            dir,
            bin,
            as_postgres,
            port,
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
        let mut server_opts = format!(
            "-k {socket_dir} -p {port} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        );
        match tls {
            Some(pki) => server_opts.push_str(&cluster.enable_tls(pki)?),
            None => server_opts.push_str(" -c listen_addresses="),
        }
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
            "postgres://postgres@localhost/{db}?host={}&port={}",
            self.dir.path().display(),
            self.port
        )
    }

    /// Over TCP, checking the server's certificate and name as a production URL would.
    fn tls_url(&self, db: &str, ca: &Path) -> String {
        format!(
            "postgres://postgres@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
            self.port,
            ca.display()
        )
    }

    /// Writes the server certificate and a pg_hba.conf that takes TCP only over TLS; returns
    /// the server options that turn TLS on.
    fn enable_tls(&self, pki: &TestPki) -> Result<String, String> {
        let server = pki.server("postgres");
        let data = self.data_dir();
        let (cert, key) = (data.join("server.crt"), data.join("server.key"));
        let copy = |from: &Path, to: &Path| {
            std::fs::copy(from, to).map_err(|e| format!("copy {}: {e}", from.display()))
        };
        copy(&server.cert, &cert)?;
        copy(&server.key, &key)?;
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all all reject\n",
        )
        .map_err(|e| format!("write pg_hba.conf: {e}"))?;
        // PostgreSQL refuses a key that others can read, and must own it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", key.display()))?;
        if self.as_postgres {
            chown_to_postgres(&cert)?;
            chown_to_postgres(&key)?;
        }
        Ok(format!(
            " -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            path_str(&cert)?,
            path_str(&key)?
        ))
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

/// A port nothing listens on right now (the OS picks it; PostgreSQL binds it next).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
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
