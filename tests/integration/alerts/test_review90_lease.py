"""One active alerts service per database (review 90): standby, takeover, a lost lock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from services.alerts.app import create_app
from services.alerts.lease import ALERTS_LOCK_KEY
from services.alerts.service import AlertsService
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import wait_until

pytestmark = pytest.mark.integration

RETRY_S = 1.0


@contextlib.asynccontextmanager
async def looping(svc: AlertsService) -> AsyncIterator[AlertsService]:
    svc.start_loops()
    try:
        yield svc
    finally:
        await svc.close()


async def health(svc: AlertsService) -> tuple[dict[str, object], int, dict[str, object]]:
    """/healthz's body, /readyz's status and body."""
    transport = httpx.ASGITransport(app=create_app(svc, run_loops=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
        live = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert live.status_code == 200
    return live.json(), ready.status_code, ready.json()


async def test_a_second_service_stands_by_and_says_so_then_takes_over(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    first = make_service(alert_standby_retry_s=RETRY_S, alert_state_file=None)
    second = make_service(alert_standby_retry_s=RETRY_S, alert_state_file=None)
    async with looping(first):
        await asyncio.wait_for(first.state.loaded.wait(), 10)
        async with looping(second):
            await asyncio.sleep(2 * RETRY_S)
            assert not second.state.loaded.is_set() and second.state.pool is None
            live, status, ready = await health(second)
            assert live == {"status": "ok", "role": "standby"}
            assert status == 503 and ready["role"] == "standby"
            standby_lines = [r.getMessage() for r in caplog.records if "standby:" in r.getMessage()]
            assert len(standby_lines) == 1, standby_lines  # once, not every retry
            assert "another alerts service holds the lock" in standby_lines[0]
            assert "egov-pulse alerts" in standby_lines[0]  # who: its application name
            live, status, ready = await health(first)
            assert live["role"] == "active" and status == 200

            await first.close()  # the deploy's old process stops
            await wait_until(lambda: second.state.loaded.is_set(), 3 * RETRY_S + 5, "takeover")
            assert second.role == "active"
            assert (await health(second))[1] == 200


async def test_a_lost_lock_stops_the_service_at_once_and_it_stands_by(
    make_service: ServiceFactory, database_url: str
) -> None:
    svc = make_service(alert_standby_retry_s=RETRY_S, alert_state_file=None)
    async with looping(svc):
        await asyncio.wait_for(svc.state.loaded.wait(), 10)
        term = svc.state
        conn = await asyncpg.connect(database_url)
        try:
            # The lock's session ends (a PostgreSQL restart, a network cut) and another
            # process takes the lock before this one can retry.
            pid = await conn.fetchval(
                "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.objsubid = 1 AND l.classid = $1::bigint::oid "
                "AND l.objid = $2::bigint::oid AND l.database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())",
                ALERTS_LOCK_KEY >> 32,
                ALERTS_LOCK_KEY & 0xFFFFFFFF,
            )
            assert pid is not None
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", ALERTS_LOCK_KEY)
            # Stopped at once: its loops are gone and its memory with them.
            await wait_until(lambda: svc.state is not term, 1.0, "the term ended")
            assert term.pool is None and not svc.state.loaded.is_set()
            assert svc.role == "standby"
            await asyncio.sleep(2 * RETRY_S)
            assert not svc.state.loaded.is_set()  # still standing by: the lock is taken
            assert (await health(svc))[0]["role"] == "standby"
        finally:
            await conn.close()  # the other process goes: the lock is free again
        # A fresh load, as a start makes (the state is a new one: poll, not wait).
        await wait_until(lambda: svc.state.loaded.is_set(), 3 * RETRY_S + 5, "the takeover")
        assert svc.role == "active"
