"""Review of the acknowledgement silences (commit 211acec), against docs/alerts.md.

"No silence is left behind (Alertmanager outage)" and "an Alertmanager failure never
stops alerts from being pushed", checked with a real Alertmanager (and one behind a
proxy that answers garbage); "nothing else gets silenced" checked on another unit's
alert of the same condition. Two defects were strict xfails here until fixed on
2026-12-05: a silences answer that was not JSON stopped the firing alerts being pushed,
and an acknowledgement not saved to the state file let a restart expire its silence.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.alerts.alertmanager import SILENCE_TAG
from services.alerts.service import AlertsService
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import (
    Alertmanager,
    FakeMetrics,
    TcpProxy,
    silences,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def am(repeating_alertmanager: Alertmanager) -> Alertmanager:
    return repeating_alertmanager


async def active_silences(am: Alertmanager) -> list[dict[str, Any]]:
    return await silences(am, ("active", "pending"))


async def am_alerts(am: Alertmanager) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        found: list[dict[str, Any]] = (await client.get(f"{am.url}/api/v2/alerts")).json()
    return found


async def fire(svc: AlertsService, fake_metrics: FakeMetrics, *units: str) -> None:
    for unit in units:
        fake_metrics.set(unit, 80, 100)
    now = datetime.now(UTC) - timedelta(seconds=3)  # fired in the past: resolved now
    for i in range(2):
        await svc.evaluate_once(now + timedelta(seconds=2 * i))
    await svc.flush()


class LostAnswer(httpx.AsyncBaseTransport):
    """Forwards to Alertmanager; the answer of the first POST /silences is lost on the
    way back (a timeout after Alertmanager made the silence), as in a network outage."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/silences") and not self.lost:
            await response.aread()
            self.lost += 1
            raise httpx.ReadTimeout("answer lost", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_silence_whose_creation_answer_was_lost_is_made_once_and_expired(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, am: Alertmanager
) -> None:
    svc = make_service(alertmanager_url=am.url, alert_resend_s=0.5)
    await svc.connect()
    transport = LostAnswer()
    flaky = httpx.AsyncClient(transport=transport, timeout=5)
    svc.delivery._http = flaky
    try:
        await fire(svc, fake_metrics, "c1")
        (alert,) = svc.state.firing()
        svc.state.acknowledged(alert.id, "trực ban", datetime.now(UTC).isoformat())
        await svc.push_alertmanager(datetime.now(UTC), force=True)  # answer lost
        await svc.push_alertmanager(datetime.now(UTC), force=True)  # tried again
        assert transport.lost == 1
        assert len(await active_silences(am)) == 1  # found again, not made twice

        fake_metrics.set("c1", 99, 100)
        (resolved,) = await svc.evaluate_once(datetime.now(UTC))
        assert resolved.to_state.value == "resolved"
        await svc.push_alertmanager(datetime.now(UTC), force=True)
        await svc.push_alertmanager(datetime.now(UTC), force=True)
        left = await active_silences(am)
        assert left == [], [s["comment"] for s in left]
    finally:
        await flaky.aclose()
        await svc.close()


async def test_a_garbled_silences_answer_does_not_stop_the_alerts_being_pushed(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, am: Alertmanager
) -> None:
    inner = httpx.AsyncHTTPTransport()

    async def garble(request: httpx.Request) -> httpx.Response:
        if "/silence" in request.url.path:
            return httpx.Response(200, text="<html>maintenance</html>")
        return await inner.handle_async_request(request)

    svc = make_service(alertmanager_url=am.url, alert_resend_s=0.5)
    await svc.connect()
    proxied = httpx.AsyncClient(transport=httpx.MockTransport(garble), timeout=5)
    svc.delivery._http = proxied
    try:
        await fire(svc, fake_metrics, "c1")
        (alert,) = svc.state.firing()
        svc.state.acknowledged(alert.id, "trực ban", datetime.now(UTC).isoformat())
        pushed: bool | Exception
        try:
            pushed = await svc.push_alertmanager(datetime.now(UTC), force=True)
        except Exception as exc:  # what the loop would log, the alerts unsent
            pushed = exc
        assert pushed is True, repr(pushed)
        assert [a["annotations"]["alert_id"] for a in await am_alerts(am)] == [alert.id]
    finally:
        await proxied.aclose()
        await inner.aclose()
        await svc.close()


async def test_an_acknowledgement_silences_only_its_own_alert(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, am: Alertmanager
) -> None:
    svc = make_service(alertmanager_url=am.url, alert_resend_s=0.5)
    await svc.connect()
    try:
        await fire(svc, fake_metrics, "c1", "c2")
        firing = {a.key.unit: a for a in svc.state.firing()}
        assert set(firing) == {"c1", "c2"}
        acked = firing["c1"]
        svc.state.acknowledged(acked.id, "trực ban", datetime.now(UTC).isoformat())
        await svc.push_alertmanager(datetime.now(UTC), force=True)
        (silence,) = await active_silences(am)
        assert silence["comment"].startswith(f"{SILENCE_TAG}{acked.id}")
        by_id = {a["annotations"]["alert_id"]: a for a in await am_alerts(am)}
        assert by_id[acked.id]["status"]["silencedBy"] == [silence["id"]]
        assert by_id[firing["c2"].id]["status"]["silencedBy"] == []
        assert by_id[firing["c2"].id]["status"]["state"] == "active"
    finally:
        await svc.close()


async def test_a_restart_after_a_crash_keeps_an_acknowledged_alert_silenced(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, am: Alertmanager,
    database_url: str,
) -> None:  # fmt: skip
    proxy = TcpProxy()
    await proxy.up()
    first = make_service(database_url=proxy.dsn(database_url), alertmanager_url=am.url)
    await first.connect()
    await fire(first, fake_metrics, "c1")  # the state file holds the firing alert
    (alert,) = first.state.firing()
    first.state.acknowledged(alert.id, "trực ban", datetime.now(UTC).isoformat())
    await first.push_alertmanager(datetime.now(UTC), force=True)
    (silence,) = await active_silences(am)

    async def crashed(now: datetime) -> None:  # killed: the file is not written again
        return None

    first.state.save = crashed  # type: ignore[method-assign]
    await first.close()

    await proxy.down()  # PostgreSQL slow to answer the restarted service
    second = make_service(
        database_url=proxy.dsn(database_url), alertmanager_url=am.url, alert_resend_s=0.5
    )
    connecting = asyncio.create_task(second.connect())
    try:
        await asyncio.sleep(2.0)  # it pushes the restored alerts meanwhile
        assert [a["annotations"]["alert_id"] for a in await am_alerts(am)] == [alert.id]
        assert [s["id"] for s in await active_silences(am)] == [silence["id"]]
    finally:
        await proxy.up()
        await asyncio.wait_for(connecting, 60)
        await second.close()
        await proxy.down()
