-- When Alertmanager was first told an alert had resolved (services/alerts/service.py,
-- after a push that carried it). At start the service re-sends every resolution not
-- told yet, however old: until 2026-12-05 it re-sent only those of the last
-- EGOV_ALERT_RESOLVED_RESEND_S, and a resolution made while Alertmanager was away was
-- lost for good if the service restarted later than that before Alertmanager came back
-- (the page was never closed; review 56). Rows from before are taken as told: the
-- service that wrote them re-sent each for its window, and a flood of year-old
-- resolutions at the first start would say nothing to on-call.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS told_resolved_at timestamptz;
UPDATE alerts SET told_resolved_at = resolved_at
    WHERE state = 'resolved' AND told_resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_resolution_untold
    ON alerts (resolved_at) WHERE state = 'resolved' AND told_resolved_at IS NULL;
