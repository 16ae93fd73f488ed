//! `modelgate idp`: IdP issuers whose JWTs filters accept: add, update, list (with the state
//! of their keys) and remove, over gRPC like every admin command.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use modelgate_proto::v1 as pb;
use serde::Serialize;

use super::admin::{connect, read_policy, ClearArgs, LimitArgs};
use super::output::{self, json_line, list, table, time, LimitsJson};
use super::{CliError, GlobalArgs};
use crate::clock::Timestamp;
use crate::identity::split_admin_role;

/// `GROUP=ROLE` as given to `--admin-role` (the role is checked by the control plane).
fn admin_role_arg(pair: &str) -> Result<pb::AdminRoleGroup, String> {
    split_admin_role(pair)
        .map(|(group, role)| pb::AdminRoleGroup { group, role })
        .map_err(|e| e.to_string())
}

/// Limits of users first seen through the issuer (just-in-time), until an admin sets theirs.
#[derive(Args, Default)]
pub struct DefaultLimitArgs {
    /// Requests per minute of each new user.
    #[arg(long, value_name = "N")]
    default_rpm: Option<u64>,
    /// Tokens per minute of each new user.
    #[arg(long, value_name = "N")]
    default_tpm: Option<u64>,
    /// Requests in flight at once of each new user.
    #[arg(long, value_name = "N")]
    default_max_parallel: Option<u32>,
    /// Spending cap of each new user.
    #[arg(long, value_name = "AMOUNT")]
    default_max_budget: Option<f64>,
    /// Rolling budget window of each new user: 1m to 1y.
    #[arg(long, value_name = "DURATION")]
    default_budget_duration: Option<String>,
    /// rolling, calendar-day, calendar-week or calendar-month.
    #[arg(long, value_name = "RESET")]
    default_budget_reset: Option<String>,
}

impl DefaultLimitArgs {
    fn settings(self) -> Option<pb::LimitSettings> {
        LimitArgs {
            rpm: self.default_rpm,
            tpm: self.default_tpm,
            max_parallel: self.default_max_parallel,
            max_budget: self.default_max_budget,
            budget_duration: self.default_budget_duration,
            budget_reset: self.default_budget_reset,
        }
        .settings()
    }
}

/// Where the issuer's keys come from; neither = OIDC discovery from the issuer.
#[derive(Args, Default)]
#[group(multiple = false)]
pub struct JwksArgs {
    /// Fetch the JWKS from this URL (and keep it fresh).
    #[arg(long, value_name = "URL")]
    jwks_url: Option<String>,
    /// Use this JWKS document (public keys only; `-` reads stdin); never fetched.
    #[arg(long, value_name = "FILE")]
    jwks_file: Option<PathBuf>,
}

impl JwksArgs {
    fn document(&self) -> Result<Option<String>, CliError> {
        self.jwks_file.as_deref().map(read_policy).transpose()
    }
}

#[derive(Subcommand)]
pub enum IdpCommand {
    /// Register an issuer; its keys are fetched at once (unless uploaded with --jwks-file).
    Add {
        /// Exactly the "iss" of its tokens: an https URL (http only on loopback).
        #[arg(long)]
        issuer: String,
        /// Accepted "aud" values (repeat or comma-separate); at least one.
        #[arg(long = "audience", value_delimiter = ',', required = true)]
        audiences: Vec<String>,
        #[command(flatten)]
        jwks: JwksArgs,
        /// Claim naming the user (default: sub).
        #[arg(long, value_name = "CLAIM")]
        user_claim: Option<String>,
        /// Claim holding the user's groups (default: groups).
        #[arg(long, value_name = "CLAIM")]
        groups_claim: Option<String>,
        /// A token needs one of these groups, comma-separated (default: any).
        #[arg(long, value_delimiter = ',', value_name = "GROUPS")]
        allowed_groups: Vec<String>,
        /// Leeway for exp/nbf/iat in seconds (default 60, at most 600).
        #[arg(long, value_name = "SECONDS")]
        clock_skew: Option<u32>,
        #[command(flatten)]
        limits: DefaultLimitArgs,
        /// Members of GROUP may call the admin API with their tokens, as ROLE (admin,
        /// team_admin, auditor or member; team roles act for the teams their groups map to).
        /// Repeatable; a token with several mapped groups takes the first of admin,
        /// team_admin, auditor, member.
        #[arg(long = "admin-role", value_name = "GROUP=ROLE", value_parser = admin_role_arg)]
        admin_roles: Vec<pb::AdminRoleGroup>,
        #[arg(long)]
        json: bool,
    },
    /// Change an issuer. Clearable (default user limits): rpm_limit, tpm_limit,
    /// max_parallel_requests, max_budget, budget_duration.
    Update {
        issuer: String,
        /// Replaces the accepted audiences.
        #[arg(long = "audience", value_delimiter = ',')]
        audiences: Option<Vec<String>>,
        #[command(flatten)]
        jwks: JwksArgs,
        /// Switch to OIDC discovery from the issuer.
        #[arg(long, conflicts_with_all = ["jwks_url", "jwks_file"])]
        discovery: bool,
        #[arg(long, value_name = "CLAIM")]
        user_claim: Option<String>,
        #[arg(long, value_name = "CLAIM")]
        groups_claim: Option<String>,
        /// Replaces the allowed groups, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "GROUPS")]
        allowed_groups: Option<Vec<String>>,
        /// Allows every group again.
        #[arg(long, conflicts_with = "allowed_groups")]
        any_group: bool,
        #[arg(long, value_name = "SECONDS")]
        clock_skew: Option<u32>,
        #[command(flatten)]
        limits: DefaultLimitArgs,
        /// Replaces the group → admin role mapping (see `idp add --admin-role`).
        #[arg(long = "admin-role", value_name = "GROUP=ROLE", value_parser = admin_role_arg)]
        admin_roles: Option<Vec<pb::AdminRoleGroup>>,
        /// No group may administer with this issuer's tokens any more.
        #[arg(long, conflicts_with = "admin_roles")]
        no_admin_roles: bool,
        #[command(flatten)]
        clear: ClearArgs,
        #[arg(long)]
        json: bool,
    },
    /// Issuers with their keys: how many, their kids, the JWKS's age and the last error.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop accepting the issuer's tokens.
    #[command(alias = "delete")]
    Remove {
        issuer: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run_idp(global: &GlobalArgs, command: IdpCommand) -> Result<(), CliError> {
    let mut client = connect(global).await?;
    let mut out = std::io::stdout().lock();
    let admin = client.admin();
    match command {
        IdpCommand::Add {
            issuer,
            audiences,
            jwks,
            user_claim,
            groups_claim,
            allowed_groups,
            clock_skew,
            limits,
            admin_roles,
            json,
        } => {
            let request = pb::CreateIdentityProviderRequest {
                issuer,
                audiences,
                jwks_json: jwks.document()?.unwrap_or_default(),
                jwks_url: jwks.jwks_url.unwrap_or_default(),
                user_claim: user_claim.unwrap_or_default(),
                groups_claim: groups_claim.unwrap_or_default(),
                allowed_groups,
                clock_skew_s: clock_skew,
                default_user_limits: limits.settings(),
                admin_roles,
            };
            let p = admin.create_identity_provider(request).await?.into_inner();
            provider(&mut out, &p, "Added", json)
        }
        IdpCommand::Update {
            issuer,
            audiences,
            jwks,
            discovery,
            user_claim,
            groups_claim,
            allowed_groups,
            any_group,
            clock_skew,
            limits,
            admin_roles,
            no_admin_roles,
            clear,
            json,
        } => {
            let allowed_groups = match (allowed_groups, any_group) {
                (_, true) => Some(pb::NameList::default()),
                (groups, false) => groups.map(|names| pb::NameList { names }),
            };
            let request = pb::UpdateIdentityProviderRequest {
                issuer,
                audiences: audiences.map(|names| pb::NameList { names }),
                jwks_json: jwks.document()?,
                jwks_url: jwks.jwks_url,
                use_discovery: discovery,
                user_claim,
                groups_claim,
                allowed_groups,
                clock_skew_s: clock_skew,
                default_user_limits: limits.settings(),
                clear: clear.clear,
                admin_roles: match (admin_roles, no_admin_roles) {
                    (_, true) => Some(pb::AdminRoleGroupList::default()),
                    (groups, false) => groups.map(|groups| pb::AdminRoleGroupList { groups }),
                },
            };
            let p = admin.update_identity_provider(request).await?.into_inner();
            provider(&mut out, &p, "Updated", json)
        }
        IdpCommand::List { json } => {
            let providers = admin
                .list_identity_providers(pb::ListIdentityProvidersRequest {})
                .await?
                .into_inner()
                .identity_providers;
            provider_list(&mut out, &providers, json)
        }
        IdpCommand::Remove { issuer, json } => {
            let p = admin
                .delete_identity_provider(pb::IdentityProviderRef { issuer })
                .await?
                .into_inner();
            provider(&mut out, &p, "Removed", json)
        }
    }
}

#[derive(Serialize)]
struct ProviderJson<'a> {
    issuer: &'a str,
    audiences: &'a [String],
    jwks_source: &'a str,
    jwks_url: Option<&'a str>,
    key_count: usize,
    key_ids: &'a [String],
    jwks_fetched_at: Option<String>,
    /// Seconds since the keys were fetched; `null` = never.
    jwks_age_s: Option<i64>,
    next_refresh_at: Option<String>,
    last_error: Option<&'a str>,
    last_error_at: Option<String>,
    user_claim: &'a str,
    groups_claim: &'a str,
    allowed_groups: &'a [String],
    clock_skew_s: u32,
    default_user_limits: LimitsJson<'a>,
    /// Group → admin role.
    admin_roles: std::collections::BTreeMap<&'a str, &'a str>,
    created_at: Option<String>,
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn age_s(ms: i64) -> Option<i64> {
    (ms != 0).then(|| (Timestamp::now().as_millis() - ms).max(0) / 1000)
}

impl<'a> From<&'a pb::IdentityProviderInfo> for ProviderJson<'a> {
    fn from(p: &'a pb::IdentityProviderInfo) -> Self {
        Self {
            issuer: &p.issuer,
            audiences: &p.audiences,
            jwks_source: &p.jwks_source,
            jwks_url: non_empty(&p.jwks_url),
            key_count: p.key_ids.len(),
            key_ids: &p.key_ids,
            jwks_fetched_at: time(p.jwks_fetched_at_ms),
            jwks_age_s: age_s(p.jwks_fetched_at_ms),
            next_refresh_at: time(p.next_refresh_at_ms),
            last_error: non_empty(&p.last_error),
            last_error_at: time(p.last_error_at_ms),
            user_claim: if p.user_claim.is_empty() {
                "sub"
            } else {
                &p.user_claim
            },
            groups_claim: if p.groups_claim.is_empty() {
                "groups"
            } else {
                &p.groups_claim
            },
            allowed_groups: &p.allowed_groups,
            clock_skew_s: p.clock_skew_s,
            default_user_limits: p.default_user_limits.as_ref().into(),
            admin_roles: p
                .admin_roles
                .iter()
                .map(|m| (m.group.as_str(), m.role.as_str()))
                .collect(),
            created_at: time(p.created_at_ms),
        }
    }
}

/// `42s`, `5m`, `3h`, `2d`; `never` when the keys were never fetched.
fn age(ms: i64) -> String {
    match age_s(ms) {
        None => "never".to_owned(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 2 * 3600 => format!("{}m", s / 60),
        Some(s) if s < 2 * 86_400 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

fn keys_line(p: &pb::IdentityProviderInfo) -> String {
    let kids: Vec<&str> = p
        .key_ids
        .iter()
        .map(|k| if k.is_empty() { "(no kid)" } else { k.as_str() })
        .collect();
    format!("{} ({})", p.key_ids.len(), kids.join(", "))
}

fn provider(
    out: &mut impl Write,
    p: &pb::IdentityProviderInfo,
    action: &str,
    json: bool,
) -> Result<(), CliError> {
    if json {
        return json_line(out, &ProviderJson::from(p));
    }
    let j = ProviderJson::from(p);
    writeln!(out, "{action} identity provider {}", p.issuer)?;
    writeln!(out, "audiences:      {}", list(&p.audiences))?;
    writeln!(
        out,
        "jwks:           {}{}",
        p.jwks_source,
        j.jwks_url.map_or_else(String::new, |u| format!(" ({u})"))
    )?;
    writeln!(
        out,
        "keys:           {}, fetched {} ago",
        keys_line(p),
        age(p.jwks_fetched_at_ms)
    )?;
    if let Some(error) = j.last_error {
        writeln!(
            out,
            "last error:     {error} (at {})",
            j.last_error_at.unwrap_or_default()
        )?;
    }
    writeln!(
        out,
        "claims:         user {}, groups {}",
        j.user_claim, j.groups_claim
    )?;
    writeln!(out, "allowed groups: {}", list(&p.allowed_groups))?;
    writeln!(out, "clock skew:     {} s", p.clock_skew_s)?;
    let roles: Vec<String> = p
        .admin_roles
        .iter()
        .map(|m| format!("{}={}", m.group, m.role))
        .collect();
    writeln!(out, "admin roles:    {}", list(&roles))?;
    writeln!(out, "new users get:")?;
    output::limit_lines(out, p.default_user_limits.as_ref())?;
    Ok(())
}

fn provider_list(
    out: &mut impl Write,
    providers: &[pb::IdentityProviderInfo],
    json: bool,
) -> Result<(), CliError> {
    if json {
        let items: Vec<ProviderJson<'_>> = providers.iter().map(ProviderJson::from).collect();
        return json_line(out, &items);
    }
    let rows: Vec<Vec<String>> = providers
        .iter()
        .map(|p| {
            vec![
                p.issuer.clone(),
                list(&p.audiences),
                p.jwks_source.clone(),
                keys_line(p),
                age(p.jwks_fetched_at_ms),
                non_empty(&p.last_error).unwrap_or("-").to_owned(),
                time(p.last_error_at_ms).unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    table(
        out,
        &[
            "ISSUER",
            "AUDIENCES",
            "SOURCE",
            "KEYS",
            "AGE",
            "LAST_ERROR",
            "ERROR_AT",
        ],
        &rows,
    )
}
