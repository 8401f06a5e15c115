"""Review 90: two instances of one service at once, against one PostgreSQL.

A deploy overlaps the old and the new process for their stop grace, an operator runs
``egov-pulse alerts`` a second time, or a site runs two for availability. docs/alerts.md
says in passing "One alerts service per file, as there is one per database" and nothing
enforces it: a second alerts service connects, migrates, loads the open alerts and runs
every loop (evaluation, flush, outbox) beside the first, silently. There is no advisory
lock, no lease, no standby; each process keeps its own lifecycle in memory and only
reads PostgreSQL's rows at start (services/alerts/state.py ``load``).

Defects found (each a strict xfail asserting the right behaviour):

1. Deploy overlap: the new alerts service loads the old one's firing alert and both
   judge it; when it recovers each writes a resolution of its own (a new transition id
   each, services/alerts/lifecycle.py), and services/alerts/store.py:139-205
   (``write_transition``, idempotent on the *transition* id only, ``ON CONFLICT (id) DO
   UPDATE`` on the alert) accepts both: the alert's history holds two resolutions and
   the webhook and Kafka are told "resolved" twice under two different ``webhook-id``/
   ``transition_id`` values, so the receivers' documented deduplication does not help.
   Nothing makes the second process wait or refuse (services/alerts/service.py:122
   ``connect``, services/alerts/state.py:122 ``load``).
2. Two alerts services from scratch (availability, or started twice): both open the
   same identity under different ids; the second's open is refused by the partial
   unique index and services/alerts/journal.py:59-63 drops it with a log line ("Only
   possible if two services evaluate the same alerts"), but that process keeps its own
   alert open in memory, fires it (dropped again), and at recovery its resolution is
   *not* refused (a resolved row is outside ``alerts_one_open``): a phantom incident
   with no pending/firing history is stored (GET /v1/alerts lists two incidents) and
   the webhook is sent a second "alert.resolved" for an alert it never heard fire.
3. Both processes deliver the same outbox item: services/alerts/store.py:360 ``due``
   reads the undelivered items with a plain SELECT (no ``FOR UPDATE SKIP LOCKED``, no
   claim) and services/alerts/outbox.py:47-59 marks one delivered only after the sink
   answered, so while one process waits for a slow webhook the other's round (every
   second) sends the same item again: every notification is posted once per process.
4. Two ``egov-pulse migrate`` (services/common/cli.py ``_migrate``) started at once on a
   server without the database (a first install run from two terminals, or by a
   provisioning script beside an operator): both find no database and both run CREATE
   DATABASE; the loser's fails with 23505 on ``pg_database_datname_index``, which
   services/common/db.py:71-73 (``ensure_database``) does not take for "created
   meanwhile" (it catches only ``DuplicateDatabaseError``, 42P04, the answer to a
   CREATE that did not race), so that command dies with a traceback although the
   database it asked for now exists. The migrations themselves are serialised by an
   advisory lock (db.py:36) and run concurrently without harm once the database exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.alerts.directory import UnitDirectory
from services.alerts.service import AlertsService
from services.alerts.settings import AlertsSettings
from services.common.bootstrap import prepare_database
from services.common.calendar import WorkingCalendar
from services.common.settings import CommonSettings
from services.common.unit_info import UnitInfo
from tests.conftest import drop_database
from tests.integration.alerts.harness import FakeMetrics, LocalServer, fake_metrics, wait_until
from tests.servers import admin_dsn

pytestmark = pytest.mark.integration

__all__ = ["fake_metrics"]  # the fixture, registered here by import

DIRECTORY = UnitDirectory(
    [UnitInfo(f"c{i}", f"Xã {i}", f"Commune {i}", "commune", "19") for i in range(4)]
)
SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4"
STANDBY_WAIT_S = 5.0
"""How long a second service is given to connect: one that is still waiting then (a
standby behind a lock or a lease) or that refused to start is taken as not running."""


class Webhook(LocalServer):
    """The webhook receiver; answers each post after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.posts: list[tuple[str, dict[str, Any]]] = []
        super().__init__(Starlette(routes=[Route("/hook", self._hook, methods=["POST"])]))

    async def _hook(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.posts.append((request.headers["webhook-id"], body))
        await asyncio.sleep(self.delay)
        return Response(status_code=200)

    def of(self, kind: str) -> list[str]:
        """The webhook-id of every post of type ``kind``, in order of arrival."""
        return [msg_id for msg_id, body in self.posts if body["type"] == kind]


def _service(database_url: str, metrics: FakeMetrics, hook: Webhook, state: Path) -> AlertsService:
    settings = AlertsSettings(
        database_url=database_url,
        metrics_urls=[metrics.url],
        ingest_url="",
        alertmanager_url="",
        alert_kafka_enabled=False,
        alert_burn_enabled=False,
        alert_interval_s=0.3,
        alert_for_s=0.6,
        alert_silent_after_s=3600.0,
        alert_state_file=state,
        alert_webhook_url=f"{hook.url}/hook",
        alert_webhook_secret=SECRET,
    )
    return AlertsService(settings, directory=DIRECTORY, calendar=WorkingCalendar(always=True))


@contextlib.asynccontextmanager
async def running(svc: AlertsService) -> AsyncIterator[bool]:
    """``svc`` with its loops, as ``egov-pulse alerts`` runs it; yields whether it came
    up (loaded within STANDBY_WAIT_S), False for a standby or a refusal."""
    try:
        svc.start_loops()
        try:
            await asyncio.wait_for(svc.state.loaded.wait(), STANDBY_WAIT_S)
            up = True
        except TimeoutError:
            up = False
        yield up
    finally:
        with contextlib.suppress(Exception):
            await svc.close()


async def _rows(database_url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def _settle(seconds: float) -> None:
    """Let both services run a few cycles, flushes and outbox rounds."""
    await asyncio.sleep(seconds)


async def test_deploy_overlap_resolves_one_alert_twice(
    database_url: str, fake_metrics: FakeMetrics, tmp_path: Path
) -> None:
    async with Webhook() as hook:
        old = _service(database_url, fake_metrics, hook, tmp_path / "old.json")
        new = _service(database_url, fake_metrics, hook, tmp_path / "new.json")
        fake_metrics.set("c1", 80, 100)
        async with running(old):
            await wait_until(lambda: len(hook.of("alert.firing")) >= 1, 20, "the page")
            # The deploy: the new process starts while the old one is in its stop grace.
            async with running(new):
                fake_metrics.set("c1", 99, 100)  # the commune recovers during the overlap
                await wait_until(lambda: len(hook.of("alert.resolved")) >= 1, 20, "resolved")
                await _settle(3.0)
    history = await _rows(
        database_url,
        "SELECT t.to_state FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id "
        "WHERE a.unit = 'c1' ORDER BY t.seq",
    )
    resolved_ids = set(hook.of("alert.resolved"))
    assert [r["to_state"] for r in history] == ["pending", "firing", "resolved"]
    assert len(resolved_ids) == 1, f"resolution notified under {len(resolved_ids)} ids"


async def test_two_services_store_a_phantom_incident(
    database_url: str, fake_metrics: FakeMetrics, tmp_path: Path
) -> None:
    async with Webhook() as hook:
        one = _service(database_url, fake_metrics, hook, tmp_path / "one.json")
        two = _service(database_url, fake_metrics, hook, tmp_path / "two.json")
        async with running(one), running(two):
            fake_metrics.set("c1", 80, 100)
            await wait_until(lambda: len(hook.of("alert.firing")) >= 1, 20, "the page")
            await _settle(1.5)
            fake_metrics.set("c1", 99, 100)
            await wait_until(lambda: len(hook.of("alert.resolved")) >= 1, 20, "resolved")
            await _settle(3.0)
    incidents = await _rows(
        database_url, "SELECT id, state, fired_at FROM alerts WHERE unit = 'c1' ORDER BY id"
    )
    fired = set(hook.of("alert.firing"))
    resolved = set(hook.of("alert.resolved"))
    assert len(incidents) == 1, [dict(r) for r in incidents]
    assert (len(fired), len(resolved)) == (1, 1)


async def test_two_services_deliver_each_outbox_item_twice(
    database_url: str, fake_metrics: FakeMetrics, tmp_path: Path
) -> None:
    # A webhook that takes 1.5 s to answer (a busy ticketing system): longer than the
    # outbox round of 1 s, well inside the HTTP timeout.
    async with Webhook(delay=1.5) as hook:
        one = _service(database_url, fake_metrics, hook, tmp_path / "one.json")
        two = _service(database_url, fake_metrics, hook, tmp_path / "two.json")
        async with running(one), running(two):
            fake_metrics.set("c1", 80, 100)
            await wait_until(lambda: len(hook.of("alert.firing")) >= 1, 20, "the page")
            await _settle(4.0)
    pages = hook.of("alert.firing")
    assert len(set(pages)) == 1, pages
    assert len(pages) == 1, f"one firing transition posted {len(pages)} times"


async def test_two_migrate_commands_on_a_new_server() -> None:
    dsn = admin_dsn().rsplit("/", 1)[0] + f"/egov_review90_{uuid.uuid4().hex[:10]}"
    settings = CommonSettings(database_url=dsn)
    try:
        outcomes = await asyncio.gather(
            *(prepare_database(settings) for _ in range(3)), return_exceptions=True
        )
    finally:
        await drop_database(dsn)
    failed = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    assert not failed, failed
