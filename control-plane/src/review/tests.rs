use super::*;

const NOW: i64 = 1_000 * DAY_MS;

fn settings() -> ReviewSettings {
    ReviewSettings {
        now_ms: NOW,
        unused_days: 30,
        rotation_days: 90,
    }
}

/// A key everyone would sign off: owned by a known user, used yesterday, made last week,
/// expiring, within its team.
fn clean() -> pb::Key {
    pb::Key {
        public_id: "k1".into(),
        team_id: "team_eng".into(),
        user_id: "ana@corp".into(),
        created_at_ms: NOW - 7 * DAY_MS,
        expires_at_ms: NOW + 30 * DAY_MS,
        last_used_at_ms: NOW - DAY_MS,
        limits: Some(pb::LimitSettings {
            rpm_limit: Some(10),
            ..Default::default()
        }),
        metadata_json: r#"{"env":"prod","owner":"ana","n":3,"nested":{"x":1}}"#.into(),
        ..Default::default()
    }
}

fn teams() -> Vec<pb::Team> {
    vec![pb::Team {
        team_id: "team_eng".into(),
        alias: "engineering".into(),
        limits: Some(pb::LimitSettings {
            rpm_limit: Some(100),
            max_budget: Some(50.0),
            ..Default::default()
        }),
        ..Default::default()
    }]
}

fn users() -> Vec<pb::User> {
    vec![pb::User {
        user_id: "ana@corp".into(),
        ..Default::default()
    }]
}

fn flags_of(key: pb::Key) -> Vec<Flag> {
    review(&[key], &teams(), &users(), &HashMap::new(), settings())
        .pop()
        .unwrap()
        .flags
}

#[test]
fn a_clean_key_has_no_flags_and_shows_what_a_reviewer_needs() {
    let spend = HashMap::from([("k1".to_owned(), 1.25)]);
    let reviewed = review(&[clean()], &teams(), &users(), &spend, settings());
    assert_eq!(reviewed.len(), 1);
    let k = &reviewed[0];
    assert!(k.flags.is_empty(), "{:?}", k.flags);
    assert_eq!(k.team, "engineering");
    assert_eq!(k.owner, "ana@corp");
    assert_eq!(k.tags, ["env=prod", "n=3", "owner=ana"]);
    assert_eq!(k.spend, 1.25);
}

#[test]
fn each_finding_is_flagged_on_its_own() {
    let cases: Vec<(pb::Key, Flag)> = vec![
        (
            pb::Key {
                last_used_at_ms: NOW - 31 * DAY_MS,
                ..clean()
            },
            Flag::Unused,
        ),
        (
            pb::Key {
                expires_at_ms: 0,
                ..clean()
            },
            Flag::NeverExpires,
        ),
        (
            pb::Key {
                created_at_ms: NOW - 91 * DAY_MS,
                ..clean()
            },
            Flag::RotationDue,
        ),
        (
            pb::Key {
                user_id: "gone@corp".into(),
                ..clean()
            },
            Flag::OwnerNotAUser,
        ),
        (
            pb::Key {
                limits: Some(pb::LimitSettings {
                    max_budget: Some(60.0),
                    ..Default::default()
                }),
                ..clean()
            },
            Flag::LimitsAboveTeam,
        ),
    ];
    for (key, flag) in cases {
        assert_eq!(flags_of(key.clone()), [flag], "{key:?}");
    }
}

#[test]
fn owners_come_from_user_id_or_the_owner_tag() {
    let tagged = pb::Key {
        user_id: String::new(),
        ..clean()
    };
    let reviewed = review(&[tagged], &teams(), &users(), &HashMap::new(), settings());
    assert_eq!(reviewed[0].owner, "ana");
    assert!(reviewed[0].flags.is_empty());
    let nobody = pb::Key {
        user_id: String::new(),
        metadata_json: "{}".into(),
        ..clean()
    };
    assert_eq!(flags_of(nobody), [Flag::MissingOwner]);
}

#[test]
fn never_used_keys_count_from_creation_and_revoked_keys_are_left_out() {
    let fresh = pb::Key {
        last_used_at_ms: 0,
        created_at_ms: NOW - 2 * DAY_MS,
        ..clean()
    };
    assert!(flags_of(fresh).is_empty());
    let stale = pb::Key {
        last_used_at_ms: 0,
        created_at_ms: NOW - 40 * DAY_MS,
        ..clean()
    };
    assert_eq!(flags_of(stale), [Flag::Unused]);
    let revoked = pb::Key {
        revoked: true,
        ..clean()
    };
    assert!(review(&[revoked], &teams(), &users(), &HashMap::new(), settings()).is_empty());
}

#[test]
fn personal_keys_have_no_team_to_be_above() {
    let personal = pb::Key {
        team_id: String::new(),
        limits: Some(pb::LimitSettings {
            rpm_limit: Some(10_000),
            ..Default::default()
        }),
        ..clean()
    };
    let reviewed = review(&[personal], &teams(), &users(), &HashMap::new(), settings());
    assert_eq!(reviewed[0].team, "");
    assert!(reviewed[0].flags.is_empty());
}
