-- alert_outbox is a delivery queue, not an archive (the history is alert_transitions):
-- delivered rows are deleted EGOV_ALERT_OUTBOX_KEEP_DAYS after delivery, in the outbox
-- round (services/alerts/outbox.py). This index lets that round read only the rows it
-- deletes; until 2026-12-05 nothing deleted them (review 39).
CREATE INDEX IF NOT EXISTS alert_outbox_delivered
    ON alert_outbox (delivered_at) WHERE delivered_at IS NOT NULL;
