-- The audit chain (issue 5). Every usage record takes a position `seq` in one hash chain:
-- hash = SHA-256(prev_hash || seq as 8 bytes big-endian || record), prev_hash of record 1 is
-- 32 zero bytes. The record's place in its ReportUsage batch, formerly `seq`, is `batch_index`.
-- Rows stored before this migration have no position yet; the server chains them at start.
ALTER TABLE usage_records RENAME COLUMN seq TO batch_index;
ALTER TABLE usage_records ADD COLUMN seq INTEGER;
ALTER TABLE usage_records ADD COLUMN prev_hash BLOB;
ALTER TABLE usage_records ADD COLUMN hash BLOB;
-- success / blocked / errored / cancelled / unspecified, from the record.
ALTER TABLE usage_records ADD COLUMN status TEXT NOT NULL DEFAULT 'unspecified';
CREATE UNIQUE INDEX usage_records_seq ON usage_records (seq);
CREATE INDEX IF NOT EXISTS usage_records_user_id ON usage_records (user_id, timestamp_ms);
CREATE INDEX IF NOT EXISTS usage_records_model ON usage_records (model, timestamp_ms);

-- The chain's tip. Appends lock this row first, so they run one at a time.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- Ed25519-signed statements "record `seq` has hash `chain_hash`", numbered without gaps.
CREATE TABLE audit_checkpoints (
    checkpoint_no INTEGER PRIMARY KEY,
    seq           INTEGER NOT NULL,
    chain_hash    BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    -- The signer's policy: a checkpoint at least every this many records.
    every_records INTEGER NOT NULL,
    signer        BLOB NOT NULL,
    signature     BLOB NOT NULL
);
CREATE INDEX audit_checkpoints_seq ON audit_checkpoints (seq);
