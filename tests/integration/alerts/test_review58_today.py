"""Review 58 (today's changes; fixed 2026-12-05), against real PostgreSQL.

Findings:

- ``test_a_site_without_alertmanager_does_not_owe_every_old_resolution`` — the
  resolutions Alertmanager was "never told" (migration 0020, ``told_resolved_at``) are
  marked told only after a successful Alertmanager push (services/alerts/service.py
  ``_mark_told``, fed by ``Delivery.push``/``ResolvedSet.delivered``). Without
  ``EGOV_ALERTMANAGER_URL`` ``Delivery.push`` returns at once and ``_resend`` keeps
  nothing, so no row is ever marked: ``store.load_resolved_since`` loads every resolved
  alert ever made at each start (unbounded, growing start-up read), and the day the site
  configures Alertmanager it is sent every resolution of its whole history — the "flood
  of year-old resolutions" migration 0020 itself says must not happen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.broker import free_port
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import FakeMetrics, fire_then_resolve

pytestmark = pytest.mark.integration


async def test_a_site_without_alertmanager_does_not_owe_every_old_resolution(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    t0 = datetime.now(UTC)
    svc = make_service(alertmanager_url="")  # a site without Alertmanager
    svc.clock = lambda: t0
    await svc.connect()
    try:
        resolved_id = await fire_then_resolve(svc, fake_metrics, t0)
        assert await svc.push_alertmanager(t0 + timedelta(seconds=4), force=True)
    finally:
        await svc.close()

    # A month later the site adds Alertmanager (nothing need listen: only the batch it
    # would be sent is looked at).
    later = t0 + timedelta(days=30)
    again = make_service(alertmanager_url=f"http://127.0.0.1:{free_port()}")
    again.clock = lambda: later
    await again.connect()
    try:
        owed = again.delivery.alertmanager_batch(again.state.firing(), later)
        sent = {p["annotations"]["alert_id"] for p in owed}
        assert resolved_id not in sent, (
            "a month-old resolution, made when no Alertmanager existed, is sent to the "
            "newly configured Alertmanager"
        )
    finally:
        await again.close()
