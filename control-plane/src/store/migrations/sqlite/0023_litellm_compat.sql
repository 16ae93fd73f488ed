-- LiteLLM compatibility: a regenerated key's previous secret stays valid for a grace period
-- (`key/regenerate` with `grace_period`). Hex SHA-256 like key_sha256; NULL = none.
ALTER TABLE api_keys ADD COLUMN previous_key_sha256 TEXT;
ALTER TABLE api_keys ADD COLUMN previous_key_expires_at_ms INTEGER;
