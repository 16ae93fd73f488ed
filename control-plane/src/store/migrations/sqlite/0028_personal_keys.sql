-- Issue 13: personal keys (LiteLLM's keys without a team), so api_keys.team_id becomes
-- nullable. SQLite cannot drop a NOT NULL constraint in place, so the table is rebuilt. Its
-- only child rows (key_tags) are set aside first and put back last, so no foreign key is
-- broken at any step of this migration's transaction.
CREATE TEMP TABLE key_tags_kept AS SELECT public_id, tag_name, tag_value FROM key_tags;
DELETE FROM key_tags;

CREATE TEMP TABLE api_keys_kept AS SELECT * FROM api_keys;
DROP TABLE api_keys;

CREATE TABLE api_keys (
    public_id                  TEXT PRIMARY KEY,
    key_sha256                 TEXT NOT NULL UNIQUE,
    last4                      TEXT NOT NULL,
    -- NULL: a personal key, with only its own allowlist and limits.
    team_id                    TEXT REFERENCES teams (team_id),
    user_id                    TEXT,
    key_alias                  TEXT,
    models                     TEXT NOT NULL DEFAULT '[]',
    status                     TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at_ms              INTEGER NOT NULL,
    expires_at_ms              INTEGER,
    revoked_at_ms              INTEGER,
    rpm_limit                  INTEGER,
    tpm_limit                  INTEGER,
    max_parallel_requests      INTEGER,
    max_budget                 REAL,
    budget_duration_ms         INTEGER,
    budget_calendar            TEXT CHECK (budget_calendar IN ('day', 'week', 'month')),
    budget_anchor_ms           INTEGER,
    metadata                   TEXT NOT NULL DEFAULT '{}',
    blocked                    INTEGER NOT NULL DEFAULT 0,
    can_assert_user            INTEGER NOT NULL DEFAULT 0,
    assert_user_secret         TEXT,
    previous_key_sha256        TEXT,
    previous_key_expires_at_ms INTEGER
);
INSERT INTO api_keys (
    public_id, key_sha256, last4, team_id, user_id, key_alias, models, status, created_at_ms,
    expires_at_ms, revoked_at_ms, rpm_limit, tpm_limit, max_parallel_requests, max_budget,
    budget_duration_ms, budget_calendar, budget_anchor_ms, metadata, blocked, can_assert_user,
    assert_user_secret, previous_key_sha256, previous_key_expires_at_ms)
SELECT
    public_id, key_sha256, last4, team_id, user_id, key_alias, models, status, created_at_ms,
    expires_at_ms, revoked_at_ms, rpm_limit, tpm_limit, max_parallel_requests, max_budget,
    budget_duration_ms, budget_calendar, budget_anchor_ms, metadata, blocked, can_assert_user,
    assert_user_secret, previous_key_sha256, previous_key_expires_at_ms
FROM api_keys_kept;
DROP TABLE api_keys_kept;
CREATE INDEX api_keys_team_id ON api_keys (team_id);
CREATE INDEX api_keys_user_id ON api_keys (user_id);

INSERT INTO key_tags (public_id, tag_name, tag_value)
SELECT public_id, tag_name, tag_value FROM key_tags_kept;
DROP TABLE key_tags_kept;
