"""Invalid records go to the dead-letter topic with their bytes and why; the rest count."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import document, workers
from tests.integration.metrics.test_workers import stored

pytestmark = pytest.mark.integration
UNIT, PROVINCE = "01843", "19"


async def produce(settings: CommonSettings, records: list[tuple[bytes, list[tuple[str, bytes]]]]):  # type: ignore[no-untyped-def]
    producer = make_producer(settings)
    await producer.start()
    try:
        for value, headers in records:
            await (
                await producer.send(
                    settings.topic_documents, value, key=PROVINCE.encode(), headers=headers
                )
            )
    finally:
        await producer.stop()


Found = list[tuple[bytes, dict[str, bytes]]]


async def dead_letters(settings: CommonSettings, count: int) -> Found:
    consumer = AIOKafkaConsumer(
        settings.topic_dead_letter,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    found: Found = []
    try:
        deadline = time.monotonic() + 30
        while len(found) < count and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                found += [(m.value, dict(m.headers)) for m in messages]
    finally:
        await consumer.stop()
    return found


def test_invalid_records_are_dead_lettered_and_never_block_the_stream(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    bad_element = document("bad", UNIT)
    del bad_element["source"]
    too_late = document("old", UNIT, datetime.now(UTC) - timedelta(days=30))
    records = [
        (b"{not json", [("traceparent", b"00-abc-01")]),
        (orjson.dumps([document("a", UNIT), bad_element, document("b", UNIT)]), []),
        (orjson.dumps(too_late), []),
        (orjson.dumps(document("c", UNIT)), []),
    ]
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        asyncio.run(produce(common_settings, records))
        found = asyncio.run(dead_letters(common_settings, 3))
        deadline = time.monotonic() + 30
        while asyncio.run(stored(database_url))[0] < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        counted = asyncio.run(stored(database_url))
        dead_counter: Counter[str] = Counter()  # summed over the province label
        for labels, value in worker.samples("egov_events_dead_lettered_total"):
            dead_counter[labels["reason"]] += value
        too_late_counter = sum(v for _, v in worker.samples("egov_events_too_late_total"))
    topic = common_settings.topic_documents
    by_reason = {headers["dlq_reason"].decode(): (value, headers) for value, headers in found}
    assert set(by_reason) == {"malformed-json", "schema-violation", "too-late"}
    value, headers = by_reason["malformed-json"]
    assert value == b"{not json"  # the original bytes, and the original headers kept
    assert headers["traceparent"] == b"00-abc-01"
    assert headers["dlq_source"] == f"{topic}[{_partition(headers)}]@0".encode()
    value, headers = by_reason["schema-violation"]
    assert orjson.loads(value) == bad_element and headers["dlq_batch_index"] == b"1"
    assert b"source" in headers["dlq_detail"]
    assert orjson.loads(by_reason["too-late"][0]) == too_late
    # Everything valid was counted: a, b and c, once each, for the unit and its province.
    assert counted == (3, {UNIT: 3, PROVINCE: 3})
    assert dead_counter == {"malformed-json": 1, "schema-violation": 1, "too-late": 1}
    assert too_late_counter == 1


def _partition(headers: dict[str, bytes]) -> str:
    return headers["dlq_source"].decode().split("[")[1].split("]")[0]
