//! `modelgate dataplane token create|list|revoke`: the credentials Envoys present to the
//! policy service, minted and revoked through the admin API by an admin (or the master key).

use std::io::Write;

use clap::Subcommand;
use modelgate_proto::v1 as pb;
use serde::Serialize;

use super::client::AdminClient;
use super::output::{json_line, short_time, table, time};
use super::{CliError, GlobalArgs};

#[derive(Subcommand)]
pub enum DataplaneCommand {
    /// Data-plane tokens: what each Envoy's filter sends to GetSnapshot and ReportUsage.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Mint a token for one data plane (an Envoy or a group of identical ones); shown once.
    Create {
        /// Names the data plane in usage batches and logs: 1 to 64 characters of
        /// [A-Za-z0-9._-], unique among live tokens.
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (live ones unless --all).
    List {
        /// Include revoked tokens.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: the data plane holding it is refused from its next call.
    Revoke {
        /// The live token's name, or its public id.
        token: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct TokenJson<'a> {
    name: &'a str,
    public_id: &'a str,
    created_at: Option<String>,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
}

impl<'a> From<&'a pb::DataPlaneToken> for TokenJson<'a> {
    fn from(t: &'a pb::DataPlaneToken) -> Self {
        Self {
            name: &t.name,
            public_id: &t.public_id,
            created_at: time(t.created_at_ms),
            revoked_at: time(t.revoked_at_ms),
            last_used_at: time(t.last_used_at_ms),
        }
    }
}

#[derive(Serialize)]
struct CreatedJson<'a> {
    token: &'a str,
    #[serde(flatten)]
    details: TokenJson<'a>,
}

pub async fn run_dataplane(global: &GlobalArgs, command: DataplaneCommand) -> Result<(), CliError> {
    let DataplaneCommand::Token(command) = command;
    let (addr, key) = super::connect_args(global)?;
    let mut client = AdminClient::connect(addr, key).await?;
    let admin = client.admin();
    let mut out = std::io::stdout().lock();
    match command {
        TokenCommand::Create { name, json } => {
            let created = admin
                .create_data_plane_token(pb::CreateDataPlaneTokenRequest { name })
                .await?
                .into_inner();
            created_token(&mut out, &created, json)
        }
        TokenCommand::List { all, json } => {
            let listed = admin
                .list_data_plane_tokens(pb::ListDataPlaneTokensRequest {
                    include_revoked: all,
                })
                .await?
                .into_inner();
            tokens(&mut out, &listed.tokens, json)
        }
        TokenCommand::Revoke { token, json } => {
            let revoked = admin
                .revoke_data_plane_token(pb::RevokeDataPlaneTokenRequest { token })
                .await?
                .into_inner();
            if json {
                return json_line(&mut out, &TokenJson::from(&revoked));
            }
            writeln!(
                out,
                "Revoked data-plane token {} ({}) at {}",
                revoked.name,
                revoked.public_id,
                time(revoked.revoked_at_ms).unwrap_or_default()
            )?;
            Ok(())
        }
    }
}

fn created_token(
    out: &mut impl Write,
    created: &pb::CreateDataPlaneTokenResponse,
    json: bool,
) -> Result<(), CliError> {
    let token = created.token.clone().unwrap_or_default();
    if json {
        return json_line(
            out,
            &CreatedJson {
                token: &created.secret,
                details: TokenJson::from(&token),
            },
        );
    }
    writeln!(
        out,
        "Created data-plane token {} ({})",
        token.name, token.public_id
    )?;
    writeln!(out)?;
    writeln!(out, "    {}", created.secret)?;
    writeln!(out)?;
    writeln!(
        out,
        "Copy it now: this is the only time it is shown (only its hash is stored). Put it in\n\
         the Envoy configuration's service plugin as \"control_plane_token\"."
    )?;
    Ok(())
}

fn tokens(out: &mut impl Write, tokens: &[pb::DataPlaneToken], json: bool) -> Result<(), CliError> {
    if json {
        let items: Vec<TokenJson<'_>> = tokens.iter().map(TokenJson::from).collect();
        return json_line(out, &items);
    }
    let never = || "never".to_owned();
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.public_id.clone(),
                short_time(t.created_at_ms).unwrap_or_default(),
                short_time(t.revoked_at_ms).unwrap_or_else(|| "-".to_owned()),
                short_time(t.last_used_at_ms).unwrap_or_else(never),
            ]
        })
        .collect();
    table(
        out,
        &["NAME", "PUBLIC_ID", "CREATED", "REVOKED", "LAST_USED"],
        &rows,
    )
}
