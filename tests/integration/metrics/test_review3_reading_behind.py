"""Review of e406ab1: ``FetchedBatchConsumer.reading_behind`` on a real broker.

A worker calls the counting caught up (and publishes its /v1/kpis snapshot without
waiting for the interval) only when no event partition's high watermark is above its
read offset. The read offset is the last record handed over + 1; records published in a
Kafka transaction are followed by a commit marker, a control record that takes an offset
and is never handed over. So after the last record of a transactional publisher (Kafka
Connect's exactly-once sources, any producer with a ``transactional_id``, publishing
straight to Kafka as integrators may) the partition stayed "behind" for good, until
``reading_behind`` allowed one offset of slack for that marker.
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from services.metrics.fetched import FetchedBatchConsumer


async def _transactional_records(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"review3-{uuid.uuid4().hex[:8]}"
    )
    try:
        await producer.start()
        async with producer.transaction():
            for i in range(3):
                await producer.send(topic, b"event %d" % i, partition=0)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str) -> tuple[int, int | None]:
    """(the offset after the last record handed over, the partition's high watermark)."""
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        last = -1
        for _ in range(20):
            fetched = await consumer.getmany(tp, timeout_ms=500)
            for record in fetched.get(tp, []):
                last = record.offset
            if last >= 2 and not fetched:
                break
        return last + 1, consumer.highwater(tp)
    finally:
        await consumer.stop()


def _behind(topic: str, read: int, high: int | None) -> bool:
    tp = TopicPartition(topic, 0)
    fake = SimpleNamespace(
        app=SimpleNamespace(event_topics=frozenset({topic})),
        _read_offset={tp: read},
        assignment=lambda: {tp},
        highwater=lambda _tp: high,
    )
    return FetchedBatchConsumer.reading_behind(fake)  # type: ignore[arg-type]


async def test_everything_handed_over_from_a_transactional_publisher_is_not_behind(
    kafka_bootstrap: str,
) -> None:
    topic = f"t{uuid.uuid4().hex[:10]}.documents"
    try:
        await asyncio.wait_for(_transactional_records(kafka_bootstrap, topic), 30)
    except Exception as exc:  # a broker without transactions cannot show it
        pytest.skip(f"the broker refused a transactional producer: {exc!r}")
    read, high = await _read_all(kafka_bootstrap, topic)
    assert read == 3  # every record handed over
    assert not _behind(topic, read, high), f"read offset {read}, high watermark {high}"
