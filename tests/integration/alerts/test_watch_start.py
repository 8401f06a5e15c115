"""A commune expected to publish (its peers do) that never published is silent since the
service first began watching, kept in PostgreSQL (migration 0015): until 2026-12-05 that
moment was the latest start, so wherever the service restarted more often than a unit's
silence threshold (deploys, a nightly restart), such a commune never paged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.alerts import conditions
from services.alerts.model import State
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import FakeMetrics

PUBLISHING = ("c0", "c1", "c2")  # c3, of the same province and level, never publishes


async def test_a_never_seen_unit_is_silent_since_the_first_start_not_the_last(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    start = datetime.now(UTC) - timedelta(hours=4)
    for unit in PUBLISHING:
        fake_metrics.activity[(unit, "documents")] = start
    first = make_service(alert_silent_peer_share=0.5)  # silent after 1 h (conftest)
    first.clock = lambda: start
    await first.connect()
    try:
        assert await first.evaluate_once(start + timedelta(minutes=1)) == []
    finally:
        await first.close()

    restart = start + timedelta(hours=2)
    for unit in PUBLISHING:
        fake_metrics.activity[(unit, "documents")] = restart - timedelta(minutes=1)
    second = make_service(alert_silent_peer_share=0.5)
    second.clock = lambda: restart
    await second.connect()
    try:
        assert second.evaluator.watch_start == start
        transitions = await second.evaluate_once(restart)
        transitions += await second.evaluate_once(restart + timedelta(seconds=3))
        silent = [t for t in transitions if t.alert.key.condition == conditions.SILENT]
        assert [(t.alert.key.unit, t.to_state) for t in silent] == [
            ("c3", State.PENDING),
            ("c3", State.FIRING),
        ]
        assert silent[-1].values["silent_working_s"] >= 2 * 3600
    finally:
        await second.close()
