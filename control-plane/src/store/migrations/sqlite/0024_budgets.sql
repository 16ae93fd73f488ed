-- LiteLLM budget objects (`/budget/new`): named limits that keys, teams and users take on by
-- naming them (`budget_links`). Their rate limits fill the ones a scope leaves unset.
CREATE TABLE budgets (
    budget_id             TEXT PRIMARY KEY,
    max_budget            REAL,
    soft_budget           REAL,
    -- As the admin wrote it (e.g. 30d).
    budget_duration       TEXT,
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    created_at_ms         INTEGER NOT NULL,
    updated_at_ms         INTEGER NOT NULL
);

-- One budget per key (public id), team (id) or user (id). A link outlives a deleted scope
-- (keys, teams and users are deleted without looking here); readers join on the scope, so a
-- stale link neither applies nor keeps its budget from being deleted.
CREATE TABLE budget_links (
    scope_kind TEXT NOT NULL CHECK (scope_kind IN ('key', 'team', 'user')),
    scope_id   TEXT NOT NULL,
    budget_id  TEXT NOT NULL REFERENCES budgets (budget_id),
    PRIMARY KEY (scope_kind, scope_id)
);
CREATE INDEX budget_links_budget ON budget_links (budget_id);
