"""PostgreSQL unreachable for a while, through a proxy the test controls.

- Metrics worker: while the database refuses connections and then hangs (blackhole),
  the daily-aggregate writes fail; the worker blocks and retries (its log says so),
  counts nothing twice, dead-letters nothing, and when the database returns every
  event is counted exactly once, in PostgreSQL and on /metrics.
- Alerts service: the outage ends the session holding its lock (docs/alerts.md, "One
  alerts service per database"), so it stands by: it judges, writes and delivers
  nothing, and Alertmanager keeps what it was told. When the database returns it takes
  the lock again, loads afresh and judges what happened meanwhile (an old alert
  resolves, a new one fires), each transition written once, in order; one open alert
  per identity. Until review 90 it went on judging in memory through the outage, which
  a second alerts service on the same database could do at the same time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from services.common.broker import free_port
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from tests.faults.conftest import (
    alerts_env,
    counter_sum,
    serving,
    tail,
    until,
    via,
)
from tests.faults.postgres import (
    dead_letter_count,
    equals,
    fetch,
    keys_are,
    logged,
    metrics_env,
    ready,
    stored,
    transitions,
    two_rounds,
    wait_exported,
)
from tests.faults.tools import TcpProxy
from tests.integration.alerts.harness import Alertmanager, FakeMetrics, Receiver
from tests.integration.metrics.harness import communes_by_province, publish
from tests.integration.processes import service_env
from tests.servers import database_port

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def test_metrics_worker_blocks_through_a_postgres_outage_and_counts_exactly(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    pairs = communes_by_province(6)
    await ensure_topics(common_settings)
    before, during, want = two_rounds(3000, 3000, pairs)
    log = tmp_path / "metrics.log"
    async with TcpProxy("127.0.0.1", database_port()) as proxy:
        port = free_port()
        proxied = via(proxy.port, database_url)
        env = metrics_env(common_settings, proxied, "pg-outage", port, tmp_path / "w")
        async with serving(["metrics"], env, port, log) as url, httpx.AsyncClient() as client:
            await publish(common_settings, before)
            await until(lambda: keys_are(database_url, 3000), 40, lambda: tail(log))

            await proxy.refuse()  # PostgreSQL gone: live connections cut, new ones refused
            await publish(common_settings, during)
            await until(lambda: logged(log, "flush failed"), 20, lambda: tail(log))
            await proxy.blackhole()  # then unreachable: connections hang, timeouts decide
            await asyncio.sleep(3)
            keys, _ = await stored(database_url)
            assert keys == 3000, "a write went through while the database was away"
            assert (await client.get(url + "/healthz")).status_code == 200, tail(log)
            dead = await counter_sum(client, url, "egov_events_dead_lettered_total")

            proxy.drop()
            await proxy.forward()
            await until(lambda: keys_are(database_url, 6000), 40, lambda: tail(log))
            await wait_exported(client, url, want, 20)
            duplicates = await counter_sum(client, url, "egov_events_duplicate_total")
    keys, by_unit = await stored(database_url)
    assert dead == 0, "an infrastructure failure was dead-lettered"
    assert await dead_letter_count(common_settings) == 0
    assert keys == 6000
    assert {p: by_unit.get(p) for p in want} == dict(want)
    communes = Counter({c: 0 for c, _ in pairs})
    for n in range(6000):
        communes[pairs[n % len(pairs)][0]] += 1
    assert {c: by_unit.get(c) for c in communes} == dict(communes)
    assert duplicates > 0  # the re-sent events were seen, and counted once


async def _open_per_identity(database_url: str) -> list[tuple[str, int]]:
    rows = await fetch(
        database_url,
        "SELECT unit, count(*) n FROM alerts WHERE state IN ('pending', 'firing') "
        'GROUP BY condition, kpi, unit, "window"',
    )
    return sorted((r["unit"], r["n"]) for r in rows)


async def test_alerts_stand_by_through_a_postgres_outage_and_write_once(
    common_settings: CommonSettings, database_url: str, tmp_path: Path,
    fake_metrics: FakeMetrics, receiver: Receiver, alertmanager: Alertmanager,
) -> None:  # fmt: skip
    (first, p1), (second, p2) = communes_by_province(2)
    log = tmp_path / "alerts.log"
    async with TcpProxy("127.0.0.1", database_port()) as proxy:
        port = free_port()
        env = alerts_env(
            service_env(common_settings, via(proxy.port, database_url)), port,
            EGOV_METRICS_URLS=fake_metrics.url, EGOV_ALERTMANAGER_URL=alertmanager.url,
        )  # fmt: skip
        async with serving(["alerts"], env, port, log) as url, httpx.AsyncClient() as client:
            fake_metrics.set(first, 80, 100, province=p1)
            fired = [(first, "pending"), (first, "firing")]
            await until(lambda: equals(transitions(database_url), fired), 20, lambda: tail(log))
            await until(lambda: (_notified(receiver) == {first: ["firing"]}), 20,
                        lambda: f"{receiver.notifications()}")  # fmt: skip

            await proxy.refuse()
            fake_metrics.set(first, 99, 100, province=p1)  # recovers while PG is away
            fake_metrics.set(second, 70, 100, province=p2)  # and another unit fires

            async def standing_by() -> bool:
                readyz = await client.get(url + "/readyz")
                return readyz.status_code == 503 and readyz.json()["role"] == "standby"

            await until(standing_by, 20, lambda: tail(log))
            await asyncio.sleep(3)  # several cycles' worth: none judges or writes
            assert await transitions(database_url) == fired  # nothing written meanwhile
            assert _notified(receiver) == {first: ["firing"]}, receiver.notifications()

            await proxy.forward()
            everything = [*fired, (first, "resolved"), (second, "pending"), (second, "firing")]
            await until(lambda: equals(transitions(database_url), everything), 40,
                        lambda: tail(log))  # fmt: skip
            await until(lambda: ready(client, url), 20, lambda: tail(log))
            await asyncio.sleep(2)  # later cycles and flushes write nothing twice
            assert await transitions(database_url) == everything
            assert await _open_per_identity(database_url) == [(second, 1)]
            assert await counter_sum(client, url, "egov_alerts_journal_backlog") == 0
            want = {first: ["firing", "resolved"], second: ["firing"]}
            await until(lambda: (_notified(receiver) == want), 20,
                        lambda: f"{receiver.notifications()}")  # fmt: skip
            await asyncio.sleep(3)  # Alertmanager (group_interval 1 s) would have re-sent
    assert _notified(receiver) == want, receiver.notifications()


def _notified(receiver: Receiver) -> dict[str, list[str]]:
    by_unit: dict[str, list[str]] = {}
    for status, alerts in receiver.notifications():
        for alert in alerts:
            by_unit.setdefault(alert["labels"]["unit"], []).append(status)
    return by_unit
