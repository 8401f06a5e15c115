"""The broker stopped and restarted under ingest load: 503 (never 202) for what was not stored.

The embedded broker is memory-only, so a restart forgets the log: what was acknowledged
before the stop cannot be checked afterwards. It also forgets its topics, and acknowledges
writes to topics it does not have (those records are then lost): so the broker comes
back behind a proxy that stays closed until its topics exist, as a restarted Kafka
(which keeps its topics) would. Then, and this must hold:
- every request sent while the broker was down got 503 with a Retry-After, never 202;
- once the broker is back, requests are acknowledged again, and every event
  acknowledged with 202 after the stop is on the topic of the restarted broker.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from services.common.broker import EmbeddedBroker, free_port
from services.common.contract import Contract
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.ingest.keystore import create_key
from tests.faults.tools import AdvertisedBroker, TcpProxy
from tests.integration.ingest.harness import HAM_RONG, THANH_HOA, event, topic_events
from tests.integration.processes import running_service, service_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.faults,
    pytest.mark.broker(
        "tansu",
        "restarts a memory-only embedded broker behind a proxy; on Apache Kafka the"
        " leader's broker is killed under load in test_kafka_cluster_failover.py",
    ),
]

POSTERS = 4


@dataclass
class Sent:
    started: float
    ended: float
    status: int
    retry_after: str | None
    key: tuple[str, str]


async def post_until(
    client: httpx.AsyncClient, token: str, stop: asyncio.Event, log: list[Sent]
) -> None:
    """One publisher: one event per request, back to back, each outcome recorded."""
    headers = {"content-type": "application/cloudevents+json", "authorization": f"Bearer {token}"}
    while not stop.is_set():
        body = event(HAM_RONG)
        started = time.monotonic()
        try:
            response = await client.post("/v1/events", content=orjson.dumps(body), headers=headers)
            status, retry_after = response.status_code, response.headers.get("retry-after")
        except httpx.TimeoutException:
            status, retry_after = 0, None  # no answer: the publisher would retry; not a 202
        log.append(
            Sent(started, time.monotonic(), status, retry_after, (body["source"], body["id"]))
        )
        if status != 202:
            await asyncio.sleep(0.1)


async def api_key(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        types = sorted(Contract.load().event_types)
        return (
            await create_key(conn, "faults-publisher", [THANH_HOA], types, sources=["https:"])
        ).token
    finally:
        await conn.close()


async def test_broker_restart_under_load_503_never_202_for_unstored(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    proxy_port = free_port()
    first = AdvertisedBroker(advertised_port=proxy_port)
    first.start()
    second = EmbeddedBroker()
    try:
        async with TcpProxy("127.0.0.1", first.port, port=proxy_port) as proxy:
            through_proxy = common_settings.model_copy(
                update={"kafka_bootstrap_servers": proxy.address}
            )
            await ensure_topics(through_proxy)
            log, timeline = await _load_through_restart(
                through_proxy, database_url, tmp_path, proxy, first, second
            )
        restarted = common_settings.model_copy(
            update={"kafka_bootstrap_servers": second.bootstrap_servers}
        )
        stored = {(e["source"], e["id"]) for e in await topic_events(restarted)}
    finally:
        first.stop()
        second.stop()
    _check(log, stored, *timeline)


async def _load_through_restart(
    settings: CommonSettings,
    database_url: str,
    tmp_path: Path,
    proxy: TcpProxy,
    first: EmbeddedBroker,
    second: EmbeddedBroker,
) -> tuple[list[Sent], tuple[float, float]]:
    """Publishers running while the broker stops, stays away 6 s and comes back
    (with its topics, as a restarted Kafka would; see the module docstring)."""
    token = await api_key(database_url)
    port = free_port()
    env = service_env(settings, database_url) | {
        "EGOV_INGEST_PORT": str(port),
        "EGOV_PRODUCE_TIMEOUT_S": "2",
        "EGOV_KAFKA_REQUEST_TIMEOUT_S": "2",
        "EGOV_RATE_LIMIT_PER_S": "10000",
        "EGOV_RATE_LIMIT_BURST": "10000",
    }
    log: list[Sent] = []
    stop = asyncio.Event()
    # Started from a thread: the proxy lives on this event loop and must keep forwarding.
    service = running_service(["ingest"], env, port, tmp_path / "ingest.log")
    base = await asyncio.to_thread(service.__enter__)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            posters = [
                asyncio.create_task(post_until(client, token, stop, log)) for _ in range(POSTERS)
            ]
            await asyncio.sleep(2)
            await asyncio.to_thread(first.stop)
            await proxy.refuse()
            stopped = time.monotonic()
            await asyncio.sleep(6)
            # The memory-only broker comes back empty: its topics are made before any
            # publisher can reach it (tansu acknowledges writes to topics it lacks).
            await asyncio.to_thread(second.start)
            await ensure_topics(
                settings.model_copy(update={"kafka_bootstrap_servers": second.bootstrap_servers})
            )
            proxy.retarget("127.0.0.1", second.port)
            back = time.monotonic()
            await proxy.forward()
            try:
                await _until_acknowledged_again(log, back, want=20, timeout_s=20)
            finally:
                stop.set()
                await asyncio.gather(*posters)
    finally:
        await asyncio.to_thread(service.__exit__, None, None, None)
    return log, (stopped, back)


def _check(log: list[Sent], stored: set[tuple[str, str]], stopped: float, back: float) -> None:
    before_stop = [s for s in log if s.ended < stopped]
    assert any(s.status == 202 for s in before_stop), "the load never ran against a live broker"
    during = [s for s in log if s.started >= stopped and s.ended <= back]
    assert during, "no request was sent while the broker was down"
    wrong = [s for s in during if s.status != 503 or not s.retry_after or int(s.retry_after) < 1]
    assert not wrong, (
        f"{len(wrong)} of {len(during)} outage requests not 503+Retry-After: {wrong[:3]}"
    )
    acked = [s for s in log if s.started >= stopped and s.status == 202]
    assert len(acked) >= 20
    lost = [s for s in acked if s.key not in stored]
    detail = [(round(s.started - stopped, 2), round(s.ended - stopped, 2)) for s in lost[:5]]
    assert not lost, f"{len(lost)} acknowledged with 202 not on the topic: {detail}"
    unexpected = {s.status for s in log} - {202, 503}
    assert not unexpected, f"statuses other than 202/503: {unexpected}"


async def _until_acknowledged_again(
    log: list[Sent], since: float, want: int, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sum(s.status == 202 and s.started >= since for s in log) >= want:
            return
        await asyncio.sleep(0.2)
    recent = [s.status for s in log if s.started >= since][-10:]
    raise AssertionError(f"no {want} acknowledgements within {timeout_s} s of restart: {recent}")
