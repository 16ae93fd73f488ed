//! LiteLLM budget objects and their attachment to keys, teams and users, on every backend.

use std::sync::Arc;

use modelgate_control_plane::budget::{Budget, BudgetPeriod};
use modelgate_control_plane::clock::Timestamp;
use modelgate_control_plane::domain::ScopeKind;
use modelgate_control_plane::named_budget::{NamedBudget, NamedBudgetInput};
use modelgate_control_plane::snapshot::{SnapshotAnswer, SnapshotCache};
use modelgate_control_plane::spend::{SpendSync, SpendTracker};
use modelgate_control_plane::store::StoreError;

use super::{
    budget as own_budget, create_key, key_with, limits, minutes, plus, record, report, team,
    Backend,
};

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

/// A budget object's `max_budget` is a template: each scope that names it spends against it
/// on its own, in windows of its `budget_duration` from the scope's creation; a scope's own
/// cap wins. The spend tracker and the snapshot read the same effective budget.
pub(super) async fn an_attached_budget_caps_each_scopes_own_spend<B: Backend>() {
    let (store, _guard) = B::fresh().await;
    let ml = team("ml", &["*"]);
    store.create_team(&ml).await.unwrap();
    let (a, b) = (
        create_key(&store, &ml.id).await,
        create_key(&store, &ml.id).await,
    );
    let now = Timestamp::now();
    let own = key_with(&store, &ml.id, |k| {
        k.limits = limits(own_budget(50.0, None, None), now)
    })
    .await;
    let mut capped = budget("capped", None, Some(1.0));
    capped.budget_duration = Some("1h".into());
    store.create_budget(&capped).await.unwrap();
    for key in [&a, &b, &own] {
        store
            .link_budget(ScopeKind::Key, &key.public_id, Some("capped"))
            .await
            .unwrap();
    }
    store
        .link_budget(ScopeKind::Team, &ml.id, Some("capped"))
        .await
        .unwrap();

    let hourly = |anchor: Timestamp| Budget {
        max_budget: 1.0,
        period: BudgetPeriod::Rolling(minutes(60)),
        anchor,
    };
    let mut budgets = store.load_budgets().await.unwrap().budgets;
    budgets.sort_by(|x, y| (x.0.as_str(), &x.1).cmp(&(y.0.as_str(), &y.1)));
    let mut expected = vec![
        (ScopeKind::Key, a.public_id.clone(), hourly(a.created_at)),
        (ScopeKind::Key, b.public_id.clone(), hourly(b.created_at)),
        (
            ScopeKind::Key,
            own.public_id.clone(),
            own.limits.budget.unwrap(),
        ),
        (ScopeKind::Team, ml.id.clone(), hourly(ml.created_at)),
    ];
    expected.sort_by(|x, y| (x.0.as_str(), &x.1).cmp(&(y.0.as_str(), &y.1)));
    assert_eq!(budgets, expected);
    let policy = store.load_policy().await.unwrap();
    let policy_budget = |id: &str| {
        policy
            .keys
            .iter()
            .find(|k| k.public_id == id)
            .unwrap()
            .limits
            .budget
    };
    assert_eq!(policy_budget(&a.public_id), Some(hourly(a.created_at)));
    assert_eq!(policy_budget(&own.public_id), own.limits.budget);
    assert_eq!(policy.teams[0].limits.budget, Some(hourly(ml.created_at)));

    // Each key's own spend counts against the cap, not the sum over every key.
    let t = plus(Timestamp::now(), 1);
    report(
        &store,
        "b1",
        &[
            record(&a.public_id, &ml.id, "", t, 0.7),
            record(&a.public_id, &ml.id, "", plus(t, 1), 0.4),
            record(&b.public_id, &ml.id, "", t, 0.3),
            record(&own.public_id, &ml.id, "", t, 2.0),
        ],
    )
    .await;
    let totals = store.budget_spend(plus(t, 2), None).await.unwrap();
    let spent = |kind: ScopeKind, id: &str| {
        totals
            .spend
            .iter()
            .find(|(k, i, _)| *k == kind && i == id)
            .map(|(_, _, s)| *s)
    };
    assert!((spent(ScopeKind::Key, &a.public_id).unwrap() - 1.1).abs() < 1e-9);
    assert!((spent(ScopeKind::Key, &b.public_id).unwrap() - 0.3).abs() < 1e-9);
    assert!((spent(ScopeKind::Team, &ml.id).unwrap() - 3.4).abs() < 1e-9);

    // The snapshot marks the key over the cap exhausted, and only it (the team spent 3.4
    // of its own 1.0 too).
    let tracker = Arc::new(SpendTracker::new());
    SpendSync::start(store.clone(), Arc::clone(&tracker), Timestamp::now())
        .await
        .unwrap();
    let cache = SnapshotCache::new(store.clone(), Arc::clone(&tracker));
    let SnapshotAnswer::Changed(snapshot) = cache.answer(0).await.unwrap() else {
        panic!("a first snapshot");
    };
    let exhausted = |id: &str| {
        let k = snapshot.keys.iter().find(|k| k.public_id == id).unwrap();
        assert_eq!(
            k.limits.as_ref().and_then(|l| l.max_budget),
            Some(if id == own.public_id { 50.0 } else { 1.0 })
        );
        k.spend.unwrap().exhausted
    };
    assert!(exhausted(&a.public_id));
    assert!(!exhausted(&b.public_id));
    assert!(!exhausted(&own.public_id), "the key's own cap wins");
    assert!(snapshot.teams[0].spend.unwrap().exhausted);

    // Detached, the key has no cap again.
    store
        .link_budget(ScopeKind::Key, &a.public_id, None)
        .await
        .unwrap();
    assert!(!store
        .load_budgets()
        .await
        .unwrap()
        .budgets
        .iter()
        .any(|(_, id, _)| *id == a.public_id));
}
