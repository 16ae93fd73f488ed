-- Issue 12: IdP issuers whose JWTs filters verify, and the IdP groups that belong to a team.
-- The JWKS is the last good copy (fail static): a failed fetch only records its error.
CREATE TABLE identity_providers (
    issuer                TEXT PRIMARY KEY,
    -- JSON lists of strings.
    audiences             TEXT NOT NULL,
    allowed_groups        TEXT NOT NULL DEFAULT '[]',
    jwks_source           TEXT NOT NULL CHECK (jwks_source IN ('url', 'discovery', 'file')),
    -- The configured URL (url) or the one discovery found (discovery).
    jwks_url              TEXT,
    jwks_json             TEXT,
    jwks_fetched_at_ms    INTEGER,
    next_refresh_at_ms    INTEGER,
    last_error            TEXT,
    last_error_at_ms      INTEGER,
    user_claim            TEXT NOT NULL DEFAULT '',
    groups_claim          TEXT NOT NULL DEFAULT '',
    clock_skew_s          INTEGER NOT NULL,
    created_at_ms         INTEGER NOT NULL,
    -- Limits of users first seen through this issuer (the limit columns of teams and users).
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    max_budget            REAL,
    budget_duration_ms    INTEGER,
    budget_calendar       TEXT CHECK (budget_calendar IN ('day', 'week', 'month')),
    budget_anchor_ms      INTEGER
);

-- JSON list of group names.
ALTER TABLE teams ADD COLUMN idp_groups TEXT NOT NULL DEFAULT '[]';
