"""What every benchmark module shares: the row shape, a broker, a database, RSS, a run folder.

A benchmark module is ``bench/<name>.py`` exposing ``run(mode) -> list[Row]``; it starts
what it needs itself (an embedded broker on a free port, a fresh database) and cleans up.
The runner (``python -m bench``) runs each module in its own process and sets
``BENCH_RUN_DIR`` so that modules can drop plots there and share references measured once.
"""

from __future__ import annotations

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
from pathlib import Path
from typing import Any, TypedDict

import asyncpg

from services.common.apache_kafka import KafkaCluster
from services.common.broker import EmbeddedBroker
from services.common.db import migrate

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
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
