"""Settings of the metrics service (a Faust worker)."""

from pathlib import Path

from pydantic import Field

from services.common.settings import CommonSettings


class MetricsSettings(CommonSettings):
    """Worker identity, its web port, how records are batched and flushed, and the clock skew
    (the grace is ``counting_grace_days``, shared with ingest)."""

    metrics_app_id: str = "egov-metrics"
    """``EGOV_METRICS_APP_ID``: Faust app id, also the consumer group; workers share it."""

    metrics_web_host: str = "127.0.0.1"
    """``EGOV_METRICS_WEB_HOST``: address of /metrics and the JSON API."""

    metrics_web_port: int = Field(default=8081, ge=1, le=65535)
    """``EGOV_METRICS_WEB_PORT``: port of /metrics (1-65535); each worker on one host needs
    its own."""

    metrics_batch_size: int = Field(default=1000, ge=1)
    """``EGOV_METRICS_BATCH_SIZE``: records (Kafka messages) per step, at most (at least 1:
    0 or less crashed or skipped a fetch): a fetch
    (services/metrics/fetched.py) is decoded in steps of this many. A batch record from
    ingest holds many events; flushes group steps (``flush_bytes``)."""

    metrics_fetch_bytes: int = 4 * 2**20
    """``EGOV_METRICS_FETCH_BYTES``: bytes fetched per partition per request (Faust's
    ``consumer_max_fetch_size``, 1 MiB by default). A fetch is sent for a partition only
    once the previous one is consumed, so each round trip to the broker bounds a
    replay: 4 MiB replayed ~20 % faster than 1 MiB here (three alternating pairs). A
    worker may hold this much per assigned partition fetched ahead."""

    metrics_fetch_max_wait_ms: int = Field(default=100, ge=1)
    """``EGOV_METRICS_FETCH_MAX_WAIT_MS``: how long the broker may hold a fetch that found
    no new records. Faust hard-codes 1,500 ms. Apache Kafka answers such a fetch as soon as
    a record arrives, so this only sets how often an idle worker asks again. tansu
    answers long after: measured here, a record produced while a fetch waited reached
    the consumer ~550 ms later with 1,500 ms, ~50 ms with 500 ms and 1–3 ms with 100 ms.
    A worker caught up with its producers (live traffic, a replay being published) lost
    that on every fetch. Idle, 100 ms costs ~1 % of a core in the worker and ~2 % in
    tansu (docs/metrics.md)."""

    metrics_metadata_max_age_s: float = Field(default=30.0, gt=0)
    """``EGOV_METRICS_METADATA_MAX_AGE_S``: how often the consumer reads the topics'
    metadata again. A partition added to an event topic while workers run is assigned,
    and its records counted, only after that (Faust's default, 5 minutes, left the
    events of a partition added to a running topic uncounted for 298 s; review 62)."""

    metrics_stream_buffer: int = 4096
    """``EGOV_METRICS_STREAM_BUFFER``: records Faust may hold fetched ahead of the agent
    (its ``stream_buffer_maxsize``). Faust's default: 1,000 cost one-event-per-message
    throughput ~10 % here (7.9k against 8.8k events/s) and, with the heap trimmed after
    large steps (services/metrics/heap.py), saved no memory in a replay. Lower it to cap
    what a worker holds when its records are large."""

    metrics_malloc_mmap_threshold: int = Field(default=2**20, ge=0, le=32 * 2**20)
    """``EGOV_METRICS_MALLOC_MMAP_THRESHOLD``: heap blocks of this many bytes or more are
    mapped on their own and given back to the system when freed (glibc's
    ``M_MMAP_THRESHOLD``, set once at start-up; services/metrics/heap.py). 0 leaves glibc's
    own threshold, which rises to the largest block freed: on Apache Kafka a fetch's
    response reaches 31 MB, after which the heaps kept up to twice that free, and a worker
    at rest after the metrics benchmark held 317-345 MiB against 262-268 on tansu. With 1
    MiB, 250 MiB on Kafka (256 KiB: 255-263, 4 MiB: 263). 1 MiB, above ingest's batch
    records and most of a step's blocks, so that only fetch buffers and whole answers pay
    a mapping each. At most 32 MiB, glibc's own ceiling for the threshold it raises."""

    metrics_gc_gen0_threshold: int = Field(default=10_000, ge=1)
    """``EGOV_METRICS_GC_GEN0_THRESHOLD``: allocations (less deallocations) after which
    the garbage collector examines the young objects (``gc.set_threshold``; Python's
    default is 700). A step makes hundreds of thousands of short-lived objects, so with
    700 the collector ran ~5,300-5,750 young, ~490-520 middle and ~40 full collections in
    the metrics benchmark's replay, singles and memory phases: 1.1-1.5 s of the worker's
    11-13 s of CPU, two thirds in the full ones. With 10,000: ~280-500, ~25-45 and 1-4,
    0.42-0.56 s. RSS at rest within the runs' spread: 248-263 MiB against 253-263 on
    Apache Kafka (four pairs), 253 against 246 on tansu (one pair) (/tmp/h3/mem.py,
    alternated). In ``python -m bench.pipeline 300000`` the counting's collections took
    0.32-0.41 s of 2.2 s of process CPU with 700, 0.12-0.14 with 10,000 and 0.09-0.12 with
    50,000, whose young collections pause ~7 ms each (~1 ms with 10,000)."""

    metrics_flush_bytes: int = 16 * 2**20
    """``EGOV_METRICS_FLUSH_BYTES``: at most about this many bytes of record values wait
    for the next flush (transaction) while one is in flight (16 MiB: ~50,000 events from
    ingest); decoding waits beyond it. Under load a flush takes everything decoded during
    the previous one, so larger values write fewer figure rows per event and hold more
    memory (a flush in flight and one pending)."""

    metrics_backlog_flush_interval_s: float = Field(default=0.5, ge=0.0)
    """``EGOV_METRICS_BACKLOG_FLUSH_INTERVAL_S``: while the consumer reads behind (its
    last fetch saw more records than it handed over), a flush starts no sooner than this
    long after the one before started, unless ``metrics_flush_bytes`` are waiting; a
    worker that has caught up flushes at once, as before. Each flush pays a part that
    does not shrink with it (its figure rows: ~40 ms for the ~6,000 of a 40,000-event
    backlog of one-event records, /tmp/s24/upsert.py), so a backlog is counted in fewer,
    larger flushes; 0 turns it off."""

    metrics_flush_interval_s: float = 0.3
    """``EGOV_METRICS_FLUSH_INTERVAL_S``: no longer read. A step used to wait this long to
    fill its batch; now each fetch is counted as it comes (services/metrics/fetched.py),
    and the broker's fetch wait (``metrics_fetch_max_wait_ms``) bounds the wait. Kept
    so that a deployment that sets it still starts."""

    @property
    def metrics_clock_skew_s(self) -> float:
        """The clock skew, shared with ingest (``clock_skew_s``): an event dated more than
        this many seconds ahead of the worker's clock is dead-lettered as
        ``time-in-future``; one within it counts in the day it is dated."""
        return self.clock_skew_s

    metrics_session_timeout_s: float = Field(default=6.0, gt=0, le=3600, allow_inf_nan=False)
    """``EGOV_METRICS_SESSION_TIMEOUT_S``: consumer-group session (more than 0, at most an
    hour). A dead worker's partitions move after about 1.5 times this; the embedded broker
    also holds a first JoinGroup for half of it, so short is fast to start and fast to
    fail over."""

    metrics_targets_refresh_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    """``EGOV_METRICS_TARGETS_REFRESH_S``: how often operator target overrides are re-read."""

    metrics_snapshot_interval_s: float = Field(default=2.0, gt=0)
    """``EGOV_METRICS_SNAPSHOT_INTERVAL_S``: how often, at most, the counting loop publishes
    the /v1/kpis items it answers from (services/metrics/snapshot.py), when a step was
    committed, a period rolled or a target changed since the last. Answers are at most
    about this old (their ``snapshot_age_s`` says how old); requests never build items.
    2 s, the alerts' evaluation period: each publication builds again every item of the
    units counted since the last (~17 µs an item here, 49 items a unit), so under heavy
    live traffic a longer interval spends less of the counting loop. A worker that has
    caught up (its last flush committed with nothing waiting) does not wait for it: it
    publishes once the last build is ten times its own duration old, and at least 0.1 s
    (``snapshot.CAUGHT_UP_COST_SHARE``)."""

    metrics_stall_after_s: float = Field(default=60.0, gt=0, le=3600, allow_inf_nan=False)
    """``EGOV_METRICS_STALL_AFTER_S``: once records read have waited this long with no
    flush committed (PostgreSQL unreachable, an operator's lock; more than 0, at most an
    hour), the counting is *stalled* (services/metrics/stallwatch.py): /v1/kpis answers 503
    naming it and /v1/activity says it (``counting_stalled``), so the alerts and the wall
    take the worker as not answering instead of its units as silent, and
    ``egov_metrics_counting_stalled_seconds`` shows it. 60 s: above a flush that waits its
    turn under a backlog or a PostgreSQL failover's retries (seconds), well under the
    alerts' silence floors (2 working hours; 120 s under `make up`)."""

    metrics_history_max_days: int = Field(default=800, ge=1, le=36_600)
    """``EGOV_METRICS_HISTORY_MAX_DAYS``: the largest ``days`` /v1/kpis/history answers
    (more is a 400 naming this limit): 800 reaches the whole of 2025, across the reform,
    from the end of 2026; ``year=YYYY`` reads any one year."""

    metrics_history_concurrency: int = Field(default=2, ge=1)
    """``EGOV_METRICS_HISTORY_CONCURRENCY``: history queries in PostgreSQL at once per
    worker; more wait (up to 5 s, then 503): the pool's other connections are the
    flush's."""

    metrics_data_dir: Path = Path("var/metrics")
    """``EGOV_METRICS_DATA_DIR``: Faust's working directory for this worker."""

    @property
    def metrics_grace_days(self) -> float:
        """The counting grace, shared with ingest: ``counting_grace_days``
        (``EGOV_COUNTING_GRACE_DAYS``, formerly ``EGOV_METRICS_GRACE_DAYS``). Its default
        covers the longest Tết break of data/holidays-vn.json plus the working day after
        it, when the break's backlog is uploaded (tests/unit/metrics/test_grace_covers_tet.py
        computes the break from the file)."""
        return self.counting_grace_days
