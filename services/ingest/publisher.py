"""Sends validated records to Kafka and reports success only once the broker has them all."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common.kafka import make_producer
from services.common.settings import CommonSettings
from services.ingest.validation import Record

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The broker did not acknowledge every record: the outcome is unknown or failed."""


class KafkaPublisher:
    """An aiokafka producer with acks=all, wrapped in an explicit per-request timeout."""

    def __init__(self, settings: CommonSettings, timeout_s: float) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = make_producer(self._settings)
        await asyncio.wait_for(self._producer.start(), self._settings.kafka_request_timeout_s)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, records: Sequence[Record]) -> None:
        """Send every record and wait for every acknowledgement, or raise PublishError."""
        producer = self._producer
        if producer is None:
            raise PublishError("the Kafka producer is not connected")
        try:
            # send() itself can wait (metadata, a full buffer): the timeout covers it too.
            await asyncio.wait_for(self._send_all(producer, records), self._timeout_s)
        except (KafkaError, TimeoutError) as exc:
            log.warning("publish of %d records failed: %r", len(records), exc)
            raise PublishError(f"the broker did not acknowledge the events ({exc!r})") from exc

    async def _send_all(self, producer: AIOKafkaProducer, records: Sequence[Record]) -> None:
        futures = [
            await producer.send(
                self._settings.topic_for_family(r.topic_family),
                r.value,
                key=r.key,
                headers=r.headers,
            )
            for r in records
        ]
        await asyncio.gather(*futures)

    async def ping(self) -> bool:
        """Whether the broker answers a metadata request right now."""
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), 3)
        except (KafkaError, TimeoutError):
            return False
        return True
