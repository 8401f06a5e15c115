"""The alerts service against a real Alertmanager routing to a webhook run by the test."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts.model import State
from services.common.calendar import VN_TZ
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import (
    QUIET,
    Alertmanager,
    FakeMetrics,
    Receiver,
    statuses,
    wait_until,
)

pytestmark = pytest.mark.integration


async def fire_and_push(svc, now: datetime, steps: int = 2) -> None:  # type: ignore[no-untyped-def]
    for i in range(steps):
        await svc.evaluate_once(now + timedelta(seconds=2 * i))
    await svc.flush()
    assert await svc.push_alertmanager(now + timedelta(seconds=2 * steps), force=True)


async def test_drop_below_target_fires_once_and_resolves_once(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager,
) -> None:  # fmt: skip
    svc = make_service(alertmanager_url=alertmanager.url)
    await svc.connect()
    try:
        fake_metrics.set("c1", 80, 100)
        now = datetime.now(UTC) - timedelta(seconds=60)  # offsets stay in the past
        (pending,) = await svc.evaluate_once(now)
        assert pending.to_state is State.PENDING
        assert await svc.push_alertmanager(now, force=True)  # nothing firing yet
        (firing,) = await svc.evaluate_once(now + timedelta(seconds=2))
        assert firing.to_state is State.FIRING
        for i in range(3):  # re-sent while firing, as Alertmanager's API requires
            await svc.push_alertmanager(now + timedelta(seconds=3 + i), force=True)
        await wait_until(lambda: statuses(receiver) == ["firing"], 15, "firing notification")
        (alert,) = receiver.notifications()[0][1]
        assert alert["labels"] | {"alertname": "KpiBelowTarget", "kpi": "document_signing",
                                  "unit": "c1", "window": "day", "province": "19"} \
            == alert["labels"]  # fmt: skip
        assert "80,00 %" in alert["annotations"]["summary_vi"]
        fake_metrics.set("c1", 99, 100)
        (resolved,) = await svc.evaluate_once(now + timedelta(seconds=10))
        assert resolved.to_state is State.RESOLVED
        await svc.push_alertmanager(now + timedelta(seconds=10))
        await wait_until(lambda: statuses(receiver) == ["firing", "resolved"], 15, "resolved")
        await svc.push_alertmanager(now + timedelta(seconds=11), force=True)
        await asyncio.sleep(QUIET)
        assert statuses(receiver) == ["firing", "resolved"]
        await svc.flush()
        async with svc.pool.acquire() as conn:  # type: ignore[union-attr]
            rows = await conn.fetch("SELECT to_state FROM alert_transitions ORDER BY seq")
        assert [r["to_state"] for r in rows] == ["pending", "firing", "resolved"]
    finally:
        await svc.close()


async def test_rate_oscillating_inside_the_margin_notifies_once(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager,
) -> None:  # fmt: skip
    svc = make_service(alertmanager_url=alertmanager.url)
    await svc.connect()
    try:
        fake_metrics.set("c1", 80, 100)
        now = datetime.now(UTC) - timedelta(seconds=60)  # offsets stay in the past
        await fire_and_push(svc, now)
        for i, signed in enumerate([951, 949, 960, 945, 968, 950] * 2):
            fake_metrics.set("c1", signed, 1000)
            at = now + timedelta(seconds=10 + i)
            assert await svc.evaluate_once(at) == [], f"transition at {signed / 10}%"
            await svc.push_alertmanager(at, force=True)
        await wait_until(lambda: statuses(receiver) == ["firing"], 15, "firing notification")
        await asyncio.sleep(QUIET)
        assert statuses(receiver) == ["firing"]
    finally:
        await svc.close()


async def test_low_volume_unit_never_fires(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager,
) -> None:  # fmt: skip
    svc = make_service(alertmanager_url=alertmanager.url)
    await svc.connect()
    try:
        fake_metrics.set("c1", 0, 19)  # 0% of 19: below min_volume 20
        fake_metrics.set("c2", 80, 100)  # a real failure beside it proves the path works
        now = datetime.now(UTC) - timedelta(seconds=60)  # offsets stay in the past
        for i in range(5):
            await svc.evaluate_once(now + timedelta(seconds=2 * i))
            await svc.push_alertmanager(now + timedelta(seconds=2 * i), force=True)
        await wait_until(lambda: statuses(receiver) == ["firing"], 15, "c2 firing")
        await asyncio.sleep(QUIET)
        units = [a["labels"]["unit"] for _, alerts in receiver.notifications() for a in alerts]
        assert units == ["c2"]
    finally:
        await svc.close()


def last_weekday(weekday: int, hour: int, minute: int = 0) -> datetime:
    """The latest past local time on that weekday (0 = Monday), at least a week back."""
    today = datetime.now(VN_TZ).date() - timedelta(days=7)
    while today.weekday() != weekday:
        today -= timedelta(days=1)
    return datetime(today.year, today.month, today.day, hour, minute, tzinfo=VN_TZ)


async def test_silent_unit_fires_only_in_working_hours(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager,
) -> None:  # fmt: skip
    from services.common.calendar import WorkingCalendar

    # Peers off: c2 and c3 never published and would be expected too (unit tests cover it).
    svc = make_service(
        alertmanager_url=alertmanager.url, calendar=WorkingCalendar(), alert_silent_peer_share=1.01
    )
    monday_9 = last_weekday(0, 9)
    friday_16 = monday_9 - timedelta(days=2, hours=17)
    saturday_12 = friday_16 + timedelta(hours=20)
    fake_metrics.activity[("c0", "documents")] = friday_16
    fake_metrics.activity[("c1", "documents")] = monday_9
    svc.clock = lambda: friday_16
    await svc.connect()
    try:
        # Saturday: 1 working hour of silence (Friday 16-17) but nobody works: no page.
        assert await svc.evaluate_once(saturday_12) == []
        real = datetime.now(UTC)
        await svc.push_alertmanager(real, force=True)
        await asyncio.sleep(QUIET)
        assert receiver.notifications() == []
        # Monday 09:00: 2.5 working hours of silence.
        transitions = await svc.evaluate_once(monday_9)
        assert [(t.alert.key.unit, t.to_state) for t in transitions] == [
            ("c0", State.PENDING), ("c0", State.FIRING)
        ]  # fmt: skip
        await svc.push_alertmanager(real + timedelta(seconds=1), force=True)
        await wait_until(lambda: statuses(receiver) == ["firing"], 15, "silent unit firing")
        (alert,) = receiver.notifications()[0][1]
        assert alert["labels"]["alertname"] == "UnitSilent"
        assert alert["labels"]["unit"] == "c0"
    finally:
        await svc.close()


async def test_restart_mid_incident_neither_loses_nor_duplicates(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager,
) -> None:  # fmt: skip
    first = make_service(alertmanager_url=alertmanager.url)
    await first.connect()
    fake_metrics.set("c1", 80, 100)
    now = datetime.now(UTC) - timedelta(seconds=60)  # offsets stay in the past
    await fire_and_push(first, now)
    fired = next(iter(first.state.open.values()))
    await wait_until(lambda: statuses(receiver) == ["firing"], 15, "firing notification")
    await first.close()

    second = make_service(alertmanager_url=alertmanager.url)
    await second.connect()
    try:
        assert [a.id for a in second.state.open.values()] == [fired.id]
        assert await second.evaluate_once(now + timedelta(seconds=20)) == []
        assert await second.push_alertmanager(now + timedelta(seconds=20), force=True)
        await asyncio.sleep(QUIET)
        assert statuses(receiver) == ["firing"]
        fake_metrics.set("c1", 99, 100)
        (resolved,) = await second.evaluate_once(now + timedelta(seconds=25))
        assert resolved.alert.id == fired.id
        await second.push_alertmanager(now + timedelta(seconds=25))
        await wait_until(lambda: statuses(receiver) == ["firing", "resolved"], 15, "resolved")
        await second.flush()
        async with second.pool.acquire() as conn:  # type: ignore[union-attr]
            alerts = await conn.fetchval("SELECT count(*) FROM alerts")
            states = await conn.fetch("SELECT to_state FROM alert_transitions ORDER BY seq")
        assert alerts == 1
        assert [r["to_state"] for r in states] == ["pending", "firing", "resolved"]
    finally:
        await second.close()


async def test_alertmanager_down_then_up_delivers_the_backlog(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager,
) -> None:  # fmt: skip
    alertmanager.stop()
    svc = make_service(alertmanager_url=alertmanager.url)
    await svc.connect()
    try:
        fake_metrics.set("c1", 80, 100)
        fake_metrics.set("c2", 70, 100)
        now = datetime.now(UTC) - timedelta(seconds=60)  # offsets stay in the past
        for i in range(2):
            await svc.evaluate_once(now + timedelta(seconds=2 * i))
        assert await svc.push_alertmanager(now + timedelta(seconds=3)) is False
        failed = svc.metrics_registry.get_sample_value(
            "egov_alerts_notifications_total", {"sink": "alertmanager", "outcome": "failed"}
        )
        assert failed == 1.0
        await alertmanager.start()
        # The next evaluation cycle retries on its own (the failed push left it due).
        assert await svc.push_alertmanager(now + timedelta(seconds=4)) is True
        await wait_until(lambda: len(receiver.notifications()) == 2, 15, "backlog delivered")
        units = sorted(a["labels"]["unit"] for _, alerts in receiver.notifications()
                       for a in alerts)  # fmt: skip
        assert units == ["c1", "c2"]
        await asyncio.sleep(QUIET)
        assert len(receiver.notifications()) == 2
    finally:
        await svc.close()
