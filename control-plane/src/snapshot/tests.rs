use super::*;
use crate::assertion::{AssertionSecret, UserAssertion};
use crate::budget::{Budget, BudgetPeriod, CalendarPeriod};
use crate::identity::{JwksSource, JwksState};

const DAY: i64 = 86_400_000;

fn team() -> Team {
    let mut t = Team::new(
        "team_aaaaaaaaaaaa".into(),
        "ml".into(),
        vec!["llama3".into(), "qwen2.5-*".into()],
        Timestamp::from_millis(1),
    );
    t.limits = Limits {
        rpm: Some(100),
        tpm: Some(10_000),
        max_parallel: Some(4),
        budget: Some(Budget {
            max_budget: 10.0,
            period: BudgetPeriod::Calendar(CalendarPeriod::Month),
            anchor: Timestamp::from_millis(1),
        }),
    };
    t.redaction_policy = Some("{}".into());
    t.high_trust = true;
    t
}

fn key(status: KeyStatus, blocked: bool) -> PolicyKey {
    PolicyKey {
        public_id: "abcdefghijkl".into(),
        key_sha256: [7; 32],
        team_id: Some("team_aaaaaaaaaaaa".into()),
        user_id: None,
        alias: Some("ci".into()),
        models: vec![],
        limits: Limits {
            rpm: Some(10),
            budget: Some(Budget {
                max_budget: 1.0,
                period: BudgetPeriod::Rolling(DAY),
                anchor: Timestamp::from_millis(0),
            }),
            ..Limits::default()
        },
        blocked,
        status,
        expires_at: Some(Timestamp::from_millis(99)),
        user_assertion: UserAssertion::Off,
        previous_secret: None,
    }
}

fn state(keys: Vec<PolicyKey>) -> PolicyState {
    PolicyState {
        version: 7,
        teams: vec![team()],
        keys,
        users: vec![
            User {
                id: "ana@example.com".into(),
                team_id: Some("team_aaaaaaaaaaaa".into()),
                limits: Limits {
                    tpm: Some(500),
                    ..Limits::default()
                },
                created_at: Timestamp::from_millis(3),
            },
            User {
                id: "bo@example.com".into(),
                team_id: None,
                limits: Limits::default(),
                created_at: Timestamp::from_millis(3),
            },
        ],
        models: vec![ModelRoute {
            name: "llama3.1-8b".into(),
            upstream_model: Some("llama3.1:8b".into()),
            cluster: None,
            input_cost_per_mtok: 0.5,
            output_cost_per_mtok: 1.5,
            default_max_tokens: Some(256),
            max_output_tokens: Some(128),
            created_at: Timestamp::from_millis(4),
        }],
        identity_providers: Vec::new(),
    }
}

fn build(keys: Vec<PolicyKey>, now: Timestamp) -> pb::PolicySnapshot {
    let tracker = SpendTracker::new();
    let snapshot = build_snapshot(state(keys), now, &tracker.reader());
    snapshot
}

#[test]
fn snapshot_carries_hashes_status_and_teams() {
    let s = build(
        vec![key(KeyStatus::Revoked, true)],
        Timestamp::from_millis(5),
    );
    assert_eq!(s.version, 7);
    assert_eq!(s.generated_at_ms, 5);
    let k = &s.keys[0];
    assert_eq!(k.key_sha256, vec![7; 32]);
    assert_eq!(
        k.status(),
        pb::KeyStatus::Revoked,
        "revoked wins over blocked"
    );
    assert_eq!(k.expires_at_ms, 99);
    assert_eq!(k.user_id, "");
    assert_eq!(k.key_alias, "ci");
    assert_eq!(s.teams[0].alias, "ml");
    assert_eq!(s.teams[0].models, ["llama3", "qwen2.5-*"]);
    let blocked = build(
        vec![key(KeyStatus::Active, true)],
        Timestamp::from_millis(5),
    );
    assert_eq!(blocked.keys[0].status(), pb::KeyStatus::Blocked);
    let active = build(
        vec![key(KeyStatus::Active, false)],
        Timestamp::from_millis(5),
    );
    assert_eq!(active.keys[0].status(), pb::KeyStatus::Active);
}

#[test]
fn service_keys_carry_their_flag_and_secret_to_the_filters() {
    let secret = "0123456789abcdef0123456789abcdef";
    let service = |user_assertion| PolicyKey {
        user_assertion,
        ..key(KeyStatus::Active, false)
    };
    let s = build(
        vec![
            service(UserAssertion::Off),
            service(UserAssertion::Headers),
            service(UserAssertion::Signed(
                AssertionSecret::parse(secret).unwrap(),
            )),
        ],
        Timestamp::from_millis(5),
    );
    let seen: Vec<(bool, &[u8])> = s
        .keys
        .iter()
        .map(|k| (k.can_assert_user, k.assert_user_secret.as_slice()))
        .collect();
    assert_eq!(
        seen,
        [(false, &b""[..]), (true, b""), (true, secret.as_bytes())]
    );
}

#[test]
fn key_limits_fall_back_to_team_defaults_but_keep_their_own_budget() {
    let now = Timestamp::from_millis(DAY + 5);
    let s = build(vec![key(KeyStatus::Active, false)], now);
    let limits = s.keys[0].limits.clone().unwrap();
    assert_eq!(limits.rpm, Some(10));
    assert_eq!(limits.tpm, Some(10_000));
    assert_eq!(limits.max_parallel_requests, Some(4));
    assert_eq!(limits.max_budget, Some(1.0));
    assert_eq!(limits.budget_duration, "1d");
    let spend = s.keys[0].spend.unwrap();
    assert_eq!(spend.spend, 0.0);
    assert_eq!(spend.window_start_ms, DAY);
    assert_eq!(spend.window_reset_at_ms, 2 * DAY);
    assert!(!spend.exhausted);
}

#[test]
fn teams_users_and_routes_are_filled() {
    let now = Timestamp::parse_rfc3339("2026-02-10T12:00:00Z").unwrap();
    let s = build(vec![], now);
    let t = &s.teams[0];
    let limits = t.limits.clone().unwrap();
    assert_eq!(
        (limits.rpm, limits.tpm, limits.max_parallel_requests),
        (Some(100), Some(10_000), Some(4))
    );
    assert_eq!(limits.max_budget, Some(10.0));
    assert_eq!(limits.budget_duration, "calendar-month");
    let spend = t.spend.unwrap();
    assert_eq!(
        spend.window_start_ms,
        Timestamp::parse_rfc3339("2026-02-01T00:00:00Z")
            .unwrap()
            .as_millis()
    );
    assert_eq!(
        spend.window_reset_at_ms,
        Timestamp::parse_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .as_millis()
    );
    assert_eq!(t.redaction_policy_json, "{}");
    assert!(t.high_trust && !t.blocked && !t.keep_redacted_prompt);

    assert_eq!(s.users[0].user_id, "ana@example.com");
    assert_eq!(s.users[0].limits.clone().unwrap().tpm, Some(500));
    assert_eq!(s.users[0].spend, None, "no budget, no spend state");
    assert_eq!(s.users[1].limits, None, "no limits at all");
    assert_eq!(
        (s.users[0].team_id.as_str(), s.users[1].team_id.as_str()),
        ("team_aaaaaaaaaaaa", ""),
        "a user's team, empty when they have none"
    );

    let m = &s.models[0];
    assert_eq!(m.name, "llama3.1-8b");
    assert_eq!(m.upstream_model, "llama3.1:8b");
    assert_eq!(m.cluster, "");
    assert_eq!((m.input_cost_per_mtok, m.output_cost_per_mtok), (0.5, 1.5));
    assert_eq!(m.default_max_tokens, 256);
    assert_eq!(m.max_output_tokens, 128);
}

fn issuer(name: &str, jwks_json: Option<&str>) -> IdentityProvider {
    IdentityProvider {
        issuer: name.into(),
        audiences: vec!["modelgate".into()],
        allowed_groups: vec!["ai-users".into()],
        source: JwksSource::Discovery,
        user_claim: "email".into(),
        groups_claim: String::new(),
        clock_skew_s: 30,
        default_user_limits: Limits {
            rpm: Some(20),
            ..Limits::default()
        },
        admin_roles: Vec::new(),
        created_at: Timestamp::from_millis(5),
        keys: JwksState {
            jwks_json: jwks_json.map(str::to_owned),
            ..JwksState::default()
        },
    }
}

#[test]
fn issuers_with_keys_and_team_groups_reach_the_snapshot() {
    let mut state = state(vec![]);
    state.teams[0].idp_groups = vec!["ai-engineering".into(), "platform".into()];
    state.identity_providers = vec![
        issuer("https://idp.example.com", Some(r#"{"keys":[]}"#)),
        // Never fetched: no token of it could verify yet.
        issuer("https://down.example.com", None),
    ];
    let s = build_snapshot(
        state,
        Timestamp::from_millis(10),
        &SpendTracker::new().reader(),
    );
    assert_eq!(s.teams[0].idp_groups, ["ai-engineering", "platform"]);
    assert_eq!(
        s.identity_providers,
        [pb::IdentityProvider {
            issuer: "https://idp.example.com".into(),
            audiences: vec!["modelgate".into()],
            jwks_json: r#"{"keys":[]}"#.into(),
            user_claim: "email".into(),
            groups_claim: String::new(),
            allowed_groups: vec!["ai-users".into()],
            clock_skew_s: 30,
            default_user_limits: Some(pb::Limits {
                rpm: Some(20),
                ..pb::Limits::default()
            }),
        }]
    );
}
