"""A producer whose background sender stopped is replaced; nothing with a 202 is lost.

aiokafka's sender task ends on an error it did not expect (its own comment calls that a
bug): it fails the batches it held and sends nothing more. Before 2026-12-05 ingest went
on answering /readyz 200 (the broker answers metadata) while every request waited out
its produce timeout for a 503, until a restart. Now /readyz says the producer cannot
send, the request that met the failure gets a 503 (its outcome unknown: the publisher
retries the same events), and the next request starts a new producer.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.common.settings import CommonSettings
from services.ingest.problems import PROBLEM_BASE
from tests.integration.ingest.harness import (
    event,
    ids,
    ingest_settings,
    running_ingest,
    topic_events,
)

pytestmark = pytest.mark.integration


def break_the_sender(publisher: Any) -> None:
    """The sender's next round raises, as a bug in it would: its task ends with that."""
    accumulator = publisher._producer._sender._message_accumulator

    def drain_by_nodes(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("an error the sender did not expect")

    accumulator.drain_by_nodes = drain_by_nodes


async def test_a_stopped_sender_is_replaced_and_every_202_is_on_the_topic(
    common_settings: CommonSettings, database_url: str
) -> None:
    settings = ingest_settings(common_settings, database_url, produce_timeout_s=10)
    async with running_ingest(settings) as ingest:
        publisher = ingest.service.publisher
        before = [event()]
        assert (await ingest.post(before)).status_code == 202
        break_the_sender(publisher)

        met = [event(), event()]
        response = await ingest.post(met)
        assert response.status_code == 503, response.text  # outcome unknown: retry
        assert response.json()["type"] == PROBLEM_BASE + "broker-unavailable"
        assert publisher.sender_failed()
        ready = await ingest.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["broker"] is False

        after = [event()]
        response = await ingest.post(after)  # a new producer, at once (not a timeout)
        assert response.status_code == 202, response.text
        assert (await ingest.post(met)).status_code == 202  # the publisher's retry
        assert not publisher.sender_failed()
        assert (await ingest.client.get("/readyz")).status_code == 200

        on_topic = ids(await topic_events(settings))
        for accepted in (before, met, after):
            for source_id in ids(accepted):
                assert on_topic.count(source_id) >= 1, source_id
