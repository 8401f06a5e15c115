-- Alerts (services/alerts/evaluation.py): when the service began watching for silent
-- units. A unit expected to publish (its peers do) that never published is silent since
-- then. Kept here, set by the first start only: held in memory, it restarted with every
-- restart of the service, so a commune that never sent anything never paged wherever the
-- service restarted more often than its silence threshold (deploys, a nightly restart).
CREATE TABLE IF NOT EXISTS alert_watch (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    started_at timestamptz NOT NULL
);
