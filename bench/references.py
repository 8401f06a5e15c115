"""References measured in the same run: the ceilings (raw aiokafka) and floors (naive Faust).

Every figure of the report stands beside one of these, measured on the same machine,
the same embedded broker binary and the same payload, so a ratio says how much of the
available speed the service keeps:

- ``aiokafka-producer``: raw AIOKafkaProducer, acks=all, linger 5 ms (ingest's settings);
  the ceiling for anything that publishes.
- ``aiokafka-consumer``: raw AIOKafkaConsumer reading from the beginning; the ceiling
  for anything that consumes.
- ``faust-noop``: a Faust agent that does nothing per message; the ceiling of
  message-at-a-time Faust.
- ``faust-windowed-table``: the naive design, a Faust agent updating a windowed table
  per event (one changelog record per update); the floor.

Other modules call :func:`reference` to reuse a figure measured once in this run.
The Faust agents run in a child process (``python -m bench.references faust KIND ...``)
because a Faust worker owns its event loop and its signal handlers.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Final

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import REPO, Row, cached_reference, check_mode, embedded_broker, row
from tests.integration.processes import stop

PARTITIONS: Final = 6
# The shape of a real document event, about 450 bytes like the integrators' messages.
PAYLOAD: Final = orjson.dumps(
    {
        "specversion": "1.0",
        "id": "9b1f6c2e-5d4a-4c1e-8f7a-2a3b4c5d6e01",
        "source": "https://tdoffice.thanhhoa.gov.vn/nongcong",
        "type": "vn.egov.document.issued",
        "time": "2026-11-23T09:15:42+07:00",
        "unit": "14758",
        "datacontenttype": "application/json",
        "dataschema": "https://schemas.egov-pulse.vn/vn.egov.document.issued/v1.json",
        "data": {
            "document_id": "VB-2026-011703",
            "document_number": "1172/UBND-VP",
            "electronic": True,
            "signed": True,
            "classified": False,
            "signature": "both",
        },
    }
)
SIZES: Final = {
    "quick": {"producer": 50_000, "consumer": 100_000, "noop": 15_000, "windowed": 5_000},
    "full": {"producer": 300_000, "consumer": 500_000, "noop": 60_000, "windowed": 20_000},
}
FAUST_TIMEOUT_S: Final = 120.0
RATE_LINE: Final = re.compile(r"RATE ([0-9.]+)")


async def create_topic(
    bootstrap: str, topic: str, partitions: int = PARTITIONS, configs: dict[str, str] | None = None
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
    finally:
        await admin.close()


async def fill_topic(bootstrap: str, topic: str, n: int, payload: bytes = PAYLOAD) -> float:
    """Produce ``n`` messages as fast as aiokafka can; returns messages per second."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        request_timeout_ms=30_000,
    )
    await asyncio.wait_for(producer.start(), 10)
    try:
        started = time.perf_counter()
        pending = []
        for i in range(n):
            key = str(i % 34).encode()
            pending.append(await producer.send(topic, payload, key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return n / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, n: int, timeout_s: float = 60.0) -> float:
    """Read ``n`` messages from the beginning; returns messages per second (after the first)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await asyncio.wait_for(consumer.start(), 10)
    try:
        seen, started = 0, 0.0
        deadline = time.monotonic() + timeout_s
        while seen < n and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for messages in batches.values():
                if not started and messages:
                    started = time.perf_counter()
                seen += len(messages)
        if seen < n:
            raise RuntimeError(f"read {seen} of {n} messages of {topic} in {timeout_s} s")
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def measure_producer(bootstrap: str, n: int) -> float:
    """Raw aiokafka producer throughput (messages/s) into a new topic on ``bootstrap``."""

    async def go() -> float:
        topic = f"ref-produce-{os.getpid()}-{time.monotonic_ns()}"
        await create_topic(bootstrap, topic)
        return await fill_topic(bootstrap, topic, n)

    return asyncio.run(go())


def measure_consumer(bootstrap: str, n: int) -> float:
    """Raw aiokafka consumer throughput (messages/s) over ``n`` messages it produces first."""

    async def go() -> float:
        topic = f"ref-consume-{os.getpid()}-{time.monotonic_ns()}"
        await create_topic(bootstrap, topic)
        await fill_topic(bootstrap, topic, n)
        return await read_topic(bootstrap, topic, n)

    return asyncio.run(go())


def measure_faust(bootstrap: str, kind: str, n: int) -> float:
    """Events/s of a one-worker Faust agent of ``kind`` (noop|windowed) over ``n`` messages.

    The topic is filled first; the rate runs from the first event the agent sees to the
    n-th, so worker start-up (a few seconds on tansu) is not counted.
    """
    topic = f"ref-faust-{kind}-{os.getpid()}-{time.monotonic_ns()}"

    async def fill() -> None:
        await create_topic(bootstrap, topic)
        await fill_topic(bootstrap, topic, n)

    asyncio.run(fill())
    with tempfile.TemporaryDirectory(prefix="bench-faust-") as datadir:
        cmd = [sys.executable, "-m", "bench.references", "faust", kind, bootstrap, topic, str(n)]
        env = {**os.environ, "BENCH_FAUST_DATADIR": datadir, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            return _await_rate(proc)
        finally:
            stop(proc, timeout_s=15)


def _await_rate(proc: subprocess.Popen[str]) -> float:
    assert proc.stdout is not None
    deadline = time.monotonic() + FAUST_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            # The worker routes print() through logging once it runs: match anywhere.
            found = RATE_LINE.search(proc.stdout.readline())
            if found:
                return float(found.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"the Faust reference exited with {proc.returncode}")
    raise RuntimeError(f"the Faust reference gave no figure within {FAUST_TIMEOUT_S} s")


# Measured once per run (in the first module that asks) and reused by the others.
MEASURES: Final[dict[str, tuple[str, Callable[[str, int], float]]]] = {
    "aiokafka-producer": ("producer", measure_producer),
    "aiokafka-consumer": ("consumer", measure_consumer),
    "faust-noop": ("noop", lambda b, n: measure_faust(b, "noop", n)),
    "faust-windowed-table": ("windowed", lambda b, n: measure_faust(b, "windowed", n)),
}


def reference(name: str, mode: str = "quick") -> float:
    """The figure of reference ``name`` (msg/s) for this run, measured on a broker of its own.

    Call it from synchronous code (not from inside a running event loop).
    """
    check_mode(mode)
    size_key, measure = MEASURES[name]

    def fresh() -> float:
        with embedded_broker() as broker:
            return measure(broker.bootstrap_servers, SIZES[mode][size_key])

    return cached_reference(name, fresh)


NOTES: Final = {
    "aiokafka-producer": "ceiling: raw AIOKafkaProducer, acks=all, linger 5 ms, ~450 B events",
    "aiokafka-consumer": "ceiling: raw AIOKafkaConsumer from the beginning",
    "faust-noop": "ceiling of per-message Faust: an agent that does nothing; the topic "
    "filled first, then timed from the first event the agent sees to the n-th",
    "faust-windowed-table": "floor: naive agent, windowed-table update (+changelog) per "
    "event; timed as faust-noop",
}


def run(mode: str) -> list[Row]:
    """Measure every reference on one broker of its own and share them with the run."""
    check_mode(mode)
    rows = []
    with embedded_broker() as broker:
        for name, (size_key, measure) in MEASURES.items():
            n = SIZES[mode][size_key]
            value = cached_reference(name, partial(measure, broker.bootstrap_servers, n))
            notes = f"{NOTES[name]}; {n:,} messages"
            rows.append(row("references", name, round(value), "msg/s", notes=notes))
    return rows


def _faust_main(kind: str, bootstrap: str, topic: str, n: int) -> None:
    """The Faust worker of :func:`measure_faust`: prints ``RATE <events/s>`` after n events."""
    import faust

    app = faust.App(
        f"bench-ref-{kind}-{os.getpid()}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=os.environ.get("BENCH_FAUST_DATADIR", tempfile.mkdtemp()),
        web_enabled=False,
        web_tables_enabled=False,
        producer_acks=-1,
        topic_partitions=PARTITIONS,
        # tansu holds a first JoinGroup for session_timeout / 2: keep start-up short.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, value_serializer="raw")
    counts = app.Table("counts", default=int, partitions=PARTITIONS).tumbling(3600, expires=7200)
    state = {"seen": 0, "started": 0.0}

    def tick() -> None:
        state["seen"] += 1
        if state["seen"] == 1:
            state["started"] = time.perf_counter()
        elif state["seen"] == n:
            rate = (n - 1) / (time.perf_counter() - state["started"])
            print(f"RATE {rate:.1f}", flush=True)

    async def noop(stream):  # type: ignore[no-untyped-def]
        async for _value in stream:
            tick()

    async def windowed(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            counts[orjson.loads(value)["unit"]] += 1
            tick()

    app.agent(source, name=f"ref-{kind}")(noop if kind == "noop" else windowed)
    sys.argv = [sys.argv[0], "worker", "--without-web", "-l", "warn"]
    app.main()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "faust":
        _faust_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit("usage: python -m bench.references faust noop|windowed BOOTSTRAP TOPIC N")
