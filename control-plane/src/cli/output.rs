//! What admin commands print: aligned tables for people, JSON for scripts.
//!
//! JSON uses the REST API's field names (LiteLLM's where it has one): `rpm_limit`,
//! `tpm_limit`, `max_parallel_requests`, `max_budget`, `budget_duration`, `budget_reset`,
//! times in RFC 3339 (UTC), `null` for "none".

use std::collections::HashMap;
use std::io::Write;

use modelgate_proto::v1 as pb;
use serde::Serialize;
use serde_json::Value;

use super::CliError;
use crate::clock::Timestamp;

/// `*_ms` fields use 0 for "none".
pub(super) fn time(ms: i64) -> Option<String> {
    (ms != 0).then(|| Timestamp::from_millis(ms).to_rfc3339())
}

/// The same, to the second, for tables.
pub(super) fn short_time(ms: i64) -> Option<String> {
    (ms != 0).then(|| Timestamp::from_millis(ms).to_rfc3339_seconds())
}

pub(super) fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// JSON text from the server as a value (it is always an object; `null` if not).
fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

#[derive(Serialize, Default)]
pub(super) struct LimitsJson<'a> {
    rpm_limit: Option<u64>,
    tpm_limit: Option<u64>,
    max_parallel_requests: Option<u32>,
    max_budget: Option<f64>,
    budget_duration: Option<&'a str>,
    budget_reset: Option<&'a str>,
}

impl<'a> From<Option<&'a pb::LimitSettings>> for LimitsJson<'a> {
    fn from(l: Option<&'a pb::LimitSettings>) -> Self {
        let Some(l) = l else {
            return Self::default();
        };
        Self {
            rpm_limit: l.rpm_limit,
            tpm_limit: l.tpm_limit,
            max_parallel_requests: l.max_parallel_requests,
            max_budget: l.max_budget,
            budget_duration: l.budget_duration.as_deref(),
            budget_reset: l.budget_reset.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct SpendJson {
    spend: f64,
    window_start: Option<String>,
    /// `null` when the window never ends.
    reset_at: Option<String>,
    exhausted: bool,
}

impl From<&pb::SpendState> for SpendJson {
    fn from(s: &pb::SpendState) -> Self {
        Self {
            spend: s.spend,
            window_start: time(s.window_start_ms),
            reset_at: time(s.window_reset_at_ms),
            exhausted: s.exhausted,
        }
    }
}

#[derive(Serialize)]
struct TeamJson<'a> {
    team_id: &'a str,
    alias: &'a str,
    models: &'a [String],
    blocked: bool,
    created_at: Option<String>,
    #[serde(flatten)]
    limits: LimitsJson<'a>,
    metadata: Value,
    redaction_policy: Option<Value>,
    high_trust: bool,
    keep_redacted_prompt: bool,
    idp_groups: &'a [String],
    spend: Option<SpendJson>,
    budget_id: Option<&'a str>,
}

impl<'a> From<&'a pb::Team> for TeamJson<'a> {
    fn from(t: &'a pb::Team) -> Self {
        Self {
            team_id: &t.team_id,
            alias: &t.alias,
            models: &t.models,
            blocked: t.blocked,
            created_at: time(t.created_at_ms),
            limits: t.limits.as_ref().into(),
            metadata: json_value(&t.metadata_json),
            redaction_policy: non_empty(&t.redaction_policy_json).map(json_value),
            high_trust: t.high_trust,
            keep_redacted_prompt: t.keep_redacted_prompt,
            idp_groups: &t.idp_groups,
            spend: t.spend.as_ref().map(SpendJson::from),
            budget_id: non_empty(&t.budget_id),
        }
    }
}

#[derive(Serialize)]
struct KeyJson<'a> {
    public_id: &'a str,
    /// `null` for a personal key.
    team_id: Option<&'a str>,
    user_id: Option<&'a str>,
    key_alias: Option<&'a str>,
    models: &'a [String],
    last4: &'a str,
    status: &'static str,
    blocked: bool,
    created_at: Option<String>,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
    #[serde(flatten)]
    limits: LimitsJson<'a>,
    metadata: Value,
    spend: Option<SpendJson>,
    can_assert_user: bool,
    has_assert_user_secret: bool,
    budget_id: Option<&'a str>,
}

/// Expiry is not a stored state: the filter compares `expires_at` with its clock, and so
/// does the listing.
fn status(k: &pb::Key) -> &'static str {
    if k.revoked {
        "revoked"
    } else if k.blocked {
        "blocked"
    } else if k.expires_at_ms != 0 && k.expires_at_ms <= Timestamp::now().as_millis() {
        "expired"
    } else {
        "active"
    }
}

impl<'a> From<&'a pb::Key> for KeyJson<'a> {
    fn from(k: &'a pb::Key) -> Self {
        Self {
            public_id: &k.public_id,
            team_id: non_empty(&k.team_id),
            user_id: non_empty(&k.user_id),
            key_alias: non_empty(&k.key_alias),
            models: &k.models,
            last4: &k.last4,
            status: status(k),
            blocked: k.blocked,
            created_at: time(k.created_at_ms),
            expires_at: time(k.expires_at_ms),
            revoked_at: time(k.revoked_at_ms),
            last_used_at: time(k.last_used_at_ms),
            limits: k.limits.as_ref().into(),
            metadata: json_value(&k.metadata_json),
            spend: k.spend.as_ref().map(SpendJson::from),
            can_assert_user: k.can_assert_user,
            has_assert_user_secret: k.has_assert_user_secret,
            budget_id: non_empty(&k.budget_id),
        }
    }
}

/// The shape promised in the shared contract, first fields in that order.
#[derive(Serialize)]
struct CreatedKeyJson<'a> {
    key: &'a str,
    public_id: &'a str,
    team_id: Option<&'a str>,
    user_id: Option<&'a str>,
    expires_at: Option<String>,
    key_alias: Option<&'a str>,
    models: &'a [String],
    last4: &'a str,
    created_at: Option<String>,
    blocked: bool,
    #[serde(flatten)]
    limits: LimitsJson<'a>,
    metadata: Value,
}

#[derive(Serialize)]
struct UserJson<'a> {
    user_id: &'a str,
    team_id: Option<&'a str>,
    created_at: Option<String>,
    #[serde(flatten)]
    limits: LimitsJson<'a>,
    spend: Option<SpendJson>,
    budget_id: Option<&'a str>,
}

impl<'a> From<&'a pb::User> for UserJson<'a> {
    fn from(u: &'a pb::User) -> Self {
        Self {
            user_id: &u.user_id,
            team_id: non_empty(&u.team_id),
            created_at: time(u.created_at_ms),
            limits: u.limits.as_ref().into(),
            spend: u.spend.as_ref().map(SpendJson::from),
            budget_id: non_empty(&u.budget_id),
        }
    }
}

#[derive(Serialize)]
struct ModelJson<'a> {
    name: &'a str,
    upstream_model: &'a str,
    cluster: Option<&'a str>,
    input_cost_per_mtok: f64,
    output_cost_per_mtok: f64,
    default_max_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    created_at: Option<String>,
}

impl<'a> From<&'a pb::Model> for ModelJson<'a> {
    fn from(m: &'a pb::Model) -> Self {
        Self {
            name: &m.name,
            upstream_model: non_empty(&m.upstream_model).unwrap_or(&m.name),
            cluster: non_empty(&m.cluster),
            input_cost_per_mtok: m.input_cost_per_mtok,
            output_cost_per_mtok: m.output_cost_per_mtok,
            default_max_tokens: (m.default_max_tokens != 0).then_some(m.default_max_tokens),
            max_output_tokens: (m.max_output_tokens != 0).then_some(m.max_output_tokens),
            created_at: time(m.created_at_ms),
        }
    }
}

#[derive(Serialize)]
struct SpendReportJson<'a> {
    scope: &'a str,
    id: &'a str,
    spend: f64,
    window_start: Option<String>,
    reset_at: Option<String>,
    exhausted: bool,
    total_spend: f64,
    #[serde(flatten)]
    limits: LimitsJson<'a>,
    history: Vec<DayJson<'a>>,
}

#[derive(Serialize)]
struct DayJson<'a> {
    day: &'a str,
    spend: f64,
    requests: u64,
    tokens_in: u64,
    tokens_out: u64,
}

pub(super) fn json_line(out: &mut impl Write, value: &impl Serialize) -> Result<(), CliError> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

pub(super) fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

pub(super) fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `10 per 30d`, `10 per calendar-month`, `10 (never resets)`, or `-`.
fn budget(l: Option<&pb::LimitSettings>) -> String {
    let Some(l) = l else {
        return "-".to_owned();
    };
    match (
        l.max_budget,
        l.budget_duration.as_deref(),
        l.budget_reset.as_deref(),
    ) {
        (None, _, _) => "-".to_owned(),
        (Some(max), Some(d), _) => format!("{max} per {d}"),
        (Some(max), None, Some(reset)) if reset != "rolling" => format!("{max} per {reset}"),
        (Some(max), None, _) => format!("{max} (never resets)"),
    }
}

/// `0.25 of 1 (exhausted), resets 2026-…`.
fn spend_line(s: &pb::SpendState, l: Option<&pb::LimitSettings>) -> String {
    let max = l
        .and_then(|l| l.max_budget)
        .map_or_else(String::new, |m| format!(" of {m}"));
    let state = if s.exhausted { " (exhausted)" } else { "" };
    let reset = time(s.window_reset_at_ms)
        .map_or_else(|| "never resets".to_owned(), |t| format!("resets {t}"));
    format!("{}{max}{state}, {reset}", s.spend)
}

pub(super) fn limit_lines(
    out: &mut impl Write,
    l: Option<&pb::LimitSettings>,
) -> Result<(), CliError> {
    let l = l.cloned().unwrap_or_default();
    writeln!(
        out,
        "limits:   rpm {}  tpm {}  parallel {}",
        opt(l.rpm_limit),
        opt(l.tpm_limit),
        opt(l.max_parallel_requests)
    )?;
    writeln!(out, "budget:   {}", budget(Some(&l)))?;
    Ok(())
}

/// The budget object a team, key or user names, if any.
fn budget_id_line(out: &mut impl Write, budget_id: &str) -> Result<(), CliError> {
    if let Some(id) = non_empty(budget_id) {
        writeln!(out, "budget object: {id}")?;
    }
    Ok(())
}

/// Left-aligned columns separated by two spaces.
pub(super) fn table(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> Result<(), CliError> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(cell.chars().count()),
            ));
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(&mut header.iter().copied())?;
    for row in rows {
        line(&mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

pub(super) fn team_created(out: &mut impl Write, t: &pb::Team, json: bool) -> Result<(), CliError> {
    team(out, t, "Created", json)
}

/// One team after `action` ("Created", "Updated", "Blocked", … or "Team" to show it).
pub(super) fn team(
    out: &mut impl Write,
    t: &pb::Team,
    action: &str,
    json: bool,
) -> Result<(), CliError> {
    if json {
        return json_line(out, &TeamJson::from(t));
    }
    let what = if action == "Team" {
        "Team".to_owned()
    } else {
        format!("{action} team")
    };
    writeln!(out, "{what} {} ({})", t.alias, t.team_id)?;
    writeln!(out, "models:   {}", list(&t.models))?;
    if !t.idp_groups.is_empty() {
        writeln!(out, "idp groups: {}", list(&t.idp_groups))?;
    }
    limit_lines(out, t.limits.as_ref())?;
    budget_id_line(out, &t.budget_id)?;
    if let Some(s) = &t.spend {
        writeln!(out, "spend:    {}", spend_line(s, t.limits.as_ref()))?;
    }
    if t.blocked {
        writeln!(out, "blocked:  yes")?;
    }
    if t.metadata_json != "{}" && !t.metadata_json.is_empty() {
        writeln!(out, "metadata: {}", t.metadata_json)?;
    }
    if !t.redaction_policy_json.is_empty() {
        writeln!(out, "redaction policy: set")?;
    }
    if t.high_trust {
        writeln!(out, "high trust: redaction bypassed")?;
    }
    Ok(())
}

pub(super) fn teams(out: &mut impl Write, teams: &[pb::Team], json: bool) -> Result<(), CliError> {
    if json {
        let items: Vec<TeamJson<'_>> = teams.iter().map(TeamJson::from).collect();
        return json_line(out, &items);
    }
    let rows: Vec<Vec<String>> = teams
        .iter()
        .map(|t| {
            let l = t.limits.clone().unwrap_or_default();
            vec![
                t.team_id.clone(),
                t.alias.clone(),
                list(&t.models),
                opt(l.rpm_limit),
                opt(l.tpm_limit),
                opt(l.max_parallel_requests),
                budget(t.limits.as_ref()),
                if t.blocked { "blocked" } else { "active" }.to_owned(),
                short_time(t.created_at_ms).unwrap_or_default(),
            ]
        })
        .collect();
    table(
        out,
        &[
            "TEAM_ID", "ALIAS", "MODELS", "RPM", "TPM", "PARALLEL", "BUDGET", "STATUS", "CREATED",
        ],
        &rows,
    )
}

/// `team_ref` is the team as the admin named it (id or alias).
pub(super) fn key_created(
    out: &mut impl Write,
    created: &pb::CreateKeyResponse,
    team_ref: &str,
    json: bool,
) -> Result<(), CliError> {
    let key = created.key.clone().unwrap_or_default();
    if json {
        return json_line(
            out,
            &CreatedKeyJson {
                key: &created.secret,
                public_id: &key.public_id,
                team_id: non_empty(&key.team_id),
                user_id: non_empty(&key.user_id),
                expires_at: time(key.expires_at_ms),
                key_alias: non_empty(&key.key_alias),
                models: &key.models,
                last4: &key.last4,
                created_at: time(key.created_at_ms),
                blocked: key.blocked,
                limits: key.limits.as_ref().into(),
                metadata: json_value(&key.metadata_json),
            },
        );
    }
    if key.team_id.is_empty() {
        writeln!(out, "Created personal key {} (no team)", key.public_id)?;
    } else if team_ref == key.team_id {
        writeln!(
            out,
            "Created key {} for team {}",
            key.public_id, key.team_id
        )?;
    } else {
        writeln!(
            out,
            "Created key {} for team {team_ref} ({})",
            key.public_id, key.team_id
        )?;
    }
    writeln!(out)?;
    writeln!(out, "    {}", created.secret)?;
    writeln!(out)?;
    writeln!(
        out,
        "Copy it now: this is the only time the key is shown (only its hash is stored)."
    )?;
    key_details(out, &key)
}

fn key_details(out: &mut impl Write, key: &pb::Key) -> Result<(), CliError> {
    if let Some(user) = non_empty(&key.user_id) {
        writeln!(out, "user:     {user}")?;
    }
    if let Some(alias) = non_empty(&key.key_alias) {
        writeln!(out, "alias:    {alias}")?;
    }
    writeln!(
        out,
        "expires:  {}",
        time(key.expires_at_ms).unwrap_or_else(|| "never".into())
    )?;
    writeln!(
        out,
        "models:   {}",
        if key.models.is_empty() {
            "team's".into()
        } else {
            list(&key.models)
        }
    )?;
    if key.limits.is_some() {
        limit_lines(out, key.limits.as_ref())?;
    }
    budget_id_line(out, &key.budget_id)?;
    if let Some(s) = &key.spend {
        writeln!(out, "spend:    {}", spend_line(s, key.limits.as_ref()))?;
    }
    if key.metadata_json != "{}" && !key.metadata_json.is_empty() {
        writeln!(out, "metadata: {}", key.metadata_json)?;
    }
    if key.can_assert_user {
        let form = if key.has_assert_user_secret {
            "signed forwarded-user JWT only (secret set)"
        } else {
            "plain forwarded-user headers"
        };
        writeln!(out, "asserts:  end users, {form}")?;
    }
    Ok(())
}

/// One key after `action` ("Updated", "Blocked", … or "Key" to show it).
pub(super) fn key(
    out: &mut impl Write,
    k: &pb::Key,
    action: &str,
    json: bool,
) -> Result<(), CliError> {
    if json {
        return json_line(out, &KeyJson::from(k));
    }
    let what = if action == "Key" {
        "Key".to_owned()
    } else {
        format!("{action} key")
    };
    writeln!(out, "{what} {} ({})", k.public_id, status(k))?;
    writeln!(
        out,
        "team:     {}",
        non_empty(&k.team_id).unwrap_or("- (personal key)")
    )?;
    key_details(out, k)?;
    writeln!(
        out,
        "last used: {}",
        time(k.last_used_at_ms).unwrap_or_else(|| "never".into())
    )?;
    Ok(())
}

pub(super) fn keys_json(out: &mut impl Write, keys: &[pb::Key]) -> Result<(), CliError> {
    let items: Vec<KeyJson<'_>> = keys.iter().map(KeyJson::from).collect();
    json_line(out, &items)
}

pub(super) fn keys_table(
    out: &mut impl Write,
    keys: &[pb::Key],
    teams: &[pb::Team],
) -> Result<(), CliError> {
    let aliases: HashMap<&str, &str> = teams
        .iter()
        .map(|t| (t.team_id.as_str(), t.alias.as_str()))
        .collect();
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.public_id.clone(),
                match aliases.get(k.team_id.as_str()) {
                    Some(alias) => (*alias).to_owned(),
                    None => non_empty(&k.team_id).unwrap_or("-").to_owned(),
                },
                non_empty(&k.user_id).unwrap_or("-").to_owned(),
                non_empty(&k.key_alias).unwrap_or("-").to_owned(),
                format!("…{}", k.last4),
                status(k).to_owned(),
                short_time(k.created_at_ms).unwrap_or_default(),
                short_time(k.expires_at_ms).unwrap_or_else(|| "never".into()),
                short_time(k.last_used_at_ms).unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    table(
        out,
        &[
            "PUBLIC_ID",
            "TEAM",
            "USER",
            "ALIAS",
            "LAST4",
            "STATUS",
            "CREATED",
            "EXPIRES",
            "LAST_USED",
        ],
        &rows,
    )
}

pub(super) fn key_revoked(out: &mut impl Write, k: &pb::Key, json: bool) -> Result<(), CliError> {
    if json {
        return json_line(out, &KeyJson::from(k));
    }
    writeln!(
        out,
        "Revoked key {} (revoked at {})",
        k.public_id,
        time(k.revoked_at_ms).unwrap_or_default()
    )?;
    Ok(())
}

pub(super) fn user(
    out: &mut impl Write,
    u: &pb::User,
    heading: &str,
    json: bool,
) -> Result<(), CliError> {
    if json {
        return json_line(out, &UserJson::from(u));
    }
    writeln!(out, "{heading} {}", u.user_id)?;
    if let Some(team) = non_empty(&u.team_id) {
        writeln!(out, "team:     {team}")?;
    }
    limit_lines(out, u.limits.as_ref())?;
    budget_id_line(out, &u.budget_id)?;
    if let Some(s) = &u.spend {
        writeln!(out, "spend:    {}", spend_line(s, u.limits.as_ref()))?;
    }
    Ok(())
}

pub(super) fn users(out: &mut impl Write, users: &[pb::User], json: bool) -> Result<(), CliError> {
    if json {
        let items: Vec<UserJson<'_>> = users.iter().map(UserJson::from).collect();
        return json_line(out, &items);
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            let l = u.limits.clone().unwrap_or_default();
            vec![
                u.user_id.clone(),
                opt(l.rpm_limit),
                opt(l.tpm_limit),
                opt(l.max_parallel_requests),
                budget(u.limits.as_ref()),
                u.spend
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |s| s.spend.to_string()),
                short_time(u.created_at_ms).unwrap_or_default(),
            ]
        })
        .collect();
    table(
        out,
        &[
            "USER", "RPM", "TPM", "PARALLEL", "BUDGET", "SPEND", "CREATED",
        ],
        &rows,
    )
}

pub(super) fn model(
    out: &mut impl Write,
    m: &pb::Model,
    heading: &str,
    json: bool,
) -> Result<(), CliError> {
    if json {
        return json_line(out, &ModelJson::from(m));
    }
    let j = ModelJson::from(m);
    writeln!(out, "{heading} {}", m.name)?;
    writeln!(out, "upstream model: {}", j.upstream_model)?;
    writeln!(out, "cluster:        {}", j.cluster.unwrap_or("(default)"))?;
    writeln!(
        out,
        "price per 1M tokens: input {}, output {}",
        m.input_cost_per_mtok, m.output_cost_per_mtok
    )?;
    if let Some(n) = j.default_max_tokens {
        writeln!(out, "default max tokens: {n}")?;
    }
    if let Some(n) = j.max_output_tokens {
        writeln!(out, "max output tokens: {n}")?;
    }
    Ok(())
}

pub(super) fn models(
    out: &mut impl Write,
    models: &[pb::Model],
    json: bool,
) -> Result<(), CliError> {
    if json {
        let items: Vec<ModelJson<'_>> = models.iter().map(ModelJson::from).collect();
        return json_line(out, &items);
    }
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            let j = ModelJson::from(m);
            vec![
                m.name.clone(),
                j.upstream_model.to_owned(),
                j.cluster.unwrap_or("(default)").to_owned(),
                m.input_cost_per_mtok.to_string(),
                m.output_cost_per_mtok.to_string(),
                j.max_output_tokens
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            ]
        })
        .collect();
    table(
        out,
        &[
            "NAME",
            "UPSTREAM_MODEL",
            "CLUSTER",
            "INPUT/1M",
            "OUTPUT/1M",
            "MAX_OUTPUT",
        ],
        &rows,
    )
}

pub(super) fn spend(out: &mut impl Write, r: &pb::SpendReport, json: bool) -> Result<(), CliError> {
    let current = r.current.unwrap_or_default();
    if json {
        return json_line(
            out,
            &SpendReportJson {
                scope: &r.scope,
                id: &r.id,
                spend: current.spend,
                window_start: time(current.window_start_ms),
                reset_at: time(current.window_reset_at_ms),
                exhausted: current.exhausted,
                total_spend: r.total_spend,
                limits: r.limits.as_ref().into(),
                history: r
                    .history
                    .iter()
                    .map(|d| DayJson {
                        day: &d.day,
                        spend: d.spend,
                        requests: d.requests,
                        tokens_in: d.tokens_in,
                        tokens_out: d.tokens_out,
                    })
                    .collect(),
            },
        );
    }
    writeln!(out, "Spend of {} {}", r.scope, r.id)?;
    writeln!(out, "budget:  {}", budget(r.limits.as_ref()))?;
    writeln!(
        out,
        "current: {} since {}",
        spend_line(&current, r.limits.as_ref()),
        time(current.window_start_ms).unwrap_or_else(|| "the start".into())
    )?;
    writeln!(out, "total:   {}", r.total_spend)?;
    if !r.history.is_empty() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = r
            .history
            .iter()
            .map(|d| {
                vec![
                    d.day.clone(),
                    d.spend.to_string(),
                    d.requests.to_string(),
                    d.tokens_in.to_string(),
                    d.tokens_out.to_string(),
                ]
            })
            .collect();
        table(
            out,
            &["DAY", "SPEND", "REQUESTS", "TOKENS_IN", "TOKENS_OUT"],
            &rows,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["A", "LONG_HEADER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A          LONG_HEADER\nwide cell  x\ny          z\n"
        );
    }

    #[test]
    fn key_status_includes_blocking_and_expiry() {
        let mut k = pb::Key {
            expires_at_ms: 1,
            ..Default::default()
        };
        assert_eq!(status(&k), "expired");
        k.blocked = true;
        assert_eq!(status(&k), "blocked");
        k.expires_at_ms = 0;
        k.blocked = false;
        assert_eq!(status(&k), "active");
        k.revoked = true;
        assert_eq!(status(&k), "revoked");
    }

    #[test]
    fn created_key_json_has_the_contract_fields() {
        let created = pb::CreateKeyResponse {
            key: Some(pb::Key {
                public_id: "abcdefghijkl".into(),
                team_id: "team_x".into(),
                last4: "wxyz".into(),
                created_at_ms: 1_000,
                metadata_json: r#"{"env":"prod"}"#.into(),
                limits: Some(pb::LimitSettings {
                    rpm_limit: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            secret: "sk-mg-abcdefghijkl-secret".into(),
        };
        let mut out = Vec::new();
        key_created(&mut out, &created, "team_x", true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["key"], "sk-mg-abcdefghijkl-secret");
        assert_eq!(v["public_id"], "abcdefghijkl");
        assert_eq!(v["team_id"], "team_x");
        assert!(v["user_id"].is_null());
        assert!(v["expires_at"].is_null());
        assert_eq!(v["rpm_limit"], 5);
        assert!(v["max_budget"].is_null());
        assert_eq!(v["metadata"]["env"], "prod");
        assert!(out.ends_with(b"}\n"));
    }

    #[test]
    fn budgets_read_as_amount_and_period() {
        let settings = |max: Option<f64>, d: Option<&str>, r: Option<&str>| pb::LimitSettings {
            max_budget: max,
            budget_duration: d.map(str::to_owned),
            budget_reset: r.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(budget(None), "-");
        assert_eq!(budget(Some(&settings(None, None, None))), "-");
        assert_eq!(
            budget(Some(&settings(Some(10.0), Some("30d"), Some("rolling")))),
            "10 per 30d"
        );
        assert_eq!(
            budget(Some(&settings(Some(2.5), None, Some("calendar-month")))),
            "2.5 per calendar-month"
        );
        assert_eq!(
            budget(Some(&settings(Some(1.0), None, Some("rolling")))),
            "1 (never resets)"
        );
    }
}
