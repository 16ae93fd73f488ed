-- Issue 13: admin keys, per-person admin credentials with a role. Only the SHA-256 (hex) of
-- the whole key is stored, with the person, the role and the team ids the role applies to.
CREATE TABLE admin_keys (
    public_id        TEXT PRIMARY KEY,
    key_sha256       TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('admin', 'team_admin', 'auditor', 'member')),
    -- JSON array of team ids.
    teams            TEXT NOT NULL DEFAULT '[]',
    created_at_ms    INTEGER NOT NULL,
    revoked_at_ms    INTEGER,
    last_used_at_ms  INTEGER
);
CREATE INDEX admin_keys_user_id ON admin_keys (user_id);

-- Admin calls (writes and denials) are records of the same audit chain as requests:
-- 'request' (from a filter) or 'admin' (appended by the control plane), derived from the
-- record's bytes like every column reports filter on.
ALTER TABLE usage_records ADD COLUMN kind TEXT NOT NULL DEFAULT 'request';
