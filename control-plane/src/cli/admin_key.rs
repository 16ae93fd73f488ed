//! `modelgate admin-key create|list|revoke`: per-person admin credentials with a role, minted
//! and revoked through the admin API by an admin (or the master key).

use std::io::Write;

use clap::Subcommand;
use modelgate_proto::v1 as pb;
use serde::Serialize;

use super::client::AdminClient;
use super::output::{json_line, short_time, table, time};
use super::{CliError, GlobalArgs};

#[derive(Subcommand)]
pub enum AdminKeyCommand {
    /// Mint an admin key for a person; shown once.
    Create {
        /// The person the key is for (e.g. alice@corp); audit records name them.
        #[arg(long)]
        user: String,
        /// admin, team_admin, auditor or member.
        #[arg(long)]
        role: String,
        /// A team (id or alias) the role applies to; repeat for several. team_admin and member
        /// need at least one; admin and auditor take none.
        #[arg(long = "team")]
        teams: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List admin keys (live ones unless --all).
    List {
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an admin key: its holder is refused from the next call.
    Revoke {
        /// The key's public id (the part after mgak-).
        public_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct AdminKeyJson<'a> {
    public_id: &'a str,
    user_id: &'a str,
    role: &'a str,
    teams: &'a [String],
    created_at: Option<String>,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
}

impl<'a> From<&'a pb::AdminKey> for AdminKeyJson<'a> {
    fn from(k: &'a pb::AdminKey) -> Self {
        Self {
            public_id: &k.public_id,
            user_id: &k.user_id,
            role: &k.role,
            teams: &k.teams,
            created_at: time(k.created_at_ms),
            revoked_at: time(k.revoked_at_ms),
            last_used_at: time(k.last_used_at_ms),
        }
    }
}

#[derive(Serialize)]
struct CreatedJson<'a> {
    key: &'a str,
    #[serde(flatten)]
    details: AdminKeyJson<'a>,
}

pub async fn run_admin_key(global: &GlobalArgs, command: AdminKeyCommand) -> Result<(), CliError> {
    let (addr, credential) = super::connect_args(global)?;
    let mut client = AdminClient::connect(addr, credential).await?;
    let admin = client.admin();
    let mut out = std::io::stdout().lock();
    match command {
        AdminKeyCommand::Create {
            user,
            role,
            teams,
            json,
        } => {
            let created = admin
                .create_admin_key(pb::CreateAdminKeyRequest {
                    user_id: user,
                    role,
                    teams,
                })
                .await?
                .into_inner();
            let key = created.key.clone().unwrap_or_default();
            if json {
                return json_line(
                    &mut out,
                    &CreatedJson {
                        key: &created.secret,
                        details: AdminKeyJson::from(&key),
                    },
                );
            }
            writeln!(
                out,
                "Created admin key {} for {} (role {})",
                key.public_id, key.user_id, key.role
            )?;
            writeln!(out)?;
            writeln!(out, "    {}", created.secret)?;
            writeln!(out)?;
            writeln!(
                out,
                "Copy it now: this is the only time it is shown (only its hash is stored). Use it\n\
                 with --admin-key or MODELGATE_ADMIN_KEY, or as 'Authorization: Bearer …' on the\n\
                 REST API."
            )?;
            Ok(())
        }
        AdminKeyCommand::List { all, json } => {
            let listed = admin
                .list_admin_keys(pb::ListAdminKeysRequest {
                    include_revoked: all,
                })
                .await?
                .into_inner();
            if json {
                let items: Vec<AdminKeyJson<'_>> =
                    listed.keys.iter().map(AdminKeyJson::from).collect();
                return json_line(&mut out, &items);
            }
            let rows: Vec<Vec<String>> = listed
                .keys
                .iter()
                .map(|k| {
                    vec![
                        k.public_id.clone(),
                        k.user_id.clone(),
                        k.role.clone(),
                        if k.teams.is_empty() {
                            "-".to_owned()
                        } else {
                            k.teams.join(",")
                        },
                        short_time(k.created_at_ms).unwrap_or_default(),
                        short_time(k.revoked_at_ms).unwrap_or_else(|| "-".to_owned()),
                        short_time(k.last_used_at_ms).unwrap_or_else(|| "never".to_owned()),
                    ]
                })
                .collect();
            table(
                &mut out,
                &[
                    "PUBLIC_ID",
                    "USER",
                    "ROLE",
                    "TEAMS",
                    "CREATED",
                    "REVOKED",
                    "LAST_USED",
                ],
                &rows,
            )
        }
        AdminKeyCommand::Revoke { public_id, json } => {
            let revoked = admin
                .revoke_admin_key(pb::RevokeAdminKeyRequest { public_id })
                .await?
                .into_inner();
            if json {
                return json_line(&mut out, &AdminKeyJson::from(&revoked));
            }
            writeln!(
                out,
                "Revoked admin key {} ({}, role {}) at {}",
                revoked.public_id,
                revoked.user_id,
                revoked.role,
                time(revoked.revoked_at_ms).unwrap_or_default()
            )?;
            Ok(())
        }
    }
}
