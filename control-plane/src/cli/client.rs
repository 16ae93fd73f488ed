//! A thin admin client: connects once, sends the admin credential (an admin key, else the
//! master key) on every call, and turns gRPC failures into one readable line.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use modelgate_proto::v1::admin_service_client::AdminServiceClient;
use modelgate_proto::v1::audit_service_client::AuditServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::master_key::{MasterKey, MasterKeyError};
use crate::tls::{self, ClientTlsFiles, TlsError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RESPONSE_BYTES: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "invalid --addr {0:?}: expected a URL such as http://127.0.0.1:50051 or \
         https://modelgate.internal:50051"
    )]
    Addr(String),
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("cannot reach the control plane at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error(
        "no master key: set MODELGATE_MASTER_KEY, pass --master-key, or point --data-dir at \
         the server's data directory ({} does not exist)",
        .0.display()
    )]
    NoMasterKey(PathBuf),
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error("{}", status_message(.0))]
    Rpc(#[from] Status),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot read {}: {source}", .path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An argument the server would refuse anyway, caught before connecting.
    #[error("{0}")]
    Usage(String),
    /// `modelgate review` found keys to act on (after printing them): exit 1 for scripts.
    #[error("{flagged} of {reviewed} keys flagged")]
    Flagged { flagged: usize, reviewed: usize },
}

/// The server's messages are written for people; add context only where the code matters.
fn status_message(status: &Status) -> String {
    let msg = status.message();
    match status.code() {
        Code::Unauthenticated => format!("the control plane refused the credential: {msg}"),
        Code::PermissionDenied => format!("permission denied: {msg}"),
        Code::Unavailable => format!("control plane unavailable: {msg}"),
        Code::DeadlineExceeded => "the control plane did not answer in time".to_owned(),
        Code::NotFound | Code::InvalidArgument | Code::AlreadyExists => msg.to_owned(),
        code => format!("{msg} ({code:?})"),
    }
}

/// Every cause in the chain: tonic's top-level transport error alone says only "transport error".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// What the CLI authenticates with: an admin key (`--admin-key`), an IdP token
/// (`--admin-token`), or the master key.
/// `Debug` never shows it.
pub struct AdminCredential(String);

impl fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminCredential(<redacted>)")
    }
}

impl AdminCredential {
    pub fn admin_key(key: &str) -> Result<Self, CliError> {
        let key = key.trim();
        if crate::admin_key::public_id_of(key).is_none() {
            return Err(CliError::Usage(
                "--admin-key (MODELGATE_ADMIN_KEY) must be a whole admin key, mgak-<public id>-<secret>"
                    .to_owned(),
            ));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn idp_token(token: &str) -> Result<Self, CliError> {
        let token = token.trim();
        if !modelgate_filter::identity::jwt::looks_like_jwt(token) {
            return Err(CliError::Usage(
                "--admin-token (MODELGATE_ADMIN_TOKEN) must be an access token from your IdP: a JWT, header.claims.signature"
                    .to_owned(),
            ));
        }
        Ok(Self(token.to_owned()))
    }
}

impl From<MasterKey> for AdminCredential {
    fn from(key: MasterKey) -> Self {
        Self(key.expose().to_owned())
    }
}

#[derive(Clone)]
pub(super) struct BearerAuth(MetadataValue<Ascii>);

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Where the control plane is (`--addr`) and, for `https://`, what the CLI trusts and presents.
#[derive(Debug)]
pub struct ControlPlaneAddr {
    pub url: String,
    pub tls: ClientTlsFiles,
}

pub struct AdminClient {
    inner: AdminServiceClient<InterceptedService<Channel, BearerAuth>>,
    audit: AuditServiceClient<InterceptedService<Channel, BearerAuth>>,
}

impl AdminClient {
    pub async fn connect(
        addr: ControlPlaneAddr,
        credential: AdminCredential,
    ) -> Result<Self, CliError> {
        let channel = connect_channel(&addr).await?;
        let mut header: MetadataValue<Ascii> = format!("Bearer {}", credential.0)
            .parse()
            .map_err(|_| MasterKeyError::Malformed)?;
        header.set_sensitive(true);
        let auth = BearerAuth(header);
        Ok(Self {
            // Listing 100k keys is tens of MB; tonic's default cap is 4 MiB.
            inner: AdminServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            audit: AuditServiceClient::with_interceptor(channel, auth),
        })
    }

    /// The admin service, with the credential on every call.
    pub(super) fn admin(
        &mut self,
    ) -> &mut AdminServiceClient<InterceptedService<Channel, BearerAuth>> {
        &mut self.inner
    }

    /// The audit service, on the same connection and credential.
    pub(super) fn audit(
        &mut self,
    ) -> &mut AuditServiceClient<InterceptedService<Channel, BearerAuth>> {
        &mut self.audit
    }
}

/// One HTTP/2 connection to `--addr`: plain for `http://`, TLS for `https://`.
pub async fn connect_channel(addr: &ControlPlaneAddr) -> Result<Channel, CliError> {
    // `127.0.0.1:50051` is what people type; the endpoint wants a URL.
    let url = if addr.url.contains("://") {
        addr.url.clone()
    } else {
        format!("http://{}", addr.url)
    };
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|_| CliError::Addr(addr.url.clone()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let uri = endpoint.uri();
    let connected = match uri.scheme_str() {
        Some("http") => endpoint.connect().await,
        Some("https") => {
            let host = uri
                .host()
                .ok_or_else(|| CliError::Addr(addr.url.clone()))?
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let connector = addr.tls.connector()?;
            // The handshake happens inside tonic's connect, so its errors (unknown CA, no
            // client certificate) come back through the same `Connect` error below.
            endpoint
                .connect_with_connector(tower::service_fn(move |_: tonic::codegen::http::Uri| {
                    let (connector, host) = (connector.clone(), host.clone());
                    async move {
                        tls::connect(&connector, &host, port)
                            .await
                            .map(hyper_util::rt::TokioIo::new)
                    }
                }))
                .await
        }
        _ => return Err(CliError::Addr(addr.url.clone())),
    };
    connected.map_err(|e| CliError::Connect {
        addr: url,
        reason: error_chain(&e),
    })
}
