"""Silence judged against each unit's cadence, learned from the daily figures in PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import asyncpg
import pytest

from services.alerts.model import State
from services.common.calendar import WorkingCalendar
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import FakeMetrics
from tests.integration.alerts.test_alertmanager import last_weekday

pytestmark = pytest.mark.integration


async def store_history(database_url: str, monday: date) -> None:
    """Four weeks of daily figures before ``monday``, as the metrics workers store them:
    c0 about 40 signed documents every working day, c1 a meeting on Mon, Wed and Fri."""
    rows = []
    for back in range(1, 29):
        day = monday - timedelta(days=back)
        if day.weekday() < 5:
            rows.append(("egov.documents", 0, "c0", "document_signing", day, 39, 40))
        if day.weekday() in (0, 2, 4):
            rows.append(("egov.meetings", 1, "c1", "meeting_online", day, 1, 1))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            'INSERT INTO kpi_daily (topic, "partition", unit, kpi, day, numerator, denominator)'
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            rows,
        )
    finally:
        await conn.close()


async def test_weekly_meetings_wait_while_stopped_daily_documents_page(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, database_url: str
) -> None:
    # Peers off: c2 and c3 never published (the peer rule has its own tests).
    svc = make_service(calendar=WorkingCalendar(), alert_silent_after_s=7200.0,
                       alert_silent_peer_share=1.01)  # fmt: skip
    monday_8 = last_weekday(0, 8)
    svc.clock = lambda: monday_8
    await svc.connect()  # migrates, so the metrics' kpi_daily exists from here on
    try:
        await store_history(database_url, monday_8.date())
        assert await svc.learn_cadence(monday_8) == 2
        fake_metrics.activity[("c0", "documents")] = monday_8
        fake_metrics.activity[("c1", "meetings")] = monday_8
        transitions = await svc.evaluate_once(monday_8 + timedelta(hours=2, minutes=30))
        assert [(t.alert.key.unit, t.alert.key.kpi, t.to_state) for t in transitions] == [
            ("c0", "documents", State.PENDING), ("c0", "documents", State.FIRING)
        ]  # fmt: skip
        assert transitions[-1].values["silent_after_s"] == 7200.0
        # Thursday 16:00, no meeting since Monday 08:00: 30.5 working hours, under the
        # working week a meeting family always gets.
        thursday = monday_8 + timedelta(days=3, hours=8)
        assert await svc.evaluate_once(thursday) == []
        # The Thursday after: 84 working hours, past five of c1's usual gaps (20 working
        # days / 12 meetings = 1.67 days of 9.5 h; 5 gaps = 79.2 h).
        fired = await svc.evaluate_once(thursday + timedelta(days=7))
        assert [(t.alert.key.unit, t.alert.key.kpi, t.to_state) for t in fired] == [
            ("c1", "meetings", State.PENDING), ("c1", "meetings", State.FIRING)
        ]  # fmt: skip
        await svc.flush()
    finally:
        await svc.close()
