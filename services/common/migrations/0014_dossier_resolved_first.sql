-- The on-time ledger (services/metrics/dossiers.py): a final outcome read before its
-- dossier's receipt, with no appointment of its own, is kept 'resolved' with its instant
-- (resolved_at, epoch seconds) until the receipt brings the appointment; it is judged
-- then, at that instant. Until 2026-12-05 such a dossier ended 'done' unjudged, and the
-- receipt that followed changed nothing: it was never counted early, on time or late.
ALTER TABLE dossier_state ADD COLUMN IF NOT EXISTS resolved_at double precision;
ALTER TABLE dossier_state DROP CONSTRAINT IF EXISTS dossier_state_status_check;
ALTER TABLE dossier_state ADD CONSTRAINT dossier_state_status_check
    CHECK (status IN ('open', 'paused', 'overdue', 'done', 'withdrawn', 'resolved'));
