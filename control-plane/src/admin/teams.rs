//! Teams: creating, reading, updating and blocking them, each asked of [`authz`] first.

use super::access::{self, Target};
use super::{metadata, team_ref, text, TeamInput, TeamUpdate, TeamView};
use super::{Admin, AdminResult};
use crate::authz::{self, Action, Caller, Object};
use crate::clock::Timestamp;
use crate::domain::{
    self, Change, Metadata, ScopeKind, Team, TeamAlias, TeamPatch, ValidationError,
};
use crate::identity;
use crate::store::{Store, StoreError};

impl<S: Store> Admin<S> {
    pub async fn create_team(&self, caller: &Caller, input: TeamInput) -> AdminResult<TeamView> {
        self.permit(caller, Action::CreateTeam, Object::Global, Target::NONE)
            .await?;
        let now = Timestamp::now();
        let alias = TeamAlias::parse(&input.alias)?;
        let id = match text(input.id.as_deref()) {
            Some(id) => domain::parse_team_id(id)?,
            None => domain::new_team_id()?,
        };
        let mut team = Team::new(
            id,
            alias.into_string(),
            domain::parse_models(&input.models)?,
            now,
        );
        team.limits = input.limits.to_limits(now)?;
        team.metadata = metadata(input.metadata.as_deref())?;
        team.redaction_policy =
            domain::parse_redaction_policy(input.redaction_policy.as_deref().unwrap_or_default())?;
        team.high_trust = input.high_trust;
        team.keep_redacted_prompt = input.keep_redacted_prompt;
        team.blocked = input.blocked;
        team.idp_groups = identity::parse_names("IdP group", &input.idp_groups)?;
        self.store.create_team(&team).await?;
        tracing::info!(team_id = %team.id, alias = %team.alias, "team created");
        self.record_write(
            caller,
            Action::CreateTeam,
            Target::new("team", &team.id),
            access::changes(&[], &access::team_fields(&team)),
        )
        .await;
        self.team_view_of(team).await
    }

    /// The teams the caller may read.
    pub async fn list_teams(&self, caller: &Caller) -> AdminResult<Vec<TeamView>> {
        let teams = self.store.list_teams().await?;
        let mut budget_ids = self.budget_ids(ScopeKind::Team).await?;
        Ok(teams
            .into_iter()
            .filter(|t| authz::authorize(caller, Action::ReadTeam, &Object::Team(&t.id)).is_ok())
            .map(|t| {
                let budget_id = budget_ids.remove(&t.id);
                self.team_view(t, budget_id)
            })
            .collect())
    }

    pub(super) async fn find_team(&self, team: &str) -> AdminResult<Team> {
        let team = team_ref(team)?;
        Ok(self
            .store
            .find_team(team)
            .await?
            .ok_or_else(|| StoreError::TeamNotFound(team.to_owned()))?)
    }

    pub async fn get_team(&self, caller: &Caller, team: &str) -> AdminResult<TeamView> {
        let found = self.find_team(team).await?;
        self.permit(
            caller,
            Action::ReadTeam,
            Object::Team(&found.id),
            Target::new("team", &found.id),
        )
        .await?;
        self.team_view_of(found).await
    }

    pub async fn update_team(
        &self,
        caller: &Caller,
        team: &str,
        update: TeamUpdate,
    ) -> AdminResult<TeamView> {
        let team = team_ref(team)?;
        let (limits_clear, own) = domain::parse_clear_list(
            update.clear.iter().map(String::as_str),
            &["metadata", "redaction_policy"],
            TeamPatch::CLEARABLE,
        )?;
        let patch = TeamPatch {
            alias: update.alias.as_deref().map(TeamAlias::parse).transpose()?,
            models: update.models.map(domain::parse_models).transpose()?,
            limits: update.limits,
            limits_clear,
            metadata: Change::set_or_clear(
                update
                    .metadata
                    .as_deref()
                    .map(Metadata::parse)
                    .transpose()?,
                own.contains(&"metadata"),
                "metadata",
            )?,
            redaction_policy: redaction_change(
                update.redaction_policy.as_deref(),
                own.contains(&"redaction_policy"),
            )?,
            high_trust: update.high_trust,
            keep_redacted_prompt: update.keep_redacted_prompt,
            blocked: update.blocked,
            idp_groups: update
                .idp_groups
                .map(|g| identity::parse_names("IdP group", g))
                .transpose()?,
        };
        self.patch_team(caller, team, &patch).await
    }

    pub async fn set_team_blocked(
        &self,
        caller: &Caller,
        team: &str,
        blocked: bool,
    ) -> AdminResult<TeamView> {
        self.patch_team(caller, team, &TeamPatch::blocked(blocked))
            .await
    }

    async fn patch_team(
        &self,
        caller: &Caller,
        team: &str,
        patch: &TeamPatch,
    ) -> AdminResult<TeamView> {
        let before = self.find_team(team).await?;
        let target = Target::new("team", &before.id);
        self.permit(caller, Action::UpdateTeam, Object::Team(&before.id), target)
            .await?;
        let updated = self
            .store
            .update_team(&before.id, patch, Timestamp::now())
            .await?;
        tracing::info!(team_id = %updated.id, blocked = updated.blocked, "team updated");
        let changes = access::changes(
            &access::team_fields(&before),
            &access::team_fields(&updated),
        );
        self.record_write(caller, Action::UpdateTeam, target, changes)
            .await;
        self.team_view_of(updated).await
    }
}

impl<S: Store> Admin<S> {
    /// Deletes teams (by id or alias) with all their keys, all or nothing; returns the
    /// teams' ids and how many keys went.
    pub async fn delete_teams(
        &self,
        caller: &Caller,
        teams: &[String],
    ) -> AdminResult<(Vec<String>, u64)> {
        let mut found = Vec::with_capacity(teams.len());
        for team in teams {
            let team = self.find_team(team).await?;
            let target = Target::new("team", &team.id);
            self.permit(caller, Action::DeleteTeam, Object::Team(&team.id), target)
                .await?;
            found.push(team);
        }
        let ids: Vec<String> = found.iter().map(|t| t.id.clone()).collect();
        let (_, keys) = self.store.delete_teams(&ids).await?;
        tracing::info!(teams = ?ids, keys, "teams deleted");
        for team in &found {
            let changes = access::changes(&access::team_fields(team), &[]);
            self.record_write(
                caller,
                Action::DeleteTeam,
                Target::new("team", &team.id),
                changes,
            )
            .await;
        }
        Ok((ids, keys))
    }
}

fn redaction_change(json: Option<&str>, cleared: bool) -> Result<Change<String>, ValidationError> {
    // Setting an empty policy is the same as clearing it: the filter's default applies.
    let parsed = match json {
        Some(j) => Some(domain::parse_redaction_policy(j)?),
        None => None,
    };
    match (parsed, cleared) {
        (Some(_), true) => Err(ValidationError::SetAndCleared("redaction_policy")),
        (Some(Some(p)), false) => Ok(Change::Set(p)),
        (Some(None), false) | (None, true) => Ok(Change::Clear),
        (None, false) => Ok(Change::Keep),
    }
}
