-- Metrics service (services/metrics/dossierstore.py): where each dossier stands for the
-- on-time resolution rate (services/metrics/dossiers.py), one row per dossier, kept per
-- (topic, partition) like the figures and written in the same transaction as the counts
-- and the offsets: after a crash, a rebalance or a restart the state and the figures it
-- produced agree, and a replayed record finds its dossier as it left it.
CREATE TABLE IF NOT EXISTS dossier_state (
    topic          text             NOT NULL,
    "partition"    integer          NOT NULL,
    dossier_id     text             NOT NULL,
    status         text             NOT NULL
        CHECK (status IN ('open', 'paused', 'overdue', 'done', 'withdrawn')),
    due_day        date,
    -- Epoch seconds of the last instant still on time (a date alone: its last microsecond
    -- in Vietnam time); NULL when no appointment is known.
    last_on_time   double precision,
    units          text[]           NOT NULL,
    updated_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, "partition", dossier_id),
    CHECK ((due_day IS NULL) = (last_on_time IS NULL))
);
-- The sweep looks for open dossiers whose appointment has passed.
CREATE INDEX IF NOT EXISTS dossier_state_open_due ON dossier_state (topic, "partition", last_on_time)
    WHERE status = 'open';
