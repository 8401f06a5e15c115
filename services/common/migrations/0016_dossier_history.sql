-- The on-time ledger (services/metrics/dossiers.py) judges a dossier from all its events
-- taken in their own order, whatever order they are read in (a return pushed live, the
-- receipt and the resubmission in the commune's evening upload): each row keeps its
-- dossier's events and what the dossier is counted as, so that an event read late judges
-- it again and moves its count (services/metrics/dossierstore.py, ``history_bytes``).
-- NULL for rows written before: read as their status says (``dossiers._assumed``); a
-- dossier that had ended stays as it was counted.
ALTER TABLE dossier_state ADD COLUMN IF NOT EXISTS history bytea;
