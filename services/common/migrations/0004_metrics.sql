-- Metrics service (services/metrics/store.py): the durable KPI figures, the dedup keys
-- and the consumer positions, all written in ONE transaction per flush, so that after
-- a crash at any moment the figures and the position they correspond to agree: a
-- replayed record is either already in both or in neither.
--
-- Rows carry the (topic, partition) they were counted from: a worker that is assigned
-- a partition loads exactly its rows, and figures stay additive across workers.

-- The dedup authority: blake2b-16 of length(source) || ':' || source || id. An event
-- whose key is here was counted, whichever worker, restart or retry delivered it first.
CREATE TABLE IF NOT EXISTS metrics_seen_events (
    digest    bytea PRIMARY KEY CHECK (length(digest) = 16),
    event_day date  NOT NULL
);
-- Keys older than the grace period are pruned: such events are refused as too late.
CREATE INDEX IF NOT EXISTS metrics_seen_events_day ON metrics_seen_events (event_day);

-- Daily figures per unit and KPI (Vietnam calendar days), for history, reports and
-- month/year figures that survive a broker that forgets everything on restart.
CREATE TABLE IF NOT EXISTS kpi_daily (
    topic       text    NOT NULL,
    "partition" integer NOT NULL,
    unit        text    NOT NULL,
    kpi         text    NOT NULL,
    day         date    NOT NULL,
    numerator   bigint  NOT NULL CHECK (numerator >= 0),
    denominator bigint  NOT NULL CHECK (denominator >= numerator),
    PRIMARY KEY (topic, "partition", unit, kpi, day)
);
CREATE INDEX IF NOT EXISTS kpi_daily_unit ON kpi_daily (unit, kpi, day);

-- 5-minute buckets of the last hours, for the rolling windows (5m, 30m, 1h, 6h).
CREATE TABLE IF NOT EXISTS kpi_buckets (
    topic        text    NOT NULL,
    "partition"  integer NOT NULL,
    unit         text    NOT NULL,
    kpi          text    NOT NULL,
    bucket_start bigint  NOT NULL,  -- epoch seconds, a multiple of 300
    numerator    bigint  NOT NULL,
    denominator  bigint  NOT NULL,
    PRIMARY KEY (topic, "partition", unit, kpi, bucket_start)
);
CREATE INDEX IF NOT EXISTS kpi_buckets_start ON kpi_buckets (bucket_start);

-- Last event time per unit and family (silence detection).
CREATE TABLE IF NOT EXISTS unit_activity (
    topic           text        NOT NULL,
    "partition"     integer     NOT NULL,
    unit            text        NOT NULL,
    family          text        NOT NULL,
    last_event_time timestamptz NOT NULL,
    PRIMARY KEY (topic, "partition", unit, family)
);

-- Where each partition's processing stands: the next offset to read, and the epoch of
-- the worker that owns it. A worker claims a partition on assignment (epoch + 1); a
-- flush from a worker holding an older epoch (it lost the partition) changes nothing.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id    text    NOT NULL,
    topic       text    NOT NULL,
    "partition" integer NOT NULL,
    next_offset bigint  NOT NULL DEFAULT 0,
    epoch       bigint  NOT NULL DEFAULT 0,
    owner       text    NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, "partition")
);
