//! Store suite cases for IdP issuers and team IdP groups (run per backend by `suite!`).

use modelgate_control_plane::identity::{
    parse_admin_roles, IdentityProvider, IdentityProviderPatch, JwksFetchOutcome, JwksSource,
    JwksState,
};

use super::*;

const JWKS_A: &str = r#"{"keys":[{"e":"AQAB","kid":"a","kty":"RSA","n":"sXch"}]}"#;
const JWKS_B: &str = r#"{"keys":[{"e":"AQAB","kid":"b","kty":"RSA","n":"sXch"}]}"#;

fn issuer(name: &str) -> IdentityProvider {
    IdentityProvider {
        issuer: name.into(),
        audiences: vec!["modelgate".into(), "api".into()],
        allowed_groups: vec!["ai-users".into()],
        source: JwksSource::Discovery,
        user_claim: "email".into(),
        groups_claim: String::new(),
        clock_skew_s: 60,
        default_user_limits: Limits {
            rpm: Some(20),
            tpm: Some(5_000),
            ..Limits::default()
        },
        admin_roles: parse_admin_roles([("mg-admins", "admin"), ("audit", "auditor")]).unwrap(),
        created_at: Timestamp::from_millis(1_000),
        keys: JwksState {
            next_refresh_at: Some(Timestamp::from_millis(1_000)),
            ..JwksState::default()
        },
    }
}

pub(super) async fn identity_providers_are_created_updated_listed_and_removed<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let idp = issuer("https://idp.example.com");
    let v0 = store.policy_version().await.unwrap();
    store.create_identity_provider(&idp).await.unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);
    assert!(matches!(
        store.create_identity_provider(&idp).await,
        Err(StoreError::IdentityProviderExists(_))
    ));
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);
    let url = IdentityProvider {
        source: JwksSource::Url("https://other.example.com/keys".into()),
        ..issuer("https://other.example.com")
    };
    store.create_identity_provider(&url).await.unwrap();
    assert_eq!(
        store.find_identity_provider(&idp.issuer).await.unwrap(),
        Some(idp.clone())
    );
    assert_eq!(
        store.list_identity_providers().await.unwrap(),
        [idp.clone(), url.clone()]
    );

    let v1 = store.policy_version().await.unwrap();
    let patch = IdentityProviderPatch {
        audiences: Some(vec!["modelgate".into()]),
        allowed_groups: Some(vec![]),
        clock_skew_s: Some(5),
        admin_roles: Some(parse_admin_roles([("leads", "team_admin")]).unwrap()),
        ..IdentityProviderPatch::default()
    };
    let now = Timestamp::from_millis(2_000);
    let updated = store
        .update_identity_provider(&idp.issuer, &patch, now)
        .await
        .unwrap();
    assert_eq!(updated.audiences, ["modelgate"]);
    assert!(updated.allowed_groups.is_empty());
    assert_eq!(updated.clock_skew_s, 5);
    assert_eq!(updated.admin_roles, patch.admin_roles.clone().unwrap());
    assert_eq!(
        store.find_identity_provider(&idp.issuer).await.unwrap(),
        Some(updated.clone()),
        "admin roles are stored with the issuer"
    );
    assert_eq!(store.policy_version().await.unwrap(), v1 + 1);
    // The same change again: nothing to write, no new version.
    store
        .update_identity_provider(&idp.issuer, &patch, now)
        .await
        .unwrap();
    assert_eq!(store.policy_version().await.unwrap(), v1 + 1);
    assert!(matches!(
        store
            .update_identity_provider("https://nobody.example.com", &patch, now)
            .await,
        Err(StoreError::IdentityProviderNotFound(_))
    ));

    let removed = store.delete_identity_provider(&url.issuer).await.unwrap();
    assert_eq!(removed, url);
    assert_eq!(store.policy_version().await.unwrap(), v1 + 2);
    assert_eq!(store.list_identity_providers().await.unwrap(), [updated]);
    assert!(matches!(
        store.delete_identity_provider(&url.issuer).await,
        Err(StoreError::IdentityProviderNotFound(_))
    ));
}

pub(super) async fn jwks_fetches_keep_the_last_good_keys_and_bump_only_on_change<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let idp = issuer("https://idp.example.com");
    store.create_identity_provider(&idp).await.unwrap();
    let fetched = |json: &str, at: i64| JwksFetchOutcome::Fetched {
        jwks_json: json.into(),
        url: "https://idp.example.com/jwks".into(),
        at: Timestamp::from_millis(at),
        next_refresh_at: Timestamp::from_millis(at + 3_600_000),
    };

    let v0 = store.policy_version().await.unwrap();
    let first = store
        .record_jwks_fetch(&idp.issuer, &fetched(JWKS_A, 10_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.keys.jwks_json.as_deref(), Some(JWKS_A));
    assert_eq!(
        first.keys.fetched_from.as_deref(),
        Some("https://idp.example.com/jwks")
    );
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);

    // The same keys again: bookkeeping only, no new snapshot.
    let again = store
        .record_jwks_fetch(&idp.issuer, &fetched(JWKS_A, 20_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.keys.fetched_at, Some(Timestamp::from_millis(20_000)));
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);

    // A failure keeps the keys (fail static) and shows the error.
    let failed = store
        .record_jwks_fetch(
            &idp.issuer,
            &JwksFetchOutcome::Failed {
                error: "GET https://idp.example.com/jwks: HTTP 503".into(),
                at: Timestamp::from_millis(30_000),
                next_refresh_at: Timestamp::from_millis(90_000),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.keys.jwks_json.as_deref(), Some(JWKS_A));
    assert_eq!(failed.keys.fetched_at, Some(Timestamp::from_millis(20_000)));
    assert_eq!(
        failed.keys.last_error.as_deref(),
        Some("GET https://idp.example.com/jwks: HTTP 503")
    );
    assert_eq!(
        failed.keys.last_error_at,
        Some(Timestamp::from_millis(30_000))
    );
    assert_eq!(
        failed.keys.next_refresh_at,
        Some(Timestamp::from_millis(90_000))
    );
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);

    // Rotated keys: a new version, the error cleared.
    let rotated = store
        .record_jwks_fetch(&idp.issuer, &fetched(JWKS_B, 40_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.keys.jwks_json.as_deref(), Some(JWKS_B));
    assert_eq!(rotated.keys.last_error, None);
    assert_eq!(store.policy_version().await.unwrap(), v0 + 2);
    let state = store.load_policy().await.unwrap();
    assert_eq!(state.version, v0 + 2);
    assert_eq!(state.identity_providers, [rotated]);

    // An issuer removed while its keys were being fetched.
    assert_eq!(
        store
            .record_jwks_fetch("https://gone.example.com", &fetched(JWKS_A, 50_000))
            .await
            .unwrap(),
        None
    );
}

pub(super) async fn teams_keep_their_idp_groups<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let mut eng = team("engineering", &["llama3"]);
    eng.idp_groups = vec!["ai-engineering".into(), "platform".into()];
    store.create_team(&eng).await.unwrap();
    assert_eq!(
        store.find_team("engineering").await.unwrap(),
        Some(eng.clone())
    );

    let v0 = store.policy_version().await.unwrap();
    let replace = TeamPatch {
        idp_groups: Some(vec!["ml".into()]),
        ..TeamPatch::default()
    };
    let now = Timestamp::now();
    let updated = store.update_team(&eng.id, &replace, now).await.unwrap();
    assert_eq!(updated.idp_groups, ["ml"]);
    assert_eq!(store.policy_version().await.unwrap(), v0 + 1);
    let cleared = TeamPatch {
        idp_groups: Some(vec![]),
        ..TeamPatch::default()
    };
    let updated = store.update_team(&eng.id, &cleared, now).await.unwrap();
    assert!(updated.idp_groups.is_empty());
    let state = store.load_policy().await.unwrap();
    assert!(state.teams[0].idp_groups.is_empty());
    assert_eq!(store.policy_version().await.unwrap(), v0 + 2);
}
