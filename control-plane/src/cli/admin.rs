//! Admin commands for teams, keys, users, model routes and spend: clap arguments, the gRPC
//! request each one sends, and which printer shows the answer.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use modelgate_proto::v1 as pb;

use super::client::{AdminClient, CliError};
use super::output;
use super::GlobalArgs;
use crate::domain;

/// Limits and budget, shared by team, key and user commands.
#[derive(Args, Default)]
pub struct LimitArgs {
    /// Requests per minute.
    #[arg(long, value_name = "N")]
    pub(super) rpm: Option<u64>,
    /// Tokens (prompt + completion) per minute.
    #[arg(long, value_name = "N")]
    pub(super) tpm: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, value_name = "N")]
    pub(super) max_parallel: Option<u32>,
    /// Spending cap (same unit as model prices, e.g. USD).
    #[arg(long, value_name = "AMOUNT")]
    pub(super) max_budget: Option<f64>,
    /// Rolling budget window from creation: 1m to 1y (m, h, d, w, y).
    #[arg(long, value_name = "DURATION")]
    pub(super) budget_duration: Option<String>,
    /// rolling (default), calendar-day, calendar-week or calendar-month (UTC).
    #[arg(long, value_name = "RESET")]
    pub(super) budget_reset: Option<String>,
}

impl LimitArgs {
    pub(super) fn settings(self) -> Option<pb::LimitSettings> {
        let s = pb::LimitSettings {
            rpm_limit: self.rpm,
            tpm_limit: self.tpm,
            max_parallel_requests: self.max_parallel,
            max_budget: self.max_budget,
            budget_duration: self.budget_duration,
            budget_reset: self.budget_reset,
        };
        (s != pb::LimitSettings::default()).then_some(s)
    }
}

/// `--budget-id`: the budget object a team, key or user takes on (`modelgate budget`).
#[derive(Args, Default)]
pub struct BudgetIdArg {
    /// Attach this budget object (its limits and max_budget apply where the scope sets none
    /// of its own); on update, an empty value detaches it.
    #[arg(long, value_name = "ID")]
    budget_id: Option<String>,
}

/// `--clear`: fields an update unsets (comma-separated or repeated).
#[derive(Args, Default)]
pub struct ClearArgs {
    /// Fields to unset, e.g. rpm_limit,max_budget (see the command's help for the list).
    #[arg(long, value_delimiter = ',', value_name = "FIELD")]
    pub(super) clear: Vec<String>,
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create a team.
    Create {
        /// Unique name: a-z, 0-9, '.', '-'.
        #[arg(long)]
        alias: String,
        /// Models the team may use, comma-separated; wildcards only as written (`*`, `qwen2.5-*`).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        budget: BudgetIdArg,
        /// A JSON object of labels, e.g. '{"owner":"ana"}'.
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
        /// File with the team's redaction policy (JSON; `-` reads stdin; `--help` shows the
        /// format).
        #[arg(long, value_name = "FILE", long_help = super::redact::policy_format_help())]
        redaction_policy: Option<PathBuf>,
        /// Bypass redaction (each bypassed request is marked in the audit log).
        #[arg(long)]
        high_trust: bool,
        /// Keep the redacted prompt in audit records.
        #[arg(long)]
        keep_redacted_prompt: bool,
        /// Create the team blocked.
        #[arg(long)]
        blocked: bool,
        /// IdP groups whose members belong to the team, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "GROUPS")]
        idp_groups: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change a team. Clearable: rpm_limit, tpm_limit, max_parallel_requests, max_budget,
    /// budget_duration, metadata, redaction_policy.
    Update {
        /// Team id or alias.
        team: String,
        /// A new alias.
        #[arg(long)]
        alias: Option<String>,
        /// Replaces the allowlist, comma-separated.
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        budget: BudgetIdArg,
        /// Replaces the metadata (a JSON object).
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
        /// Replaces the redaction policy with this file's (`-` reads stdin; `--help` shows the
        /// format).
        #[arg(long, value_name = "FILE", long_help = super::redact::policy_format_help())]
        redaction_policy: Option<PathBuf>,
        #[arg(long, conflicts_with = "no_high_trust")]
        high_trust: bool,
        #[arg(long)]
        no_high_trust: bool,
        #[arg(long, conflicts_with = "no_keep_redacted_prompt")]
        keep_redacted_prompt: bool,
        #[arg(long)]
        no_keep_redacted_prompt: bool,
        /// Replaces the team's IdP groups, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "GROUPS")]
        idp_groups: Option<Vec<String>>,
        /// Removes all of the team's IdP groups.
        #[arg(long, conflicts_with = "idp_groups")]
        no_idp_groups: bool,
        #[command(flatten)]
        clear: ClearArgs,
        #[arg(long)]
        json: bool,
    },
    /// Refuse every request of the team's keys (403) until unblocked.
    Block {
        /// Team id or alias.
        team: String,
        #[arg(long)]
        json: bool,
    },
    /// Let the team's keys through again.
    Unblock {
        /// Team id or alias.
        team: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one team, with its current budget window.
    Show {
        /// Team id or alias.
        team: String,
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
    /// Create a key; it is shown once. Its models and limits must fit within its team's.
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
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        budget: BudgetIdArg,
        /// A JSON object of labels, e.g. '{"owner":"ana","env":"prod"}'; its top-level
        /// strings, numbers and booleans are tags for `key list --tag`.
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
        /// Create the key blocked.
        #[arg(long)]
        blocked: bool,
        /// A service key (Open WebUI): it may name the end user it calls for with Open
        /// WebUI's forwarded-user headers, who then gets their own limits and audit line.
        #[arg(long)]
        can_assert_user: bool,
        /// File holding Open WebUI's FORWARD_USER_INFO_HEADER_JWT_SECRET (`-` reads stdin):
        /// only the signed form is then accepted. Implies --can-assert-user.
        #[arg(long, value_name = "FILE")]
        assert_secret_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Change a key (within its team's models and limits). Clearable: rpm_limit, tpm_limit,
    /// max_parallel_requests, max_budget, budget_duration, metadata, expires, key_alias,
    /// user_id, models, assert_user_secret (back to plain forwarded-user headers).
    Update {
        /// The key's public id.
        public_id: String,
        #[arg(long)]
        alias: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// A duration from now (30d) or an RFC 3339 timestamp.
        #[arg(long)]
        expires: Option<String>,
        /// Replaces the key's allowlist, comma-separated.
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        budget: BudgetIdArg,
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
        /// Whether the key may name the end user it calls for (false also drops its secret).
        #[arg(long, value_name = "BOOL")]
        can_assert_user: Option<bool>,
        /// Replaces the HS256 secret of Open WebUI's signed form (`-` reads stdin).
        #[arg(long, value_name = "FILE")]
        assert_secret_file: Option<PathBuf>,
        #[command(flatten)]
        clear: ClearArgs,
        #[arg(long)]
        json: bool,
    },
    /// Refuse the key's requests until unblocked.
    Block {
        public_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Let the key through again.
    Unblock {
        public_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one key, with its last use and current budget window.
    Show {
        public_id: String,
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the secret).
    List {
        /// Only keys of this team (id or alias).
        #[arg(long)]
        team: Option<String>,
        /// Only keys of this user.
        #[arg(long)]
        user: Option<String>,
        /// Only keys whose metadata has this entry (repeat for all of several).
        #[arg(long, value_name = "NAME=VALUE")]
        tag: Vec<String>,
        /// Only keys whose expiry has passed.
        #[arg(long)]
        expired: bool,
        /// Only keys without a request in this many days.
        #[arg(long, value_name = "N")]
        unused_days: Option<u32>,
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Give a key a new secret (same public id, settings and spend); prints it once.
    Rotate {
        /// The key's public id (12 characters, as shown by `key list`).
        public_id: String,
        /// How long the old secret keeps working, e.g. 24h (at most 30d); 0 = not at all.
        #[arg(long, default_value = "0")]
        grace: String,
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

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (any stable id, e.g. an email) with optional limits across all of their keys.
    Create {
        /// The user's id: any stable string, usually an email address.
        user_id: String,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        budget: BudgetIdArg,
        #[arg(long)]
        json: bool,
    },
    /// Change a user's limits or team. Clearable: rpm_limit, tpm_limit, max_parallel_requests,
    /// max_budget, budget_duration, team.
    Update {
        user_id: String,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        budget: BudgetIdArg,
        /// The team (id or alias) the user belongs to when a service key (Open WebUI) names
        /// them; without one they are in the key's team.
        #[arg(long)]
        team: Option<String>,
        #[command(flatten)]
        clear: ClearArgs,
        #[arg(long)]
        json: bool,
    },
    Show {
        user_id: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Add a model route: the public name clients send, where it is served, its prices.
    #[command(alias = "create")]
    Add {
        /// The public name clients send (no wildcards).
        name: String,
        /// The upstream's own name for it (the request body is rewritten); default: NAME.
        #[arg(long, value_name = "NAME")]
        upstream_model: Option<String>,
        /// Envoy cluster of the model pool; default: the filter's default cluster.
        #[arg(long)]
        cluster: Option<String>,
        /// Price per million prompt tokens (default 0).
        #[arg(long, value_name = "PRICE", default_value_t = 0.0)]
        input_cost_per_mtok: f64,
        /// Price per million completion tokens (default 0).
        #[arg(long, value_name = "PRICE", default_value_t = 0.0)]
        output_cost_per_mtok: f64,
        /// Completion tokens reserved for admission when a request sets no max_tokens.
        #[arg(long, value_name = "N")]
        default_max_tokens: Option<u64>,
        /// Output cap: a request that asks for no max_tokens (or max_completion_tokens, Ollama
        /// options.num_predict) gets N, one that asks for more is lowered to N; smaller
        /// values pass unchanged. Default: no cap.
        #[arg(long, value_name = "N")]
        max_output_tokens: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Change a model route ("" resets --upstream-model/--cluster, 0 --default-max-tokens
    /// and --max-output-tokens).
    Update {
        name: String,
        #[arg(long, value_name = "NAME")]
        upstream_model: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long, value_name = "PRICE")]
        input_cost_per_mtok: Option<f64>,
        #[arg(long, value_name = "PRICE")]
        output_cost_per_mtok: Option<f64>,
        #[arg(long, value_name = "N")]
        default_max_tokens: Option<u64>,
        /// Output cap (see `model add --help`); 0 removes it.
        #[arg(long, value_name = "N")]
        max_output_tokens: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a model route: clients can no longer ask for it.
    #[command(alias = "delete")]
    Remove {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

/// `modelgate spend`: one key's, team's or user's spend.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("scope").required(true).multiple(false))]
pub struct SpendArgs {
    /// A key's public id.
    #[arg(long, group = "scope")]
    key: Option<String>,
    /// A team id or alias.
    #[arg(long, group = "scope")]
    team: Option<String>,
    /// A user id (e.g. an email).
    #[arg(long, group = "scope")]
    user: Option<String>,
    /// Add daily totals (UTC) for the last --days days.
    #[arg(long)]
    history: bool,
    #[arg(long, default_value_t = 30, value_name = "N")]
    days: u32,
    #[arg(long)]
    json: bool,
}

pub(super) async fn connect(global: &GlobalArgs) -> Result<AdminClient, CliError> {
    let (addr, key) = super::connect_args(global)?;
    AdminClient::connect(addr, key).await
}

/// The file's text (a redaction policy, a secret); `-` is stdin.
pub(super) fn read_policy(path: &Path) -> Result<String, CliError> {
    let read = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|source| CliError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

/// Key commands take public ids: a whole key on a command line would end up in shell history.
fn public_id(s: &str) -> Result<String, CliError> {
    domain::parse_public_id(s).map_err(|e| CliError::Usage(e.to_string()))
}

fn flag(set: bool, unset: bool) -> Option<bool> {
    match (set, unset) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

pub async fn run_team(global: &GlobalArgs, command: TeamCommand) -> Result<(), CliError> {
    let mut client = connect(global).await?;
    let mut out = std::io::stdout().lock();
    let admin = client.admin();
    match command {
        TeamCommand::Create {
            alias,
            models,
            limits,
            budget,
            metadata,
            redaction_policy,
            high_trust,
            keep_redacted_prompt,
            blocked,
            idp_groups,
            json,
        } => {
            let request = pb::CreateTeamRequest {
                alias,
                models,
                limits: limits.settings(),
                budget_id: budget.budget_id,
                metadata_json: metadata.unwrap_or_default(),
                redaction_policy_json: redaction_policy
                    .as_deref()
                    .map(read_policy)
                    .transpose()?
                    .unwrap_or_default(),
                high_trust,
                keep_redacted_prompt,
                blocked,
                idp_groups,
            };
            let team = admin.create_team(request).await?.into_inner();
            output::team_created(&mut out, &team, json)
        }
        TeamCommand::Update {
            team,
            alias,
            models,
            limits,
            budget,
            metadata,
            redaction_policy,
            high_trust,
            no_high_trust,
            keep_redacted_prompt,
            no_keep_redacted_prompt,
            idp_groups,
            no_idp_groups,
            clear,
            json,
        } => {
            let idp_groups = match (idp_groups, no_idp_groups) {
                (_, true) => Some(pb::NameList::default()),
                (groups, false) => groups.map(|names| pb::NameList { names }),
            };
            let request = pb::UpdateTeamRequest {
                team,
                alias,
                models: models.map(|models| pb::ModelList { models }),
                limits: limits.settings(),
                budget_id: budget.budget_id,
                metadata_json: metadata,
                redaction_policy_json: redaction_policy.as_deref().map(read_policy).transpose()?,
                high_trust: flag(high_trust, no_high_trust),
                keep_redacted_prompt: flag(keep_redacted_prompt, no_keep_redacted_prompt),
                blocked: None,
                clear: clear.clear,
                idp_groups,
            };
            let team = admin.update_team(request).await?.into_inner();
            output::team(&mut out, &team, "Updated", json)
        }
        TeamCommand::Block { team, json } => {
            let team = admin.block_team(pb::TeamRef { team }).await?.into_inner();
            output::team(&mut out, &team, "Blocked", json)
        }
        TeamCommand::Unblock { team, json } => {
            let team = admin.unblock_team(pb::TeamRef { team }).await?.into_inner();
            output::team(&mut out, &team, "Unblocked", json)
        }
        TeamCommand::Show { team, json } => {
            let team = admin.get_team(pb::TeamRef { team }).await?.into_inner();
            output::team(&mut out, &team, "Team", json)
        }
        TeamCommand::List { json } => {
            let teams = admin
                .list_teams(pb::ListTeamsRequest {})
                .await?
                .into_inner()
                .teams;
            output::teams(&mut out, &teams, json)
        }
    }
}

pub async fn run_key(global: &GlobalArgs, command: KeyCommand) -> Result<(), CliError> {
    let mut client = connect(global).await?;
    let mut out = std::io::stdout().lock();
    let admin = client.admin();
    match command {
        KeyCommand::Create {
            team,
            user,
            alias,
            expires,
            models,
            limits,
            budget,
            metadata,
            blocked,
            can_assert_user,
            assert_secret_file,
            json,
        } => {
            let request = pb::CreateKeyRequest {
                team: team.clone(),
                user_id: user.unwrap_or_default(),
                key_alias: alias.unwrap_or_default(),
                expires: expires.unwrap_or_default(),
                models,
                limits: limits.settings(),
                budget_id: budget.budget_id,
                metadata_json: metadata.unwrap_or_default(),
                blocked,
                can_assert_user,
                assert_user_secret: assert_secret_file
                    .as_deref()
                    .map(read_policy)
                    .transpose()?
                    .unwrap_or_default(),
            };
            let created = admin.create_key(request).await?.into_inner();
            output::key_created(&mut out, &created, team.trim(), json)
        }
        KeyCommand::Update {
            public_id: id,
            alias,
            user,
            expires,
            models,
            limits,
            budget,
            metadata,
            can_assert_user,
            assert_secret_file,
            clear,
            json,
        } => {
            let request = pb::UpdateKeyRequest {
                key: public_id(&id)?,
                key_alias: alias,
                user_id: user,
                expires,
                models: models.map(|models| pb::ModelList { models }),
                limits: limits.settings(),
                budget_id: budget.budget_id,
                metadata_json: metadata,
                blocked: None,
                clear: clear.clear,
                can_assert_user,
                assert_user_secret: assert_secret_file.as_deref().map(read_policy).transpose()?,
            };
            let key = admin.update_key(request).await?.into_inner();
            output::key(&mut out, &key, "Updated", json)
        }
        KeyCommand::Block {
            public_id: id,
            json,
        } => {
            let key = pb::KeyRef {
                key: public_id(&id)?,
            };
            let key = admin.block_key(key).await?.into_inner();
            output::key(&mut out, &key, "Blocked", json)
        }
        KeyCommand::Unblock {
            public_id: id,
            json,
        } => {
            let key = pb::KeyRef {
                key: public_id(&id)?,
            };
            let key = admin.unblock_key(key).await?.into_inner();
            output::key(&mut out, &key, "Unblocked", json)
        }
        KeyCommand::Show {
            public_id: id,
            json,
        } => {
            let key = pb::KeyRef {
                key: public_id(&id)?,
            };
            let key = admin.get_key(key).await?.into_inner();
            output::key(&mut out, &key, "Key", json)
        }
        KeyCommand::List {
            team,
            user,
            tag,
            expired,
            unused_days,
            all,
            json,
        } => {
            let request = pb::ListKeysRequest {
                team: team.unwrap_or_default(),
                include_revoked: all,
                user_id: user.unwrap_or_default(),
                tags: tag,
                expired,
                unused_days: unused_days.unwrap_or(0),
            };
            let keys = admin.list_keys(request).await?.into_inner().keys;
            if json {
                output::keys_json(&mut out, &keys)
            } else {
                // Team aliases read better than ids in a table.
                let teams = admin
                    .list_teams(pb::ListTeamsRequest {})
                    .await?
                    .into_inner()
                    .teams;
                output::keys_table(&mut out, &keys, &teams)
            }
        }
        KeyCommand::Rotate {
            public_id,
            grace,
            json,
        } => {
            let created = admin
                .regenerate_key(pb::RegenerateKeyRequest {
                    public_id,
                    grace_period: grace,
                })
                .await?
                .into_inner();
            let team = created
                .key
                .as_ref()
                .map(|k| k.team_id.clone())
                .unwrap_or_default();
            output::key_created(&mut out, &created, &team, json)
        }
        KeyCommand::Revoke { public_id, json } => {
            let key = admin
                .revoke_key(pb::RevokeKeyRequest { public_id })
                .await?
                .into_inner();
            output::key_revoked(&mut out, &key, json)
        }
    }
}

pub async fn run_user(global: &GlobalArgs, command: UserCommand) -> Result<(), CliError> {
    let mut client = connect(global).await?;
    let mut out = std::io::stdout().lock();
    let admin = client.admin();
    match command {
        UserCommand::Create {
            user_id,
            limits,
            budget,
            json,
        } => {
            let request = pb::CreateUserRequest {
                user_id,
                limits: limits.settings(),
                budget_id: budget.budget_id,
            };
            let user = admin.create_user(request).await?.into_inner();
            output::user(&mut out, &user, "Created user", json)
        }
        UserCommand::Update {
            user_id,
            limits,
            budget,
            team,
            clear,
            json,
        } => {
            let request = pb::UpdateUserRequest {
                user_id,
                limits: limits.settings(),
                budget_id: budget.budget_id,
                clear: clear.clear,
                team,
            };
            let user = admin.update_user(request).await?.into_inner();
            output::user(&mut out, &user, "Updated user", json)
        }
        UserCommand::Show { user_id, json } => {
            let user = admin.get_user(pb::UserRef { user_id }).await?.into_inner();
            output::user(&mut out, &user, "User", json)
        }
        UserCommand::List { json } => {
            let users = admin
                .list_users(pb::ListUsersRequest {})
                .await?
                .into_inner()
                .users;
            output::users(&mut out, &users, json)
        }
    }
}

pub async fn run_model(global: &GlobalArgs, command: ModelCommand) -> Result<(), CliError> {
    let mut client = connect(global).await?;
    let mut out = std::io::stdout().lock();
    let admin = client.admin();
    match command {
        ModelCommand::Add {
            name,
            upstream_model,
            cluster,
            input_cost_per_mtok,
            output_cost_per_mtok,
            default_max_tokens,
            max_output_tokens,
            json,
        } => {
            let request = pb::CreateModelRequest {
                name,
                upstream_model: upstream_model.unwrap_or_default(),
                cluster: cluster.unwrap_or_default(),
                input_cost_per_mtok,
                output_cost_per_mtok,
                default_max_tokens: default_max_tokens.unwrap_or(0),
                max_output_tokens: max_output_tokens.unwrap_or(0),
            };
            let model = admin.create_model(request).await?.into_inner();
            output::model(&mut out, &model, "Added model", json)
        }
        ModelCommand::Update {
            name,
            upstream_model,
            cluster,
            input_cost_per_mtok,
            output_cost_per_mtok,
            default_max_tokens,
            max_output_tokens,
            json,
        } => {
            let request = pb::UpdateModelRequest {
                name,
                upstream_model,
                cluster,
                input_cost_per_mtok,
                output_cost_per_mtok,
                default_max_tokens,
                max_output_tokens,
            };
            let model = admin.update_model(request).await?.into_inner();
            output::model(&mut out, &model, "Updated model", json)
        }
        ModelCommand::List { json } => {
            let models = admin
                .list_models(pb::ListModelsRequest {})
                .await?
                .into_inner()
                .models;
            output::models(&mut out, &models, json)
        }
        ModelCommand::Remove { name, json } => {
            let model = admin
                .delete_model(pb::ModelRef { name })
                .await?
                .into_inner();
            output::model(&mut out, &model, "Removed model", json)
        }
    }
}

pub async fn run_spend(global: &GlobalArgs, args: SpendArgs) -> Result<(), CliError> {
    use pb::get_spend_request::Scope;
    let scope = match (args.key, args.team, args.user) {
        (Some(key), _, _) => Scope::Key(public_id(&key)?),
        (_, Some(team), _) => Scope::Team(team),
        (_, _, Some(user)) => Scope::UserId(user),
        (None, None, None) => {
            return Err(CliError::Usage(
                "name one of --key, --team or --user".into(),
            ))
        }
    };
    let mut client = connect(global).await?;
    let request = pb::GetSpendRequest {
        scope: Some(scope),
        history_days: if args.history { args.days } else { 0 },
    };
    let report = client.admin().get_spend(request).await?.into_inner();
    output::spend(&mut std::io::stdout().lock(), &report, args.json)
}
