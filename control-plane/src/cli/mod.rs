//! The `modelgate` command line: `serve`, and admin commands that talk gRPC to a running
//! control plane with an admin key, or the master key (break-glass).

mod admin;
mod admin_key;
mod audit;
mod budget;
mod client;
mod dataplane;
mod idp;
mod output;
pub mod redact;
mod review;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use admin::{
    run_key, run_model, run_spend, run_team, run_user, KeyCommand, ModelCommand, SpendArgs,
    TeamCommand, UserCommand,
};
pub use admin_key::{run_admin_key, AdminKeyCommand};
pub use audit::{AuditCliError, AuditCommand, AuditServeArgs};
pub use budget::{run_budget, BudgetCommand};
pub use client::{connect_channel, AdminCredential, CliError, ControlPlaneAddr};
pub use dataplane::{run_dataplane, DataplaneCommand};
pub use idp::{run_idp, IdpCommand};
pub use review::run_review;

use crate::master_key::{self, MasterKey};
use crate::server::ServeConfig;
use crate::store::DatabaseLocation;
use crate::tls::{ClientTlsFiles, ServerTlsFiles};

// No `Debug` on the argument types: they hold the master key and database URLs.
#[derive(Parser)]
#[command(
    name = "modelgate",
    version,
    about = "Modelgate control plane and admin CLI"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct GlobalArgs {
    /// Control plane gRPC address used by the admin commands.
    #[arg(
        long,
        env = "MODELGATE_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub addr: String,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// Admin key (mgak-…) for admin commands; without one they use the master key.
    #[arg(
        long,
        env = "MODELGATE_ADMIN_KEY",
        hide_env_values = true,
        global = true
    )]
    pub admin_key: Option<String>,
    /// An access token from your IdP (a JWT) for admin commands, for an issuer registered with
    /// `idp add --admin-role GROUP=ROLE`: your groups give your role.
    #[arg(
        long,
        env = "MODELGATE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true,
        conflicts_with = "admin_key"
    )]
    pub admin_token: Option<String>,
    /// Master key (bootstrap and break-glass credential). Default: read DATA_DIR/master.key.
    #[arg(
        long,
        env = "MODELGATE_MASTER_KEY",
        hide_env_values = true,
        global = true
    )]
    pub master_key: Option<String>,
    /// Data directory (SQLite database, master.key).
    #[arg(
        long,
        env = "MODELGATE_DATA_DIR",
        default_value = "./modelgate-data",
        global = true
    )]
    pub data_dir: PathBuf,
}

/// How admin commands reach an `https://` control plane.
#[derive(Args)]
pub struct ClientTlsArgs {
    /// PEM CA certificate(s) to trust for an https:// --addr instead of the system's roots.
    #[arg(long, env = "MODELGATE_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for a control plane that requires mTLS (with --client-key).
    #[arg(
        long,
        env = "MODELGATE_CLIENT_CERT",
        requires = "client_key",
        global = true
    )]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        env = "MODELGATE_CLIENT_KEY",
        requires = "client_cert",
        global = true
    )]
    pub client_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    fn files(&self) -> ClientTlsFiles {
        ClientTlsFiles {
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the control plane (gRPC admin + policy API, HTTP health).
    Serve(ServeArgs),
    /// Teams: create, update limits and settings, block, list.
    #[command(subcommand)]
    Team(TeamCommand),
    /// Virtual keys: create, update, block, list with filters, revoke.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Users (any stable id, e.g. an email) with limits across their keys.
    #[command(subcommand)]
    User(UserCommand),
    /// Model routes: public names, upstream names, clusters and prices.
    #[command(subcommand)]
    Model(ModelCommand),
    /// IdP issuers whose JWTs are accepted: add, update, list (with their keys), remove.
    #[command(subcommand)]
    Idp(IdpCommand),
    /// Budget objects (LiteLLM's): named limits keys, teams and users take on by naming them.
    #[command(subcommand)]
    Budget(BudgetCommand),
    /// Spend of a key, team or user: the current budget window and daily history.
    Spend(SpendArgs),
    /// Redact PII from text on stdin with a team policy (offline, the filter's engine).
    Redact(redact::RedactArgs),
    /// Verify, query, export, report on and prune the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Data-plane tokens: the credentials Envoys present to the policy service.
    #[command(subcommand)]
    Dataplane(DataplaneCommand),
    /// Admin keys: per-person admin credentials with a role (admin, team_admin, auditor,
    /// member).
    #[command(subcommand)]
    AdminKey(AdminKeyCommand),
    /// Access review: every live key with owner, tags, age, last use, recent spend and
    /// flags (unused, never expires, rotation due, missing owner, owner not a user, limits
    /// above the team's); exits 1 when any key is flagged.
    Review(review::ReviewArgs),
}

impl Command {
    pub fn is_serve(&self) -> bool {
        matches!(self, Self::Serve(_))
    }
}

#[derive(Args)]
pub struct ServeArgs {
    /// gRPC listen address (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "MODELGATE_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// HTTP listen address for /ready and /healthz.
    #[arg(long, env = "MODELGATE_HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,
    /// Serve PolicyService (what Envoys poll) on this address only, not on --grpc-addr.
    #[arg(long, env = "MODELGATE_POLICY_ADDR")]
    pub policy_addr: Option<SocketAddr>,
    /// PEM certificate chain: serve gRPC and HTTP over TLS (with --tls-key).
    #[arg(long, env = "MODELGATE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "MODELGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): require clients to present a certificate it signed (mTLS).
    #[arg(long, env = "MODELGATE_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Database URL: sqlite:… or postgres://… (TLS: add
    /// ?sslmode=verify-full&sslrootcert=CA.pem) [default: sqlite://DATA_DIR/modelgate.db]
    #[arg(long, env = "MODELGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub audit: AuditServeArgs,
}

impl ServeArgs {
    pub fn into_config(self, global: &GlobalArgs) -> ServeConfig {
        let database = match self.database_url.filter(|u| !u.trim().is_empty()) {
            Some(url) => DatabaseLocation::Url(url),
            None => DatabaseLocation::SqliteFile(global.data_dir.join("modelgate.db")),
        };
        ServeConfig {
            data_dir: global.data_dir.clone(),
            grpc_addr: self.grpc_addr,
            http_addr: self.http_addr,
            policy_addr: self.policy_addr,
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(ServerTlsFiles {
                    cert,
                    key,
                    client_ca: self.client_ca,
                }),
                // clap requires the pair.
                _ => None,
            },
            database,
            master_key: global.master_key.clone(),
            audit_checkpoints: self.audit.policy(),
        }
    }
}

/// The master key for admin commands: the flag/env value, else the data dir's file.
fn master_key(global: &GlobalArgs) -> Result<MasterKey, CliError> {
    if let Some(key) = global
        .master_key
        .as_deref()
        .filter(|k| !k.trim().is_empty())
    {
        return Ok(MasterKey::new(key.to_owned())?);
    }
    let path = master_key::key_file(&global.data_dir);
    master_key::read_file(&path)?.ok_or(CliError::NoMasterKey(path))
}

/// Where admin commands connect and what they present: `--admin-key` or `--admin-token`
/// when given, else the master key.
fn connect_args(global: &GlobalArgs) -> Result<(ControlPlaneAddr, AdminCredential), CliError> {
    let given = |v: &Option<String>| v.clone().filter(|k| !k.trim().is_empty());
    let credential = match (given(&global.admin_key), given(&global.admin_token)) {
        (Some(key), _) => AdminCredential::admin_key(&key)?,
        (None, Some(token)) => AdminCredential::idp_token(&token)?,
        (None, None) => AdminCredential::from(master_key(global)?),
    };
    Ok((
        ControlPlaneAddr {
            url: global.addr.clone(),
            tls: global.tls.files(),
        },
        credential,
    ))
}

pub use audit::run_audit;
