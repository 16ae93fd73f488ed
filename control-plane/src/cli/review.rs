//! `modelgate review`: an access review of every live key (see [`crate::review`]), as a table,
//! CSV or JSON. Exits 1 when any key is flagged, so a scheduled job can alert on it. Needs a
//! role that reads keys, users and the audit log (admin or auditor).

use std::collections::HashMap;
use std::io::Write;

use clap::{Args, ValueEnum};
use modelgate_proto::v1 as pb;
use serde::Serialize;

use super::client::AdminClient;
use super::output::{json_line, non_empty, short_time, table, time};
use super::{CliError, GlobalArgs};
use crate::review::{self, KeyReview, ReviewSettings};

#[derive(Args)]
pub struct ReviewArgs {
    /// Only this team's keys (id or alias).
    #[arg(long)]
    team: Option<String>,
    /// Keys without a request in this many days are flagged `unused`; spend is summed over
    /// the same period.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    unused_days: u32,
    /// Keys made longer ago than this are flagged `rotation_due`.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    rotation_days: u32,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Serialize)]
struct ReviewJson<'a> {
    public_id: &'a str,
    team: Option<&'a str>,
    owner: Option<&'a str>,
    tags: &'a [String],
    created_at: Option<String>,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    blocked: bool,
    spend: f64,
    flags: Vec<&'static str>,
}

impl<'a> From<&'a KeyReview> for ReviewJson<'a> {
    fn from(k: &'a KeyReview) -> Self {
        Self {
            public_id: &k.public_id,
            team: non_empty(&k.team),
            owner: non_empty(&k.owner),
            tags: &k.tags,
            created_at: time(k.created_at_ms),
            expires_at: time(k.expires_at_ms),
            last_used_at: time(k.last_used_at_ms),
            blocked: k.blocked,
            spend: k.spend,
            flags: k.flags.iter().map(|f| f.as_str()).collect(),
        }
    }
}

pub async fn run_review(global: &GlobalArgs, args: ReviewArgs) -> Result<(), CliError> {
    let (addr, credential) = super::connect_args(global)?;
    let mut client = AdminClient::connect(addr, credential).await?;
    let now_ms = crate::clock::Timestamp::now().as_millis();
    let keys = client
        .admin()
        .list_keys(pb::ListKeysRequest {
            team: args.team.clone().unwrap_or_default(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .keys;
    let teams = client
        .admin()
        .list_teams(pb::ListTeamsRequest::default())
        .await?
        .into_inner()
        .teams;
    let users = client
        .admin()
        .list_users(pb::ListUsersRequest::default())
        .await?
        .into_inner()
        .users;
    let settings = ReviewSettings {
        now_ms,
        unused_days: args.unused_days,
        rotation_days: args.rotation_days,
    };
    let spend: HashMap<String, f64> = client
        .audit()
        .report(pb::AuditReportRequest {
            filter: Some(pb::AuditFilter {
                from_ms: settings.period_start_ms(),
                kind: "request".into(),
                ..Default::default()
            }),
            group_by: pb::AuditGroupBy::Key.into(),
        })
        .await?
        .into_inner()
        .rows
        .into_iter()
        .map(|row| (row.group, row.spend))
        .collect();
    let reviewed = review::review(&keys, &teams, &users, &spend, settings);
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let items: Vec<ReviewJson<'_>> = reviewed.iter().map(ReviewJson::from).collect();
            json_line(&mut out, &items)?;
        }
        Format::Csv => csv(&mut out, &reviewed)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = reviewed.iter().map(|k| cells(k, "-")).collect();
            table(&mut out, &HEADER, &rows)?;
        }
    }
    let flagged = reviewed.iter().filter(|k| !k.flags.is_empty()).count();
    if flagged > 0 {
        return Err(CliError::Flagged {
            flagged,
            reviewed: reviewed.len(),
        });
    }
    Ok(())
}

const HEADER: [&str; 10] = [
    "PUBLIC_ID",
    "TEAM",
    "OWNER",
    "TAGS",
    "CREATED",
    "EXPIRES",
    "LAST_USED",
    "STATUS",
    "SPEND",
    "FLAGS",
];

/// One row; `none` stands for an empty cell (a dash in tables, nothing in CSV).
fn cells(k: &KeyReview, none: &str) -> Vec<String> {
    let or_none = |s: &str| {
        if s.is_empty() {
            none.to_owned()
        } else {
            s.to_owned()
        }
    };
    let date = |ms: i64, never: &str| short_time(ms).unwrap_or_else(|| never.to_owned());
    vec![
        k.public_id.clone(),
        or_none(&k.team),
        or_none(&k.owner),
        or_none(&k.tags.join(" ")),
        date(k.created_at_ms, none),
        date(k.expires_at_ms, "never"),
        date(k.last_used_at_ms, "never"),
        if k.blocked { "blocked" } else { "active" }.to_owned(),
        format!("{:.4}", k.spend),
        or_none(
            &k.flags
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ]
}

/// RFC 4180: every field quoted, quotes doubled, so tags and owners with commas stay whole.
fn csv(out: &mut impl Write, reviewed: &[KeyReview]) -> std::io::Result<()> {
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| {
        let quoted: Vec<String> = cells
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        write!(out, "{}\r\n", quoted.join(","))
    };
    line(
        out,
        &mut HEADER
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    )?;
    for k in reviewed {
        line(out, &mut cells(k, "").iter().map(String::as_str))?;
    }
    Ok(())
}
