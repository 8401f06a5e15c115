-- Metrics service (services/metrics/store.py): dedup keys carry one index, their key.
--
-- Every event inserts a dedup key, and each index on the table is one more insertion
-- per event: the partial index on event_day (0006) cost ~2 µs of PostgreSQL time per
-- key of ~9 here (300,000 keys in flushes of ~40,000, bench/pipeline.py), on the path
-- every event takes. It served only pruning, which runs every ten minutes: a sequential
-- scan of the table instead takes ~0.9 s with 5M keys and nothing to prune, ~3.5 s when
-- half a million go (measured here).
DROP INDEX IF EXISTS metrics_seen_events_live_day;
