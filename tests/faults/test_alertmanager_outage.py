"""Alertmanager unreachable while an alert fires, and again while it resolves.

The fault-suite version of tests/integration/alerts' "Alertmanager down then up" (which
stops the process and drives the service by hand): here the `egov-pulse alerts`
process runs its own loops and reaches the real Alertmanager through a proxy the test
controls. First Alertmanager refuses connections while an alert fires, then it hangs
(blackhole: the service's HTTP timeout decides) while the alert resolves. Each time
the failed pushes are counted, nothing reaches the receiver meanwhile, and once
Alertmanager is reachable again it holds the alert and notifies firing, then
resolved, once each.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from services.common.broker import free_port
from services.common.settings import CommonSettings
from tests.faults.conftest import alerts_env, counter_sum, serving, tail, until
from tests.faults.tools import TcpProxy
from tests.integration.alerts.harness import Alertmanager, FakeMetrics, Receiver
from tests.integration.metrics.harness import communes_by_province
from tests.integration.processes import service_env

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def active_units(client: httpx.AsyncClient, am: Alertmanager) -> list[str]:
    """Units of the alerts Alertmanager itself holds as active (read directly)."""
    alerts = (await client.get(f"{am.url}/api/v2/alerts", params={"active": "true"})).json()
    return sorted(a["labels"]["unit"] for a in alerts if a["status"]["state"] == "active")


async def test_alert_fired_and_resolved_while_alertmanager_away_is_delivered_on_return(
    common_settings: CommonSettings, database_url: str, tmp_path: Path,
    fake_metrics: FakeMetrics, receiver: Receiver, alertmanager: Alertmanager,
) -> None:  # fmt: skip
    ((unit, province),) = communes_by_province(1)
    am_port = int(alertmanager.url.rsplit(":", 1)[1])
    log = tmp_path / "alerts.log"
    async with TcpProxy("127.0.0.1", am_port) as proxy:
        port = free_port()
        env = alerts_env(
            service_env(common_settings, database_url), port,
            EGOV_METRICS_URLS=fake_metrics.url,
            EGOV_ALERTMANAGER_URL=f"http://{proxy.address}",
        )  # fmt: skip
        async with serving(["alerts"], env, port, log) as url, httpx.AsyncClient() as client:

            async def failed_pushes() -> float:
                return await counter_sum(client, url, "egov_alerts_notifications_total",
                                         sink="alertmanager", outcome="failed")  # fmt: skip

            await proxy.refuse()
            fake_metrics.set(unit, 80, 100, province=province)
            await until(lambda: _more_than(failed_pushes(), 2), 20, lambda: tail(log))
            assert receiver.notifications() == []
            assert await active_units(client, alertmanager) == []

            await proxy.forward()
            await until(lambda: _equals(active_units(client, alertmanager), [unit]), 20,
                        lambda: tail(log))  # fmt: skip
            await until(lambda: _statuses(receiver) == ["firing"], 20, receiver_says(receiver))

            await proxy.blackhole()
            before = await failed_pushes()
            fake_metrics.set(unit, 99, 100, province=province)
            await until(lambda: _more_than(failed_pushes(), before + 1), 20, lambda: tail(log))
            assert _statuses(receiver) == ["firing"]

            proxy.drop()
            await proxy.forward()
            await until(lambda: _statuses(receiver) == ["firing", "resolved"], 30,
                        receiver_says(receiver))  # fmt: skip
            await until(lambda: _equals(active_units(client, alertmanager), []), 20,
                        lambda: tail(log))  # fmt: skip
            await asyncio.sleep(3)  # group_interval is 1 s: anything more would be here
    assert _statuses(receiver) == ["firing", "resolved"], receiver.notifications()
    ((_, alerts),) = receiver.notifications()[:1]
    assert [a["labels"]["unit"] for a in alerts] == [unit]
    assert alerts[0]["labels"]["alertname"] == "KpiBelowTarget"


def _statuses(receiver: Receiver) -> list[str]:
    return [status for status, _ in receiver.notifications()]


def receiver_says(receiver: Receiver):  # type: ignore[no-untyped-def]
    return lambda: f"receiver got {receiver.notifications()}"


async def _more_than(reading, floor: float) -> bool:  # type: ignore[no-untyped-def]
    return bool(await reading > floor)


async def _equals(reading, want: object) -> bool:  # type: ignore[no-untyped-def]
    return bool(await reading == want)
