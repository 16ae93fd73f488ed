//! The `modelgate` command line: `serve`, and admin commands that talk gRPC to a running
//! control plane with the master key.

mod audit;
mod client;
mod output;
pub mod redact;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use modelgate_proto::v1 as pb;

pub use audit::{AuditCliError, AuditCommand, AuditServeArgs};
pub use client::CliError;

use crate::master_key::{self, MasterKey};
use crate::server::ServeConfig;
use crate::store::DatabaseLocation;

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
    /// Master key (admin credential). Default: read DATA_DIR/master.key.
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

#[derive(Subcommand)]
pub enum Command {
    /// Run the control plane (gRPC admin + policy API, HTTP health).
    Serve(ServeArgs),
    /// Create and list teams.
    #[command(subcommand)]
    Team(TeamCommand),
    /// Create, list and revoke virtual keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Redact PII from text on stdin with a team policy (offline, the filter's engine).
    Redact(redact::RedactArgs),
    /// Verify, query, export, report on and prune the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
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
    /// Database URL: sqlite:… or postgres://… [default: sqlite://DATA_DIR/modelgate.db]
    #[arg(long, env = "MODELGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub audit: AuditServeArgs,
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create a team.
    Create {
        /// Unique name: a-z, 0-9, '.', '-'.
        #[arg(long)]
        alias: String,
        /// Models the team may use, comma-separated.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List teams.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key; it is shown once.
    Create {
        /// Team id or alias.
        #[arg(long)]
        team: String,
        /// Owner of the key (e.g. an email address).
        #[arg(long)]
        user: Option<String>,
        /// A name for the key.
        #[arg(long)]
        alias: Option<String>,
        /// Expiry: a duration (15m, 12h, 30d, 1y) or an RFC 3339 timestamp.
        #[arg(long)]
        expires: Option<String>,
        /// Models the key may use (narrows the team's), comma-separated.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the secret).
    List {
        /// Only keys of this team (id or alias).
        #[arg(long)]
        team: Option<String>,
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its public id.
    Revoke {
        /// The key's public id (12 characters, as shown by `key list`).
        public_id: String,
        #[arg(long)]
        json: bool,
    },
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

fn connect_args(global: &GlobalArgs) -> Result<(&str, MasterKey), CliError> {
    Ok((&global.addr, master_key(global)?))
}

pub use audit::run_audit;

pub async fn run_team(global: &GlobalArgs, command: TeamCommand) -> Result<(), CliError> {
    let (addr, key) = connect_args(global)?;
    let mut client = client::AdminClient::connect(addr, key).await?;
    let mut out = std::io::stdout().lock();
    match command {
        TeamCommand::Create {
            alias,
            models,
            json,
        } => {
            let team = client
                .create_team(pb::CreateTeamRequest {
                    alias,
                    models,
                    ..Default::default()
                })
                .await?;
            output::team_created(&mut out, &team, json)
        }
        TeamCommand::List { json } => {
            let teams = client.list_teams().await?;
            output::teams(&mut out, &teams, json)
        }
    }
}

pub async fn run_key(global: &GlobalArgs, command: KeyCommand) -> Result<(), CliError> {
    let (addr, key) = connect_args(global)?;
    let mut client = client::AdminClient::connect(addr, key).await?;
    let mut out = std::io::stdout().lock();
    match command {
        KeyCommand::Create {
            team,
            user,
            alias,
            expires,
            models,
            json,
        } => {
            let created = client
                .create_key(pb::CreateKeyRequest {
                    team: team.clone(),
                    user_id: user.unwrap_or_default(),
                    key_alias: alias.unwrap_or_default(),
                    expires: expires.unwrap_or_default(),
                    models,
                    ..Default::default()
                })
                .await?;
            output::key_created(&mut out, &created, team.trim(), json)
        }
        KeyCommand::List { team, all, json } => {
            let keys = client
                .list_keys(pb::ListKeysRequest {
                    team: team.unwrap_or_default(),
                    include_revoked: all,
                    ..Default::default()
                })
                .await?;
            if json {
                output::keys_json(&mut out, &keys)
            } else {
                // Team aliases read better than ids in a table.
                let teams = client.list_teams().await?;
                output::keys_table(&mut out, &keys, &teams)
            }
        }
        KeyCommand::Revoke { public_id, json } => {
            let key = client
                .revoke_key(pb::RevokeKeyRequest { public_id })
                .await?;
            output::key_revoked(&mut out, &key, json)
        }
    }
}
