-- The audit chain (issue 5). Every usage record takes a position `seq` in one hash chain:
-- hash = SHA-256(prev_hash || seq as 8 bytes big-endian || record), prev_hash of record 1 is
-- 32 zero bytes. The record's place in its ReportUsage batch, formerly `seq`, is `batch_index`.
-- Rows stored before this migration have no position yet; the server chains them at start.
ALTER TABLE usage_records RENAME COLUMN seq TO batch_index;
ALTER TABLE usage_records ADD COLUMN seq BIGINT;
ALTER TABLE usage_records ADD COLUMN prev_hash BYTEA;
ALTER TABLE usage_records ADD COLUMN hash BYTEA;
-- success / blocked / errored / cancelled / unspecified, from the record.
ALTER TABLE usage_records ADD COLUMN status TEXT NOT NULL DEFAULT 'unspecified';
CREATE UNIQUE INDEX usage_records_seq ON usage_records (seq);
CREATE INDEX IF NOT EXISTS usage_records_user_id ON usage_records (user_id, timestamp_ms);
CREATE INDEX IF NOT EXISTS usage_records_model ON usage_records (model, timestamp_ms);

-- The chain's tip. Appends lock this row first, so they run one at a time on every replica.
CREATE TABLE audit_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Ed25519-signed statements "record `seq` has hash `chain_hash`", numbered without gaps.
CREATE TABLE audit_checkpoints (
    checkpoint_no BIGINT PRIMARY KEY,
    seq           BIGINT NOT NULL,
    chain_hash    BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL,
    -- The signer's policy: a checkpoint at least every this many records.
    every_records BIGINT NOT NULL,
    signer        BYTEA NOT NULL,
    signature     BYTEA NOT NULL
);
CREATE INDEX audit_checkpoints_seq ON audit_checkpoints (seq);
