"""The publisher against a real local HTTP server: retries resend the same ids, refusals don't."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from pydantic import SecretStr

from services.simulator.publisher import BATCH_MEDIA_TYPE, Publisher, retry_after
from services.simulator.stats import SimulatorStats

from .conftest import Reply, ScriptedServer


def events(n: int = 3) -> list[dict[str, object]]:
    return [
        {
            "specversion": "1.0",
            "id": f"id-{i}",
            "source": "urn:egov:tdoffice:19",
            "type": "vn.egov.document.issued",
            "time": "2025-09-01T10:00:00.000+07:00",
            "unit": "19",
            "data": {"document_id": f"VB-{i}", "electronic": True, "signed": True},
        }
        for i in range(n)
    ]


class Sleeps:
    """Records the delays the publisher asks for instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as c:
        yield c


def publisher(
    client: httpx.AsyncClient,
    server: ScriptedServer,
    stats: SimulatorStats,
    sleeps: Sleeps,
    **kwargs: object,
) -> Publisher:
    return Publisher(client, server.url, stats, sleep=sleeps, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [503, 429])
async def test_retry_after_is_honoured_and_the_same_ids_are_resent(
    client: httpx.AsyncClient, ingest_server: ScriptedServer, status: int
) -> None:
    ingest_server.script = [Reply(status, {"Retry-After": "2"})]
    stats, sleeps = SimulatorStats(), Sleeps()
    pub = publisher(client, ingest_server, stats, sleeps, api_key=SecretStr("k3y"))

    assert await pub.publish(events(3)) is True

    first, second = ingest_server.received
    assert first.ids == second.ids == [("urn:egov:tdoffice:19", f"id-{i}") for i in range(3)]
    assert first.body == second.body
    assert sleeps.delays == [2.0]
    assert (stats.accepted, stats.retries, stats.batches, stats.failed) == (3, 1, 1, 0)


async def test_requests_are_batches_to_v1_events_with_the_bearer_key(
    client: httpx.AsyncClient, ingest_server: ScriptedServer
) -> None:
    pub = publisher(client, ingest_server, SimulatorStats(), Sleeps(), api_key=SecretStr("k3y"))
    await pub.publish(events(2))

    (request,) = ingest_server.received
    assert request.path == "/v1/events"
    assert request.headers["Content-Type"] == BATCH_MEDIA_TYPE
    assert request.headers["Authorization"] == "Bearer k3y"
    assert isinstance(orjson.loads(request.body), list)


async def test_no_authorization_header_without_a_key(
    client: httpx.AsyncClient, ingest_server: ScriptedServer
) -> None:
    await publisher(client, ingest_server, SimulatorStats(), Sleeps()).publish(events(1))
    assert "Authorization" not in ingest_server.received[0].headers


async def test_422_refusal_is_counted_logged_and_not_retried(
    client: httpx.AsyncClient, ingest_server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    problem = {
        "type": "https://egov-pulse.vn/problems/invalid-events",
        "title": "Invalid events",
        "status": 422,
        "detail": "1 of 3 events are invalid; nothing from this request was published.",
        "errors": [{"index": 1, "pointer": "/unit", "reason": "99999: unknown unit"}],
    }
    ingest_server.script = [
        Reply(422, {"Content-Type": "application/problem+json"}, orjson.dumps(problem))
    ]
    stats, sleeps = SimulatorStats(), Sleeps()

    with caplog.at_level(logging.ERROR, logger="services.simulator.publisher"):
        accepted = await publisher(client, ingest_server, stats, sleeps).publish(events(3))

    assert accepted is False
    assert len(ingest_server.received) == 1
    assert sleeps.delays == []
    assert (stats.refusals, stats.refused, stats.accepted, stats.retries) == (1, 3, 0, 0)
    assert "Invalid events" in caplog.text
    assert "/unit: 99999: unknown unit" in caplog.text


async def test_gives_up_after_max_attempts_and_counts_the_events_failed(
    client: httpx.AsyncClient, ingest_server: ScriptedServer
) -> None:
    ingest_server.then = Reply(503)  # no Retry-After: exponential backoff
    stats, sleeps = SimulatorStats(), Sleeps()
    pub = publisher(client, ingest_server, stats, sleeps, max_attempts=4, backoff_s=0.5)

    assert await pub.publish(events(2)) is False

    assert len(ingest_server.received) == 4
    assert len({r.body for r in ingest_server.received}) == 1
    assert sleeps.delays == [0.5, 1.0, 2.0]
    assert (stats.failed, stats.retries, stats.accepted) == (2, 3, 0)


async def test_a_timeout_is_an_unknown_outcome_and_is_retried_with_the_same_ids(
    client: httpx.AsyncClient, ingest_server: ScriptedServer
) -> None:
    ingest_server.script = [Reply(202, delay_s=1.0)]
    stats, sleeps = SimulatorStats(), Sleeps()
    pub = publisher(client, ingest_server, stats, sleeps, timeout=httpx.Timeout(0.2))

    assert await pub.publish(events(2)) is True

    first, second = ingest_server.received
    assert first.ids == second.ids
    assert (stats.accepted, stats.retries) == (2, 1)


async def test_an_unreachable_ingest_is_retried_then_failed(client: httpx.AsyncClient) -> None:
    stats, sleeps = SimulatorStats(), Sleeps()
    # Port 9 (discard) on localhost: nothing listens, the connection is refused.
    pub = Publisher(client, "http://127.0.0.1:9", stats, sleep=sleeps, max_attempts=3)

    assert await pub.publish(events(1)) is False
    assert (stats.failed, stats.retries) == (1, 2)


async def test_an_empty_batch_sends_nothing(
    client: httpx.AsyncClient, ingest_server: ScriptedServer
) -> None:
    assert await publisher(client, ingest_server, SimulatorStats(), Sleeps()).publish([]) is True
    assert ingest_server.received == []


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 9, 1, 3, 0, 0, tzinfo=UTC)
    assert retry_after("7", now) == 7.0
    assert retry_after("Mon, 01 Sep 2025 03:00:30 GMT", now) == 30.0
    assert retry_after("Mon, 01 Sep 2025 02:00:00 GMT", now) == 0.0
    assert retry_after(None, now) is None
    assert retry_after("soon", now) is None
