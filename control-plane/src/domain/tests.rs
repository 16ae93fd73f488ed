use super::*;
use crate::budget::{Budget, BudgetPeriod};

#[test]
fn team_aliases() {
    for ok in ["ml", "ml-team", "team.a", "0day", "a"] {
        assert_eq!(TeamAlias::parse(ok).unwrap().as_str(), ok);
    }
    assert_eq!(TeamAlias::parse("  ml ").unwrap().as_str(), "ml");
    let long = "a".repeat(64);
    for bad in ["", "-ml", "ML", "ml team", "team_1", "ml/x", long.as_str()] {
        assert!(TeamAlias::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn team_ids_never_parse_as_aliases() {
    let id = new_team_id().unwrap();
    assert!(id.starts_with(TEAM_ID_PREFIX));
    assert!(TeamAlias::parse(&id).is_err());
}

#[test]
fn models_are_trimmed_and_deduplicated() {
    assert_eq!(
        parse_models([" llama3 ", "qwen2.5-*", "llama3"]).unwrap(),
        vec!["llama3", "qwen2.5-*"]
    );
    assert!(parse_models(Vec::<String>::new()).unwrap().is_empty());
    assert!(parse_models([""]).is_err());
    assert!(parse_models(["a b"]).is_err());
}

#[test]
fn model_wildcards_must_be_explicit_and_segment_safe() {
    assert_eq!(parse_models(["*"]).unwrap(), ["*"]);
    assert_eq!(parse_models(["qwen2.5*"]).unwrap(), ["qwen2.5*"]);
    let err = parse_models(["llama3", "*-instruct"]).unwrap_err();
    assert_eq!(err, ValidationError::ModelWildcard("*-instruct".into()));
    assert!(err.to_string().contains("\"qwen2.5-*\""), "{err}");
    assert!(parse_models(["q*wen"]).is_err());
}

#[test]
fn route_names_and_clusters() {
    assert_eq!(parse_route_name(" llama3.1-8b ").unwrap(), "llama3.1-8b");
    assert_eq!(
        parse_route_name("qwen2.5-*"),
        Err(ValidationError::RouteWildcard("qwen2.5-*".into()))
    );
    assert_eq!(parse_upstream_model(""), Ok(None));
    assert_eq!(
        parse_upstream_model("llama3.1:8b"),
        Ok(Some("llama3.1:8b".into()))
    );
    assert_eq!(parse_cluster(" "), Ok(None));
    assert_eq!(parse_cluster("gpu_pool.a"), Ok(Some("gpu_pool.a".into())));
    assert!(parse_cluster("gpu pool").is_err());
    assert!(parse_cluster("gpu\npool").is_err());
    assert_eq!(parse_price("input_cost_per_mtok", 0.0), Ok(0.0));
    assert_eq!(
        parse_price("input_cost_per_mtok", -1.0),
        Err(ValidationError::Price("input_cost_per_mtok"))
    );
    assert!(parse_price("output_cost_per_mtok", f64::NAN).is_err());
}

#[test]
fn optional_fields() {
    assert_eq!(parse_user_id("  "), Ok(None));
    assert_eq!(
        parse_user_id("ana@example.com"),
        Ok(Some("ana@example.com".into()))
    );
    assert!(parse_user_id("a\nb").is_err());
    assert!(parse_key_alias(&"x".repeat(65)).is_err());
}

#[test]
fn users_are_any_stable_string_and_team_ids_are_plain() {
    for id in [
        "ana@example.com",
        "krrish",
        "6f1c2a7e-0b1d-4c55-9a3e-2f1d0c9b8a7e",
    ] {
        assert_eq!(parse_user_record_id(&format!(" {id} ")), Ok(id.into()));
    }
    for bad in ["", "   ", "a\nb"] {
        assert_eq!(
            parse_user_record_id(bad),
            Err(ValidationError::UserId),
            "{bad:?}"
        );
    }
    for id in ["team_engineering", "Eng-2", "6f1c2a7e-0b1d", "a.b"] {
        assert_eq!(parse_team_id(id), Ok(id.into()));
    }
    for bad in ["", "_team", "team one", "team/x", "ünï", &"t".repeat(65)] {
        assert!(
            matches!(parse_team_id(bad), Err(ValidationError::TeamId(_))),
            "{bad}"
        );
    }
}

#[test]
fn public_ids() {
    assert_eq!(parse_public_id("abc123def456"), Ok("abc123def456".into()));
    assert_eq!(
        parse_public_id("sk-mg-abc123def456-SECRETSECRET"),
        Err(ValidationError::WholeKeyGiven)
    );
    assert!(matches!(
        parse_public_id("nope"),
        Err(ValidationError::PublicId(_))
    ));
}

#[test]
fn metadata_is_a_json_object_with_scalar_tags() {
    let m = Metadata::parse(
        r#"{"owner":"ana","env":"prod","ticket":1234,"pii":false,"nested":{"a":1},"list":[1],"none":null}"#,
    )
    .unwrap();
    let mut tags: Vec<(String, String)> = m.tags().map(|(n, v)| (n.to_owned(), v)).collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("env".to_owned(), "prod".to_owned()),
            ("owner".to_owned(), "ana".to_owned()),
            ("pii".to_owned(), "false".to_owned()),
            ("ticket".to_owned(), "1234".to_owned()),
        ]
    );
    assert!(m.has_tag("ticket", "1234"));
    assert!(!m.has_tag("nested", "{\"a\":1}"));
    assert_eq!(Metadata::parse(" ").unwrap(), Metadata::default());
    assert_eq!(Metadata::parse("null").unwrap(), Metadata::default());
    assert_eq!(Metadata::default().to_json(), "{}");
    assert!(matches!(
        Metadata::parse("[1]"),
        Err(ValidationError::Metadata(_))
    ));
    assert!(matches!(
        Metadata::parse("{oops"),
        Err(ValidationError::Metadata(_))
    ));
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_METADATA_BYTES));
    assert!(Metadata::parse(&big).is_err());
}

#[test]
fn tags_parse_as_name_equals_value() {
    assert_eq!(parse_tag("env=prod"), Ok(("env".into(), "prod".into())));
    assert_eq!(parse_tag("url=a=b"), Ok(("url".into(), "a=b".into())));
    assert_eq!(parse_tag("empty="), Ok(("empty".into(), String::new())));
    assert!(parse_tag("=x").is_err());
    assert!(parse_tag("env").is_err());
}

#[test]
fn redaction_policies_are_checked_by_the_engine() {
    assert_eq!(parse_redaction_policy(" "), Ok(None));
    assert_eq!(
        parse_redaction_policy(r#"{"entities":{"PERSON":"reversible"}}"#),
        Ok(Some(r#"{"entities":{"PERSON":"reversible"}}"#.into()))
    );
    for bad in [
        "[]",
        "{",
        r#"{"entities":{"NOT_A_TYPE":"mask"}}"#,
        r#"{"custom_patterns":[{"name":"X","pattern":"("}]}"#,
        r#"{"unknown_field":1}"#,
    ] {
        let err = parse_redaction_policy(bad).unwrap_err();
        assert!(
            err.to_string().starts_with("redaction_policy is invalid"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn clear_lists_split_limits_from_own_fields() {
    let (limits, own) = parse_clear_list(
        ["rpm-limit", "max_budget", "metadata", " "],
        &["metadata", "expires"],
        KeyPatch::CLEARABLE,
    )
    .unwrap();
    assert!(limits.rpm && limits.budget && !limits.tpm);
    assert_eq!(own, ["metadata"]);
    let err = parse_clear_list(["alias"], &["metadata"], TeamPatch::CLEARABLE).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot clear \"alias\""),
        "{err}"
    );
}

fn team() -> Team {
    let mut t = Team::new(
        "team_aaaaaaaaaaaa".into(),
        "ml".into(),
        vec!["llama3".into(), "qwen2.5-*".into()],
        Timestamp::from_millis(1_000),
    );
    t.limits = Limits {
        rpm: Some(100),
        tpm: Some(10_000),
        max_parallel: Some(4),
        budget: Some(Budget {
            max_budget: 10.0,
            period: BudgetPeriod::Rolling(30 * 86_400_000),
            anchor: Timestamp::from_millis(1_000),
        }),
    };
    t
}

fn key() -> ApiKey {
    ApiKey {
        public_id: "abcdefghijkl".into(),
        key_sha256: [1; 32],
        last4: "wxyz".into(),
        team_id: Some("team_aaaaaaaaaaaa".into()),
        user_id: Some("ana@example.com".into()),
        alias: Some("ci".into()),
        models: vec!["llama3".into()],
        limits: Limits {
            rpm: Some(10),
            ..Limits::default()
        },
        metadata: Metadata::parse(r#"{"env":"prod"}"#).unwrap(),
        blocked: false,
        user_assertion: UserAssertion::Off,
        status: KeyStatus::Active,
        created_at: Timestamp::from_millis(2_000),
        expires_at: None,
        revoked_at: None,
    }
}

#[test]
fn team_patches_change_only_what_they_name() {
    let t = team();
    let now = Timestamp::from_millis(5_000);
    assert_eq!(TeamPatch::default().apply(&t, now).unwrap(), t);

    let patch = TeamPatch {
        alias: Some(TeamAlias::parse("ml2").unwrap()),
        limits: LimitsInput {
            rpm: Some(50),
            ..LimitsInput::default()
        },
        metadata: Change::Set(Metadata::parse(r#"{"owner":"ana"}"#).unwrap()),
        redaction_policy: Change::Set("{}".into()),
        high_trust: Some(true),
        ..TeamPatch::default()
    };
    let changed = patch.apply(&t, now).unwrap();
    assert_eq!(changed.alias, "ml2");
    assert_eq!(changed.limits.rpm, Some(50));
    assert_eq!(changed.limits.tpm, Some(10_000));
    // Only the amount or nothing about the budget changed: same window anchor.
    assert_eq!(changed.limits.budget, t.limits.budget);
    assert!(changed.metadata.has_tag("owner", "ana"));
    assert_eq!(changed.redaction_policy.as_deref(), Some("{}"));
    assert!(changed.high_trust && !changed.blocked);
    assert_eq!(changed.models, t.models);

    let blocked = TeamPatch::blocked(true).apply(&changed, now).unwrap();
    assert!(blocked.blocked);
    let cleared = TeamPatch {
        metadata: Change::Clear,
        redaction_policy: Change::Clear,
        ..TeamPatch::default()
    }
    .apply(&changed, now)
    .unwrap();
    assert_eq!(cleared.metadata, Metadata::default());
    assert_eq!(cleared.redaction_policy, None);
}

#[test]
fn key_patches_stay_within_the_team() {
    let t = team();
    let k = key();
    let now = Timestamp::from_millis(5_000);
    assert_eq!(KeyPatch::default().apply(&k, Some(&t), now).unwrap(), k);

    let widened = KeyPatch {
        limits: LimitsInput {
            rpm: Some(101),
            ..LimitsInput::default()
        },
        ..KeyPatch::default()
    }
    .apply(&k, Some(&t), now)
    .unwrap_err();
    assert_eq!(
        widened.to_string(),
        "rpm_limit 101 is above team ml's rpm_limit 100: a key can only narrow its team's limits"
    );

    let outside = KeyPatch {
        models: Some(vec!["qwen2.5x".into()]),
        ..KeyPatch::default()
    }
    .apply(&k, Some(&t), now)
    .unwrap_err();
    assert!(
        outside
            .to_string()
            .starts_with("models: \"qwen2.5x\" is not within team ml's models (llama3, qwen2.5-*)"),
        "{outside}"
    );

    let changed = KeyPatch {
        alias: Change::Clear,
        user_id: Change::Set("bo@example.com".into()),
        expires_at: Change::Set(Timestamp::from_millis(9_000)),
        models: Some(vec![]),
        limits: LimitsInput {
            max_budget: Some(5.0),
            budget_reset: Some("calendar-day".into()),
            ..LimitsInput::default()
        },
        blocked: Some(true),
        ..KeyPatch::default()
    }
    .apply(&k, Some(&t), now)
    .unwrap();
    assert_eq!(changed.alias, None);
    assert_eq!(changed.user_id.as_deref(), Some("bo@example.com"));
    assert_eq!(changed.expires_at, Some(Timestamp::from_millis(9_000)));
    assert!(changed.models.is_empty(), "empty = the team's allowlist");
    assert!(changed.blocked);
    assert_eq!(changed.limits.rpm, Some(10));
    assert_eq!(changed.limits.budget.unwrap().anchor, now);
    assert_eq!(changed.public_id, k.public_id);
    assert_eq!(changed.metadata, k.metadata);
}

#[test]
fn model_patches() {
    let route = ModelRoute {
        name: "llama3.1-8b".into(),
        upstream_model: Some("llama3.1:8b".into()),
        cluster: Some("ollama".into()),
        input_cost_per_mtok: 0.1,
        output_cost_per_mtok: 0.2,
        default_max_tokens: None,
        max_output_tokens: Some(128),
        created_at: Timestamp::from_millis(1),
    };
    let changed = ModelPatch {
        upstream_model: Change::Clear,
        output_cost_per_mtok: Some(0.5),
        default_max_tokens: Change::Set(256),
        max_output_tokens: Change::Clear,
        ..ModelPatch::default()
    }
    .apply(&route);
    assert_eq!(changed.upstream_model, None);
    assert_eq!(changed.cluster.as_deref(), Some("ollama"));
    assert_eq!(changed.input_cost_per_mtok, 0.1);
    assert_eq!(changed.output_cost_per_mtok, 0.5);
    assert_eq!(changed.default_max_tokens, Some(256));
    assert_eq!(changed.max_output_tokens, None);
}

#[test]
fn set_or_clear() {
    assert_eq!(
        Change::set_or_clear(Some(1), false, "x"),
        Ok(Change::Set(1))
    );
    assert_eq!(
        Change::<u8>::set_or_clear(None, true, "x"),
        Ok(Change::Clear)
    );
    assert_eq!(
        Change::<u8>::set_or_clear(None, false, "x"),
        Ok(Change::Keep)
    );
    assert_eq!(
        Change::set_or_clear(Some(1), true, "expires"),
        Err(ValidationError::SetAndCleared("expires"))
    );
}

#[test]
fn grace_periods_are_zero_or_a_bounded_duration() {
    for none in ["", " 0 ", "0s", "00h"] {
        assert_eq!(parse_grace_period(none), Ok(None), "{none:?}");
    }
    assert_eq!(
        parse_grace_period("24h"),
        Ok(Some(std::time::Duration::from_secs(86_400)))
    );
    assert_eq!(
        parse_grace_period("30d"),
        Ok(Some(std::time::Duration::from_secs(30 * 86_400)))
    );
    for bad in ["31d", "1y", "s", "24", "soon", "-1h"] {
        assert!(
            matches!(
                parse_grace_period(bad),
                Err(ValidationError::GracePeriod(_))
            ),
            "{bad}"
        );
    }
}
