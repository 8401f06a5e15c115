-- Metrics service (services/metrics/logcheck.py): a stored position belongs to the log it
-- was read from. Each flush stores, beside next_offset, an 8-byte fingerprint of the record
-- just before it; at assignment the worker reads that record back, and a position whose
-- record is gone or different (the broker lost its log, the topic was recreated) is not
-- resumed from: the log is counted again from its start. NULL: stored before this column,
-- checked only against the log's bounds.
ALTER TABLE consumer_offsets ADD COLUMN IF NOT EXISTS last_record bytea
    CHECK (last_record IS NULL OR length(last_record) = 8);
