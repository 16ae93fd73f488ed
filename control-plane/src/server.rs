//! `modelgate serve`: opens the store, binds gRPC and HTTP, announces the bound addresses on
//! stdout (harnesses bind port 0 and read them), serves until SIGTERM/SIGINT, then drains.

use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use modelgate_proto::v1::admin_service_server::AdminServiceServer;
use modelgate_proto::v1::audit_service_server::AuditServiceServer;
use modelgate_proto::v1::policy_service_server::PolicyServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Router, TcpIncoming};

use crate::admin::Admin;
use crate::audit::{self, AuditError, AuditLog, CheckpointPolicy};
use crate::clock::Timestamp;
use crate::dataplane::DataPlanes;
use crate::grpc::{self, AdminApi, AuditApi, PolicyApi};
use crate::http;
use crate::identity::admin::IdentityAdmin;
use crate::identity::fetch::FetchError;
use crate::identity::refresher::JwksRefresher;
use crate::master_key::{self, MasterKey, MasterKeyError, MasterKeySource};
use crate::snapshot::SnapshotCache;
use crate::spend::{SpendSync, SpendTracker};
use crate::store::{DatabaseLocation, OpenedStore, Store, StoreError};
use crate::tls::{self, ServerTls, ServerTlsFiles, TlsError, TlsListener};

/// In-flight calls get this long to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// PolicyService's own listener; then the gRPC admin listener does not serve it.
    pub policy_addr: Option<SocketAddr>,
    /// TLS (and with a client CA, mTLS) on every listener.
    pub tls: Option<ServerTlsFiles>,
    pub database: DatabaseLocation,
    /// From `MODELGATE_MASTER_KEY`; `None` uses (or creates) `<data_dir>/master.key`.
    pub master_key: Option<String>,
    /// When the audit log signs checkpoints.
    pub audit_checkpoints: CheckpointPolicy,
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("data_dir", &self.data_dir)
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("policy_addr", &self.policy_addr)
            .field("tls", &self.tls)
            .field("database", &self.database)
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "<redacted>"),
            )
            .field("audit_checkpoints", &self.audit_checkpoints)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: io::Error },
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("cannot build gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("HTTP server failed: {0}")]
    Http(#[source] io::Error),
    #[error("cannot announce the listening addresses: {0}")]
    Announce(#[source] io::Error),
    #[error("cannot open the audit log: {0}")]
    Audit(#[from] AuditError),
    #[error("cannot open the audit JSONL sink: {0}")]
    AuditSink(#[from] audit::sink::SinkError),
    #[error(transparent)]
    Jwks(#[from] FetchError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Runs the control plane until `shutdown` resolves.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .map_err(|source| ServeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    // Everything that can fail on a bad configuration comes before the master key, so a
    // server that cannot start leaves no new key behind.
    let tls = config.tls.as_ref().map(ServerTlsFiles::load).transpose()?;
    let store = OpenedStore::open(&config.database).await?;
    let listeners = Listeners::bind(&config, tls).await?;
    let (master_key, source) =
        master_key::load_or_create(config.master_key.clone(), &config.data_dir)?;
    announce_master_key(&source);

    match store {
        OpenedStore::Sqlite(s) => {
            tracing::info!("store: SQLite");
            serve_store(s, master_key, listeners, &config, shutdown).await
        }
        OpenedStore::Postgres(s) => {
            tracing::info!("store: PostgreSQL");
            serve_store(s, master_key, listeners, &config, shutdown).await
        }
    }
}

struct Listeners {
    grpc: TcpListener,
    http: TcpListener,
    policy: Option<TcpListener>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    policy_addr: Option<SocketAddr>,
    tls: Option<ServerTls>,
}

impl Listeners {
    async fn bind(config: &ServeConfig, tls: Option<ServerTls>) -> Result<Self, ServeError> {
        let grpc = bind("gRPC", config.grpc_addr).await?;
        let http = bind("HTTP", config.http_addr).await?;
        let policy = match config.policy_addr {
            Some(addr) => Some((bind("the policy service", addr).await?, addr)),
            None => None,
        };
        Ok(Self {
            grpc_addr: local_addr("gRPC", &grpc, config.grpc_addr)?,
            http_addr: local_addr("HTTP", &http, config.http_addr)?,
            policy_addr: policy
                .as_ref()
                .map(|(l, addr)| local_addr("the policy service", l, *addr))
                .transpose()?,
            grpc,
            http,
            policy: policy.map(|(l, _)| l),
            tls,
        })
    }
}

fn announce_master_key(source: &MasterKeySource) {
    match source {
        MasterKeySource::Environment => {
            tracing::info!("master key: from MODELGATE_MASTER_KEY");
        }
        MasterKeySource::File(path) => {
            tracing::info!(path = %path.display(), "master key: read from file");
            if master_key::is_exposed(path) {
                tracing::warn!(path = %path.display(), "master key file is readable by group or others; chmod 600 it");
            }
        }
        // On stderr whatever the log level: the admin needs to know where to find the key.
        MasterKeySource::Generated(path) => {
            eprintln!("modelgate: master key written to {}", path.display());
        }
    }
}

async fn serve_store<S: Store>(
    store: S,
    master_key: MasterKey,
    listeners: Listeners,
    config: &ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Listeners {
        grpc: grpc_listener,
        http: http_listener,
        policy: policy_listener,
        grpc_addr,
        http_addr,
        policy_addr,
        tls,
    } = listeners;

    let (reflection_v1, reflection_v1alpha) = grpc::reflection_services()?;
    let audit_log =
        Arc::new(AuditLog::open(store.clone(), &config.data_dir, config.audit_checkpoints).await?);
    let audit_sink = audit::sink::JsonlSink::open(&audit::sink::sink_dir(&config.data_dir))?;
    // After the audit log chained any unchained records: spend follows the chain positions.
    let spend = Arc::new(SpendTracker::new());
    let spend_sync = SpendSync::start(store.clone(), Arc::clone(&spend), Timestamp::now()).await?;
    let snapshots = Arc::new(SnapshotCache::new(store.clone(), Arc::clone(&spend)));
    let admin = Arc::new(Admin::new(
        store.clone(),
        spend,
        master_key,
        Some(Arc::clone(&audit_log)),
    ));
    let jwks = Arc::new(JwksRefresher::new(store.clone())?);
    let identity = Arc::new(IdentityAdmin::new(store.clone(), Arc::clone(&jwks)));
    let admin_api = AdminApi::new(
        Arc::clone(&admin),
        DataPlanes::new(store.clone()),
        Arc::clone(&identity),
    );
    let policy_service = PolicyServiceServer::new(PolicyApi::new(
        Arc::clone(&audit_log),
        snapshots,
        DataPlanes::new(store.clone()),
        Arc::clone(&jwks),
    ));
    let admin_router = tonic::transport::Server::builder()
        .add_service(AdminServiceServer::new(admin_api.clone()))
        .add_service(AuditServiceServer::new(AuditApi::new(
            Arc::clone(&audit_log),
            admin_api,
        )))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    // With its own listener the policy service is served only there, so the admin port can be
    // firewalled from the data plane and the other way round.
    let (admin_router, policy_router) = match policy_listener {
        Some(listener) => (
            admin_router,
            Some((
                tonic::transport::Server::builder().add_service(policy_service),
                listener,
            )),
        ),
        None => (admin_router.add_service(policy_service), None),
    };

    // One stop signal for both servers: the outside shutdown, or either server failing.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    {
        let stop_tx = Arc::clone(&stop_tx);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            stop_tx.send_replace(true);
        });
    }

    let grpc_tls = tls.as_ref().map(|t| t.grpc.clone());
    let grpc_server = stop_all_on_exit(
        Arc::clone(&stop_tx),
        serve_grpc(
            admin_router,
            grpc_listener,
            grpc_tls.clone(),
            stopped(stop_rx.clone()),
        ),
    );
    let policy_server = stop_all_on_exit(Arc::clone(&stop_tx), {
        let stopped = stopped(stop_rx.clone());
        async move {
            match policy_router {
                Some((router, listener)) => serve_grpc(router, listener, grpc_tls, stopped).await,
                // Nothing to serve, but ending here would stop every listener with it.
                None => {
                    stopped.await;
                    Ok(())
                }
            }
        }
    });
    let http_server = stop_all_on_exit(Arc::clone(&stop_tx), {
        let stopped = stopped(stop_rx.clone());
        let router = http::router(store.clone(), Arc::clone(&admin), identity)
            .into_make_service_with_connect_info::<SocketAddr>();
        async move {
            match tls {
                None => axum::serve(http_listener, router)
                    .with_graceful_shutdown(stopped)
                    .await
                    .map_err(ServeError::Http),
                Some(tls) => {
                    // `tap_io` only to get axum's `ConnectInfo<SocketAddr>` impl, which it
                    // provides for tapped listeners of any kind.
                    let listener = TlsListener::new(http_listener, tls.http)
                        .map_err(ServeError::Http)?
                        .tap_io(|_| {});
                    axum::serve(listener, router)
                        .with_graceful_shutdown(stopped)
                        .await
                        .map_err(ServeError::Http)
                }
            }
        }
    });

    let spend_task = tokio::spawn(spend_sync.run(stop_rx.clone()));
    let jwks_task = tokio::spawn(jwks.run(stop_rx.clone()));
    let audit_tasks = [
        tokio::spawn(seal_idle_tails(Arc::clone(&audit_log), stop_rx.clone())),
        tokio::spawn(audit::sink::run(
            Arc::clone(&audit_log),
            audit_sink,
            stop_rx.clone(),
        )),
    ];

    announce(grpc_addr, http_addr, policy_addr).map_err(ServeError::Announce)?;
    tracing::info!(%grpc_addr, %http_addr, ?policy_addr, tls = config.tls.is_some(), "control plane ready");

    let all = async { tokio::join!(grpc_server, policy_server, http_server) };
    let drain_deadline = async {
        stopped(stop_rx.clone()).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    let result = tokio::select! {
        (grpc, policy, http) = all => grpc.and(policy).and(http),
        () = drain_deadline => {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "connections still open after the drain timeout; closing");
            Ok(())
        }
    };
    // Stop with nothing unsigned and the sink caught up.
    stop_tx.send_replace(true);
    if let Err(e) = audit_log.seal(true).await {
        tracing::warn!(error = %e, "cannot sign the audit log's tail before stopping");
    }
    for task in audit_tasks {
        let _ = task.await;
    }
    let _ = spend_task.await;
    let _ = jwks_task.await;
    store.close().await;
    tracing::info!("stopped");
    result
}

/// Signs an idle unsigned tail once it is as old as the checkpoint interval.
async fn seal_idle_tails<S: Store>(log: Arc<AuditLog<S>>, stop: watch::Receiver<bool>) {
    let tick = (log.policy().interval / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = stopped(stop.clone()) => return,
        }
        if let Err(e) = log.seal(false).await {
            tracing::warn!(error = %e, "cannot sign the audit log's tail; retrying");
        }
    }
}

/// Runs `server`; when it ends, for whatever reason, the other servers stop too.
async fn stop_all_on_exit(
    stop_tx: Arc<watch::Sender<bool>>,
    server: impl Future<Output = Result<(), ServeError>>,
) -> Result<(), ServeError> {
    let result = server.await;
    stop_tx.send_replace(true);
    result
}

async fn serve_grpc(
    router: Router,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stopped: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    match tls {
        None => {
            router
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), stopped)
                .await
        }
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(tls::incoming(listener, tls), stopped)
                .await
        }
    }
    .map_err(ServeError::Grpc)
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { what, addr, source })
}

fn local_addr(
    what: &'static str,
    listener: &TcpListener,
    requested: SocketAddr,
) -> Result<SocketAddr, ServeError> {
    listener.local_addr().map_err(|source| ServeError::Bind {
        what,
        addr: requested,
        source,
    })
}

/// The exact lines harnesses wait for (see the shared contract), flushed at once.
fn announce(grpc: SocketAddr, http: SocketAddr, policy: Option<SocketAddr>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "modelgate: grpc listening on {grpc}")?;
    writeln!(out, "modelgate: http listening on {http}")?;
    if let Some(policy) = policy {
        writeln!(out, "modelgate: policy listening on {policy}")?;
    }
    out.flush()
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM received"),
        () = interrupt => tracing::info!("SIGINT received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_master_key_and_database_password() {
        let config = ServeConfig {
            data_dir: "/data".into(),
            grpc_addr: "127.0.0.1:1".parse().unwrap(),
            http_addr: "127.0.0.1:2".parse().unwrap(),
            policy_addr: None,
            tls: None,
            database: DatabaseLocation::Url("postgres://mg:hunter2@db/mg".into()),
            master_key: Some("sk-mg-master-topsecret".into()),
            audit_checkpoints: CheckpointPolicy::default(),
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("topsecret"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres:<redacted>") && shown.contains("/data"),
            "{shown}"
        );
    }
}
