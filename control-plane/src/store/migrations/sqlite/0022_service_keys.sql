-- Issue 12 (Open WebUI): service keys may name the end user they call for. The HS256 secret of
-- Open WebUI's signed form is kept in clear: the filters need it to verify, as the snapshot
-- carries it; admin answers only say whether one is set.
ALTER TABLE api_keys ADD COLUMN can_assert_user INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN assert_user_secret TEXT;
-- The team an end user named by a service key belongs to (NULL: the key's team).
ALTER TABLE users ADD COLUMN team_id TEXT;
