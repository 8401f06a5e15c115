"""Review 85: what on-call sees when a metrics worker stalls, lags or restarts.

Review 77 (test_review77_outage_pages.py) covered ingest away and a worker that does not
answer at all. This review looked at a worker that *answers* while its figures are not
current: its flushes stalled (PostgreSQL unreachable from it, an operator's lock, a
failover), its consumer behind, or freshly restarted before its partitions are loaded.
The worker's /v1/kpis and /v1/activity answer 200 from the last snapshot
(services/metrics/web.py ``kpis_answer``/``activity_answer``), and the alerts service
takes every 200 as a complete, current reading.

Defects found (each a strict xfail asserting the right behaviour):

1. A stalled worker's units page UnitSilent although they publish all along.
   services/alerts/service.py:247 builds the Observation with ``complete = not
   reading.errors``: a worker counts as current as soon as it answers 200, whatever its
   figures' state (services/common/figures_client.py:44-52 only turns transport errors
   and non-200 into a failure; the answer's ``snapshot_age_s`` and ``partitions`` are
   never read, services/common/figures.py:230-347). So the stall is no blind span
   (services/alerts/evaluation.py ``_track_blind``, only for a worker that does not
   answer) and ``conditions.unit_silent`` (services/alerts/conditions.py:361) counts
   the frozen ``last_event_time`` of /v1/activity as the units' silence: every unit of
   the worker (and its province, whose rollup freezes too) pages "no data", blamed on
   its own system, and resolves once the worker catches up. Nothing in the answer says
   the worker is behind (services/metrics/snapshot.py republishes the same figures on
   every 5-minute period roll, so ``snapshot_age_s`` stays under 300 s while nothing is
   counted), and with other workers still counting EgovAcceptedNotCounted (the only
   rule that mutes UnitSilent, deploy/alertmanager/alertmanager.yml:78) never fires.
2. A worker killed (SIGKILL, its host gone) and not restarted hides, for as long as it
   stays down, the silence of every unit that failed over to a surviving worker.
   services/alerts/evaluation.py:283 (``_track_blind``) keeps, while any worker does not
   answer, the *intersection* of the units in every answer since the last complete
   cycle: the moved units were missing from the survivor's answers during the seconds
   of the rebalance (session timeout 6 s, docs/metrics.md "Failover"), so they stay out
   of ``answered`` and ``conditions.unit_silent`` skips them (conditions.py:401),
   although the survivor counts and reports them every cycle. When the killed worker
   answers again, the whole outage becomes a blind span for them (evaluation.py:290),
   so a commune whose system stopped during it pages only a full threshold after the
   worker's return, if ever. On-call sees EgovServiceDown for the dead worker and no
   UnitSilent for a commune silent for hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from services.alerts.directory import UnitDirectory
from services.alerts.model import State, Transition
from services.alerts.service import AlertsService
from services.alerts.settings import AlertsSettings
from services.common.broker import free_port
from services.common.calendar import WorkingCalendar
from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from services.common.unit_info import UnitInfo
from tests.faults.conftest import serving, tail, until
from tests.faults.postgres import metrics_env, seen_keys
from tests.integration.alerts.test_review77_outage_pages import OutageMetrics
from tests.integration.metrics.harness import communes_by_province, document

pytestmark = pytest.mark.integration

SILENT_AFTER_S = 8.0
"""The silence floor of the test (production: 2 working hours); the stall lasts three."""


@contextlib.asynccontextmanager
async def operator_lock(database_url: str, table: str) -> AsyncIterator[None]:
    """An operator's psql session holding ``table`` (VACUUM FULL, a `BEGIN; LOCK TABLE`
    left open) until the block ends: the worker's flushes wait, fail on lock_timeout
    (10 s) and are retried; nothing it reads is counted meanwhile."""
    conn = await asyncpg.connect(database_url)
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        await tx.rollback()
        await conn.close()


class Publisher:
    """A commune's document system sending one signed document every ``every_s``,
    straight to Kafka (as ingest does once it has accepted it), with its real time."""

    def __init__(self, settings: CommonSettings, unit: str, province: str) -> None:
        self.settings, self.unit, self.province = settings, unit, province
        self.sent = 0
        self.last_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Publisher:
        producer = make_producer(self.settings)
        await producer.start()
        self._producer = producer
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self, every_s: float = 0.5) -> None:
        while True:
            at = datetime.now(UTC)
            event = document(f"r85-{uuid.uuid4().hex}", self.unit, at)
            await self._producer.send_and_wait(
                self.settings.topic_documents, orjson.dumps(event), key=self.province.encode()
            )
            self.sent += 1
            self.last_at = at
            await asyncio.sleep(every_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self._producer.stop()


async def _activity(client: httpx.AsyncClient, url: str, unit: str) -> datetime | None:
    """The worker's last documents event of ``unit`` (its /v1/activity, a 200 answer)."""
    response = await client.get(f"{url}/v1/activity", timeout=5)
    assert response.status_code == 200
    for item in response.json()["items"]:
        if item["unit"] == unit and item["family"] == "documents":
            return datetime.fromisoformat(item["last_event_time"])
    return None


def _silent(transitions: list[Transition]) -> list[str]:
    return [
        t.alert.key.unit
        for t in transitions
        if t.to_state is State.FIRING and t.alert.key.condition == "UnitSilent"
    ]


async def test_a_stalled_worker_pages_no_publishing_unit_as_silent(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """A real worker counts a commune sending a document every 0.5 s. An operator's
    lock then holds the worker's flushes for three silence floors; the worker stays up
    and answers 200 throughout. The commune publishes all along: no UnitSilent may fire
    for it or its province, the stalled worker must be reported (as a worker that does
    not answer is, ``egov_alerts_source_errors_total``), and once the lock goes every
    event sent is counted, none lost, and the worker's activity is current again."""
    ((unit, province),) = communes_by_province(1)
    await ensure_topics(common_settings)
    port = free_port()
    log = tmp_path / "metrics.log"
    env = metrics_env(common_settings, database_url, "r85-stall", port, tmp_path / "w")
    values: dict[str, Any] = {
        "database_url": database_url, "metrics_urls": [f"http://127.0.0.1:{port}"],
        "ingest_url": "", "alert_kafka_enabled": False, "alert_burn_enabled": False,
        "alert_windows": ["day"], "alert_silent_after_s": SILENT_AFTER_S,
        "alert_state_file": tmp_path / "alerts-state.json",
    }  # fmt: skip
    svc = AlertsService(AlertsSettings(**values), calendar=WorkingCalendar(always=True))
    seen: list[Transition] = []
    async with (
        serving(["metrics"], env, port, log) as url,
        httpx.AsyncClient() as client,
        Publisher(common_settings, unit, province) as publisher,
    ):
        await until(lambda: _current(client, url, unit, publisher), 60, lambda: tail(log))
        await svc.connect()
        try:
            for _ in range(3):  # healthy: nothing silent
                seen += await svc.evaluate_once(datetime.now(UTC))
                await asyncio.sleep(1)
            assert _silent(seen) == []
            errors_before = _source_errors(svc)

            async with operator_lock(database_url, "metrics_seen_events"):
                frozen = await _activity(client, url, unit)
                stall_end = datetime.now(UTC) + timedelta(seconds=3 * SILENT_AFTER_S)
                while datetime.now(UTC) < stall_end:
                    seen += await svc.evaluate_once(datetime.now(UTC))
                    await asyncio.sleep(1)
                # The worker answered 200 all along, from figures that stood still.
                assert await _activity(client, url, unit) == frozen
                stalled_reported = _source_errors(svc) > errors_before

            await publisher.stop()  # the lock gone: the worker catches up
            await until(lambda: _counted(database_url, publisher), 60, lambda: tail(log))
            await until(lambda: _current(client, url, unit, publisher), 30, lambda: tail(log))
            seen += await svc.evaluate_once(datetime.now(UTC))
        finally:
            await svc.close()
    # Nothing accepted is lost: every document sent is counted once.
    assert await seen_keys(database_url) == publisher.sent
    # No false page, and the stall was said.
    assert _silent(seen) == [], f"paged silent: {_silent(seen)}"
    assert stalled_reported, "the stalled worker was read as current"


async def _current(client: httpx.AsyncClient, url: str, unit: str, publisher: Publisher) -> bool:
    at = await _activity(client, url, unit)
    return at is not None and publisher.last_at is not None and at >= publisher.last_at


async def _counted(database_url: str, publisher: Publisher) -> bool:
    return await seen_keys(database_url) == publisher.sent


def _source_errors(svc: AlertsService) -> float:
    value = svc.metrics_registry.get_sample_value("egov_alerts_source_errors_total")
    return value or 0.0


# --- a worker killed and left down: its units fail over to the survivor ----------------

PROVINCES = ("19", "38")
DIRECTORY = UnitDirectory(
    [UnitInfo(p, f"Tỉnh {p}", f"Province {p}", "province", p) for p in PROVINCES]
    + [
        UnitInfo(f"{p}{i:03d}", f"Xã {p}{i:03d}", f"Commune {p}{i:03d}", "commune", p, p)
        for p in PROVINCES
        for i in range(4)
    ]
)


def _owned(province: str) -> list[str]:
    return [province, *(f"{province}{i:03d}" for i in range(4))]


def _serve(worker: OutageMetrics, units: list[str], heard: dict[str, datetime]) -> None:
    """``worker`` answers for ``units``: a healthy day figure each, and its last event."""
    for unit in units:
        worker.set(unit, 99, 100, province=unit[:2])
        worker.activity[(unit, "documents")] = heard[unit]


@pytest.fixture
async def worker_a() -> Any:
    async with OutageMetrics() as server:
        yield server


@pytest.fixture
async def worker_b() -> Any:
    async with OutageMetrics() as server:
        yield server


async def test_a_commune_silent_after_its_worker_failed_over_still_pages(
    database_url: str, worker_a: OutageMetrics, worker_b: OutageMetrics, tmp_path: Path
) -> None:
    """Worker A owns province 19, worker B province 38. At t0 B is SIGKILLed (its host
    gone: it stays down); the group moves 38's partitions to A, which answers for them
    from its next snapshot on (a few cycles later). Commune 38001's one-stop system
    stops at t0; every other unit goes on publishing, counted by A. On-call is told B
    is down (the service counts it among its source errors, as EgovServiceDown pages)
    and, one threshold (1 h) after 38001's last event, that 38001 is silent: A answers
    for it every cycle. Nothing A answers is lost: the publishing units page nothing."""
    values: dict[str, Any] = {
        "database_url": database_url, "metrics_urls": [worker_a.url, worker_b.url],
        "ingest_url": "", "alert_kafka_enabled": False, "alert_burn_enabled": False,
        "alert_windows": ["day"], "alert_silent_after_s": 3600.0,
        "alert_state_file": tmp_path / "alerts-state.json",
    }  # fmt: skip
    svc = AlertsService(
        AlertsSettings(**values), directory=DIRECTORY, calendar=WorkingCalendar(always=True)
    )
    await svc.connect()
    try:
        t0 = datetime.now(UTC) - timedelta(hours=4)
        heard = {u: t0 for p in PROVINCES for u in _owned(p)}
        _serve(worker_a, _owned("19"), heard)
        _serve(worker_b, _owned("38"), heard)
        seen = await svc.evaluate_once(t0)  # both answer: a complete cycle

        worker_b.down = True  # SIGKILL: B answers no more
        for step in range(1, 4):  # the rebalance: 38's units in nobody's answer yet
            seen += await svc.evaluate_once(t0 + timedelta(seconds=2 * step))
        errors = _source_errors(svc)

        # A owns 38's partitions now, loaded from PostgreSQL, and counts them.
        for minutes in range(1, 181, 5):
            now = t0 + timedelta(minutes=minutes)
            heard |= {u: now for u in heard if u != "38001"}  # 38001 has stopped
            _serve(worker_a, [*_owned("19"), *_owned("38")], heard)
            seen += await svc.evaluate_once(now)
    finally:
        await svc.close()
    assert errors >= 3, "the dead worker was not reported"
    paged = _silent(seen)
    assert all(u == "38001" for u in paged), f"publishing units paged: {paged}"
    assert paged == ["38001"], "38001, silent for three hours, never paged"
