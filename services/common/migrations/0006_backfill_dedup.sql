-- Metrics service (services/metrics/store.py): dedup keys of backfilled events are kept.
--
-- Live keys are pruned once their event day is older than the grace period: a live event
-- that old is refused as too late, so its key can never be needed again. A backfilled
-- event (Kafka header `egov_backfill: 1`, schemas/CONTRACT.md §5) is counted however old
-- it is, so its key must stay for good, or a re-run of the same backfill file would
-- count the history twice. A live and a backfilled delivery of one (source, id) are one
-- event: once either key is backfill, it stays.
ALTER TABLE metrics_seen_events ADD COLUMN IF NOT EXISTS backfill boolean NOT NULL DEFAULT false;

-- Pruning reads only live keys; backfilled ones (a year of a province's history is
-- millions) stay out of the index it scans.
DROP INDEX IF EXISTS metrics_seen_events_day;
CREATE INDEX IF NOT EXISTS metrics_seen_events_live_day ON metrics_seen_events (event_day)
    WHERE NOT backfill;
