-- Policy version: one row, bumped in the same transaction as every policy change. Writers
-- bump it first, so its row lock also serialises policy changes across replicas.
CREATE TABLE policy_version (
    id      SMALLINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
-- Starts at 1 so a filter asking with known_version 0 ("nothing yet") always gets a snapshot.
INSERT INTO policy_version (id, version) VALUES (1, 1);

CREATE TABLE teams (
    team_id       TEXT PRIMARY KEY,
    alias         TEXT NOT NULL UNIQUE,
    -- JSON array of model names (allowlist as written, wildcards included).
    models        TEXT NOT NULL DEFAULT '[]',
    blocked       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms BIGINT NOT NULL
);

-- Keys: only the SHA-256 (hex) of the whole key string and its last 4 characters.
CREATE TABLE api_keys (
    public_id     TEXT PRIMARY KEY,
    key_sha256    TEXT NOT NULL UNIQUE,
    last4         TEXT NOT NULL,
    team_id       TEXT NOT NULL REFERENCES teams (team_id),
    user_id       TEXT,
    key_alias     TEXT,
    models        TEXT NOT NULL DEFAULT '[]',
    status        TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT
);
CREATE INDEX api_keys_team_id ON api_keys (team_id);
CREATE INDEX api_keys_user_id ON api_keys (user_id);

-- One row per delivered ReportUsage batch: the primary key is the de-duplication.
CREATE TABLE usage_batches (
    batch_id       TEXT PRIMARY KEY,
    node_id        TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    record_count   BIGINT NOT NULL
);

CREATE TABLE usage_records (
    id           BIGSERIAL PRIMARY KEY,
    batch_id     TEXT NOT NULL REFERENCES usage_batches (batch_id),
    seq          BIGINT NOT NULL,
    request_id   TEXT NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    key_id       TEXT NOT NULL,
    team_id      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    model        TEXT NOT NULL,
    tokens_in    BIGINT NOT NULL,
    tokens_out   BIGINT NOT NULL,
    spend        DOUBLE PRECISION NOT NULL,
    -- The whole record as the filter sent it (protobuf modelgate.v1.UsageRecord).
    record       BYTEA NOT NULL,
    UNIQUE (batch_id, seq)
);
CREATE INDEX usage_records_timestamp ON usage_records (timestamp_ms);
CREATE INDEX usage_records_key_id ON usage_records (key_id, timestamp_ms);
CREATE INDEX usage_records_team_id ON usage_records (team_id, timestamp_ms);
