-- What the alerts service's silence judgement remembers across its restarts
-- (services/alerts/silence_memory.py): the spans in which a unit's time was not its
-- silence (a metrics worker that did not answer, its province quiet in a family) and
-- each province's last judged state. Until 2026-12-06 they lived in memory only, and a
-- restart made every commune not yet heard from after its province's outage page on its
-- own. One row: the alerts service is one process (docker-compose.yml).
CREATE TABLE IF NOT EXISTS alert_silence_memory (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    body jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
