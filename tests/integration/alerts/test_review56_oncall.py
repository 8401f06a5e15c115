"""Review 56 (fixed 2026-12-05), against real PostgreSQL.

Findings:

- ``test_a_resolution_made_during_an_alertmanager_outage_survives_a_restart`` — the
  resolutions Alertmanager has not heard yet are held in memory only
  (services/alerts/delivery.py ``ResolvedSet``); at start the service recalls only the
  alerts resolved in the last ``EGOV_ALERT_RESOLVED_RESEND_S`` (15 min,
  services/alerts/service.py ``connect``: ``since = now - resend``). An alert that was
  paged, then resolved while Alertmanager was down, is never sent as resolved if the
  alerts service restarts more than 15 min after the resolution and before Alertmanager
  is back: a restarted Alertmanager keeps no alerts (only its notification log), so the
  on-call person never gets the "resolved" for a page they received.
- ``test_rejections_of_a_province_key_carry_that_province`` — IngestRejectionsHigh is
  built with province "" (services/alerts/conditions.py, ``ingest_rejections``: the
  ``""`` passed as the verdict's province), though the key's scope (``ingest_api_keys.
  units``, in the database this service shares) says which province publishes through
  it: a critical rejection storm of Thái Nguyên's TD-Office key pages the generic
  ``oncall`` receiver, never ``oncall-thai-nguyen`` (deploy/alertmanager/alertmanager.yml
  routes on ``province``), and its text names only the 12-hex key id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.alerts.service import AlertsService
from services.common.broker import free_port
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import (
    Alertmanager,
    FakeMetrics,
    LocalServer,
    fire_then_resolve,
)

pytestmark = pytest.mark.integration


async def test_a_resolution_made_during_an_alertmanager_outage_survives_a_restart(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # Alertmanager away: nothing listens there
    t0 = datetime.now(UTC)
    svc = make_service(alertmanager_url=down)
    svc.clock = lambda: t0
    await svc.connect()
    try:
        resolved_id = await fire_then_resolve(svc, fake_metrics, t0)
        assert not await svc.push_alertmanager(t0 + timedelta(seconds=4), force=True)
        # Before a restart the resolution is still owed to Alertmanager:
        owed = svc.delivery.alertmanager_batch([], t0 + timedelta(minutes=20))
        assert resolved_id in {p["annotations"]["alert_id"] for p in owed}
    finally:
        await svc.close()

    later = t0 + timedelta(minutes=20)  # Alertmanager still away; the service restarts
    again = make_service(alertmanager_url=down)
    again.clock = lambda: later
    await again.connect()
    try:
        owed = again.delivery.alertmanager_batch(again.state.firing(), later)
        sent = {p["annotations"]["alert_id"]: p for p in owed}
        assert resolved_id in sent, "the resolution is never sent to Alertmanager"
    finally:
        await again.close()


async def test_a_resolution_told_after_the_outage_is_not_sent_for_ever(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, alertmanager: Alertmanager
) -> None:
    """The other side of the fix: once Alertmanager accepted the resolution, its row says
    so, and a restart past the re-send window no longer sends it."""
    down = f"http://127.0.0.1:{free_port()}"
    t0 = datetime.now(UTC)
    svc = make_service(alertmanager_url=down)
    await svc.connect()
    try:
        resolved_id = await fire_then_resolve(svc, fake_metrics, t0)
        assert not await svc.push_alertmanager(t0 + timedelta(seconds=4), force=True)
    finally:
        await svc.close()

    def owed(service: AlertsService, at: datetime) -> set[str]:
        batch = service.delivery.alertmanager_batch(service.state.firing(), at)
        return {p["annotations"]["alert_id"] for p in batch}

    back = t0 + timedelta(minutes=20)  # Alertmanager is back; the service restarts
    again = make_service(alertmanager_url=alertmanager.url)
    again.clock = lambda: back
    await again.connect()
    try:
        assert resolved_id in owed(again, back)
        assert await again.push_alertmanager(back, force=True)
        assert again.pool is not None
        async with again.pool.acquire() as conn:
            told = await conn.fetchval(
                "SELECT told_resolved_at FROM alerts WHERE id = $1", uuid.UUID(resolved_id)
            )
        assert told == back
    finally:
        await again.close()

    later = back + timedelta(minutes=20)
    third = make_service(alertmanager_url=alertmanager.url)
    third.clock = lambda: later
    await third.connect()
    try:
        assert resolved_id not in owed(third, later)
    finally:
        await third.close()


KEY = "3f2a9c01b7e4"


class FakeIngest(LocalServer):
    """Ingest's /metrics with one publisher key's counters, set by the test."""

    def __init__(self) -> None:
        self.counts = {"accepted": 0, "rejected": 0}
        super().__init__(Starlette(routes=[Route("/metrics", self._metrics)]))

    async def _metrics(self, _: Request) -> Response:
        registry = CollectorRegistry()  # as ingest writes it (services/ingest/telemetry.py)
        counter = Counter("egov_ingest_key_events", "events", ["key_id", "outcome"],
                          registry=registry)  # fmt: skip
        for outcome, value in self.counts.items():
            counter.labels(KEY, outcome).inc(value)
        return Response(generate_latest(registry), media_type="text/plain")


async def test_rejections_of_a_province_key_carry_that_province(
    make_service: ServiceFactory,
) -> None:
    async with FakeIngest() as ingest:
        svc = make_service(ingest_url=ingest.url, alert_rejection_min_events=20)
        await svc.connect()
        try:
            assert svc.pool is not None
            async with svc.pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO ingest_api_keys"
                    " (key_id, name, secret_hash, units, types, sources) "
                    "VALUES ($1, 'tdoffice-thai-nguyen', $2, $3, $4, $5)",
                    KEY, b"\0" * 32, ["c1", "c2"], ["vn.gov.document.signed"],
                    ["urn:egov:tdoffice:19"],
                )  # fmt: skip
            t0 = datetime.now(UTC)
            await svc.evaluate_once(t0)  # the baseline scrape
            ingest.counts = {"accepted": 20, "rejected": 80}
            await svc.evaluate_once(t0 + timedelta(seconds=2))
            await svc.evaluate_once(t0 + timedelta(seconds=4))
            (alert,) = [a for a in svc.state.firing() if a.key.condition == "IngestRejectionsHigh"]
            assert alert.labels["severity"] == "critical"
            assert alert.labels["province"] == "19", alert.labels
            assert "tdoffice-thai-nguyen, key 3f2a9c01b7e4" in alert.annotations["summary_en"]
        finally:
            await svc.close()
