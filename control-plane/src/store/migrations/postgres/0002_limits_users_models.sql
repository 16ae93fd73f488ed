-- Issue 3: limits, budgets, metadata and redaction settings on teams and keys; users; model
-- routes; key tags. A budget is max_budget plus its period: budget_duration_ms (rolling
-- windows from budget_anchor_ms) or budget_calendar (UTC day/week/month), neither = never
-- resets. The same columns on teams, keys and users let one query sum every budget's window.
ALTER TABLE teams ADD COLUMN rpm_limit BIGINT;
ALTER TABLE teams ADD COLUMN tpm_limit BIGINT;
ALTER TABLE teams ADD COLUMN max_parallel_requests BIGINT;
ALTER TABLE teams ADD COLUMN max_budget DOUBLE PRECISION;
ALTER TABLE teams ADD COLUMN budget_duration_ms BIGINT;
ALTER TABLE teams ADD COLUMN budget_calendar TEXT CHECK (budget_calendar IN ('day', 'week', 'month'));
ALTER TABLE teams ADD COLUMN budget_anchor_ms BIGINT;
-- JSON object.
ALTER TABLE teams ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE teams ADD COLUMN redaction_policy_json TEXT;
ALTER TABLE teams ADD COLUMN high_trust BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE teams ADD COLUMN keep_redacted_prompt BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE api_keys ADD COLUMN rpm_limit BIGINT;
ALTER TABLE api_keys ADD COLUMN tpm_limit BIGINT;
ALTER TABLE api_keys ADD COLUMN max_parallel_requests BIGINT;
ALTER TABLE api_keys ADD COLUMN max_budget DOUBLE PRECISION;
ALTER TABLE api_keys ADD COLUMN budget_duration_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN budget_calendar TEXT CHECK (budget_calendar IN ('day', 'week', 'month'));
ALTER TABLE api_keys ADD COLUMN budget_anchor_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
-- Blocked keys are refused but can be unblocked (revocation is final).
ALTER TABLE api_keys ADD COLUMN blocked BOOLEAN NOT NULL DEFAULT FALSE;

-- A key's top-level scalar metadata entries, so `key list --tag name=value` uses an index.
CREATE TABLE key_tags (
    public_id TEXT NOT NULL REFERENCES api_keys (public_id),
    tag_name  TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (public_id, tag_name)
);
CREATE INDEX key_tags_tag ON key_tags (tag_name, tag_value);

-- Users (by email) with optional limits across all of their keys.
CREATE TABLE users (
    user_id               TEXT PRIMARY KEY,
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    max_budget            DOUBLE PRECISION,
    budget_duration_ms    BIGINT,
    budget_calendar       TEXT CHECK (budget_calendar IN ('day', 'week', 'month')),
    budget_anchor_ms      BIGINT,
    created_at_ms         BIGINT NOT NULL
);

-- Model routes: the public name clients send, the upstream's own name, the Envoy cluster
-- and prices per million tokens.
CREATE TABLE models (
    name                 TEXT PRIMARY KEY,
    upstream_model       TEXT,
    cluster              TEXT,
    input_cost_per_mtok  DOUBLE PRECISION NOT NULL DEFAULT 0,
    output_cost_per_mtok DOUBLE PRECISION NOT NULL DEFAULT 0,
    default_max_tokens   BIGINT,
    created_at_ms        BIGINT NOT NULL
);
