-- Issue 13: personal keys (LiteLLM's keys without a team): NULL team_id, with only the key's
-- own allowlist and limits.
ALTER TABLE api_keys ALTER COLUMN team_id DROP NOT NULL;
