"""A broker outage: 503 with Retry-After, nothing half-published, and a retry counted once."""

from __future__ import annotations

import asyncio

import pytest

from services.common.broker import EmbeddedBroker
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.ingest.problems import PROBLEM_BASE
from tests.integration.ingest.harness import (
    event,
    ids,
    ingest_settings,
    running_ingest,
    topic_events,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.broker(
        "tansu",
        "stops an embedded broker of its own; on Apache Kafka, brokers are killed under"
        " ingest in tests/faults/test_kafka_cluster_failover.py",
    ),
]


async def test_retry_after_503_is_the_same_source_and_id_once(
    common_settings: CommonSettings, database_url: str
) -> None:
    broker = EmbeddedBroker()
    broker.start()
    try:
        common = common_settings.model_copy(
            update={"kafka_bootstrap_servers": broker.bootstrap_servers}
        )
        settings = ingest_settings(
            common, database_url, produce_timeout_s=2, kafka_request_timeout_s=2
        )
        async with running_ingest(settings) as ingest:
            batch = [event(), event()]
            broker.stop()
            response = await ingest.post(batch)
            assert response.status_code == 503, response.text
            assert response.json()["type"] == PROBLEM_BASE + "broker-unavailable"
            assert int(response.headers["retry-after"]) >= 1
            # The publisher learns what to do, not where the broker lives.
            assert str(broker.port) not in response.text
            assert "Error" not in response.json()["detail"]
            ready = await ingest.client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["broker"] is False

            broker.start()  # memory-only: it comes back empty
            await ensure_topics(settings)
            for _ in range(20):  # the publisher retries the very same events
                response = await ingest.post(batch)
                if response.status_code == 202:
                    break
                await asyncio.sleep(0.5)
            assert response.status_code == 202, response.text
            # The producer may still deliver the batch of the 503 request once the broker
            # is back (an unknown outcome): copies then carry the same (source, id), the
            # key the metrics decoder deduplicates on, so they count once downstream.
            on_topic = ids(await topic_events(settings))
            assert set(on_topic) == set(ids(batch))
            assert len(on_topic) in (len(batch), 2 * len(batch))
    finally:
        broker.stop()
