"""An acknowledgement stops the repeated pages, and the resolution is still notified.

Until 2026-12-05 acknowledging an alert (POST /v1/alerts/{id}/ack) recorded who took it
but Alertmanager went on re-notifying it every repeat_interval. Now the service keeps a
silence on the alert's labels in Alertmanager while it is acknowledged and firing
(``EGOV_ALERT_ACK_SILENCE_S`` at most), and expires it the moment the alert resolves:
the resolution, and a next incident of the same identity, are notified as usual.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.alerts import operators
from services.alerts.alertmanager import SILENCE_TAG
from services.alerts.app import create_app
from services.alerts.service import AlertsService
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import (
    QUIET,
    Alertmanager,
    FakeMetrics,
    Receiver,
    silences,
    statuses,
    wait_until,
)

pytestmark = pytest.mark.integration


async def push_for(svc: AlertsService, seconds: float) -> None:
    """The service's push cycle, as its loop runs it, for ``seconds``."""
    for _ in range(int(seconds / 0.5)):
        await svc.push_alertmanager(datetime.now(UTC))
        await asyncio.sleep(0.5)


async def test_an_acknowledged_alert_stops_paging_and_its_resolution_is_notified(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    repeating_alertmanager: Alertmanager,
) -> None:  # fmt: skip
    svc = make_service(alertmanager_url=repeating_alertmanager.url, alert_resend_s=0.5)
    await svc.connect()
    try:
        assert svc.pool is not None
        async with svc.pool.acquire() as conn:
            token = await operators.create(conn, "trực ban Sở TT&TT", ["19"])
        fake_metrics.set("c1", 80, 100)
        now = datetime.now(UTC)
        for i in range(2):
            await svc.evaluate_once(now + timedelta(seconds=2 * i))
        await svc.flush()
        (alert,) = svc.state.firing()
        await svc.push_alertmanager(datetime.now(UTC), force=True)
        for _ in range(40):  # pushed as the loop does, until Alertmanager pages again
            if statuses(receiver) == ["firing"] * 2:
                break
            await push_for(svc, 0.5)
        assert statuses(receiver) == ["firing"] * 2, "no repeated page before the ack"

        transport = httpx.ASGITransport(app=create_app(svc, run_loops=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            auth = {"authorization": f"Bearer {token}"}
            acked = await client.post(f"/v1/alerts/{alert.id}/ack", headers=auth, json={})
            assert acked.status_code == 200, acked.text
        await push_for(svc, 1.0)
        (silence,) = await silences(repeating_alertmanager)
        assert silence["comment"].startswith(f"{SILENCE_TAG}{alert.id}")
        assert silence["createdBy"] == "trực ban Sở TT&TT"
        assert {m["name"]: m["value"] for m in silence["matchers"]} == alert.labels
        paged = len(receiver.notifications())
        await push_for(svc, 5.0)  # two repeat intervals and more, still firing
        assert len(receiver.notifications()) == paged  # no repeated page once acknowledged

        fake_metrics.set("c1", 99, 100)
        (resolved,) = await svc.evaluate_once(datetime.now(UTC))
        assert resolved.to_state.value == "resolved"
        await svc.push_alertmanager(datetime.now(UTC))
        assert await silences(repeating_alertmanager) == []  # expired as it resolved
        await wait_until(lambda: statuses(receiver)[-1] == "resolved", 15, "resolution")
        await asyncio.sleep(QUIET)
        assert statuses(receiver).count("resolved") == 1
    finally:
        await svc.close()


async def test_silences_of_alerts_resolved_meanwhile_are_expired_after_a_restart(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    repeating_alertmanager: Alertmanager,
) -> None:  # fmt: skip
    first = make_service(alertmanager_url=repeating_alertmanager.url, alert_resend_s=0.5)
    await first.connect()
    fake_metrics.set("c1", 80, 100)
    now = datetime.now(UTC)
    try:
        for i in range(2):
            await first.evaluate_once(now + timedelta(seconds=2 * i))
        await first.flush()
        (alert,) = first.state.firing()
        first.state.acknowledged(alert.id, "trực ban", datetime.now(UTC).isoformat())
        await first.push_alertmanager(datetime.now(UTC), force=True)
        assert len(await silences(repeating_alertmanager)) == 1
    finally:
        await first.close()
    # A silence left by a run that stopped; the alert is resolved by the next one.
    second = make_service(alertmanager_url=repeating_alertmanager.url, alert_resend_s=0.5)
    await second.connect()
    try:
        fake_metrics.set("c1", 99, 100)
        await second.evaluate_once(datetime.now(UTC))
        await second.push_alertmanager(datetime.now(UTC))
        assert await silences(repeating_alertmanager) == []
    finally:
        await second.close()


async def test_acknowledgements_silence_nothing_when_set_to_zero(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, repeating_alertmanager: Alertmanager,
) -> None:  # fmt: skip
    svc = make_service(alertmanager_url=repeating_alertmanager.url, alert_ack_silence_s=0)
    await svc.connect()
    try:
        fake_metrics.set("c1", 80, 100)
        now = datetime.now(UTC)
        for i in range(2):
            await svc.evaluate_once(now + timedelta(seconds=2 * i))
        (alert,) = svc.state.firing()
        svc.state.acknowledged(alert.id, "trực ban", datetime.now(UTC).isoformat())
        await svc.push_alertmanager(datetime.now(UTC), force=True)
        assert await silences(repeating_alertmanager) == []
    finally:
        await svc.close()
