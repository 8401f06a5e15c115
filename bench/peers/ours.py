"""Our side of the comparison: ``egov-pulse metrics`` started on a topic already holding
one KPI's events, read back through ``GET /v1/kpis`` until every figure equals the plain
reference.

Timed like the peer, which reads the same filled topic and times itself inside its process
(from its first consumed event to its last counted in its state): the topic is filled
before the worker starts, so neither the publisher's time nor the worker's start-up is
inside the rate, and ours is timed on its own commit clock, not by polling. Ours counts a
step's events in one flush transaction that also commits the partitions' positions
(``consumer_offsets``), dated by the flush's last statement (``clock_timestamp()``); read
with the positions in one statement, that date says on PostgreSQL's clock when the events
they cover became durable (see :class:`bench.common.CommitSpan`). The rate runs from the
first flush committed to the flush that counted the last event, over the events counted
after the first (Quix's over all but its first event). Two more figures: stricter, from
the partitions' claim on assignment, over every event; and to ``/v1/kpis`` showing every
figure right (polled: the publication of the figures inside, and up to a poll late).
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

from bench.common import (
    NO_COMMIT,
    CommitSpan,
    Row,
    clock_offset,
    fresh_database,
    row,
    rss_bytes,
    service_process,
    tail,
    wait_commits,
)
from bench.peers.events import Event, PeerKpi
from bench.peers.kpi import Figures, differences
from services.common.broker import free_port

FAMILIES: Final = ("documents", "dossiers", "meetings")
POLL_S: Final = 0.25  # while waiting for the worker to start
FIGURES_S: Final = 0.05  # /v1/kpis, while it counts (each request runs on its loop)
CLAIMED_BY: Final = "its partitions' claim on assignment (PostgreSQL's clock)"
CLAIM_SQL: Final = """
SELECT extract(epoch FROM min(updated_at) FILTER (WHERE next_offset = 0))::float8 AS at,
       coalesce(max(epoch), 0) AS epoch
FROM consumer_offsets
"""
"""When the partitions were claimed: a claim dates its rows, and the rows no flush has moved
since (the other families' empty topics, the KPI's partitions without events) keep it."""


@dataclass(frozen=True)
class Ours:
    """One run of our worker: its figures, and its counting on PostgreSQL's clock (seconds
    since the epoch)."""

    figures: Figures
    peak_rss: int
    wall_s: float  # worker start to every figure right (this process's clock)
    events: int
    span: CommitSpan | None  # None only when the figures are not all right
    claimed_at: float  # the partitions' claim on assignment
    claimed_by: str  # how that was seen
    claims: int  # the highest epoch: above 1, the partitions were claimed again
    shown_at: float  # /v1/kpis seen showing every figure right

    @property
    def first_events(self) -> int:
        assert self.span is not None
        return self.span.first_events(self.events)

    @property
    def rate(self) -> float:
        """Events/s from the first flush committed to the one that counted the last."""
        assert self.span is not None
        return self.span.rate(self.events)

    @property
    def rate_assigned(self) -> float:
        """Events/s from the claim to the flush that counted the last, over every event."""
        assert self.span is not None and self.span.last.at is not None
        return _per_s(self.events, self.span.last.at - self.claimed_at)

    @property
    def rate_shown(self) -> float:
        """Events/s from the first flush committed to /v1/kpis seen right, after it."""
        assert self.span is not None and self.span.first.at is not None
        return _per_s(self.events - self.first_events, self.shown_at - self.span.first.at)

    @property
    def rate_shown_polled(self) -> float | None:
        """:attr:`rate_shown` from the read that first saw a flush (20 ms polls): the
        timing of this row before the commit clock."""
        assert self.span is not None
        seen = self.span.first.read_at
        return (
            None if seen is None else _per_s(self.events - self.first_events, self.shown_at - seen)
        )

    @property
    def claim_to_first_s(self) -> float:
        assert self.span is not None and self.span.first.at is not None
        return self.span.first.at - self.claimed_at

    @property
    def publication_s(self) -> float:
        """From the last flush committed to /v1/kpis seen showing it."""
        assert self.span is not None and self.span.last.at is not None
        return self.shown_at - self.span.last.at


def _per_s(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else 0.0


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
    (the other families' topics are created empty by the worker); its positions are read
    until it has counted every event, and its /v1/kpis day figures polled until they equal
    the expected ones or the time runs out (then what it last saw is returned, for the
    report to show)."""
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
        conn = await asyncpg.connect(dsn)
        try:
            offset = await clock_offset(conn)
            with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
                env["EGOV_METRICS_DATA_DIR"] = tmp
                log = Path(tmp) / "metrics.log"
                started = time.perf_counter()
                with service_process(["metrics"], env, log) as proc:
                    poll = Poller(port, kpi.id, proc, log, timeout_s)
                    # On its own connection: the figures' polls run meanwhile.
                    counting = asyncio.create_task(_counted(dsn, len(events), poll.deadline))
                    try:
                        async with httpx.AsyncClient(timeout=5) as client:
                            await poll.until_assigned(client, names[kpi.family], partitions)
                            assigned_at = time.time() + offset
                            figures = await poll.until_equal(client, expected)
                            shown_at = time.time() + offset
                            wall_s = time.perf_counter() - started
                        span = await _span(counting, bool(differences(expected, figures)))
                    finally:
                        counting.cancel()
            claim = await conn.fetchrow(CLAIM_SQL)
            assert claim is not None  # an aggregate: always one row
        finally:
            await conn.close()
    claimed_at, claimed_by = claim["at"], CLAIMED_BY
    if claimed_at is None:  # every row moved by a flush since: the web's listing, later
        claimed_at, claimed_by = assigned_at, f"as /v1/kpis first lists them ({FIGURES_S} s polls)"
    return Ours(
        figures,
        poll.peak,
        wall_s,
        len(events),
        span,
        claimed_at,
        claimed_by,
        int(claim["epoch"]),
        shown_at,
    )


async def _counted(dsn: str, records: int, deadline: float) -> CommitSpan:
    """The worker's counting of ``records`` (one event each) on its commit clock."""
    conn = await asyncpg.connect(dsn)
    try:
        return await wait_commits(conn, NO_COMMIT, records, deadline)
    finally:
        await conn.close()


async def _span(counting: asyncio.Task[CommitSpan], wrong: bool) -> CommitSpan | None:
    """The counting's span; when the figures are wrong, none is needed (and the events
    may not all be counted): the report shows the figures, not a speed."""
    if not wrong:
        return await counting
    try:
        return await asyncio.wait_for(counting, 1.0)
    except (RuntimeError, TimeoutError):
        return None


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
    if wrong or ours.span is None:
        note = f"ours differs from the reference: {'; '.join(wrong[:5])}"
        return [row(bench, equal, 0, "bool", notes=note)]
    return [
        row(bench, equal, 1, "bool", notes=base_note),
        row(
            bench,
            f"ours: {kpi} throughput",
            round(ours.rate),
            "events/s",
            notes="one worker started on the filled topic; timed on its commit clock "
            "(consumer_offsets.updated_at, the clock at each flush's last statement, read "
            "with the positions in one statement): from its first flush committed "
            f"({ours.first_events:,} events) to the commit of the flush that counted the "
            f"last event, {ours.span.seconds:.3f} s, over the "
            f"{ours.events - ours.first_events:,} events after the first; no polling error "
            f"inside; publishing and start-up outside{_caveat(ours)}",
        ),
        row(
            bench,
            f"ours: {kpi} throughput from assignment",
            round(ours.rate_assigned),
            "events/s",
            notes=f"stricter: from {ours.claimed_by} to the commit of the flush that "
            f"counted the last event, over every event ({ours.claim_to_first_s:.3f} s from "
            f"the claim to its first flush committed){_caveat(ours)}",
        ),
        row(
            bench,
            f"ours: {kpi} throughput to /v1/kpis",
            round(ours.rate_shown),
            "events/s",
            notes="with the publication: from its first flush committed (commit clock) to "
            f"/v1/kpis seen showing every figure right (polled every {FIGURES_S} s: up to a "
            "poll and a round trip late), over the events after the first flush; seen "
            f"{ours.publication_s:.3f} s after the last flush committed{_polled(ours)}",
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


def _polled(ours: Ours) -> str:
    """This row as timed before the commit clock: from the first flush seen by polling."""
    rate = ours.rate_shown_polled
    return (
        "" if rate is None else f"; from the first flush as polled (the timing before): {rate:,.0f}"
    )


def _caveat(ours: Ours) -> str:
    """What the commit clock cannot vouch for in this run (nothing, mostly)."""
    assert ours.span is not None
    if ours.claims > 1 or not ours.span.end_exact:
        return (
            f"; partitions claimed again (epoch {ours.claims}): a rebalance is inside, and "
            "the end may be a claim's time, after the last flush"
        )
    return ""
