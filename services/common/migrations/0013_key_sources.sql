-- Ingest (services/ingest/keystore.py): publisher-bound identity.
--
-- 1. Each API key is bound to the CloudEvents `source` values it may publish, a list of
-- prefixes (services/ingest/keys.py `source_allowed`). What a key published before is
-- recorded nowhere (dedup keys are one-way digests; ingest's per-key counts live only in
-- Prometheus), so keys made before this migration are bound to nothing: ingest refuses
-- their events with 403 (`source-out-of-scope`) saying so, until an operator binds them
-- with `egov-pulse keys sources NAME --sources PREFIX,...` (the token stays the same).
-- New keys must name their sources: the default is only for the rows already here.
ALTER TABLE ingest_api_keys ADD COLUMN IF NOT EXISTS sources text[] NOT NULL DEFAULT '{}';
ALTER TABLE ingest_api_keys ALTER COLUMN sources DROP DEFAULT;

-- 2. The dedup cut-over. An event's dedup identity becomes (publisher, source, id) (the
-- publisher is the key's name; services/common/summaries.py `dedup_digest`). Keys
-- stored before hold digests of (source, id) and cannot be converted (one-way). So an
-- event dated before the cut-over, which may have been counted already, keeps the old
-- identity when it arrives again (a retry, a re-upload within the counting grace): it
-- counts once. Events dated from the cut-over on carry their publisher. Set only when
-- something was counted before (a new database has no cut-over); five minutes ahead, the
-- clock skew ingest allowed. Old ingest processes must be stopped before migrating
-- (`make up` migrates before starting them); if one ran on, move the instant to when it
-- stopped: UPDATE ingest_dedup_cutover SET unbound_before = '...'.
CREATE TABLE IF NOT EXISTS ingest_dedup_cutover (
    only_row       boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    unbound_before timestamptz NOT NULL
);
INSERT INTO ingest_dedup_cutover (unbound_before)
SELECT now() + interval '5 minutes'
WHERE EXISTS (SELECT 1 FROM metrics_seen_events)
ON CONFLICT DO NOTHING;
