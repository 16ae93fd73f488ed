//! TLS for `modelgate serve`'s listeners and for the CLI's connection: PEM files read once at
//! start with errors naming the file, rustls with ring (the workspace's only crypto provider,
//! so nothing needs a C toolchain beyond `cc`), and the accept loop that hands finished
//! handshakes to tonic and axum alike.
//!
//! tonic's own TLS features are not used: they pull tokio-rustls with its default aws-lc-rs
//! provider. Doing the handshake here keeps one provider and one loader for both listeners.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A client that opens a connection and never finishes the handshake holds a task this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`connect`] waits for the server's first bytes.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(5);
/// Finished handshakes waiting for the server to pick them up.
const ACCEPT_QUEUE: usize = 128;

/// Installs ring as the process-wide rustls provider, for libraries (reqwest, sqlx) that ask
/// rustls for its default. reqwest is built without a provider of its own, and cargo unifies
/// that into every reqwest of a build that links the control plane (the benches'), whose
/// clients then panic when built unless a program calls this first. Idempotent.
pub fn install_crypto_provider() {
    // Err only when a provider is installed already, which is as good.
    let _ = provider().install_default();
}

// ring is deprecated in rustls only for lacking post-quantum key exchange; the alternative
// (aws-lc-rs) needs cmake and a long C build on every machine that builds Modelgate.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} holds no PEM {what}: {source}", .path.display())]
    Pem {
        path: PathBuf,
        what: &'static str,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the private key {} does not belong to the certificate {}", .key.display(), .cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot use the certificate {} with the key {}: {source}", .cert.display(), .key.display())]
    Certificate {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot use the CA certificates in {}: {reason}", .path.display())]
    Ca { path: PathBuf, reason: String },
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// `--tls-cert`, `--tls-key` and optionally `--client-ca` (mTLS) of `modelgate serve`.
#[derive(Clone, Debug)]
pub struct ServerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The loaded server identity: one acceptor per protocol, as they differ only in ALPN.
#[derive(Clone)]
pub struct ServerTls {
    pub grpc: TlsAcceptor,
    pub http: TlsAcceptor,
}

impl ServerTlsFiles {
    /// Reads and checks every file, so a bad one stops the server before it listens.
    pub fn load(&self) -> Result<ServerTls, TlsError> {
        let chain = read_certs(&self.cert)?;
        let key = read_key(&self.key)?;
        let provider = Arc::new(provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca {
            // Without a certificate signed by this CA the handshake fails: nothing reaches a
            // handler, so no service has to remember to check.
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(read_roots(ca)?),
                    provider,
                )
                .build()
                .map_err(|e| TlsError::Ca {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|source| cert_key_error(&self.cert, &self.key, source))?;
        let with_alpn = |protocols: &[&[u8]]| {
            let mut config = config.clone();
            config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
            TlsAcceptor::from(Arc::new(config))
        };
        Ok(ServerTls {
            grpc: with_alpn(&[b"h2"]),
            // The REST side speaks HTTP/1.1 only (axum is built without http2).
            http: with_alpn(&[b"http/1.1"]),
        })
    }
}

/// What the CLI trusts and presents: `--ca-cert` (else the system's roots), and
/// `--client-cert`/`--client-key` for a control plane that requires mTLS.
#[derive(Clone, Debug, Default)]
pub struct ClientTlsFiles {
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl ClientTlsFiles {
    /// A connector for gRPC (ALPN h2).
    pub fn connector(&self) -> Result<TlsConnector, TlsError> {
        let roots = match &self.ca_cert {
            Some(path) => read_roots(path)?,
            None => system_roots(),
        };
        let builder = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
                .map_err(|source| cert_key_error(cert, key, source))?,
            // clap requires both or neither.
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(TlsConnector::from(Arc::new(config)))
    }
}

/// The platform's trust store; certificates it cannot parse are skipped, as browsers do.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "skipping part of the system trust store");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

/// Connects to `host:port`, does the TLS handshake (checking the certificate against `host`)
/// and waits for the server's first bytes: in TLS 1.3 a server refuses a client certificate
/// (or its absence) only after the client's side of the handshake is done, and without this
/// wait that refusal surfaced later as a bare "operation was canceled" on the first call.
/// gRPC servers speak first (HTTP/2 SETTINGS), so the wait costs one round trip.
pub async fn connect(
    connector: &TlsConnector,
    host: &str,
    port: u16,
) -> io::Result<BufReader<tokio_rustls::client::TlsStream<TcpStream>>> {
    // `[::1]` in a URL is `::1` to the resolver and to the certificate check.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
        .to_owned();
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let mut stream = BufReader::new(connector.connect(name, tcp).await?);
    // A server that does not speak first is left for the caller's own timeouts.
    if let Ok(first) = tokio::time::timeout(FIRST_BYTES_TIMEOUT, stream.fill_buf()).await {
        first?;
    }
    Ok(stream)
}

/// Why rustls cannot use a certificate with a key, naming both files.
fn cert_key_error(cert: &Path, key: &Path, source: rustls::Error) -> TlsError {
    let (cert, key) = (cert.to_owned(), key.to_owned());
    match source {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch { cert, key },
        source => TlsError::Certificate { cert, key, source },
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        path: path.to_owned(),
        what: "certificate",
        source,
    };
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(pem_error(rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|source| TlsError::Pem {
        path: path.to_owned(),
        what: "private key",
        source,
    })
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::Ca {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// A server-side TLS connection whose handshake finished. It reports the TCP peer to tonic
/// (`Request::remote_addr` keeps working, so audit records still name the caller's address).
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
}

/// Accepts TCP connections on `listener` and does each handshake in its own task (a slow or
/// silent client delays no one else). Failed handshakes, such as an mTLS client without a
/// certificate, are dropped here. The loop ends when the receiver is dropped.
pub fn accept(listener: TcpListener, acceptor: TlsAcceptor) -> mpsc::Receiver<TlsConnection> {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "cannot accept a TLS connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(TlsConnection { stream, peer }).await;
                    }
                    Ok(Err(error)) => {
                        tracing::info!(%peer, %error, "TLS handshake refused");
                    }
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

/// The accepted connections as the stream tonic's `serve_with_incoming*` takes.
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl tokio_stream::Stream<Item = io::Result<TlsConnection>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::ReceiverStream::new(accept(listener, acceptor)).map(Ok)
}

/// The accepted connections as an axum listener.
pub struct TlsListener {
    connections: mpsc::Receiver<TlsConnection>,
    local_addr: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        Ok(Self {
            local_addr: listener.local_addr()?,
            connections: accept(listener, acceptor),
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => {
                let peer = connection.peer;
                (connection, peer)
            }
            // The accept loop only stops once this receiver is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
