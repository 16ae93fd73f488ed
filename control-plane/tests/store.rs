//! One behaviour suite for every store backend: each test below runs against SQLite and
//! against PostgreSQL (see `suite!`).

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

// Under `tests/store/` so Cargo does not take it for a test target of its own.
#[path = "store/admin_key.rs"]
mod admin_key;
#[path = "store/dataplane.rs"]
mod dataplane;
mod support;

#[path = "store/identity.rs"]
mod identity_cases;
#[path = "store/named_budget.rs"]
mod named_budget;
use identity_cases::*;

use std::path::PathBuf;
use std::sync::Arc;

use modelgate_control_plane::assertion::{AssertionPatch, AssertionSecret, UserAssertion};
use modelgate_control_plane::audit::entry_from_record;
use modelgate_control_plane::budget::{Budget, DAY_MS};
use modelgate_control_plane::clock::Timestamp;
use modelgate_control_plane::domain::{
    new_team_id, ApiKey, Change, KeyFilter, KeyPatch, KeyStatus, ListedKey, Metadata, ModelPatch,
    ModelRoute, NewKey, PolicyKey, ScopeKind, Team, TeamAlias, TeamPatch, UsageBatch, UsageEntry,
    UsageReceipt, User, UserPatch, ValidationError,
};
use modelgate_control_plane::keys::MintedKey;
use modelgate_control_plane::limits::{Limits, LimitsClear, LimitsInput};
use modelgate_control_plane::snapshot::{SnapshotAnswer, SnapshotCache};
use modelgate_control_plane::spend::{SpendSync, SpendTracker};
use modelgate_control_plane::store::{
    DatabaseLocation, OpenedStore, PostgresStore, SqliteStore, Store, StoreError,
};
use modelgate_proto::v1 as pb;
use sqlx::Connection;
use support::postgres::TestDatabase;

use admin_key::admin_keys_are_created_found_listed_and_revoked;
use dataplane::{
    a_batch_id_belongs_to_the_data_plane_that_sent_it,
    data_plane_tokens_are_created_listed_and_revoked,
};
use named_budget::{
    an_attached_budget_caps_each_scopes_own_spend,
    attached_budgets_fill_unset_limits_in_the_policy,
    budget_objects_are_created_updated_and_deleted,
};

/// Keeps a backend's database alive for the test and reads it behind the store's back.
enum Guard {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(TestDatabase),
}

impl Guard {
    async fn scalar_i64(&self, sql: &str) -> i64 {
        match self {
            Guard::Sqlite { path, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            Guard::Postgres(db) => {
                let mut c = db.connect().await;
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }
}

trait Backend: Store + Sized {
    async fn fresh() -> (Self, Guard);
    async fn reopen(guard: &Guard) -> Self;
}

impl Backend for SqliteStore {
    async fn fresh() -> (Self, Guard) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("modelgate.db");
        let store = SqliteStore::open_file(&path).await.unwrap();
        (store, Guard::Sqlite { _dir: dir, path })
    }

    async fn reopen(guard: &Guard) -> Self {
        let Guard::Sqlite { path, .. } = guard else {
            unreachable!()
        };
        SqliteStore::open_file(path).await.unwrap()
    }
}

impl Backend for PostgresStore {
    async fn fresh() -> (Self, Guard) {
        let db = TestDatabase::create().await;
        let store = PostgresStore::connect_with(db.options()).await.unwrap();
        (store, Guard::Postgres(db))
    }

    async fn reopen(guard: &Guard) -> Self {
        let Guard::Postgres(db) = guard else {
            unreachable!()
        };
        PostgresStore::connect(&db.url).await.unwrap()
    }
}

/// Stamps every listed test once per backend: `sqlite::name` and `postgres::name`.
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test::<modelgate_control_plane::store::SqliteStore>().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test::<modelgate_control_plane::store::PostgresStore>().await;
                }
            )*
        }
    };
}

suite!(
    identity_providers_are_created_updated_listed_and_removed,
    jwks_fetches_keep_the_last_good_keys_and_bump_only_on_change,
    teams_keep_their_idp_groups,
    teams_are_created_listed_and_found,
    team_aliases_are_unique,
    every_policy_change_bumps_the_version_once,
    keys_are_created_for_a_team_by_id_or_alias,
    service_keys_keep_their_flag_and_secret,
    users_belong_to_a_team_by_id_or_alias,
    key_for_an_unknown_team_is_refused,
    a_taken_key_id_is_reported,
    keys_are_created_in_bulk_all_or_none,
    keys_are_listed_by_team_and_status,
    revoking_keeps_the_key_as_revoked,
    revoking_an_unknown_key_is_not_found,
    policy_state_matches_its_version,
    snapshots_are_cached_by_version,
    usage_batches_are_stored_once,
    concurrent_duplicate_batches_store_once,
    concurrent_key_creation_serialises_versions,
    reopening_keeps_data_and_migrations,
    teams_keep_limits_metadata_and_redaction_settings,
    team_updates_apply_once_and_only_when_something_changes,
    keys_can_only_narrow_their_team,
    key_updates_stay_within_the_team,
    keys_are_filtered_by_user_tags_expiry_and_last_use,
    users_are_created_updated_and_listed,
    model_routes_are_created_updated_and_deleted,
    usage_is_read_in_chain_order,
    budgets_are_loaded_at_their_version_without_revoked_keys,
    budget_windows_sum_the_same_in_sql_and_rust,
    spend_history_groups_by_utc_day,
    spend_tracking_marks_exhaustion_and_resets_on_time,
    spend_tracking_follows_budget_changes_and_many_new_budgets,
    data_plane_tokens_are_created_listed_and_revoked,
    a_batch_id_belongs_to_the_data_plane_that_sent_it,
    admin_keys_are_created_found_listed_and_revoked,
    budget_objects_are_created_updated_and_deleted,
    attached_budgets_fill_unset_limits_in_the_policy,
    an_attached_budget_caps_each_scopes_own_spend,
);

fn team(alias: &str, models: &[&str]) -> Team {
    Team::new(
        new_team_id().unwrap(),
        alias.to_owned(),
        models.iter().map(|m| (*m).to_owned()).collect(),
        Timestamp::now(),
    )
}

fn new_key(team: &str) -> (NewKey, MintedKey) {
    let minted = MintedKey::generate().unwrap();
    let key = NewKey {
        team: Some(team.to_owned()),
        public_id: minted.public_id.clone(),
        key_sha256: minted.sha256,
        last4: minted.last4.clone(),
        user_id: Some("ana@example.com".into()),
        alias: Some("ci".into()),
        models: vec![],
        limits: Limits::default(),
        metadata: Metadata::default(),
        blocked: false,
        user_assertion: UserAssertion::Off,
        created_at: Timestamp::now(),
        expires_at: Some(Timestamp::from_millis(4_102_444_800_000)),
    };
    (key, minted)
}

async fn create_key<S: Store>(store: &S, team: &str) -> ApiKey {
    store.create_key(&new_key(team).0).await.unwrap()
}

fn usage(batch_id: &str, n: usize) -> UsageBatch {
    UsageBatch {
        batch_id: batch_id.to_owned(),
        node_id: "envoy-a".into(),
        data_plane: "edge-a".into(),
        received_at: Timestamp::now(),
        entries: (0..n)
            .map(|i| UsageEntry {
                request_id: format!("{batch_id}-{i}"),
                timestamp: Timestamp::from_millis(1_700_000_000_000 + i as i64),
                key_id: "abcdefghijkl".into(),
                team_id: "team_x".into(),
                user_id: "ana@example.com".into(),
                model: "llama3".into(),
                tokens_in: 10,
                tokens_out: 20,
                spend: 0.5,
                status: modelgate_control_plane::audit::RecordStatus::Success,
                kind: modelgate_control_plane::audit::RecordKind::Request,
                encoded: vec![1, 2, 3, i as u8],
            })
            .collect(),
    }
}

async fn teams_are_created_listed_and_found<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    assert!(store.list_teams().await.unwrap().is_empty());
    let ml = team("ml", &["llama3", "qwen2.5-*"]);
    let web = team("web", &[]);
    store.create_team(&web).await.unwrap();
    store.create_team(&ml).await.unwrap();

    // Listed by alias, whatever the creation order.
    let listed = store.list_teams().await.unwrap();
    let aliases: Vec<&str> = listed.iter().map(|t| t.alias.as_str()).collect();
    assert_eq!(aliases, ["ml", "web"]);
    assert_eq!(listed[0], ml);

    assert_eq!(store.find_team(&ml.id).await.unwrap(), Some(ml.clone()));
    assert_eq!(store.find_team("web").await.unwrap(), Some(web));
    assert_eq!(store.find_team("nope").await.unwrap(), None);
}

async fn team_aliases_are_unique<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    store.create_team(&team("ml", &[])).await.unwrap();
    let before = store.policy_version().await.unwrap();
    let err = store.create_team(&team("ml", &["x"])).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::TeamAliasTaken(a) if a == "ml"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "a team with alias \"ml\" already exists");
    assert_eq!(store.policy_version().await.unwrap(), before);
    assert_eq!(store.list_teams().await.unwrap().len(), 1);
}

async fn every_policy_change_bumps_the_version_once<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let v0 = store.policy_version().await.unwrap();
    assert!(
        v0 >= 1,
        "a new store starts above 0 so known_version 0 means nothing held"
    );

    store.create_team(&team("ml", &[])).await.unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);
    let key = create_key(&store, "ml").await;
    assert_eq!(store.policy_version().await.unwrap(), v0 + 2);
    store
        .revoke_key(&key.public_id, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v0 + 3);

    // Nothing changed: no bump.
    store
        .revoke_key(&key.public_id, Timestamp::now())
        .await
        .unwrap();
    let _ = store.create_key(&new_key("nope").0).await.unwrap_err();
    let _ = store.create_team(&team("ml", &[])).await.unwrap_err();
    store.record_usage(&usage("b1", 1)).await.unwrap();
    store.list_keys(&KeyFilter::default()).await.unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v0 + 3);
}

async fn keys_are_created_for_a_team_by_id_or_alias<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let ml = team("ml", &["llama3", "qwen2.5-*"]);
    store.create_team(&ml).await.unwrap();

    let (mut by_alias, minted) = new_key("ml");
    by_alias.models = vec!["llama3".into()];
    let created = store.create_key(&by_alias).await.unwrap();
    assert_eq!(created.team_id, Some(ml.id.clone()));
    assert_eq!(created.status, KeyStatus::Active);
    assert_eq!(created.key_sha256, minted.sha256);
    assert_eq!(created.last4, minted.last4);
    assert_eq!(created.user_id.as_deref(), Some("ana@example.com"));
    assert_eq!(created.alias.as_deref(), Some("ci"));
    assert_eq!(created.models, ["llama3"]);
    assert_eq!(created.revoked_at, None);

    let by_id = create_key(&store, &ml.id).await;
    assert_eq!(by_id.team_id, Some(ml.id.clone()));

    // What was stored is what came back.
    let found = store
        .find_key_by_hash(&minted.sha256)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created);
    assert_eq!(store.find_key_by_hash(&[0; 32]).await.unwrap(), None);

    // Optional fields really are optional.
    let (mut bare, _) = new_key("ml");
    bare.user_id = None;
    bare.alias = None;
    bare.models = vec![];
    bare.expires_at = None;
    let bare = store.create_key(&bare).await.unwrap();
    let listed = store.list_keys(&KeyFilter::default()).await.unwrap();
    assert!(listed.iter().any(|k| k.key == bare));
}

async fn key_for_an_unknown_team_is_refused<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let err = store.create_key(&new_key("ghosts").0).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::TeamNotFound(t) if t == "ghosts"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "team \"ghosts\" not found");
    assert!(store
        .list_keys(&KeyFilter::default())
        .await
        .unwrap()
        .is_empty());
}

async fn a_taken_key_id_is_reported<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    store.create_team(&team("ml", &[])).await.unwrap();
    let first = create_key(&store, "ml").await;
    let (mut clash, _) = new_key("ml");
    clash.public_id = first.public_id.clone();
    let err = store.create_key(&clash).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyIdTaken), "{err:?}");
}

async fn keys_are_created_in_bulk_all_or_none<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let ml = team("ml", &["llama3"]);
    store.create_team(&ml).await.unwrap();
    let v0 = store.policy_version().await.unwrap();

    let keys: Vec<NewKey> = (0..50).map(|_| new_key("ml").0).collect();
    assert_eq!(store.create_keys(&keys).await.unwrap(), v0 + 1);
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);
    for key in &keys {
        let found = store
            .find_key_by_hash(&key.key_sha256)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.public_id, key.public_id);
        assert_eq!(found.team_id, Some(ml.id.clone()));
    }

    // One bad key (outside the team's models) refuses the whole batch.
    let (mut outside, _) = new_key("ml");
    outside.models = vec!["gpt-4o".into()];
    let (fine, _) = new_key("ml");
    let err = store
        .create_keys(&[fine.clone(), outside])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(
        store.find_key_by_hash(&fine.key_sha256).await.unwrap(),
        None
    );
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);
    let listed = store.list_keys(&KeyFilter::default()).await.unwrap();
    assert_eq!(listed.len(), keys.len());
}

async fn keys_are_listed_by_team_and_status<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let ml = team("ml", &[]);
    store.create_team(&ml).await.unwrap();
    store.create_team(&team("web", &[])).await.unwrap();
    let a = create_key(&store, "ml").await;
    let b = create_key(&store, "web").await;
    let c = create_key(&store, "ml").await;
    store
        .revoke_key(&c.public_id, Timestamp::now())
        .await
        .unwrap();

    let ids = |keys: Vec<ListedKey>| -> Vec<String> {
        let mut ids: Vec<String> = keys.into_iter().map(|k| k.key.public_id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let all_active = store.list_keys(&KeyFilter::default()).await.unwrap();
    assert_eq!(
        ids(all_active),
        sorted(vec![a.public_id.clone(), b.public_id.clone()])
    );

    let everything = KeyFilter {
        include_revoked: true,
        ..KeyFilter::default()
    };
    assert_eq!(store.list_keys(&everything).await.unwrap().len(), 3);

    for team_ref in ["ml", ml.id.as_str()] {
        let ml_active = KeyFilter {
            team: Some(team_ref.to_owned()),
            ..KeyFilter::default()
        };
        assert_eq!(
            ids(store.list_keys(&ml_active).await.unwrap()),
            vec![a.public_id.clone()]
        );
    }
    let ml_all = KeyFilter {
        team: Some("ml".into()),
        include_revoked: true,
        ..KeyFilter::default()
    };
    assert_eq!(
        ids(store.list_keys(&ml_all).await.unwrap()),
        sorted(vec![a.public_id.clone(), c.public_id.clone()])
    );

    let unknown = KeyFilter {
        team: Some("nope".into()),
        ..KeyFilter::default()
    };
    let err = store.list_keys(&unknown).await.unwrap_err();
    assert!(matches!(err, StoreError::TeamNotFound(_)), "{err:?}");
}

async fn revoking_keeps_the_key_as_revoked<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    store.create_team(&team("ml", &[])).await.unwrap();
    let (new, minted) = new_key("ml");
    let key = store.create_key(&new).await.unwrap();

    let at = Timestamp::from_millis(1_800_000_000_000);
    let revoked = store.revoke_key(&key.public_id, at).await.unwrap();
    assert_eq!(revoked.status, KeyStatus::Revoked);
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(revoked.key_sha256, key.key_sha256);

    // The row stays, so the filter can say "revoked" rather than "unknown".
    let found = store
        .find_key_by_hash(&minted.sha256)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.status, KeyStatus::Revoked);

    // Again: unchanged, same revocation time.
    let again = store
        .revoke_key(&key.public_id, Timestamp::from_millis(1_900_000_000_000))
        .await
        .unwrap();
    assert_eq!(again, revoked);
}

async fn revoking_an_unknown_key_is_not_found<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let before = store.policy_version().await.unwrap();
    let err = store
        .revoke_key("zzzzzzzzzzzz", Timestamp::now())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::KeyNotFound(id) if id == "zzzzzzzzzzzz"),
        "{err:?}"
    );
    assert_eq!(store.policy_version().await.unwrap(), before);
}

async fn policy_state_matches_its_version<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let ml = team("ml", &["llama3"]);
    store.create_team(&ml).await.unwrap();
    // Every column a snapshot key is decoded from set, so a misplaced column shows.
    let mut own = new_key("ml").0;
    own.models = vec!["llama3".into()];
    own.blocked = true;
    own.limits = limits(
        LimitsInput {
            rpm: Some(5),
            tpm: Some(50),
            max_parallel: Some(2),
            ..budget(3.0, Some("7d"), None)
        },
        own.created_at,
    );
    let own = store.create_key(&own).await.unwrap();
    let gone = create_key(&store, "ml").await;
    let gone = store
        .revoke_key(&gone.public_id, Timestamp::now())
        .await
        .unwrap();

    let state = store.load_policy().await.unwrap();
    assert_eq!(state.version, store.policy_version().await.unwrap());
    assert_eq!(state.teams, vec![ml]);
    assert_eq!(state.keys.len(), 2);
    assert!(state.keys.contains(&policy_key(own)));
    assert!(
        state.keys.contains(&policy_key(gone)),
        "revoked keys stay in the snapshot"
    );
}

/// What a snapshot reads of a stored key.
fn policy_key(key: ApiKey) -> PolicyKey {
    PolicyKey {
        public_id: key.public_id,
        key_sha256: key.key_sha256,
        team_id: key.team_id,
        user_id: key.user_id,
        alias: key.alias,
        models: key.models,
        limits: key.limits,
        blocked: key.blocked,
        status: key.status,
        expires_at: key.expires_at,
        user_assertion: key.user_assertion,
        previous_secret: None,
    }
}

/// A service key's flag and secret are stored, read back, reach the snapshot's state and
/// change with updates: off drops the secret, a secret turns the flag on.
async fn service_keys_keep_their_flag_and_secret<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    store.create_team(&team("ml", &["*"])).await.unwrap();
    let secret = AssertionSecret::parse("0123456789abcdef0123456789abcdef").unwrap();
    let plain = key_with(&store, "ml", |k| k.user_assertion = UserAssertion::Headers).await;
    let signed = key_with(&store, "ml", |k| {
        k.user_assertion = UserAssertion::Signed(secret.clone());
    })
    .await;
    let ordinary = create_key(&store, "ml").await;
    let state = store.load_policy().await.unwrap();
    for key in [&plain, &signed, &ordinary] {
        assert_eq!(
            store.find_key(&key.public_id).await.unwrap().unwrap().key,
            *key
        );
        assert!(state.keys.contains(&policy_key(key.clone())));
    }
    assert_eq!(signed.user_assertion.secret(), Some(&secret));

    let now = Timestamp::now();
    let patch = |can_assert_user, secret| KeyPatch {
        user_assertion: AssertionPatch {
            can_assert_user,
            secret,
        },
        ..KeyPatch::default()
    };
    let off = store
        .update_key(&signed.public_id, &patch(Some(false), Change::Keep), now)
        .await
        .unwrap();
    assert_eq!(off.user_assertion, UserAssertion::Off);
    let resigned = store
        .update_key(
            &ordinary.public_id,
            &patch(None, Change::Set(secret.clone())),
            now,
        )
        .await
        .unwrap();
    assert_eq!(resigned.user_assertion, UserAssertion::Signed(secret));
    let cleared = store
        .update_key(&resigned.public_id, &patch(None, Change::Clear), now)
        .await
        .unwrap();
    assert_eq!(cleared.user_assertion, UserAssertion::Headers);
    assert_eq!(
        store
            .find_key(&cleared.public_id)
            .await
            .unwrap()
            .unwrap()
            .key,
        cleared
    );
}

async fn snapshots_are_cached_by_version<B: Backend>() {
    use modelgate_proto::v1 as pb;
    let (store, _guard) = B::fresh().await;
    let cache = SnapshotCache::new(store.clone(), Arc::new(SpendTracker::new()));

    let SnapshotAnswer::Changed(empty) = cache.answer(0).await.unwrap() else {
        panic!("known_version 0 must get a snapshot");
    };
    assert!(empty.keys.is_empty());
    let v = empty.version;
    assert_eq!(
        cache.answer(v).await.unwrap(),
        SnapshotAnswer::Unchanged { version: v }
    );

    store.create_team(&team("ml", &[])).await.unwrap();
    let (new, minted) = new_key("ml");
    store.create_key(&new).await.unwrap();
    let SnapshotAnswer::Changed(s) = cache.answer(v).await.unwrap() else {
        panic!("a change must produce a new snapshot");
    };
    assert_eq!(s.version, v + 2);
    assert_eq!(s.keys.len(), 1);
    assert_eq!(s.keys[0].key_sha256, minted.sha256.to_vec());
    assert_eq!(s.keys[0].status(), pb::KeyStatus::Active);
    assert_eq!(s.teams[0].alias, "ml");

    // Built once per version: a second caller gets the same allocation.
    let SnapshotAnswer::Changed(again) = cache.answer(0).await.unwrap() else {
        panic!("known_version 0 must get a snapshot");
    };
    assert!(Arc::ptr_eq(&s, &again));

    store
        .revoke_key(&minted.public_id, Timestamp::now())
        .await
        .unwrap();
    let SnapshotAnswer::Changed(after) = cache.answer(s.version).await.unwrap() else {
        panic!("revocation must produce a new snapshot");
    };
    assert_eq!(after.keys[0].status(), pb::KeyStatus::Revoked);
}

async fn usage_batches_are_stored_once<B: Backend>() {
    let (store, guard) = B::fresh().await;
    assert_eq!(
        store.record_usage(&usage("b1", 3)).await.unwrap(),
        UsageReceipt::Stored { records: 3 }
    );
    // A retry (even a different body under the same id) adds nothing.
    assert_eq!(
        store.record_usage(&usage("b1", 5)).await.unwrap(),
        UsageReceipt::Duplicate { records: 3 }
    );
    assert_eq!(
        store.record_usage(&usage("b2", 0)).await.unwrap(),
        UsageReceipt::Stored { records: 0 }
    );
    assert_eq!(
        guard.scalar_i64("SELECT COUNT(*) FROM usage_records").await,
        3
    );
    assert_eq!(
        guard.scalar_i64("SELECT COUNT(*) FROM usage_batches").await,
        2
    );
    assert_eq!(
        guard
            .scalar_i64("SELECT CAST(SUM(tokens_in + tokens_out) AS BIGINT) FROM usage_records")
            .await,
        90
    );
}

async fn concurrent_duplicate_batches_store_once<B: Backend>() {
    let (store, guard) = B::fresh().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.record_usage(&usage("same", 4)).await.unwrap() })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap() {
            UsageReceipt::Stored { records: 4 } => stored += 1,
            UsageReceipt::Duplicate { records: 4 } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(
        guard.scalar_i64("SELECT COUNT(*) FROM usage_records").await,
        4
    );
}

async fn concurrent_key_creation_serialises_versions<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    store.create_team(&team("ml", &[])).await.unwrap();
    let v0 = store.policy_version().await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { create_key(&store, "ml").await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.policy_version().await.unwrap(), v0 + 10);
    assert_eq!(
        store.list_keys(&KeyFilter::default()).await.unwrap().len(),
        10
    );
}

async fn reopening_keeps_data_and_migrations<B: Backend>() {
    let (store, guard) = B::fresh().await;
    store.create_team(&team("ml", &[])).await.unwrap();
    let key = create_key(&store, "ml").await;
    let version = store.policy_version().await.unwrap();
    let migrations = guard
        .scalar_i64("SELECT COUNT(*) FROM _sqlx_migrations")
        .await;
    store.close().await;

    let reopened = B::reopen(&guard).await;
    assert_eq!(reopened.policy_version().await.unwrap(), version);
    let keys = reopened.list_keys(&KeyFilter::default()).await.unwrap();
    assert_eq!(
        keys.into_iter().map(|k| k.key).collect::<Vec<_>>(),
        vec![key]
    );
    reopened.ping().await.unwrap();
    assert_eq!(
        guard
            .scalar_i64("SELECT COUNT(*) FROM _sqlx_migrations")
            .await,
        migrations,
        "reopening applies no migration twice"
    );
}

// ---- Issue 3: limits, budgets, users, model routes, spend ----

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn minutes(n: i64) -> i64 {
    n * 60_000
}

fn plus(t: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_millis(t.as_millis() + ms)
}

fn limits(input: LimitsInput, now: Timestamp) -> Limits {
    input.to_limits(now).unwrap()
}

fn budget(max: f64, duration: Option<&str>, reset: Option<&str>) -> LimitsInput {
    LimitsInput {
        max_budget: Some(max),
        budget_duration: duration.map(str::to_owned),
        budget_reset: reset.map(str::to_owned),
        ..LimitsInput::default()
    }
}

fn record(key: &str, team: &str, user: &str, time: Timestamp, spend: f64) -> pb::UsageRecord {
    pb::UsageRecord {
        request_id: format!("{key}-{}", time.as_millis()),
        timestamp_ms: time.as_millis(),
        key_id: key.to_owned(),
        team_id: team.to_owned(),
        user_id: user.to_owned(),
        model_requested: "llama3".into(),
        tokens_in: 10,
        tokens_out: 20,
        spend,
        status: pb::RequestStatus::Success.into(),
        ..Default::default()
    }
}

async fn report<S: Store>(store: &S, batch_id: &str, records: &[pb::UsageRecord]) {
    let batch = UsageBatch {
        batch_id: batch_id.to_owned(),
        node_id: "envoy-a".into(),
        data_plane: "edge-a".into(),
        received_at: Timestamp::now(),
        entries: records.iter().map(entry_from_record).collect(),
    };
    store.record_usage(&batch).await.unwrap();
}

async fn key_with<S: Store>(store: &S, team: &str, edit: impl FnOnce(&mut NewKey)) -> ApiKey {
    let (mut key, _) = new_key(team);
    edit(&mut key);
    store.create_key(&key).await.unwrap()
}

fn public_ids(keys: &[ListedKey]) -> Vec<&str> {
    keys.iter().map(|k| k.key.public_id.as_str()).collect()
}

async fn teams_keep_limits_metadata_and_redaction_settings<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let mut ml = team("ml", &["qwen2.5-*"]);
    ml.limits = limits(
        LimitsInput {
            rpm: Some(100),
            tpm: Some(10_000),
            max_parallel: Some(4),
            ..budget(10.0, Some("30d"), None)
        },
        ml.created_at,
    );
    ml.metadata = Metadata::parse(r#"{"owner":"ana","cost_center":42,"tags":["a"]}"#).unwrap();
    ml.redaction_policy = Some(r#"{"entities":{"PERSON":"reversible"}}"#.into());
    ml.high_trust = true;
    ml.keep_redacted_prompt = true;
    ml.blocked = true;
    store.create_team(&ml).await.unwrap();
    let mut web = team("web", &["*"]);
    web.limits = limits(budget(0.0, None, Some("calendar-month")), web.created_at);
    store.create_team(&web).await.unwrap();

    assert_eq!(store.find_team("ml").await.unwrap(), Some(ml.clone()));
    assert_eq!(store.find_team(&web.id).await.unwrap(), Some(web.clone()));
    assert_eq!(store.list_teams().await.unwrap(), vec![ml.clone(), web]);
    let state = store.load_policy().await.unwrap();
    assert_eq!(state.teams[0], ml);
}

async fn team_updates_apply_once_and_only_when_something_changes<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let ml = team("ml", &["llama3"]);
    store.create_team(&ml).await.unwrap();
    store.create_team(&team("web", &[])).await.unwrap();
    let v0 = store.policy_version().await.unwrap();
    let now = Timestamp::now();

    let patch = TeamPatch {
        alias: Some(TeamAlias::parse("ml2").unwrap()),
        models: Some(vec!["llama3".into(), "qwen2.5-*".into()]),
        limits: LimitsInput {
            rpm: Some(50),
            ..budget(5.0, None, Some("calendar-day"))
        },
        metadata: Change::Set(Metadata::parse(r#"{"owner":"ana"}"#).unwrap()),
        redaction_policy: Change::Set("{}".into()),
        ..TeamPatch::default()
    };
    let updated = store.update_team("ml", &patch, now).await.unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);
    assert_eq!(updated.alias, "ml2");
    assert_eq!(updated.limits.rpm, Some(50));
    assert_eq!(updated.limits.budget.unwrap().anchor, now);
    assert_eq!(store.find_team("ml2").await.unwrap(), Some(updated.clone()));
    assert_eq!(store.find_team("ml").await.unwrap(), None);

    // The same change again changes nothing: no version bump.
    let same = TeamPatch {
        alias: Some(TeamAlias::parse("ml2").unwrap()),
        limits: LimitsInput {
            rpm: Some(50),
            ..LimitsInput::default()
        },
        ..TeamPatch::default()
    };
    assert_eq!(
        store.update_team(&ml.id, &same, now).await.unwrap(),
        updated
    );
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);

    let blocked = store
        .update_team("ml2", &TeamPatch::blocked(true), now)
        .await
        .unwrap();
    assert!(blocked.blocked);
    assert_eq!(store.policy_version().await.unwrap(), v0 + 2);

    // Refusals change nothing either.
    let rename = TeamPatch {
        alias: Some(TeamAlias::parse("web").unwrap()),
        ..TeamPatch::default()
    };
    let err = store.update_team("ml2", &rename, now).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::TeamAliasTaken(a) if a == "web"),
        "{err:?}"
    );
    let zero = TeamPatch {
        limits: LimitsInput {
            tpm: Some(0),
            ..LimitsInput::default()
        },
        ..TeamPatch::default()
    };
    let err = store.update_team("ml2", &zero, now).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid(ValidationError::LimitZero("tpm_limit"))
        ),
        "{err:?}"
    );
    let err = store
        .update_team("nope", &TeamPatch::blocked(true), now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TeamNotFound(_)), "{err:?}");
    assert_eq!(store.policy_version().await.unwrap(), v0 + 2);
    assert_eq!(store.find_team("ml2").await.unwrap(), Some(blocked));
}

async fn keys_can_only_narrow_their_team<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let mut ml = team("ml", &["llama3", "qwen2.5-*"]);
    ml.limits = limits(
        LimitsInput {
            rpm: Some(100),
            max_parallel: Some(4),
            ..budget(10.0, Some("30d"), None)
        },
        ml.created_at,
    );
    store.create_team(&ml).await.unwrap();
    let v0 = store.policy_version().await.unwrap();

    let (mut wide, _) = new_key("ml");
    wide.limits.rpm = Some(101);
    let err = store.create_key(&wide).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "rpm_limit 101 is above team ml's rpm_limit 100: a key can only narrow its team's limits"
    );
    let (mut outside, _) = new_key("ml");
    outside.models = vec!["qwen2.5x".into()];
    let err = store.create_key(&outside).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(ValidationError::ModelOutsideTeam { model, .. }) if model == "qwen2.5x"),
        "{err:?}"
    );
    let (mut rich, _) = new_key("ml");
    rich.limits = limits(budget(10.5, None, None), rich.created_at);
    let err = store.create_key(&rich).await.unwrap_err();
    assert!(
        err.to_string().starts_with("max_budget 10.5 is above"),
        "{err}"
    );
    assert_eq!(store.policy_version().await.unwrap(), v0);
    assert!(store
        .list_keys(&KeyFilter::default())
        .await
        .unwrap()
        .is_empty());

    let (mut within, minted) = new_key("ml");
    within.models = vec!["qwen2.5-7b".into(), "qwen2.5-coder-*".into()];
    within.limits = limits(
        LimitsInput {
            rpm: Some(100),
            tpm: Some(5_000),
            max_parallel: Some(2),
            ..budget(1.5, None, Some("calendar-week"))
        },
        within.created_at,
    );
    within.metadata = Metadata::parse(r#"{"env":"prod"}"#).unwrap();
    within.blocked = true;
    let created = store.create_key(&within).await.unwrap();
    assert_eq!(created.limits, within.limits);
    assert_eq!(created.metadata, within.metadata);
    assert!(created.blocked);
    let found = store.find_key(&created.public_id).await.unwrap().unwrap();
    assert_eq!(found.key, created);
    assert_eq!(found.last_used_at, None);
    assert_eq!(
        store.find_key_by_hash(&minted.sha256).await.unwrap(),
        Some(created)
    );
    assert_eq!(store.find_key("zzzzzzzzzzzz").await.unwrap(), None);
}

async fn key_updates_stay_within_the_team<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let mut ml = team("ml", &["llama3", "qwen2.5-*"]);
    ml.limits.rpm = Some(100);
    store.create_team(&ml).await.unwrap();
    let key = key_with(&store, "ml", |k| {
        k.metadata = Metadata::parse(r#"{"env":"dev"}"#).unwrap();
    })
    .await;
    let v0 = store.policy_version().await.unwrap();
    let now = Timestamp::now();
    let by_tag = |name: &str, value: &str| KeyFilter {
        tags: vec![(name.to_owned(), value.to_owned())],
        ..KeyFilter::default()
    };

    let patch = KeyPatch {
        alias: Change::Set("laptop".into()),
        user_id: Change::Clear,
        expires_at: Change::Clear,
        models: Some(vec!["qwen2.5-7b".into()]),
        limits: LimitsInput {
            rpm: Some(20),
            ..LimitsInput::default()
        },
        metadata: Change::Set(Metadata::parse(r#"{"env":"prod","owner":"ana"}"#).unwrap()),
        ..KeyPatch::default()
    };
    let updated = store.update_key(&key.public_id, &patch, now).await.unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);
    assert_eq!(updated.alias.as_deref(), Some("laptop"));
    assert_eq!(
        (updated.user_id.as_deref(), updated.expires_at),
        (None, None)
    );
    assert_eq!(updated.models, ["qwen2.5-7b"]);
    assert_eq!(updated.limits.rpm, Some(20));
    assert_eq!(
        store.find_key(&key.public_id).await.unwrap().unwrap().key,
        updated
    );
    // The tags follow the metadata.
    assert!(store
        .list_keys(&by_tag("env", "dev"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        public_ids(&store.list_keys(&by_tag("env", "prod")).await.unwrap()),
        [key.public_id.as_str()]
    );

    // Nothing new: no bump. Wider than the team: refused, nothing stored.
    store.update_key(&key.public_id, &patch, now).await.unwrap();
    let wider = KeyPatch {
        limits: LimitsInput {
            rpm: Some(101),
            ..LimitsInput::default()
        },
        ..KeyPatch::default()
    };
    let err = store
        .update_key(&key.public_id, &wider, now)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid(ValidationError::AboveTeam {
                field: "rpm_limit",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);

    let blocked = store
        .update_key(&key.public_id, &KeyPatch::blocked(true), now)
        .await
        .unwrap();
    assert!(blocked.blocked);
    let unblocked = store
        .update_key(&key.public_id, &KeyPatch::blocked(false), now)
        .await
        .unwrap();
    assert!(!unblocked.blocked);
    assert_eq!(store.policy_version().await.unwrap(), v0 + 3);

    store.revoke_key(&key.public_id, now).await.unwrap();
    let err = store
        .update_key(&key.public_id, &KeyPatch::blocked(true), now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::KeyRevoked(_)), "{err:?}");
    let err = store
        .update_key("zzzzzzzzzzzz", &KeyPatch::blocked(true), now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::KeyNotFound(_)), "{err:?}");
}

async fn keys_are_filtered_by_user_tags_expiry_and_last_use<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    store.create_team(&team("ml", &[])).await.unwrap();
    let now = Timestamp::now();
    let created = plus(now, -60 * DAY_MS);
    let a = key_with(&store, "ml", |k| {
        k.user_id = Some("ana@example.com".into());
        k.metadata = Metadata::parse(r#"{"env":"prod","owner":"ana"}"#).unwrap();
        k.created_at = created;
        k.expires_at = Some(plus(now, -DAY_MS));
    })
    .await;
    let b = key_with(&store, "ml", |k| {
        k.user_id = Some("bo@example.com".into());
        k.metadata = Metadata::parse(r#"{"env":"dev","ticket":123}"#).unwrap();
        k.created_at = plus(created, 1);
        k.expires_at = None;
    })
    .await;
    let c = key_with(&store, "ml", |k| {
        k.user_id = Some("ana@example.com".into());
        k.metadata = Metadata::parse(r#"{"env":"prod","owner":"bo"}"#).unwrap();
        k.created_at = plus(created, 2);
    })
    .await;
    report(
        &store,
        "b1",
        &[
            record(
                &b.public_id,
                b.team_id.as_deref().unwrap_or_default(),
                "bo@example.com",
                plus(now, -DAY_MS),
                0.1,
            ),
            record(
                &c.public_id,
                c.team_id.as_deref().unwrap_or_default(),
                "ana@example.com",
                plus(now, -41 * DAY_MS),
                0.1,
            ),
            record(
                &c.public_id,
                c.team_id.as_deref().unwrap_or_default(),
                "ana@example.com",
                plus(now, -40 * DAY_MS),
                0.1,
            ),
        ],
    )
    .await;
    let list = |filter: KeyFilter| {
        let store = store.clone();
        async move { store.list_keys(&filter).await.unwrap() }
    };

    let ana = list(KeyFilter {
        user_id: Some("ana@example.com".into()),
        ..KeyFilter::default()
    })
    .await;
    assert_eq!(
        public_ids(&ana),
        [a.public_id.as_str(), c.public_id.as_str()]
    );
    let tag = |pairs: &[(&str, &str)]| KeyFilter {
        tags: pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        ..KeyFilter::default()
    };
    assert_eq!(
        public_ids(&list(tag(&[("env", "prod")])).await),
        [a.public_id.as_str(), c.public_id.as_str()]
    );
    assert_eq!(
        public_ids(&list(tag(&[("env", "prod"), ("owner", "ana")])).await),
        [a.public_id.as_str()]
    );
    assert_eq!(
        public_ids(&list(tag(&[("ticket", "123")])).await),
        [b.public_id.as_str()]
    );
    assert!(list(tag(&[("env", "staging")])).await.is_empty());

    let expired = list(KeyFilter {
        expired_at: Some(now),
        ..KeyFilter::default()
    })
    .await;
    assert_eq!(public_ids(&expired), [a.public_id.as_str()]);

    // Unused for 30 days: `a` never used (created 60 days ago), `c` last used 40 days ago.
    let unused = list(KeyFilter {
        unused_since: Some(plus(now, -30 * DAY_MS)),
        ..KeyFilter::default()
    })
    .await;
    assert_eq!(
        public_ids(&unused),
        [a.public_id.as_str(), c.public_id.as_str()]
    );
    let all = list(KeyFilter::default()).await;
    assert_eq!(all[0].last_used_at, None);
    assert_eq!(all[1].last_used_at, Some(plus(now, -DAY_MS)));
    assert_eq!(all[2].last_used_at, Some(plus(now, -40 * DAY_MS)));

    // Filters combine.
    let none = list(KeyFilter {
        user_id: Some("bo@example.com".into()),
        expired_at: Some(now),
        ..KeyFilter::default()
    })
    .await;
    assert!(none.is_empty());
}

async fn users_are_created_updated_and_listed<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let now = Timestamp::now();
    let ana = User {
        id: "ana@example.com".into(),
        team_id: None,
        limits: limits(
            LimitsInput {
                rpm: Some(10),
                ..budget(3.0, Some("7d"), None)
            },
            now,
        ),
        created_at: now,
    };
    let bo = User {
        id: "bo@example.com".into(),
        team_id: None,
        limits: Limits::default(),
        created_at: now,
    };
    let v0 = store.policy_version().await.unwrap();
    store.create_user(&bo).await.unwrap();
    store.create_user(&ana).await.unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v0 + 2);
    let err = store.create_user(&ana).await.unwrap_err();
    assert!(matches!(err, StoreError::UserExists(_)), "{err:?}");
    assert_eq!(
        store.list_users().await.unwrap(),
        vec![ana.clone(), bo.clone()]
    );
    assert_eq!(
        store.find_user("ana@example.com").await.unwrap(),
        Some(ana.clone())
    );
    assert_eq!(store.find_user("cy@example.com").await.unwrap(), None);

    let patch = UserPatch {
        limits: LimitsInput {
            tpm: Some(1_000),
            ..LimitsInput::default()
        },
        limits_clear: LimitsClear {
            rpm: true,
            ..LimitsClear::default()
        },
        ..UserPatch::default()
    };
    let updated = store
        .update_user("ana@example.com", &patch, now)
        .await
        .unwrap();
    assert_eq!(
        (updated.limits.rpm, updated.limits.tpm),
        (None, Some(1_000))
    );
    assert_eq!(updated.limits.budget, ana.limits.budget);
    assert_eq!(store.policy_version().await.unwrap(), v0 + 3);
    store
        .update_user("ana@example.com", &patch, now)
        .await
        .unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v0 + 3);
    let err = store
        .update_user("cy@example.com", &patch, now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UserNotFound(_)), "{err:?}");
    assert_eq!(store.load_policy().await.unwrap().users, vec![updated, bo]);
}

/// `user update --team` takes a team id or alias and stores the id; clearing puts the user
/// back in whatever team names them (a service key's); an unknown team changes nothing.
async fn users_belong_to_a_team_by_id_or_alias<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let ml = team("ml", &["*"]);
    store.create_team(&ml).await.unwrap();
    let now = Timestamp::now();
    let ana = User {
        id: "ana@example.com".into(),
        team_id: None,
        limits: Limits::default(),
        created_at: now,
    };
    store.create_user(&ana).await.unwrap();
    let to = |team: Change<String>| UserPatch {
        team,
        ..UserPatch::default()
    };
    let joined = store
        .update_user(&ana.id, &to(Change::Set("ml".into())), now)
        .await
        .unwrap();
    assert_eq!(joined.team_id.as_deref(), Some(ml.id.as_str()));
    assert_eq!(
        store.find_user(&ana.id).await.unwrap(),
        Some(joined.clone())
    );
    assert_eq!(store.load_policy().await.unwrap().users, vec![joined]);
    let err = store
        .update_user(&ana.id, &to(Change::Set("nope".into())), now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TeamNotFound(_)), "{err:?}");
    let left = store
        .update_user(&ana.id, &to(Change::Clear), now)
        .await
        .unwrap();
    assert_eq!(left.team_id, None);
    assert_eq!(store.find_user(&ana.id).await.unwrap(), Some(left));
}

async fn model_routes_are_created_updated_and_deleted<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let llama = ModelRoute {
        name: "llama3.1-8b".into(),
        upstream_model: Some("llama3.1:8b".into()),
        cluster: Some("ollama".into()),
        input_cost_per_mtok: 0.15,
        output_cost_per_mtok: 0.6,
        default_max_tokens: Some(512),
        max_output_tokens: Some(128),
        created_at: Timestamp::now(),
    };
    let qwen = ModelRoute {
        name: "qwen2.5-7b".into(),
        upstream_model: None,
        cluster: None,
        input_cost_per_mtok: 0.0,
        output_cost_per_mtok: 0.0,
        default_max_tokens: None,
        max_output_tokens: None,
        created_at: Timestamp::now(),
    };
    let v0 = store.policy_version().await.unwrap();
    store.create_model(&qwen).await.unwrap();
    store.create_model(&llama).await.unwrap();
    let err = store.create_model(&qwen).await.unwrap_err();
    assert!(matches!(err, StoreError::ModelExists(_)), "{err:?}");
    assert_eq!(
        store.list_models().await.unwrap(),
        vec![llama.clone(), qwen.clone()]
    );
    assert_eq!(store.policy_version().await.unwrap(), v0 + 2);

    let patch = ModelPatch {
        upstream_model: Change::Clear,
        cluster: Change::Set("gpu-a".into()),
        input_cost_per_mtok: Some(0.2),
        default_max_tokens: Change::Clear,
        max_output_tokens: Change::Set(64),
        ..ModelPatch::default()
    };
    let updated = store.update_model("llama3.1-8b", &patch).await.unwrap();
    assert_eq!(updated.upstream_model, None);
    assert_eq!(updated.cluster.as_deref(), Some("gpu-a"));
    assert_eq!(updated.input_cost_per_mtok, 0.2);
    assert_eq!(updated.output_cost_per_mtok, 0.6);
    assert_eq!(updated.default_max_tokens, None);
    assert_eq!(updated.max_output_tokens, Some(64));
    assert_eq!(store.policy_version().await.unwrap(), v0 + 3);
    store.update_model("llama3.1-8b", &patch).await.unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v0 + 3);

    assert_eq!(store.delete_model("qwen2.5-7b").await.unwrap(), qwen);
    let err = store.delete_model("qwen2.5-7b").await.unwrap_err();
    assert!(matches!(err, StoreError::ModelNotFound(_)), "{err:?}");
    let err = store.update_model("nope", &patch).await.unwrap_err();
    assert!(matches!(err, StoreError::ModelNotFound(_)), "{err:?}");
    assert_eq!(store.load_policy().await.unwrap().models, vec![updated]);
    assert_eq!(store.policy_version().await.unwrap(), v0 + 4);
}

async fn usage_is_read_in_chain_order<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let t = at("2026-03-01T00:00:00Z");
    assert!(store.usage_after(0, 10).await.unwrap().is_empty());
    report(
        &store,
        "b1",
        &[
            record("k1", "t1", "u1", t, 1.0),
            record("k2", "t1", "u2", plus(t, 1), 2.0),
        ],
    )
    .await;
    report(&store, "b2", &[record("k1", "t2", "u1", plus(t, -5), 4.0)]).await;
    let first = store.usage_after(0, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!((first[0].key_id.as_str(), first[0].spend), ("k1", 1.0));
    assert_eq!(
        (first[1].user_id.as_str(), first[1].timestamp),
        ("u2", plus(t, 1))
    );
    let rest = store.usage_after(first[1].id, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, first[1].id + 1, "positions have no gaps");
    assert_eq!((rest[0].team_id.as_str(), rest[0].spend), ("t2", 4.0));
    assert!(store.usage_after(rest[0].id, 10).await.unwrap().is_empty());
}

/// Budgets of every kind and period, with records on both sides of each window's start:
/// the one-query sum (SQL window arithmetic) equals the Rust windows.
async fn budget_windows_sum_the_same_in_sql_and_rust<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    // A Sunday afternoon, mid-month.
    let now = at("2026-03-15T12:00:00Z");
    let mut rolling = team("rolling", &["*"]);
    rolling.limits = limits(budget(100.0, Some("1h"), None), plus(now, -minutes(150)));
    store.create_team(&rolling).await.unwrap();
    let mut unbudgeted = team("free", &["*"]);
    unbudgeted.limits.rpm = Some(5);
    store.create_team(&unbudgeted).await.unwrap();
    let weekly = key_with(&store, "rolling", |k| {
        k.limits = limits(budget(50.0, None, Some("calendar-week")), now);
    })
    .await;
    let lifetime = key_with(&store, "rolling", |k| {
        k.limits = limits(budget(50.0, None, None), plus(now, -10 * DAY_MS));
    })
    .await;
    let daily = key_with(&store, "rolling", |k| {
        k.limits = limits(budget(50.0, None, Some("calendar-day")), now);
    })
    .await;
    let monthly_user = User {
        id: "ana@example.com".into(),
        team_id: None,
        limits: limits(budget(5.0, None, Some("calendar-month")), now),
        created_at: now,
    };
    store.create_user(&monthly_user).await.unwrap();
    let seven_days = User {
        id: "bo@example.com".into(),
        team_id: None,
        limits: limits(budget(5.0, Some("7d"), None), plus(now, -20 * DAY_MS)),
        created_at: now,
    };
    store.create_user(&seven_days).await.unwrap();

    let budgets: Vec<(ScopeKind, String, Budget)> = vec![
        (
            ScopeKind::Team,
            rolling.id.clone(),
            rolling.limits.budget.unwrap(),
        ),
        (
            ScopeKind::Key,
            weekly.public_id.clone(),
            weekly.limits.budget.unwrap(),
        ),
        (
            ScopeKind::Key,
            lifetime.public_id.clone(),
            lifetime.limits.budget.unwrap(),
        ),
        (
            ScopeKind::Key,
            daily.public_id.clone(),
            daily.limits.budget.unwrap(),
        ),
        (
            ScopeKind::User,
            monthly_user.id.clone(),
            monthly_user.limits.budget.unwrap(),
        ),
        (
            ScopeKind::User,
            seven_days.id.clone(),
            seven_days.limits.budget.unwrap(),
        ),
    ];
    // Records just before, at and after every window start, spread over keys and users.
    let keys = [&weekly, &lifetime, &daily];
    let users = ["ana@example.com", "bo@example.com"];
    let mut records = Vec::new();
    let mut amount = 0.001;
    for (_, _, b) in &budgets {
        let start = b.window_at(now).start;
        for offset in [-1, 0, 1, -DAY_MS, minutes(5)] {
            let i = records.len();
            let key = keys[i % keys.len()];
            records.push(record(
                &key.public_id,
                key.team_id.as_deref().unwrap_or_default(),
                users[i % users.len()],
                plus(start, offset),
                amount,
            ));
            amount *= 2.0;
        }
    }
    report(&store, "b1", &records).await;

    let totals = store.budget_spend(now, None).await.unwrap();
    assert_eq!(totals.upto_seq, records.len() as i64);
    for (kind, id, b) in &budgets {
        let start = b.window_at(now).start;
        let expected: f64 = records
            .iter()
            .filter(|r| {
                let scope_id = match kind {
                    ScopeKind::Key => &r.key_id,
                    ScopeKind::Team => &r.team_id,
                    ScopeKind::User => &r.user_id,
                };
                scope_id == id && r.timestamp_ms >= start.as_millis()
            })
            .map(|r| r.spend)
            .sum();
        let summed = totals
            .spend
            .iter()
            .find(|(k, i, _)| k == kind && i == id)
            .map_or(0.0, |(_, _, s)| *s);
        assert!(
            (summed - expected).abs() < 1e-9,
            "{kind:?} {id}: SQL {summed} vs Rust {expected} for window from {}",
            start.to_rfc3339()
        );
        let one = store
            .scope_spend(*kind, id, start, totals.upto_seq)
            .await
            .unwrap();
        assert!(
            (one - expected).abs() < 1e-9,
            "{kind:?} {id}: {one} vs {expected}"
        );
    }
    assert!(
        !totals.spend.iter().any(|(_, id, _)| *id == unbudgeted.id),
        "only budgeted scopes are summed"
    );

    // Counting up to a chain position leaves later records out.
    let early = store.budget_spend(now, Some(0)).await.unwrap();
    assert_eq!(early.upto_seq, 0);
    assert!(early.spend.is_empty());
}

async fn spend_history_groups_by_utc_day<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let day = at("2026-03-10T00:00:00Z");
    report(
        &store,
        "b1",
        &[
            record("k1", "t1", "u1", plus(day, -1), 1.0),
            record("k1", "t1", "u1", day, 2.0),
            record("k1", "t1", "u1", plus(day, DAY_MS - 1), 4.0),
            record("k1", "t1", "u1", plus(day, 2 * DAY_MS), 8.0),
            record("k2", "t1", "u1", day, 16.0),
        ],
    )
    .await;
    let history = store
        .spend_history(ScopeKind::Key, "k1", plus(day, -DAY_MS))
        .await
        .unwrap();
    let days: Vec<(String, f64, u64, u64, u64)> = history
        .iter()
        .map(|d| {
            (
                d.day.to_rfc3339(),
                d.spend,
                d.requests,
                d.tokens_in,
                d.tokens_out,
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            ("2026-03-09T00:00:00.000Z".to_owned(), 1.0, 1, 10, 20),
            ("2026-03-10T00:00:00.000Z".to_owned(), 6.0, 2, 20, 40),
            ("2026-03-12T00:00:00.000Z".to_owned(), 8.0, 1, 10, 20),
        ]
    );
    let team = store
        .spend_history(ScopeKind::Team, "t1", day)
        .await
        .unwrap();
    assert_eq!(team.iter().map(|d| d.spend).sum::<f64>(), 30.0);
    let total = store
        .scope_spend(ScopeKind::User, "u1", Timestamp::from_millis(0), i64::MAX)
        .await
        .unwrap();
    assert_eq!(total, 31.0);
}

async fn spend_tracking_marks_exhaustion_and_resets_on_time<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    // Around the real clock, so the snapshot (built at the real now) sees the same window.
    let t0 = plus(Timestamp::now(), -minutes(1));
    store.create_team(&team("ml", &["*"])).await.unwrap();
    let key = key_with(&store, "ml", |k| {
        k.user_id = None;
        k.limits = limits(budget(1.0, Some("1h"), None), t0);
    })
    .await;
    let tracker = Arc::new(SpendTracker::new());
    let mut sync = SpendSync::start(store.clone(), Arc::clone(&tracker), plus(t0, 1))
        .await
        .unwrap();
    let budget = key.limits.budget.unwrap();
    let state = |now| {
        tracker
            .reader()
            .state(ScopeKind::Key, &key.public_id, &budget, now)
    };
    let v0 = store.policy_version().await.unwrap();

    report(
        &store,
        "b1",
        &[record(
            &key.public_id,
            key.team_id.as_deref().unwrap_or_default(),
            "",
            plus(t0, 2),
            0.6,
        )],
    )
    .await;
    assert!(
        !sync.tick(plus(t0, 3)).await.unwrap(),
        "spend alone is no news"
    );
    assert_eq!(store.policy_version().await.unwrap(), v0);
    assert_eq!(state(plus(t0, 3)).spend, 0.6);

    // A late record from before the window does not count; this one exhausts the budget.
    report(
        &store,
        "b2",
        &[
            record(
                &key.public_id,
                key.team_id.as_deref().unwrap_or_default(),
                "",
                plus(t0, -1),
                5.0,
            ),
            record(
                &key.public_id,
                key.team_id.as_deref().unwrap_or_default(),
                "",
                plus(t0, 4),
                0.4,
            ),
        ],
    )
    .await;
    assert!(sync.tick(plus(t0, 5)).await.unwrap());
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);
    let exhausted = state(plus(t0, 5));
    assert!(exhausted.exhausted);
    assert!((exhausted.spend - 1.0).abs() < 1e-9);

    // Filters see it in the snapshot of the bumped version.
    let cache = SnapshotCache::new(store.clone(), Arc::clone(&tracker));
    let SnapshotAnswer::Changed(snapshot) = cache.answer(v0).await.unwrap() else {
        panic!("the bump must produce a new snapshot");
    };
    assert_eq!(snapshot.version, v0 + 1);
    let spend = snapshot.keys[0].spend.unwrap();
    assert!(spend.exhausted);
    assert_eq!(spend.window_start_ms, t0.as_millis());
    assert_eq!(spend.window_reset_at_ms, plus(t0, minutes(60)).as_millis());

    // Nothing changed: no bump. The hour passes: the window resets by itself.
    assert!(!sync.tick(plus(t0, 6)).await.unwrap());
    let next_hour = plus(t0, minutes(60));
    assert!(sync.tick(next_hour).await.unwrap());
    assert_eq!(store.policy_version().await.unwrap(), v0 + 2);
    let reset = state(next_hour);
    assert_eq!((reset.spend, reset.exhausted), (0.0, false));
    assert_eq!(reset.window.start, next_hour);
    assert!(!sync.tick(plus(next_hour, 1)).await.unwrap());
}

async fn spend_tracking_follows_budget_changes_and_many_new_budgets<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let t0 = Timestamp::now();
    let mut ml = team("ml", &["*"]);
    ml.limits = limits(budget(100.0, None, Some("calendar-month")), t0);
    store.create_team(&ml).await.unwrap();
    let tracker = Arc::new(SpendTracker::new());
    let mut sync = SpendSync::start(store.clone(), Arc::clone(&tracker), t0)
        .await
        .unwrap();

    // Spend recorded before a key has a budget still counts once it gets one.
    let key = key_with(&store, "ml", |k| k.user_id = None).await;
    report(
        &store,
        "b1",
        &[record(&key.public_id, &ml.id, "", plus(t0, 1), 2.0)],
    )
    .await;
    assert!(!sync.tick(plus(t0, 2)).await.unwrap());
    let patch = KeyPatch {
        limits: budget(3.0, None, None),
        ..KeyPatch::default()
    };
    // The budget counts from the change (t0). The record at t0 + 1 arrived while the tracker
    // did not follow this budget, so it is read from the store when the budget appears.
    let with_budget = store.update_key(&key.public_id, &patch, t0).await.unwrap();
    let v1 = store.policy_version().await.unwrap();
    assert!(
        !sync.tick(plus(t0, 3)).await.unwrap(),
        "fresh window, nothing new to publish"
    );
    let b = with_budget.limits.budget.unwrap();
    let reader_spend = |kind, id: &str, b: &Budget, now| tracker.reader().state(kind, id, b, now);
    assert_eq!(
        reader_spend(ScopeKind::Key, &key.public_id, &b, plus(t0, 3)).spend,
        2.0
    );
    assert!(
        (reader_spend(
            ScopeKind::Team,
            &ml.id,
            &ml.limits.budget.unwrap(),
            plus(t0, 3)
        )
        .spend
            - 2.0)
            .abs()
            < 1e-9
    );

    // Lowering the amount below the spend: the admin change bumps, the tracker agrees.
    let lower = KeyPatch {
        limits: LimitsInput {
            max_budget: Some(1.0),
            ..LimitsInput::default()
        },
        ..KeyPatch::default()
    };
    let lowered = store
        .update_key(&key.public_id, &lower, plus(t0, 4))
        .await
        .unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v1 + 1);
    assert!(sync.tick(plus(t0, 5)).await.unwrap(), "exhausted now");
    assert!(
        reader_spend(
            ScopeKind::Key,
            &key.public_id,
            &lowered.limits.budget.unwrap(),
            plus(t0, 5)
        )
        .exhausted
    );

    // Many new budgets at once are read with one aggregate query.
    let mut many = Vec::new();
    for i in 0..70 {
        let k = key_with(&store, "ml", |k| {
            k.user_id = None;
            k.limits = limits(budget(1.0, Some("1d"), None), plus(t0, -minutes(10)));
            k.created_at = plus(t0, i);
        })
        .await;
        many.push(k);
    }
    let records: Vec<pb::UsageRecord> = many
        .iter()
        .take(5)
        .map(|k| record(&k.public_id, &ml.id, "", plus(t0, -minutes(5)), 0.25))
        .collect();
    report(&store, "b2", &records).await;
    // Not ingested yet when the budgets are read: the aggregate must not count them, the
    // ingestion right after must.
    sync.tick(plus(t0, 6)).await.unwrap();
    for (i, k) in many.iter().enumerate() {
        let spent = reader_spend(
            ScopeKind::Key,
            &k.public_id,
            &k.limits.budget.unwrap(),
            plus(t0, 6),
        )
        .spend;
        assert_eq!(spent, if i < 5 { 0.25 } else { 0.0 }, "key {i}");
    }
}

async fn budgets_are_loaded_at_their_version_without_revoked_keys<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let now = Timestamp::now();
    let mut ml = team("ml", &["*"]);
    ml.limits = limits(budget(10.0, None, Some("calendar-day")), now);
    store.create_team(&ml).await.unwrap();
    store.create_team(&team("free", &["*"])).await.unwrap();
    let kept = key_with(&store, "ml", |k| {
        k.limits = limits(budget(1.0, Some("1h"), None), now);
    })
    .await;
    let gone = key_with(&store, "ml", |k| {
        k.limits = limits(budget(1.0, None, None), now);
    })
    .await;
    key_with(&store, "free", |_| {}).await;
    let ana = User {
        id: "ana@example.com".into(),
        team_id: None,
        limits: limits(budget(2.0, Some("7d"), None), now),
        created_at: now,
    };
    store.create_user(&ana).await.unwrap();
    store.revoke_key(&gone.public_id, now).await.unwrap();

    let state = store.load_budgets().await.unwrap();
    assert_eq!(state.version, store.policy_version().await.unwrap());
    let mut budgets = state.budgets;
    budgets.sort_by(|a, b| a.1.cmp(&b.1));
    let mut expected = vec![
        (ScopeKind::Team, ml.id.clone(), ml.limits.budget.unwrap()),
        (
            ScopeKind::Key,
            kept.public_id.clone(),
            kept.limits.budget.unwrap(),
        ),
        (ScopeKind::User, ana.id.clone(), ana.limits.budget.unwrap()),
    ];
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(budgets, expected);
}

/// The README's `--database-url postgres://…?sslmode=verify-full&sslrootcert=CA` (issue 13):
/// the store opens over TLS to a server that takes TCP only over TLS, checks the server's
/// certificate and name, and works; a certificate from another CA is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_with_verify_full() {
    use modelgate_control_plane::store::TeamStore;
    let pki = modelgate_e2e::pki::TestPki::new("postgres");
    let db = TestDatabase::create_tls(&pki).await;
    let OpenedStore::Postgres(store) = OpenedStore::open(&DatabaseLocation::Url(db.url.clone()))
        .await
        .unwrap()
    else {
        panic!("{} opened no PostgreSQL store", db.url)
    };
    let ml = team("ml", &["llama3"]);
    store.create_team(&ml).await.unwrap();
    assert_eq!(store.find_team("ml").await.unwrap(), Some(ml));
    let mut c = db.connect().await;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(ssl, "the connection is not encrypted");

    let ca = pki.ca_cert().display().to_string();
    let stranger = modelgate_e2e::pki::TestPki::new("stranger");
    let wrong_ca = db
        .url
        .replace(&ca, &stranger.ca_cert().display().to_string());
    let err = OpenedStore::open(&DatabaseLocation::Url(wrong_ca))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
    let plain = db.url.replace("sslmode=verify-full", "sslmode=disable");
    let err = OpenedStore::open(&DatabaseLocation::Url(plain))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no encryption"), "{err}");
}
