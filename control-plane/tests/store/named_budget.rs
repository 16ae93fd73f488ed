//! LiteLLM budget objects and their attachment to keys, teams and users, on every backend.

use modelgate_control_plane::clock::Timestamp;
use modelgate_control_plane::domain::{ScopeKind, ValidationError};
use modelgate_control_plane::named_budget::{NamedBudget, NamedBudgetInput};
use modelgate_control_plane::store::StoreError;

use super::{create_key, team, Backend};

fn budget(id: &str, rpm: Option<u64>, max_budget: Option<f64>) -> NamedBudget {
    NamedBudgetInput {
        rpm: Some(rpm),
        max_budget: Some(max_budget),
        budget_duration: Some(Some("30d".into())),
        ..NamedBudgetInput::default()
    }
    .apply_to(id, None, Timestamp::from_millis(1_000))
    .unwrap()
}

pub(super) async fn budget_objects_are_created_updated_and_deleted<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let version = store.policy_version().await.unwrap();
    store
        .create_budget(&budget("b", Some(5), Some(10.0)))
        .await
        .unwrap();
    store.create_budget(&budget("a", None, None)).await.unwrap();
    assert!(matches!(
        store.create_budget(&budget("a", None, None)).await,
        Err(StoreError::BudgetExists(id)) if id == "a"
    ));
    let listed = store.list_budgets().await.unwrap();
    assert_eq!(
        listed.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(listed[1], budget("b", Some(5), Some(10.0)));
    // Budgets nobody names are not policy.
    assert_eq!(store.policy_version().await.unwrap(), version);

    let change = NamedBudgetInput {
        tpm: Some(Some(100)),
        max_budget: Some(None),
        ..NamedBudgetInput::default()
    };
    let (before, after) = store
        .update_budget("b", &change, Timestamp::from_millis(2_000))
        .await
        .unwrap();
    assert_eq!(before.max_budget, Some(10.0));
    assert_eq!(
        (after.rpm, after.tpm, after.max_budget, after.updated_at),
        (Some(5), Some(100), None, Timestamp::from_millis(2_000))
    );
    assert_eq!(store.find_budget("b").await.unwrap(), Some(after));
    assert!(matches!(
        store.update_budget("zz", &change, Timestamp::now()).await,
        Err(StoreError::BudgetNotFound(_))
    ));

    assert_eq!(store.delete_budget("a").await.unwrap().id, "a");
    assert_eq!(store.find_budget("a").await.unwrap(), None);
    assert!(matches!(
        store.delete_budget("a").await,
        Err(StoreError::BudgetNotFound(_))
    ));
}

pub(super) async fn attached_budgets_fill_unset_limits_in_the_policy<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let ml = team("ml", &["*"]);
    store.create_team(&ml).await.unwrap();
    let key = create_key(&store, &ml.id).await;
    store
        .create_budget(&budget("rl", Some(5), None))
        .await
        .unwrap();
    store
        .create_budget(&budget("capped", None, Some(1.0)))
        .await
        .unwrap();

    let version = store.policy_version().await.unwrap();
    assert_eq!(
        store
            .link_budget(ScopeKind::Key, &key.public_id, Some("rl"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .link_budget(ScopeKind::Team, &ml.id, Some("rl"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.policy_version().await.unwrap(), version + 2);
    let policy = store.load_policy().await.unwrap();
    assert_eq!(policy.keys[0].limits.rpm, Some(5));
    assert_eq!(policy.teams[0].limits.rpm, Some(5));
    assert_eq!(
        store
            .budget_link(ScopeKind::Key, &key.public_id)
            .await
            .unwrap(),
        Some("rl".into())
    );

    // A change to a budget in use is a policy change.
    let faster = NamedBudgetInput {
        rpm: Some(Some(9)),
        ..NamedBudgetInput::default()
    };
    store
        .update_budget("rl", &faster, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        store.load_policy().await.unwrap().keys[0].limits.rpm,
        Some(9)
    );

    // A spend cap on an attached budget could not be enforced: refused, nothing changes.
    let capped = NamedBudgetInput {
        max_budget: Some(Some(3.0)),
        ..NamedBudgetInput::default()
    };
    assert!(matches!(
        store.update_budget("rl", &capped, Timestamp::now()).await,
        Err(StoreError::Invalid(ValidationError::BudgetNotAttachable(_)))
    ));
    assert_eq!(
        store.find_budget("rl").await.unwrap().unwrap().max_budget,
        None
    );
    assert!(matches!(
        store
            .link_budget(ScopeKind::User, "ana@example.com", Some("capped"))
            .await,
        Err(StoreError::Invalid(ValidationError::BudgetNotAttachable(_)))
    ));
    assert!(matches!(
        store
            .link_budget(ScopeKind::User, "ana@example.com", Some("zz"))
            .await,
        Err(StoreError::BudgetNotFound(_))
    ));

    // Attached budgets are not deleted; a revoked key no longer holds one.
    assert!(matches!(
        store.delete_budget("rl").await,
        Err(StoreError::BudgetInUse { attached, .. }) if attached.contains(&key.public_id)
    ));
    store
        .link_budget(ScopeKind::Team, &ml.id, None)
        .await
        .unwrap();
    store
        .revoke_key(&key.public_id, Timestamp::now())
        .await
        .unwrap();
    store.delete_budget("rl").await.unwrap();
    assert_eq!(store.load_policy().await.unwrap().teams[0].limits.rpm, None);
}
