"""Our side of the comparison: ``egov-pulse metrics`` started on a topic already holding
one KPI's events, read back through ``GET /v1/kpis`` until every figure equals the plain
reference.

Timed like the peer (which reads the same filled topic, from its first consumed event to
its last): the topic is filled before the worker starts, so neither the publisher's time
nor the worker's start-up is inside the rate. Ours counts a step's events in one flush
transaction that also commits the partitions' positions (``consumer_offsets`` in its
database); those positions, polled every :data:`FINE_S`, say when it counted its first
events and how many. The rate runs from that first commit to ``/v1/kpis`` showing every
figure right, over the events counted after it (Quix's runs over all but its first
event). A second, stricter figure runs from the partitions' assignment, as /v1/kpis
first lists them, over every event.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx

from bench.common import Row, fresh_database, row, rss_bytes, service_process, tail
from bench.peers.events import Event, PeerKpi
from bench.peers.kpi import Figures, differences
from services.common.broker import free_port

FAMILIES: Final = ("documents", "dossiers", "meetings")
POLL_S: Final = 0.25  # while waiting for the worker to start
FINE_S: Final = 0.02  # the positions, while it counts
FIGURES_S: Final = 0.05  # /v1/kpis, while it counts (each request runs on its loop)


@dataclass
class Ours:
    figures: Figures
    peak_rss: int
    wall_s: float  # worker start to every figure right
    rate: float  # events/s counted after the first commit, to every figure right
    rate_assigned: float  # events/s: partitions assigned to every figure right
    first_counted: int  # events in the first commit


def topics(base: str) -> dict[str, str]:
    """The worker's topics for one run: ``<base>.<family>`` each, and its dead letters."""
    return {**{f: f"{base}.{f}" for f in FAMILIES}, "dead-letter": f"{base}.dead-letter"}


async def run_ours(
    bootstrap: str,
    base: str,
    kpi: PeerKpi,
    events: list[Event],
    expected: Figures,
    timeout_s: float,
    partitions: int,
) -> Ours:
    """Our metrics service started on ``kpi``'s topic, already filled with ``events``
    (the other families' topics are created empty by the worker); its /v1/kpis day
    figures are polled until they equal the expected ones or the time runs out (then
    what it last saw is returned, for the report to show)."""
    port = free_port()
    names = topics(base)
    async with fresh_database("egov_bench_peer") as dsn:
        env = {
            **os.environ,
            **{f"EGOV_TOPIC_{k.upper().replace('-', '_')}": v for k, v in names.items()},
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "EGOV_TOPIC_PARTITIONS": str(partitions),
            "EGOV_METRICS_WEB_PORT": str(port),
            "EGOV_METRICS_APP_ID": f"bench-ours-{uuid.uuid4().hex[:6]}",
            "DATABASE_URL": dsn,
            # A worker outside the embedded broker refuses to start without a strong key.
            "EGOV_RECORD_SIGNING_KEY": secrets.token_hex(32),
        }
        with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
            env["EGOV_METRICS_DATA_DIR"] = tmp
            log = Path(tmp) / "metrics.log"
            started = time.perf_counter()
            with service_process(["metrics"], env, log) as proc:
                poll = Poller(port, kpi.id, proc, log, timeout_s)
                first = asyncio.create_task(first_commit(dsn, poll.deadline))
                try:
                    async with httpx.AsyncClient(timeout=5) as client:
                        await poll.until_assigned(client, names[kpi.family], partitions)
                        assigned = time.perf_counter()
                        figures = await poll.until_equal(client, expected)
                        done = time.perf_counter()
                    first_at, counted = await first
                finally:
                    first.cancel()
    n = len(events)
    return Ours(
        figures,
        poll.peak,
        done - started,
        (n - counted) / (done - first_at) if done > first_at else 0.0,
        n / (done - assigned),
        counted,
    )


async def first_commit(dsn: str, deadline: float) -> tuple[float, int]:
    """When the worker first committed positions (its first flush) and the records they
    cover: one event each here. Polled every :data:`FINE_S` from its database."""
    conn = await asyncpg.connect(dsn)
    try:
        while time.monotonic() < deadline:
            counted = await conn.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets"
            )
            if counted:
                return time.perf_counter(), int(counted)
            await asyncio.sleep(FINE_S)
    finally:
        await conn.close()
    raise RuntimeError("the metrics worker committed no position in time")


class Poller:
    """Reads one worker's /v1/kpis for one KPI, watching that it lives and how much
    memory it holds."""

    def __init__(
        self, port: int, kpi: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float
    ) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/kpis"
        self.kpi = kpi
        self.proc, self.log = proc, log
        self.deadline = time.monotonic() + timeout_s
        self.peak = 0

    async def get(self, client: httpx.AsyncClient) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"metrics exited early:\n{tail(self.log, 2000)}")
        self.peak = max(self.peak, rss_bytes(self.proc.pid) or 0)
        try:
            response = await client.get(self.url, params={"kpi": self.kpi, "window": "day"})
        except httpx.TransportError:
            return None
        if response.status_code == 404:
            raise RuntimeError("the metrics service has no /v1/kpis yet")
        return response.json() if response.status_code == 200 else None

    async def until_assigned(self, client: httpx.AsyncClient, topic: str, count: int) -> None:
        while time.monotonic() < self.deadline:
            body = await self.get(client)
            mine = [p for p in (body or {}).get("partitions", []) if p.startswith(topic + "[")]
            if len(mine) == count:
                return
            # Finely once the web answers: the assignment may start the rate's clock.
            await asyncio.sleep(POLL_S if body is None else FIGURES_S)
        raise RuntimeError(f"the metrics worker was not assigned {topic} in time")

    async def until_equal(self, client: httpx.AsyncClient, expected: Figures) -> Figures:
        seen: Figures = {}
        while time.monotonic() < self.deadline:
            body = await self.get(client)
            if body is not None:
                seen = {i["unit"]: [i["numerator"], i["denominator"]] for i in body["items"]}
                seen = {u: v for u, v in seen.items() if v[1] or u in expected}
                if not differences(expected, seen):
                    return seen
            await asyncio.sleep(FIGURES_S)
        return seen


def ours_rows(
    ours: Ours | Exception, kpi: str, expected: Figures, base_note: str, bench: str = "peers"
) -> list[Row]:
    """Our service's rows for one KPI: equal figures first, then its speed and memory."""
    equal = f"ours: {kpi} figures equal to reference"
    if isinstance(ours, Exception):  # the service is a separate piece of work: report, go on
        cause = " ".join(str(ours).split())[-300:]  # a traceback's end says what failed
        note = f"our metrics service not compared (…{cause}); peer checked vs reference only"
        return [row(bench, equal, 0, "bool", notes=note)]
    wrong = differences(expected, ours.figures)
    if wrong:
        note = f"ours differs from the reference: {'; '.join(wrong[:5])}"
        return [row(bench, equal, 0, "bool", notes=note)]
    return [
        row(bench, equal, 1, "bool", notes=base_note),
        row(
            bench,
            f"ours: {kpi} throughput",
            round(ours.rate),
            "events/s",
            notes="one worker started on the filled topic; from its first flush committed "
            f"({ours.first_counted:,} events, positions polled every {FINE_S} s) to "
            f"/v1/kpis showing every figure right ({FIGURES_S} s polls), over the events "
            "counted after that flush; publishing and start-up outside",
        ),
        row(
            bench,
            f"ours: {kpi} throughput from assignment",
            round(ours.rate_assigned),
            "events/s",
            notes="stricter: from its partitions' assignment, as /v1/kpis first lists them "
            f"({FIGURES_S} s polls), to every figure right, over every event",
        ),
        row(
            bench,
            f"ours: {kpi} wall time incl. start-up",
            round(ours.wall_s, 1),
            "s",
            notes="metrics process start to every figure right",
        ),
        row(
            bench,
            f"ours: {kpi} peak RSS",
            round(ours.peak_rss / 2**20, 1),
            "MiB",
            notes="one worker",
        ),
    ]
