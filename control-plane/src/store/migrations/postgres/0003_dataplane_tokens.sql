-- Issue 13: data-plane credentials, the tokens Envoys present to PolicyService. Only the
-- SHA-256 (hex) of the whole token is stored. A name is unique among live tokens, so a
-- revoked name can be minted again.
CREATE TABLE dataplane_tokens (
    public_id        TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    token_sha256     TEXT NOT NULL UNIQUE,
    created_at_ms    BIGINT NOT NULL,
    revoked_at_ms    BIGINT,
    last_used_at_ms  BIGINT
);
CREATE UNIQUE INDEX dataplane_tokens_live_name ON dataplane_tokens (name)
    WHERE revoked_at_ms IS NULL;

-- The name of the data plane that delivered a batch; NULL for batches stored before
-- PolicyService required a credential.
ALTER TABLE usage_batches ADD COLUMN data_plane TEXT;
