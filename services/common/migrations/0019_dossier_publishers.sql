-- The on-time ledger keys each dossier within its publisher, as dedup does (docs/ingest.md,
-- "Dedup identity"): until now one dossier_id per partition, so any key of a province
-- could withdraw, resolve or take over another system's dossier by sending its id first
-- (review 43). ``publisher`` is the API key's name of the records that wrote the row, ''
-- for unbound records (straight to Kafka, backfill --unbound, events dated before the
-- publishers' cut-over) and for every row stored before this migration. The dossier id
-- stays the key's first column: a flush loads every publisher's row of its dossiers with
-- one equality lookup (services/metrics/dossierstore.py), and an unbound row is continued
-- by its publisher's bound events at its unit, and the other way round (docs/dossiers.md).
-- The new key's index is built under an exclusive lock: seconds per million rows, while
-- the workers wait (they run the new code only after it: compose's ``migrate`` service,
-- and `make up`, migrate before starting them).
ALTER TABLE dossier_state ADD COLUMN IF NOT EXISTS publisher text NOT NULL DEFAULT '';
ALTER TABLE dossier_state DROP CONSTRAINT IF EXISTS dossier_state_pkey;
ALTER TABLE dossier_state ADD PRIMARY KEY (topic, "partition", dossier_id, publisher);
