"""The alert state file against the real PostgreSQL: replays write nothing twice.

A restart replays the unwritten journal from local disk (services/alerts/spool.py); a
file written before a flush whose outcome was unknown holds transitions PostgreSQL has
already. Writing one again must not duplicate its notifications nor set the alert back
to that older state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.alerts import store
from services.alerts.lifecycle import AlertBook
from services.alerts.model import AlertKey, State, Status, Verdict
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import FakeMetrics

pytestmark = pytest.mark.integration

KEY = AlertKey("KpiBelowTarget", "document_signing", "c1", "day")


def verdict(status: Status) -> Verdict:
    return Verdict(KEY, status, "warning", "19", {"ratio": 0.8}, "vi", "en", 0)


async def test_a_transition_written_again_changes_nothing(make_service: ServiceFactory) -> None:
    svc = make_service()
    await svc.connect()
    try:
        assert svc.pool is not None
        book = AlertBook()
        t0 = datetime.now(UTC) - timedelta(minutes=10)
        fired = book.observe([verdict(Status.BREACH)], t0)
        resolved = book.observe([verdict(Status.CLEAR)], t0 + timedelta(minutes=5))
        outbox = [("kafka", {"n": 1})]
        async with svc.pool.acquire() as conn:
            for t in [*fired, *resolved, *fired]:  # the firing replayed after the resolution
                await store.write_transition(conn, t, outbox)
            state = await conn.fetchval("SELECT state FROM alerts WHERE id = $1", fired[0].alert.id)
            transitions = await conn.fetchval("SELECT count(*) FROM alert_transitions")
            notifications = await conn.fetchval("SELECT count(*) FROM alert_outbox")
        assert state == "resolved"
        assert transitions == len(fired) + len(resolved)
        assert notifications == len(fired) + len(resolved)
    finally:
        await svc.close()


async def test_an_unreadable_state_file_starts_from_the_database(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, tmp_path: Path
) -> None:
    first = make_service()
    await first.connect()
    try:
        fake_metrics.set("c1", 80, 100)
        now = datetime.now(UTC)
        await first.evaluate_once(now - timedelta(seconds=4))
        await first.evaluate_once(now - timedelta(seconds=1))
        await first.flush()
    finally:
        await first.close()
    state_file = tmp_path / "alerts-state.json"
    state_file.write_bytes(state_file.read_bytes()[:40])  # torn (a disk, an editor)
    second = make_service()
    await second.connect()
    try:
        assert [(a.key.unit, a.state) for a in second.state.open.values()] == [
            ("c1", State.FIRING)
        ]  # from PostgreSQL: nothing lost, nothing re-opened as new
        assert (tmp_path / "alerts-state.json.unreadable").exists()
    finally:
        await second.close()
    assert state_file.exists()  # written again, whole, at close
