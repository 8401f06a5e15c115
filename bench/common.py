"""What every benchmark module shares: the row shape, a broker, a database, RSS, a run folder,
and the metrics worker's commit clock.

A benchmark module is ``bench/<name>.py`` exposing ``run(mode) -> list[Row]``; it starts
what it needs itself (an embedded broker on a free port, a fresh database) and cleans up.
The runner (``python -m bench``) runs each module in its own process and sets
``BENCH_RUN_DIR`` so that modules can drop plots there and share references measured once.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

import asyncpg

from services.common.apache_kafka import KafkaCluster
from services.common.broker import EmbeddedBroker
from services.common.db import migrate
from tests.integration.processes import stop

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MODES = ("quick", "full")


def admin_dsn() -> str:
    """The run's PostgreSQL server: ``python -m bench`` starts one and sets this."""
    return os.environ["EGOV_BENCH_ADMIN_DSN"]


class Row(TypedDict):
    """One figure of the report; ``ratio`` is value / reference_value when both exist."""

    benchmark: str
    metric: str
    value: float
    unit: str
    reference: str | None
    reference_value: float | None
    ratio: float | None
    notes: str


def row(
    benchmark: str,
    metric: str,
    value: float,
    unit: str,
    *,
    reference: str | None = None,
    reference_value: float | None = None,
    notes: str = "",
) -> Row:
    """A row with its ratio computed (None when there is no usable reference)."""
    ratio = value / reference_value if reference_value else None
    return Row(
        benchmark=benchmark,
        metric=metric,
        value=float(value),
        unit=unit,
        reference=reference,
        reference_value=None if reference_value is None else float(reference_value),
        ratio=None if ratio is None else round(ratio, 4),
        notes=notes,
    )


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")


def run_dir() -> Path:
    """Where this run's artifacts go (``BENCH_RUN_DIR``, set by the runner; else a tmp dir)."""
    path = Path(os.environ.get("BENCH_RUN_DIR") or Path(tempfile.gettempdir()) / "egov-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_reference(name: str, measure: Callable[[], float]) -> float:
    """A reference measured once per run and reused by every module that needs it.

    The cache is a JSON file in the run folder, so modules in separate processes
    share it; outside a runner run each call measures afresh.
    """
    if not os.environ.get("BENCH_RUN_DIR"):
        return measure()
    path = run_dir() / "references.json"
    known: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
    key = name if broker_name() == "tansu" else f"{name}@{broker_name()}"
    if key not in known:
        known[key] = measure()
        path.write_text(json.dumps(known, indent=1))
    return known[key]


BROKERS = ("tansu", "kafka")
KAFKA_SUFFIX = " [Apache Kafka]"
"""Appended to the benchmark name of the rows measured on Apache Kafka."""


def broker_name() -> str:
    """The broker this module runs on: ``BENCH_BROKER``, set by the runner (tansu)."""
    name = os.environ.get("BENCH_BROKER", "tansu")
    if name not in BROKERS:
        raise ValueError(f"BENCH_BROKER={name!r}: one of {BROKERS}")
    return name


def broker_env(name: str) -> dict[str, str]:
    """The services' settings for that broker, as `make up` and the tests set them."""
    if name == "kafka":
        return {"BENCH_BROKER": "kafka", "EGOV_KAFKA_IDEMPOTENCE": "true"}
    return {"BENCH_BROKER": "tansu", "EGOV_EMBEDDED_BROKER": "true"}


@contextmanager
def embedded_broker() -> Iterator[EmbeddedBroker | KafkaCluster]:
    """A broker of this benchmark's own, on a free port: tansu, or one Apache Kafka node
    (``BENCH_BROKER=kafka``; services/common/apache_kafka.py); logs go to the run folder."""
    tag = uuid.uuid4().hex[:6]
    if broker_name() == "kafka":
        root = run_dir() / f"kafka-{tag}"
        cluster = KafkaCluster(root, nodes=1)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)
        return
    log = run_dir() / f"tansu-{tag}.log"
    broker = EmbeddedBroker(log=log)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        log.unlink(missing_ok=True)


@asynccontextmanager
async def fresh_database(prefix: str = "egov_bench") -> AsyncIterator[str]:
    """A new migrated database, dropped afterwards; yields its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = admin_dsn().rsplit("/", 1)[0] + f"/{name}"
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield dsn
    finally:
        admin = await asyncpg.connect(admin_dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextmanager
def service_process(
    args: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``egov-pulse ARGS`` as a child process until the block ends (then SIGTERM, or KILL)."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args], env=env, stdout=sink, stderr=sink
        )
    try:
        yield proc
    finally:
        stop(proc)


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log, for an error message."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def rss_bytes(pid: int, field: str = "VmRSS") -> int | None:
    """Resident set size of a process from /proc (None when it is gone); ``VmHWM``: its
    peak so far."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return None


def postgres_cpu_seconds() -> float:
    """CPU seconds (user and system) the PostgreSQL processes alive now have used: the
    server the benchmarks started, its backends and its WAL writer and checkpointer.
    Read before and after a phase whose connections stay open throughout: a backend that
    exits inside takes its time with it."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            # Fields after the parenthesised name: utime and stime are the 12th and 13th.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


class Stopwatch:
    """Elapsed seconds on the monotonic clock."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def dump_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False, default=str))


# --- The metrics worker's commit clock -----------------------------------------------------
#
# A flush of the metrics worker counts a step's records and moves its partitions' positions
# (``consumer_offsets``) in one transaction, whose last statement sets ``updated_at`` to
# ``clock_timestamp()``: when the positions and the figures they cover became durable. So a
# read of the table says, on PostgreSQL's clock and whenever it is made, how many records
# the worker had counted and when the flush that counted them committed; polling it only
# has to be often enough to see the end, not to time it. A claim (on assignment) sets
# ``updated_at`` too: a new row's position is 0, so only positions above 0 date a flush; a
# claim of a partition already read is told by its epoch (see :class:`CommitSpan`).

COMMIT_POLL_S: Final = 0.02
"""How often the positions are read while the worker counts (to see the end, not time it)."""
COMMIT_SQL: Final = """
SELECT coalesce(sum(next_offset), 0)::bigint AS records,
       extract(epoch FROM max(updated_at) FILTER (WHERE next_offset > 0))::float8 AS at,
       coalesce(sum(epoch), 0)::bigint AS claims,
       extract(epoch FROM clock_timestamp())::float8 AS read_at
FROM consumer_offsets
"""


@dataclass(frozen=True)
class Commit:
    """The worker's committed positions at one read of its database, in one statement so
    that the count and its time belong together even when the read lands after a later
    flush than the one awaited."""

    records: int
    """Records counted: the sum of the partitions' next offsets."""
    at: float | None
    """When the last flush committed them (PostgreSQL's clock, seconds since the epoch);
    None before any."""
    claims: int
    """The sum of the partitions' epochs: it moves with every claim and only then."""
    read_at: float | None = None
    """When this read was made (the same clock): a poller without the commit clock would
    have dated the commit so, up to a poll late."""


NO_COMMIT: Final = Commit(0, None, 0)
"""A fresh database: nothing claimed, nothing counted."""


async def read_commit(conn: asyncpg.Connection) -> Commit:
    found = await conn.fetchrow(COMMIT_SQL)
    assert found is not None  # an aggregate: always one row
    return Commit(int(found["records"]), found["at"], int(found["claims"]), found["read_at"])


@dataclass(frozen=True)
class CommitSpan:
    """A worker's counting of one batch of records, timed on its commit clock: from its
    first flush committed (``first``, the first read with more records than ``start``) to
    the commit of the flush that counted the last record (``last``, the first read with
    them all), over the records counted after the first read. ``before_last`` is the read
    before ``last``: with the same claims, no claim came between the last flush and that
    read, so ``last.at`` is the flush's commit; else it may be a later claim's time (a
    rebalance: the span is then too long, never too short)."""

    start: Commit
    first: Commit
    before_last: Commit
    last: Commit

    @property
    def seconds(self) -> float:
        assert self.first.at is not None and self.last.at is not None
        return self.last.at - self.first.at

    @property
    def polled_seconds(self) -> float | None:
        """The same span as polling the positions dates it: from the read that first saw a
        flush to the one that saw the last (the timing before the commit clock)."""
        if self.first.read_at is None or self.last.read_at is None:
            return None
        return self.last.read_at - self.first.read_at

    def polled_rate(self, events: int) -> float | None:
        seconds = self.polled_seconds
        if seconds is None:
            return None
        return (events - self.first_events(events)) / seconds if seconds > 0 else 0.0

    @property
    def records(self) -> int:
        return self.last.records - self.start.records

    @property
    def first_records(self) -> int:
        """Records counted by the first read's flushes (the first, or more if the read
        came after a second)."""
        return self.first.records - self.start.records

    def first_events(self, events: int) -> int:
        """The first flush's share of ``events`` spread over the records (exact for one
        event a record; for batches, their mean size)."""
        return round(events * self.first_records / self.records) if self.records else 0

    def rate(self, events: int) -> float:
        """Events/s counted after the first flush (0 if all were in it)."""
        after = events - self.first_events(events)
        return after / self.seconds if self.seconds > 0 else 0.0

    @property
    def end_exact(self) -> bool:
        """``last.at`` is the commit of the flush that counted the last record."""
        return self.last.claims == self.before_last.claims

    @property
    def claimed_inside(self) -> bool:
        """A partition was claimed (a rebalance) between the first read and the last."""
        return self.last.claims != self.first.claims


async def wait_commits(
    conn: asyncpg.Connection, start: Commit, records: int, deadline: float
) -> CommitSpan:
    """Read the worker's positions every :data:`COMMIT_POLL_S` until ``records`` (in all)
    are counted; the span from its first flush after ``start`` to that last one.
    ``deadline`` is on :func:`time.monotonic`."""
    first = None
    before = now = start
    while True:
        before, now = now, await read_commit(conn)
        if first is None and now.records > start.records and now.at is not None:
            first = now
        if first is not None and now.records >= records:
            return CommitSpan(start, first, before, now)
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {now.records - start.records} of {records - start.records} "
                "records counted in time"
            )
        await asyncio.sleep(COMMIT_POLL_S)


async def clock_offset(conn: asyncpg.Connection) -> float:
    """PostgreSQL's clock minus this process's wall clock (seconds; ~0 on one machine):
    to place a moment seen here on the commit clock."""
    sent = time.time()
    server = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
    return float(server) - (sent + time.time()) / 2
