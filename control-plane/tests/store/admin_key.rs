//! Admin keys on every backend: created with their role and teams, found by hash, listed,
//! revoked once.

use modelgate_control_plane::admin_key::NewAdminKey;
use modelgate_control_plane::authz::Role;
use modelgate_control_plane::clock::Timestamp;
use modelgate_control_plane::keys::hash_key;
use modelgate_control_plane::store::StoreError;

use super::Backend;

fn new_key(public_id: &str, role: Role, teams: &[&str], at: i64) -> NewAdminKey {
    NewAdminKey {
        public_id: public_id.to_owned(),
        sha256: hash_key(&format!("mgak-{public_id}-secret")),
        user_id: "alice@corp".to_owned(),
        role,
        teams: teams.iter().map(|t| (*t).to_owned()).collect(),
        created_at: Timestamp::from_millis(at),
    }
}

pub(super) async fn admin_keys_are_created_found_listed_and_revoked<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let lead = store
        .create_admin_key(&new_key(
            "aaaaaaaaaaaa",
            Role::TeamAdmin,
            &["team_a", "team_b"],
            1_000,
        ))
        .await
        .unwrap();
    assert_eq!(lead.role, Role::TeamAdmin);
    assert_eq!(lead.teams, ["team_a", "team_b"]);
    assert_eq!((lead.revoked_at, lead.last_used_at), (None, None));
    store
        .create_admin_key(&new_key("bbbbbbbbbbbb", Role::Auditor, &[], 2_000))
        .await
        .unwrap();
    let err = store
        .create_admin_key(&new_key("aaaaaaaaaaaa", Role::Admin, &[], 3_000))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::KeyIdTaken), "{err:?}");

    // Found by the hash of the whole key, with everything it was created with.
    let found = store
        .find_admin_key_by_hash(&hash_key("mgak-aaaaaaaaaaaa-secret"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, lead);
    assert!(store
        .find_admin_key_by_hash(&hash_key("mgak-aaaaaaaaaaaa-other"))
        .await
        .unwrap()
        .is_none());

    store
        .touch_admin_key("aaaaaaaaaaaa", Timestamp::from_millis(5_000))
        .await
        .unwrap();
    let revoked = store
        .revoke_admin_key("aaaaaaaaaaaa", Timestamp::from_millis(6_000))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(Timestamp::from_millis(6_000)));
    assert_eq!(revoked.last_used_at, Some(Timestamp::from_millis(5_000)));
    // Revoking again changes nothing.
    let again = store
        .revoke_admin_key("aaaaaaaaaaaa", Timestamp::from_millis(7_000))
        .await
        .unwrap();
    assert_eq!(again.revoked_at, Some(Timestamp::from_millis(6_000)));
    let err = store
        .revoke_admin_key("zzzzzzzzzzzz", Timestamp::from_millis(7_000))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AdminKeyNotFound(_)), "{err:?}");

    let live: Vec<_> = store
        .list_admin_keys(false)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.public_id)
        .collect();
    assert_eq!(live, ["bbbbbbbbbbbb"]);
    let all = store.list_admin_keys(true).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].public_id, "aaaaaaaaaaaa");
}
