-- Metrics (services/metrics/dossiers.py): when a dossier's clock was paused and resumed,
-- so that its events judge it in their own order whatever order they are read in. A
-- receipt read after the return that paused it no longer resumes the clock
-- (paused_at); a return read after the resubmission that answered it no longer pauses
-- it for good (resumed_at); a dossier resolved while back with the applicant is judged
-- when its clock stopped (paused_at). Epoch seconds, NULL when unknown (rows from before
-- this migration: judged as before).
ALTER TABLE dossier_state ADD COLUMN IF NOT EXISTS paused_at double precision;
ALTER TABLE dossier_state ADD COLUMN IF NOT EXISTS resumed_at double precision;
