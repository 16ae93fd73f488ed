//! What admin commands print: aligned tables for people, JSON for scripts.

use std::collections::HashMap;
use std::io::Write;

use modelgate_proto::v1 as pb;
use serde::Serialize;

use super::CliError;
use crate::clock::Timestamp;

/// `*_ms` fields use 0 for "none".
fn time(ms: i64) -> Option<String> {
    (ms != 0).then(|| Timestamp::from_millis(ms).to_rfc3339())
}

/// The same, to the second, for tables.
fn short_time(ms: i64) -> Option<String> {
    (ms != 0).then(|| Timestamp::from_millis(ms).to_rfc3339_seconds())
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[derive(Serialize)]
struct TeamJson<'a> {
    team_id: &'a str,
    alias: &'a str,
    models: &'a [String],
    blocked: bool,
    created_at: Option<String>,
}

impl<'a> From<&'a pb::Team> for TeamJson<'a> {
    fn from(t: &'a pb::Team) -> Self {
        Self {
            team_id: &t.team_id,
            alias: &t.alias,
            models: &t.models,
            blocked: t.blocked,
            created_at: time(t.created_at_ms),
        }
    }
}

#[derive(Serialize)]
struct KeyJson<'a> {
    public_id: &'a str,
    team_id: &'a str,
    user_id: Option<&'a str>,
    key_alias: Option<&'a str>,
    models: &'a [String],
    last4: &'a str,
    status: &'static str,
    created_at: Option<String>,
    expires_at: Option<String>,
    revoked_at: Option<String>,
}

/// Expiry is not a stored state: the filter compares `expires_at` with its clock, and so
/// does the listing.
fn status(k: &pb::Key) -> &'static str {
    if k.revoked {
        "revoked"
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
            team_id: &k.team_id,
            user_id: non_empty(&k.user_id),
            key_alias: non_empty(&k.key_alias),
            models: &k.models,
            last4: &k.last4,
            status: status(k),
            created_at: time(k.created_at_ms),
            expires_at: time(k.expires_at_ms),
            revoked_at: time(k.revoked_at_ms),
        }
    }
}

/// The shape promised in the shared contract, first fields in that order.
#[derive(Serialize)]
struct CreatedKeyJson<'a> {
    key: &'a str,
    public_id: &'a str,
    team_id: &'a str,
    user_id: Option<&'a str>,
    expires_at: Option<String>,
    key_alias: Option<&'a str>,
    models: &'a [String],
    last4: &'a str,
    created_at: Option<String>,
}

pub(super) fn json_line(out: &mut impl Write, value: &impl Serialize) -> Result<(), CliError> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
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
    if json {
        return json_line(out, &TeamJson::from(t));
    }
    writeln!(out, "Created team {} ({})", t.alias, t.team_id)?;
    writeln!(out, "models: {}", list(&t.models))?;
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
            vec![
                t.team_id.clone(),
                t.alias.clone(),
                list(&t.models),
                short_time(t.created_at_ms).unwrap_or_default(),
            ]
        })
        .collect();
    table(out, &["TEAM_ID", "ALIAS", "MODELS", "CREATED"], &rows)
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
                team_id: &key.team_id,
                user_id: non_empty(&key.user_id),
                expires_at: time(key.expires_at_ms),
                key_alias: non_empty(&key.key_alias),
                models: &key.models,
                last4: &key.last4,
                created_at: time(key.created_at_ms),
            },
        );
    }
    if team_ref == key.team_id {
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
    if let Some(user) = non_empty(&key.user_id) {
        writeln!(out, "user:    {user}")?;
    }
    if let Some(alias) = non_empty(&key.key_alias) {
        writeln!(out, "alias:   {alias}")?;
    }
    writeln!(
        out,
        "expires: {}",
        time(key.expires_at_ms).unwrap_or_else(|| "never".into())
    )?;
    writeln!(
        out,
        "models:  {}",
        if key.models.is_empty() {
            "team's".into()
        } else {
            list(&key.models)
        }
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
                aliases
                    .get(k.team_id.as_str())
                    .map_or_else(|| k.team_id.clone(), |a| (*a).to_owned()),
                non_empty(&k.user_id).unwrap_or("-").to_owned(),
                non_empty(&k.key_alias).unwrap_or("-").to_owned(),
                format!("…{}", k.last4),
                status(k).to_owned(),
                short_time(k.created_at_ms).unwrap_or_default(),
                short_time(k.expires_at_ms).unwrap_or_else(|| "never".into()),
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
    fn key_status_includes_expiry() {
        let mut k = pb::Key {
            expires_at_ms: 1,
            ..Default::default()
        };
        assert_eq!(status(&k), "expired");
        k.expires_at_ms = 0;
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
        assert!(out.ends_with(b"}\n"));
    }
}
