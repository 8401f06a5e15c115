"""Every event acknowledged with 202 is counted exactly once while metrics workers die.

The invariant Kafka's replication tests check, end to end: uniquely numbered events go
through the real ingest API (batches and singles, some re-sent on purpose, every
transient refusal retried until 202), while two `egov-pulse metrics` workers of one
consumer group are killed with SIGKILL and SIGTERM on a seeded schedule and restarted.
At the end:
- the dedup keys in PostgreSQL are exactly those of the acknowledged events (nothing
  acknowledged is missing; no event of a refused request is there);
- `kpi_daily` sums and the exported `egov_kpi_denominator_total` of every commune and
  province equal the number of acknowledged events (each counted once, each series
  exported by one worker).
Events of refused requests (a batch with one invalid event is refused whole; a request
with a wrong key) are never re-sent: they must not be counted. ingest's 503 is an
unknown outcome (docs/ingest.md), so it is retried until 202 and the test asserts on
the acknowledged set. The seed (``EGOV_FAULTS_SEED`` replays it) is in every failure.
"""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from collections import Counter
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from services.common.broker import free_port
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.common.tally import dedup_digest
from tests.faults.conftest import PUBLISHER, api_token, fault_seed, samples, serving, tail, until
from tests.faults.tools import Chaos
from tests.integration.metrics.harness import communes_by_province
from tests.integration.processes import service_env

pytestmark = [pytest.mark.integration, pytest.mark.faults]

EVENTS = 4000
SOURCE = "urn:egov:faults:exactly-once"
KPI = "document_electronic"  # every non-secret document enters its denominator
PUBLISH_S = 16.0  # the chaos runs while the events are published
SENDERS = 4
RETRY_WITHIN_S = 60.0


@dataclass
class Request:
    """One POST: its events (by number), batch or single, and whether it must be refused."""

    numbers: list[int]
    batch: bool
    poison: str | None = None  # "invalid" (422, whole batch refused) or "bad-key" (401)
    resend: bool = False


@dataclass
class Ledger:
    acked: set[int] = field(default_factory=set)
    refused: set[int] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    retried: int = 0
    unexpected: list[str] = field(default_factory=list)


def plan(rng: random.Random) -> list[Request]:
    """Events in shuffled order, half in batches; ~4% of requests poisoned; ~10% re-sent
    later, as they were or reshaped (a batch's events as singles and back)."""
    numbers = list(range(EVENTS))
    rng.shuffle(numbers)
    requests: list[Request] = []
    i = 0
    while i < len(numbers):
        size = rng.randint(10, 60) if rng.random() < 0.1 else 1
        chunk = numbers[i : i + size]
        i += size
        batch = size > 1
        poison = None
        if rng.random() < 0.04:
            poison = rng.choice(["invalid", "bad-key"]) if batch else "bad-key"
        requests.append(Request(chunk, batch, poison))
    for request in list(requests):
        if request.poison is None and rng.random() < 0.1:
            at = rng.randint(requests.index(request) + 1, len(requests))
            reshaped = rng.random() < 0.3
            requests.insert(at, Request(request.numbers, request.batch != reshaped, resend=True))
    return requests


class Publisher:
    """Sends the plan through ingest; a transient refusal is retried until 202."""

    def __init__(self, base: str, token: str, units: list[tuple[str, str]]) -> None:
        self.base, self.token, self.units = base, token, units
        self.ledger = Ledger()
        self.retry_within_s = RETRY_WITHIN_S
        self._events: dict[int, dict[str, Any]] = {}

    def event(self, n: int) -> dict[str, Any]:
        """Event ``n``, the same bytes every time it is (re-)sent."""
        if n not in self._events:
            unit = self.units[n % len(self.units)][0]
            self._events[n] = {
                "specversion": "1.0", "id": f"ev-{n}", "source": SOURCE,
                "type": "vn.egov.document.issued", "time": datetime.now(UTC).isoformat(),
                "unit": unit, "datacontenttype": "application/json",
                "data": {"document_id": f"doc-{n}", "electronic": True, "signed": n % 3 > 0},
            }  # fmt: skip
        return self._events[n]

    def body(self, request: Request) -> tuple[bytes, str]:
        events = [self.event(n) for n in request.numbers]
        if request.poison == "invalid":
            bad = dict(events[0], id=f"bad-{uuid.uuid4().hex}", unit="99999")
            events.insert(len(events) // 2, bad)
        if request.batch:
            return orjson.dumps(events), "application/cloudevents-batch+json"
        return orjson.dumps(events[0]), "application/cloudevents+json"

    async def run(self, requests: list[Request]) -> None:
        queue: asyncio.Queue[Request] = asyncio.Queue()
        for request in requests:
            queue.put_nowait(request)
        pause = PUBLISH_S * SENDERS / len(requests)
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            await asyncio.gather(*(self._sender(client, queue, pause) for _ in range(SENDERS)))

    async def deliver(self, request: Request) -> None:
        """Send one request now, retried like the plan's until 202 or a refusal."""
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            await self._send(client, request)

    async def _sender(
        self, client: httpx.AsyncClient, queue: asyncio.Queue[Request], pause: float
    ) -> None:
        while not queue.empty():
            request = queue.get_nowait()
            await self._send(client, request)
            await asyncio.sleep(pause)

    async def _send(self, client: httpx.AsyncClient, request: Request) -> None:
        content, media = self.body(request)
        token = "egp_000000000000_" + "x" * 43 if request.poison == "bad-key" else self.token
        headers = {"content-type": media, "authorization": f"Bearer {token}"}
        deadline = asyncio.get_running_loop().time() + self.retry_within_s
        ledger = self.ledger
        while True:
            try:
                status = (
                    await client.post("/v1/events", content=content, headers=headers)
                ).status_code
            except httpx.TransportError:
                status = 0  # no answer: outcome unknown, like a 503
            ledger.statuses[status] += 1
            if status == 202:
                ledger.acked.update(request.numbers)
                if request.poison:
                    ledger.unexpected.append(f"poisoned {request.poison} request got 202")
                return
            expected = {"invalid": 422, "bad-key": 401}.get(request.poison or "")
            if status == expected:
                ledger.refused.update(request.numbers)
                return
            if status not in (0, 429, 503) or asyncio.get_running_loop().time() > deadline:
                ledger.unexpected.append(f"{status} for {request}")
                return
            ledger.retried += 1
            await asyncio.sleep(0.2)


async def chaos_schedule(chaos: Chaos, done: asyncio.Event) -> None:
    """Kill a random worker with a random signal every few seconds while publishing; the
    first two kills are one SIGKILL and one SIGTERM (in seeded order), so both happen."""
    rng = chaos.rng
    forced = [signal.SIGKILL, signal.SIGTERM]
    rng.shuffle(forced)
    names = sorted(chaos.processes)
    await asyncio.sleep(rng.uniform(2.0, 4.0))
    while forced or not done.is_set():
        sig = forced.pop() if forced else rng.choice([signal.SIGKILL, signal.SIGTERM])
        name = rng.choice(names)
        await asyncio.to_thread(chaos.kill, name, sig)
        await asyncio.sleep(rng.uniform(0.3, 2.0))
        chaos.restart(name)
        await asyncio.sleep(rng.uniform(2.0, 5.0))


@dataclass
class Stack:
    """An ingest to publish through and two metrics workers of one group under ``chaos``."""

    env: dict[str, str]
    chaos: Chaos
    workers: dict[str, str]  # name -> base URL
    logs: Path

    @classmethod
    def start(cls, env: dict[str, str], seed: int, logs: Path, prefix: str) -> Stack:
        app_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        chaos = Chaos(seed)
        workers = {}
        for name in ("w0", "w1"):
            port = free_port()
            worker_env = env | {"EGOV_METRICS_APP_ID": app_id, "EGOV_METRICS_WEB_PORT": str(port),
                                "EGOV_METRICS_DATA_DIR": str(logs / name)}  # fmt: skip
            chaos.add(name, ["metrics"], worker_env, logs / f"{name}.log")
            workers[name] = f"http://127.0.0.1:{port}"
        return cls(env, chaos, workers, logs)

    def ingest(self) -> AbstractAsyncContextManager[str]:
        """Ingest running (no rate limit in the way) until the block ends; yields its URL."""
        port = free_port()
        env = self.env | {"EGOV_INGEST_PORT": str(port), "EGOV_RATE_LIMIT_PER_S": "100000",
                          "EGOV_RATE_LIMIT_BURST": "100000"}  # fmt: skip
        return serving(["ingest"], env, port, self.logs / "ingest.log")

    def describe(self) -> str:
        """The kill schedule and the end of every log, for a failure message."""
        logs = "\n".join(
            f"--- {n}\n{tail(self.logs / f'{n}.log', 1500)}" for n in [*self.workers, "ingest"]
        )
        return f"{self.chaos.describe()}\n{logs}"


@dataclass
class Figures:
    digests: set[bytes]
    stored: dict[str, int]
    exported: dict[str, list[tuple[str, float]]]


async def figures(database_url: str, workers: dict[str, str]) -> Figures:
    conn = await asyncpg.connect(database_url)
    try:
        digests = {r["digest"] for r in await conn.fetch("SELECT digest FROM metrics_seen_events")}
        rows = await conn.fetch(
            "SELECT unit, sum(denominator)::bigint d FROM kpi_daily WHERE kpi = $1 GROUP BY unit",
            KPI,
        )
    finally:
        await conn.close()
    exported: dict[str, list[tuple[str, float]]] = {}
    async with httpx.AsyncClient() as client:
        for name, url in workers.items():
            for labels, value in await samples(client, url, "egov_kpi_denominator_total"):
                if labels.get("kpi") == KPI:
                    exported.setdefault(labels["unit"], []).append((name, value))
    return Figures(digests, {r["unit"]: r["d"] for r in rows}, exported)


def expected_counts(acked: set[int], units: list[tuple[str, str]]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for n in acked:
        commune, province = units[n % len(units)]
        counts[commune] += 1
        counts[province] += 1
    return dict(counts)


def converged(got: Figures, want: dict[str, int]) -> bool:
    exported_once = {u: v[0][1] for u, v in got.exported.items() if len(v) == 1}
    return got.stored == want and exported_once == want and len(got.exported) == len(want)


async def test_every_acknowledged_event_counted_exactly_once_under_worker_chaos(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    seed = fault_seed()
    units = communes_by_province(6)
    await ensure_topics(common_settings)
    token = await api_token(database_url, sorted({p for _, p in units}))
    stack = Stack.start(service_env(common_settings, database_url), seed, tmp_path, "faults")
    chaos, workers = stack.chaos, stack.workers

    def context() -> str:
        return f"seed {seed} (EGOV_FAULTS_SEED={seed} replays it); {stack.describe()}"

    try:
        async with stack.ingest() as base:
            publisher = Publisher(base, token, units)
            done = asyncio.Event()
            schedule = asyncio.create_task(chaos_schedule(chaos, done))
            try:
                await publisher.run(plan(random.Random(seed)))
            finally:
                done.set()
                await schedule
        ledger = publisher.ledger
        assert not ledger.unexpected, (ledger.unexpected[:5], context())
        assert all(m.alive() for m in chaos.processes.values()), context()
        want = expected_counts(ledger.acked, units)
        last: list[Figures] = []

        async def settled() -> bool:
            last[:] = [await figures(database_url, workers)]
            return converged(last[0], want)

        await until(settled, 90, lambda: f"want {want}, got {last and last[0].stored}, "
                    f"exported {last and last[0].exported}\n{context()}")  # fmt: skip
        # Nothing counted late, twice; a late rebalance may hide the figures for a moment.
        await asyncio.sleep(2)
        await until(settled, 30, lambda: f"after settling: {last[0].stored}\n{context()}")
        got = last[0]
    finally:
        await asyncio.to_thread(chaos.stop_all)

    kills = [what for _, _, what in chaos.history if what in ("SIGKILL", "SIGTERM")]
    assert {"SIGKILL", "SIGTERM"} <= set(kills), context()
    assert ledger.refused and not ledger.refused & ledger.acked, context()
    assert len(ledger.acked) + len(ledger.refused) == EVENTS
    acked_keys = {dedup_digest(SOURCE, f"ev-{n}", PUBLISHER) for n in ledger.acked}
    refused_keys = {dedup_digest(SOURCE, f"ev-{n}", PUBLISHER) for n in ledger.refused}
    missing, extra = acked_keys - got.digests, got.digests - acked_keys
    assert not missing, f"{len(missing)} acknowledged events not counted; {context()}"
    assert not extra, (
        f"{len(extra)} counted events never acknowledged "
        f"({len(extra & refused_keys)} of refused requests); {context()}"
    )
    assert {owner for copies in got.exported.values() for owner, _ in copies} == set(workers)
