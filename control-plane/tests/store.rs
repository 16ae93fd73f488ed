//! One behaviour suite for every store backend: each test below runs against SQLite and
//! against PostgreSQL (see `suite!`).

// Marks the whole crate as test code, so clippy's allow-*-in-tests covers the helpers too.
#![cfg(test)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use modelgate_control_plane::clock::Timestamp;
use modelgate_control_plane::domain::{
    new_team_id, ApiKey, KeyFilter, KeyStatus, ListedKey, Metadata, NewKey, Team, UsageBatch,
    UsageEntry, UsageReceipt,
};
use modelgate_control_plane::keys::MintedKey;
use modelgate_control_plane::limits::Limits;
use modelgate_control_plane::snapshot::{SnapshotAnswer, SnapshotCache};
use modelgate_control_plane::spend::SpendTracker;
use modelgate_control_plane::store::{PostgresStore, SqliteStore, Store, StoreError};
use sqlx::Connection;
use support::postgres::TestDatabase;

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
    teams_are_created_listed_and_found,
    team_aliases_are_unique,
    every_policy_change_bumps_the_version_once,
    keys_are_created_for_a_team_by_id_or_alias,
    key_for_an_unknown_team_is_refused,
    a_taken_key_id_is_reported,
    keys_are_listed_by_team_and_status,
    revoking_keeps_the_key_as_revoked,
    revoking_an_unknown_key_is_not_found,
    policy_state_matches_its_version,
    snapshots_are_cached_by_version,
    usage_batches_are_stored_once,
    concurrent_duplicate_batches_store_once,
    concurrent_key_creation_serialises_versions,
    reopening_keeps_data_and_migrations,
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
        team: team.to_owned(),
        public_id: minted.public_id.clone(),
        key_sha256: minted.sha256,
        last4: minted.last4.clone(),
        user_id: Some("ana@example.com".into()),
        alias: Some("ci".into()),
        models: vec!["llama3".into()],
        limits: Limits::default(),
        metadata: Metadata::default(),
        blocked: false,
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
    let ml = team("ml", &[]);
    store.create_team(&ml).await.unwrap();

    let (by_alias, minted) = new_key("ml");
    let created = store.create_key(&by_alias).await.unwrap();
    assert_eq!(created.team_id, ml.id);
    assert_eq!(created.status, KeyStatus::Active);
    assert_eq!(created.key_sha256, minted.sha256);
    assert_eq!(created.last4, minted.last4);
    assert_eq!(created.user_id.as_deref(), Some("ana@example.com"));
    assert_eq!(created.alias.as_deref(), Some("ci"));
    assert_eq!(created.models, ["llama3"]);
    assert_eq!(created.revoked_at, None);

    let by_id = create_key(&store, &ml.id).await;
    assert_eq!(by_id.team_id, ml.id);

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
    let active = create_key(&store, "ml").await;
    let gone = create_key(&store, "ml").await;
    let gone = store
        .revoke_key(&gone.public_id, Timestamp::now())
        .await
        .unwrap();

    let state = store.load_policy().await.unwrap();
    assert_eq!(state.version, store.policy_version().await.unwrap());
    assert_eq!(state.teams, vec![ml]);
    assert_eq!(state.keys.len(), 2);
    assert!(state.keys.contains(&active));
    assert!(
        state.keys.contains(&gone),
        "revoked keys stay in the snapshot"
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
