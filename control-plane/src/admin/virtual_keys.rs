//! Virtual keys: minting, reading, updating, blocking and revoking them, each asked of
//! [`authz`] with the key's team and owner.

use super::access::{self, Target};
use super::{metadata, text, CreatedKey, KeyInput, KeyQuery, KeyUpdate, KeyView, MINT_ATTEMPTS};
use super::{Admin, AdminResult};
use crate::assertion::{AssertionPatch, AssertionSecret, UserAssertion};
use crate::authz::{self, Action, Caller, Object};
use crate::budget::DAY_MS;
use crate::clock::Timestamp;
use crate::domain::{
    self, ApiKey, Change, KeyFilter, KeyPatch, Metadata, NewKey, ScopeKind, ValidationError,
};
use crate::keys::{self, MintedKey};
use crate::store::{Store, StoreError};

impl<S: Store> Admin<S> {
    pub async fn create_key(&self, caller: &Caller, input: KeyInput) -> AdminResult<CreatedKey> {
        let team = match text(input.team.as_deref()) {
            Some(team) => Some(self.find_team(team).await?.id),
            None => None,
        };
        let team = team.as_deref();
        let now = Timestamp::now();
        let user_id = domain::parse_user_id(input.user_id.as_deref().unwrap_or_default())?;
        let object = Object::Key {
            team_id: team,
            user_id: user_id.as_deref(),
        };
        // A personal key is asked of no team: only admins pass.
        let target = team.map_or(Target::NONE, |team| Target::new("team", team));
        self.permit(caller, Action::CreateKey, object, target)
            .await?;
        let alias = domain::parse_key_alias(input.alias.as_deref().unwrap_or_default())?;
        let models = domain::parse_models(&input.models)?;
        let expires_at = keys::parse_expiry(input.expires.as_deref().unwrap_or_default(), now)
            .map_err(ValidationError::from)?;
        let limits = input.limits.to_limits(now)?;
        let metadata = metadata(input.metadata.as_deref())?;
        if input.can_assert_user || input.assert_user_secret.is_some() {
            self.permit_user_assertion(caller, target).await?;
        }
        let user_assertion = UserAssertion::new(
            input.can_assert_user,
            input
                .assert_user_secret
                .as_ref()
                .map(|secret| AssertionSecret::parse(secret.expose()))
                .transpose()?,
        );

        for _ in 0..MINT_ATTEMPTS {
            let minted = MintedKey::generate()?;
            let new_key = NewKey {
                team: team.map(str::to_owned),
                public_id: minted.public_id.clone(),
                key_sha256: minted.sha256,
                last4: minted.last4.clone(),
                user_id: user_id.clone(),
                alias: alias.clone(),
                models: models.clone(),
                limits,
                metadata: metadata.clone(),
                blocked: input.blocked,
                user_assertion: user_assertion.clone(),
                created_at: now,
                expires_at,
            };
            match self.store.create_key(&new_key).await {
                Ok(key) => {
                    tracing::info!(public_id = %key.public_id, team_id = ?key.team_id, "key created");
                    self.record_write(
                        caller,
                        Action::CreateKey,
                        Target::new("key", &key.public_id),
                        access::changes(&[], &access::key_fields(&key)),
                    )
                    .await;
                    return Ok(CreatedKey {
                        view: self.key_view_of(key, None).await?,
                        secret: minted.secret,
                    });
                }
                Err(StoreError::KeyIdTaken) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::KeyIdTaken.into())
    }

    /// The keys matching `query` that the caller may read.
    pub async fn list_keys(&self, caller: &Caller, query: KeyQuery) -> AdminResult<Vec<KeyView>> {
        let now = Timestamp::now();
        let filter = KeyFilter {
            team: text(query.team.as_deref()).map(str::to_owned),
            include_revoked: query.include_revoked,
            user_id: text(query.user_id.as_deref()).map(str::to_owned),
            tags: query
                .tags
                .iter()
                .map(|t| domain::parse_tag(t))
                .collect::<Result<_, _>>()?,
            expired_at: query.expired.then_some(now),
            unused_since: query
                .unused_days
                .map(|days| Timestamp::from_millis(now.as_millis() - i64::from(days) * DAY_MS)),
        };
        let keys = self.store.list_keys(&filter).await?;
        let mut budget_ids = self.budget_ids(ScopeKind::Key).await?;
        Ok(keys
            .into_iter()
            .filter(|k| authz::authorize(caller, Action::ReadKey, &key_object(&k.key)).is_ok())
            .map(|k| {
                let budget_id = budget_ids.remove(&k.key.public_id);
                self.key_view(k.key, k.last_used_at, budget_id)
            })
            .collect())
    }

    /// A key by public id or by the whole key, as stored.
    pub(super) async fn find_key(&self, key: &str) -> AdminResult<KeyView> {
        let public_id = self.resolve_key(key).await?;
        let found = self
            .store
            .find_key(&public_id)
            .await?
            .ok_or(StoreError::KeyNotFound(public_id))?;
        self.key_view_of(found.key, found.last_used_at).await
    }

    /// A key by public id or by the whole key, after asking whether the caller may `action` it.
    pub(super) async fn permitted_key(
        &self,
        caller: &Caller,
        action: Action,
        key: &str,
    ) -> AdminResult<KeyView> {
        let view = self.find_key(key).await?;
        let target = Target::new("key", &view.key.public_id);
        self.permit(caller, action, key_object(&view.key), target)
            .await?;
        Ok(view)
    }

    pub async fn get_key(&self, caller: &Caller, key: &str) -> AdminResult<KeyView> {
        self.permitted_key(caller, Action::ReadKey, key).await
    }

    pub async fn update_key(
        &self,
        caller: &Caller,
        key: &str,
        update: KeyUpdate,
    ) -> AdminResult<KeyView> {
        let before = self.permitted_key(caller, Action::UpdateKey, key).await?;
        let public_id = before.key.public_id.clone();
        let (limits_clear, own) = domain::parse_clear_list(
            update.clear.iter().map(String::as_str),
            &[
                "metadata",
                "expires",
                "key_alias",
                "user_id",
                "models",
                "assert_user_secret",
            ],
            KeyPatch::CLEARABLE,
        )?;
        let cleared = |f| own.contains(&f);
        let expires = text(update.expires.as_deref())
            .map(|e| keys::parse_expiry(e, Timestamp::now()))
            .transpose()
            .map_err(ValidationError::from)?
            .flatten();
        let models = match (update.models, cleared("models")) {
            (Some(_), true) => return Err(ValidationError::SetAndCleared("models").into()),
            (Some(m), false) => Some(domain::parse_models(&m)?),
            (None, true) => Some(Vec::new()),
            (None, false) => None,
        };
        let patch = KeyPatch {
            alias: Change::set_or_clear(
                text(update.alias.as_deref())
                    .map(domain::parse_key_alias)
                    .transpose()?
                    .flatten(),
                cleared("key_alias"),
                "key_alias",
            )?,
            user_id: Change::set_or_clear(
                text(update.user_id.as_deref())
                    .map(domain::parse_user_id)
                    .transpose()?
                    .flatten(),
                cleared("user_id"),
                "user_id",
            )?,
            expires_at: Change::set_or_clear(expires, cleared("expires"), "expires")?,
            models,
            limits: update.limits,
            limits_clear,
            metadata: Change::set_or_clear(
                update
                    .metadata
                    .as_deref()
                    .map(Metadata::parse)
                    .transpose()?,
                cleared("metadata"),
                "metadata",
            )?,
            blocked: update.blocked,
            user_assertion: AssertionPatch {
                can_assert_user: update.can_assert_user,
                secret: Change::set_or_clear(
                    update
                        .assert_user_secret
                        .as_ref()
                        .map(|secret| AssertionSecret::parse(secret.expose()))
                        .transpose()?,
                    cleared("assert_user_secret"),
                    "assert_user_secret",
                )?,
            },
        };
        if update.can_assert_user.is_some() || !matches!(patch.user_assertion.secret, Change::Keep)
        {
            self.permit_user_assertion(caller, Target::new("key", &public_id))
                .await?;
        }
        // Handing a key to another user is asked as an update of the key it becomes.
        let new_owner = match &patch.user_id {
            Change::Keep => None,
            Change::Set(user) => Some(Some(user.as_str())),
            Change::Clear => Some(None),
        };
        if let Some(user_id) = new_owner {
            let object = Object::Key {
                team_id: before.key.team_id.as_deref(),
                user_id,
            };
            self.permit(
                caller,
                Action::UpdateKey,
                object,
                Target::new("key", &public_id),
            )
            .await?;
        }
        self.patch_key(caller, &before.key, &patch).await
    }

    pub async fn set_key_blocked(
        &self,
        caller: &Caller,
        key: &str,
        blocked: bool,
    ) -> AdminResult<KeyView> {
        let before = self.permitted_key(caller, Action::UpdateKey, key).await?;
        self.patch_key(caller, &before.key, &KeyPatch::blocked(blocked))
            .await
    }

    async fn patch_key(
        &self,
        caller: &Caller,
        before: &ApiKey,
        patch: &KeyPatch,
    ) -> AdminResult<KeyView> {
        let updated = self
            .store
            .update_key(&before.public_id, patch, Timestamp::now())
            .await?;
        tracing::info!(public_id = %updated.public_id, blocked = updated.blocked, "key updated");
        let changes = access::changes(&access::key_fields(before), &access::key_fields(&updated));
        self.record_write(
            caller,
            Action::UpdateKey,
            Target::new("key", &updated.public_id),
            changes,
        )
        .await;
        self.find_key(&updated.public_id).await
    }

    pub async fn revoke_key(&self, caller: &Caller, key: &str) -> AdminResult<KeyView> {
        let before = self.permitted_key(caller, Action::RevokeKey, key).await?;
        let key = self
            .store
            .revoke_key(&before.key.public_id, Timestamp::now())
            .await?;
        tracing::info!(public_id = %key.public_id, "key revoked");
        let changes = access::changes(&access::key_fields(&before.key), &access::key_fields(&key));
        self.record_write(
            caller,
            Action::RevokeKey,
            Target::new("key", &key.public_id),
            changes,
        )
        .await;
        self.key_view_of(key, None).await
    }

    /// A key that may name the end user it calls for can act as any user, so granting or
    /// changing that is asked separately of the key's team.
    async fn permit_user_assertion(&self, caller: &Caller, target: Target<'_>) -> AdminResult<()> {
        self.permit(caller, Action::GrantUserAssertion, Object::Global, target)
            .await
    }

    /// A new secret for a live key (LiteLLM's `key/regenerate`, `key rotate`). The old one
    /// keeps working for `grace` (every filter gets it with the next snapshot), or stops at
    /// once. The key keeps its public id, settings and spend.
    pub async fn regenerate_key(
        &self,
        caller: &Caller,
        key: &str,
        grace: Option<std::time::Duration>,
    ) -> AdminResult<CreatedKey> {
        let before = self.permitted_key(caller, Action::UpdateKey, key).await?;
        let minted = MintedKey::with_public_id(before.key.public_id.clone())?;
        let grace_until = grace.map(|g| {
            let ms = i64::try_from(g.as_millis()).unwrap_or(i64::MAX);
            Timestamp::from_millis(Timestamp::now().as_millis().saturating_add(ms))
        });
        let key = self
            .store
            .replace_key_secret(
                &minted.public_id,
                &minted.sha256,
                &minted.last4,
                grace_until,
            )
            .await?;
        tracing::info!(public_id = %key.public_id, "key regenerated");
        // The secret itself is never recorded; its last four characters tell the two apart.
        let changes = vec![access::FieldChange {
            field: "secret_last4",
            before: before.key.last4.clone(),
            after: key.last4.clone(),
        }];
        self.record_write(
            caller,
            Action::UpdateKey,
            Target::new("key", &key.public_id),
            changes,
        )
        .await;
        let view = self.find_key(&key.public_id).await?;
        Ok(CreatedKey {
            view,
            secret: minted.secret,
        })
    }

    /// The public id of the live key named `alias` (LiteLLM addresses keys by `key_alias`
    /// too). The operation it is resolved for asks whether the caller may touch it.
    pub async fn key_by_alias(&self, alias: &str) -> AdminResult<String> {
        let keys = self.store.list_keys(&KeyFilter::default()).await?;
        let mut named = keys
            .into_iter()
            .filter(|k| k.key.alias.as_deref() == Some(alias));
        match (named.next(), named.next()) {
            (Some(k), None) => Ok(k.key.public_id),
            (None, _) => Err(StoreError::KeyNotFound(alias.to_owned()).into()),
            (Some(_), Some(_)) => Err(ValidationError::AmbiguousKeyAlias(alias.to_owned()).into()),
        }
    }

    /// The public id of a key given whole or by public id.
    pub async fn key_id(&self, key: &str) -> AdminResult<String> {
        self.resolve_key(key).await
    }

    /// The public id of a key given by public id or as the whole key (looked up by hash, so
    /// the secret is never stored or echoed).
    async fn resolve_key(&self, key: &str) -> AdminResult<String> {
        let key = key.trim();
        if !key.starts_with(keys::KEY_PREFIX) {
            return Ok(domain::parse_public_id(key)?);
        }
        let hash = keys::hash_key(key);
        // Named as the filter's logs name unknown keys, never by the secret.
        let shown = keys::public_id_of(key).map_or_else(
            || format!("unknown:{}", hex::encode(&hash[..4])),
            str::to_owned,
        );
        let found = self.store.find_key_by_hash(&hash).await?;
        Ok(found.ok_or(StoreError::KeyNotFound(shown))?.public_id)
    }
}

/// A key as [`authz::authorize`] sees it: its team and owner.
fn key_object(key: &ApiKey) -> Object<'_> {
    Object::Key {
        team_id: key.team_id.as_deref(),
        user_id: key.user_id.as_deref(),
    }
}
