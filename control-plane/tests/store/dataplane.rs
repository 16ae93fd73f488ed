//! Data-plane tokens and which data plane owns a usage batch, on every backend.

use modelgate_control_plane::clock::Timestamp;
use modelgate_control_plane::dataplane::NewDataPlaneToken;
use modelgate_control_plane::domain::UsageReceipt;
use modelgate_control_plane::keys::hash_key;
use modelgate_control_plane::store::StoreError;

use super::{usage, Backend};

fn new_token(name: &str, public_id: &str, at: i64) -> NewDataPlaneToken {
    NewDataPlaneToken {
        name: name.to_owned(),
        public_id: public_id.to_owned(),
        sha256: hash_key(&format!("mgdp-{public_id}-secret")),
        created_at: Timestamp::from_millis(at),
    }
}

pub(super) async fn data_plane_tokens_are_created_listed_and_revoked<B: Backend>() {
    let (store, guard) = B::fresh().await;
    let edge1 = store
        .create_dataplane_token(&new_token("edge-1", "aaaaaaaaaaaa", 1_000))
        .await
        .unwrap();
    assert_eq!(
        (
            edge1.name.as_str(),
            edge1.public_id.as_str(),
            edge1.revoked_at
        ),
        ("edge-1", "aaaaaaaaaaaa", None)
    );
    store
        .create_dataplane_token(&new_token("edge-2", "bbbbbbbbbbbb", 2_000))
        .await
        .unwrap();

    // A live name and a public id are each taken once.
    let err = store
        .create_dataplane_token(&new_token("edge-1", "cccccccccccc", 3_000))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DataPlaneNameTaken(ref n) if n == "edge-1"),
        "{err:?}"
    );
    let err = store
        .create_dataplane_token(&new_token("edge-3", "aaaaaaaaaaaa", 3_000))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::KeyIdTaken), "{err:?}");

    // Only the hash is stored, and it finds the token.
    let found = store
        .find_dataplane_token_by_hash(&hash_key("mgdp-aaaaaaaaaaaa-secret"))
        .await
        .unwrap();
    assert_eq!(found.as_ref().map(|t| t.name.as_str()), Some("edge-1"));
    assert_eq!(
        guard
            .scalar_i64("SELECT COUNT(*) FROM dataplane_tokens WHERE token_sha256 LIKE '%secret%'")
            .await,
        0
    );
    let unknown = store
        .find_dataplane_token_by_hash(&hash_key("mgdp-aaaaaaaaaaaa-other"))
        .await
        .unwrap();
    assert_eq!(unknown, None);

    // Revoked by name; revoking again (by public id) changes nothing.
    let revoked = store
        .revoke_dataplane_token("edge-1", Timestamp::from_millis(5_000))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(Timestamp::from_millis(5_000)));
    let again = store
        .revoke_dataplane_token("aaaaaaaaaaaa", Timestamp::from_millis(9_000))
        .await
        .unwrap();
    assert_eq!(again, revoked);
    let found = store
        .find_dataplane_token_by_hash(&hash_key("mgdp-aaaaaaaaaaaa-secret"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.revoked_at, Some(Timestamp::from_millis(5_000)));

    let names = |tokens: Vec<modelgate_control_plane::dataplane::DataPlaneToken>| {
        tokens.into_iter().map(|t| t.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list_dataplane_tokens(false).await.unwrap()),
        ["edge-2"]
    );
    assert_eq!(
        names(store.list_dataplane_tokens(true).await.unwrap()),
        ["edge-1", "edge-2"]
    );

    // A revoked name can be minted again, and then names the live token.
    store
        .create_dataplane_token(&new_token("edge-1", "dddddddddddd", 6_000))
        .await
        .unwrap();
    let live = store
        .revoke_dataplane_token("edge-1", Timestamp::from_millis(7_000))
        .await
        .unwrap();
    assert_eq!(live.public_id, "dddddddddddd");

    let err = store
        .revoke_dataplane_token("nobody", Timestamp::from_millis(8_000))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DataPlaneTokenNotFound(ref n) if n == "nobody"),
        "{err:?}"
    );

    store
        .touch_dataplane_token("bbbbbbbbbbbb", Timestamp::from_millis(4_000))
        .await
        .unwrap();
    let listed = store.list_dataplane_tokens(false).await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(Timestamp::from_millis(4_000)));
}

pub(super) async fn a_batch_id_belongs_to_the_data_plane_that_sent_it<B: Backend>() {
    let (store, guard) = B::fresh().await;
    let from = |data_plane: &str, n| {
        let mut batch = usage("b1", n);
        batch.data_plane = data_plane.to_owned();
        batch
    };
    assert_eq!(
        store.record_usage(&from("edge-a", 2)).await.unwrap(),
        UsageReceipt::Stored { records: 2 }
    );
    // The sender retrying is a duplicate; another data plane replaying the id is refused.
    assert_eq!(
        store.record_usage(&from("edge-a", 2)).await.unwrap(),
        UsageReceipt::Duplicate { records: 2 }
    );
    let err = store.record_usage(&from("edge-b", 5)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::BatchFromAnotherDataPlane(ref id) if id == "b1"),
        "{err:?}"
    );
    assert_eq!(
        guard.scalar_i64("SELECT COUNT(*) FROM usage_records").await,
        2
    );
    assert_eq!(
        guard
            .scalar_i64("SELECT COUNT(*) FROM usage_batches WHERE data_plane = 'edge-a'")
            .await,
        1
    );
}
