"""Review of the renewal of a producer whose sender stopped (commit d6402b1).

docs/ingest.md: "shutdown during renewal leaks nothing"; concurrent requests meeting a
stopped sender start one new producer, not one each. A stop() during a renewal left a
producer running after shutdown: a strict xfail here until fixed on 2026-12-05.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.common.kafka import make_producer
from services.common.settings import CommonSettings
from services.ingest import publisher as publisher_module
from tests.integration.ingest.harness import event, ingest_settings, running_ingest
from tests.integration.ingest.test_producer_sender import break_the_sender

pytestmark = pytest.mark.integration


def gated_producers(
    monkeypatch: pytest.MonkeyPatch, gate: asyncio.Event
) -> tuple[list[Any], asyncio.Event]:
    """Producers made from now on wait for ``gate`` before starting (a slow broker)."""
    made: list[Any] = []
    entered = asyncio.Event()
    real = make_producer

    def make(*args: Any, **kwargs: Any) -> Any:
        producer = real(*args, **kwargs)
        start = producer.start

        async def slow_start() -> None:
            entered.set()
            await gate.wait()
            await start()

        producer.start = slow_start
        made.append(producer)
        return producer

    monkeypatch.setattr(publisher_module, "make_producer", make)
    return made, entered


async def test_a_shutdown_during_renewal_leaves_no_producer_running(
    common_settings: CommonSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ingest_settings(common_settings, database_url, produce_timeout_s=10)
    async with running_ingest(settings) as ingest:
        publisher = ingest.service.publisher
        assert (await ingest.post([event()])).status_code == 202
        break_the_sender(publisher)
        assert (await ingest.post([event()])).status_code == 503
        assert publisher.sender_failed()

        gate = asyncio.Event()
        made, entered = gated_producers(monkeypatch, gate)
        renewing = asyncio.create_task(ingest.post([event()]))
        await asyncio.wait_for(entered.wait(), 10)
        await publisher.stop()  # shutdown while the new producer starts
        gate.set()
        await asyncio.wait_for(renewing, 20)
        leaked = publisher._producer
        (new,) = made
        new_closed = new._closed
        assert leaked is None and new_closed, "a producer runs after stop()"


async def test_concurrent_requests_meeting_a_stopped_sender_start_one_producer(
    common_settings: CommonSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ingest_settings(common_settings, database_url, produce_timeout_s=10)
    async with running_ingest(settings) as ingest:
        publisher = ingest.service.publisher
        assert (await ingest.post([event()])).status_code == 202
        break_the_sender(publisher)
        assert (await ingest.post([event()])).status_code == 503

        gate = asyncio.Event()
        made, entered = gated_producers(monkeypatch, gate)
        posts = [asyncio.create_task(ingest.post([event()])) for _ in range(5)]
        await asyncio.wait_for(entered.wait(), 10)
        await asyncio.sleep(0.2)
        gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*posts), 20)
        assert [r.status_code for r in answers] == [202] * 5
        assert len(made) == 1
        assert not publisher.sender_failed()
