"""A day-window alert resolves when its day ends, through the service and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.alerts.model import State
from services.common.calendar import VN_TZ
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import FakeMetrics

pytestmark = pytest.mark.integration


async def test_a_day_alert_resolves_after_midnight_and_a_restart_keeps_its_day(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    # This fake worker sends no period_start: the day is the evaluation's local day.
    today = datetime.now(VN_TZ).date() - timedelta(days=1)
    evening = datetime(today.year, today.month, today.day, 23, 50, tzinfo=VN_TZ)
    first = make_service()
    await first.connect()
    fake_metrics.set("c1", 80, 100)
    fired = [t.to_state for i in range(2)
             for t in await first.evaluate_once(evening + timedelta(seconds=2 * i))]  # fmt: skip
    assert fired == [State.PENDING, State.FIRING]
    await first.flush()
    text = next(iter(first.state.open.values())).annotations["summary_vi"]
    await first.close()

    second = make_service()  # restarted across midnight: the open alert is loaded
    await second.connect()
    try:
        fake_metrics.set("c1", 0, 0)  # the new day: no data
        (resolved,) = await second.evaluate_once(evening + timedelta(minutes=10, seconds=5))
        assert resolved.to_state is State.RESOLVED and resolved.values["ended"] == "day"
        assert resolved.alert.annotations["summary_vi"] == text
        await second.flush()
        async with second.pool.acquire() as conn:  # type: ignore[union-attr]
            rows = await conn.fetch(
                "SELECT t.to_state, a.state FROM alert_transitions t "
                "JOIN alerts a ON a.id = t.alert_id ORDER BY t.seq"
            )
        assert [(r["to_state"], r["state"]) for r in rows] == [
            ("pending", "resolved"), ("firing", "resolved"), ("resolved", "resolved")
        ]  # fmt: skip
    finally:
        await second.close()
