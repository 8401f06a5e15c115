"""Review 62: integrating systems that publish straight to Kafka, not through ingest
(fixed 2026-12-06: the codecs installed, a batch that cannot be unpacked dead-lettered by
reference, committed records only, topic metadata read again every 30 s).

The promise (docs/metrics.md, "What is counted"; schemas/CONTRACT.md §5): every record a
publisher put on an event topic is counted exactly once or visibly refused (dead letter,
counted refusal metric); no record stops the counting, none vanishes in silence, none is
counted that the publisher did not commit. Each test here publishes what an ordinary
Kafka client (Java, librdkafka, Go) may publish, next to valid events, and runs a real
worker on the broker under test.
"""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.producer import message_accumulator
from aiokafka.record import default_records

from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import WorkerProcess, document, workers
from tests.integration.metrics.test_dead_letters import dead_letters
from tests.integration.metrics.test_workers import stored

pytestmark = pytest.mark.integration

UNIT, PROVINCE = "01843", "19"


def event(name: str) -> bytes:
    return orjson.dumps(
        document(f"r62-{name}-{uuid.uuid4().hex[:8]}", UNIT, datetime.now(UTC) - timedelta(hours=1))
    )


def wait_for(
    database_url: str, worker: WorkerProcess, done: Callable[[int], bool], seconds: float = 60
) -> int:
    """Polls the stored dedup keys until ``done(keys)``; fails with the worker's log."""
    deadline = time.monotonic() + seconds
    while True:
        keys = asyncio.run(stored(database_url))[0]
        if done(keys):
            return keys
        assert worker.proc is not None and worker.proc.poll() is None, (
            f"the worker exited ({keys} keys stored)\n{worker.tail()}"
        )
        assert time.monotonic() < deadline, f"{keys} keys stored after {seconds} s\n{worker.tail()}"
        time.sleep(0.3)


# --- hand-made codecs: the frames any lz4 library writes, uncompressed blocks ----------

_M = 0xFFFFFFFF
_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M


def _xxh32(data: bytes) -> int:
    """XXH32 with seed 0 of fewer than 16 bytes (the lz4 frame descriptor's checksum)."""
    assert len(data) < 16
    h, i = (_P5 + len(data)) & _M, 0
    while i + 4 <= len(data):
        h = (h + struct.unpack_from("<I", data, i)[0] * _P3) & _M
        h, i = (_rotl(h, 17) * _P4) & _M, i + 4
    for byte in data[i:]:
        h = (_rotl((h + byte * _P5) & _M, 11) * _P1) & _M
    h ^= h >> 15
    h = (h * _P2) & _M
    h ^= h >> 13
    h = (h * _P3) & _M
    return h ^ (h >> 16)


def lz4_frame(payload: bytes) -> bytes:
    """An LZ4 frame (the format Kafka's lz4 codec uses for magic v2) of stored blocks."""
    descriptor = bytes([0x60, 0x40])  # version 1, independent blocks; 64 KB blocks
    out = bytearray(b"\x04\x22\x4d\x18" + descriptor + bytes([(_xxh32(descriptor) >> 8) & 0xFF]))
    for start in range(0, len(payload), 65536):
        block = payload[start : start + 65536]
        out += struct.pack("<I", 0x80000000 | len(block)) + block
    return bytes(out + b"\x00\x00\x00\x00")


class _Builder(default_records._DefaultRecordBatchBuilderPy):  # type: ignore[misc]
    """aiokafka's pure-Python batch builder, writing lz4 with ``lz4_frame`` (aiokafka here
    has no lz4 library) and any header name."""

    def _assert_has_codec(self, compression_type: int) -> bool:
        return True

    def _maybe_compress(self) -> bool:
        """As aiokafka's, but sent compressed even when the frame is no smaller (stored
        blocks never are)."""
        if self._compression_type != self.CODEC_LZ4:
            return bool(super()._maybe_compress())
        header_size = self.HEADER_STRUCT.size
        compressed = lz4_frame(bytes(self._buffer[header_size:]))
        del self._buffer[header_size:]
        self._buffer += compressed
        return True


class RawName(str):
    """A header name whose bytes on the wire are ``raw`` (not UTF-8): what librdkafka and
    Go clients send when handed bytes."""

    raw: bytes = b""

    def encode(self, *args: Any, **kwargs: Any) -> bytes:  # type: ignore[override]
        return self.raw


async def send_raw_batch(
    settings: CommonSettings,
    records: list[tuple[bytes, list[tuple[str, bytes]]]],
    *,
    codec: int = 0,
) -> None:
    """Publishes ``records`` (value, headers) as one record batch with the codec attribute
    ``codec`` (3: lz4), built by aiokafka's Python builder, to the province's partition."""
    producer = make_producer(settings, enable_idempotence=False)
    await producer.start()
    saved = message_accumulator.DefaultRecordBatchBuilder
    message_accumulator.DefaultRecordBatchBuilder = _Builder
    try:
        partitions = sorted(await producer.partitions_for(settings.topic_documents))
        partition = producer._partition(  # the partition the key goes to
            settings.topic_documents, None, PROVINCE.encode(), None, PROVINCE.encode(), None
        )
        assert partition in partitions
        producer._message_accumulator._compression_type = codec
        batch = producer.create_batch()
        for value, headers in records:
            assert batch.append(key=PROVINCE.encode(), value=value, timestamp=None, headers=headers)
        batch.close()
        await (await producer.send_batch(batch, settings.topic_documents, partition=partition))
    finally:
        message_accumulator.DefaultRecordBatchBuilder = saved
        await producer.stop()


async def send_plain(settings: CommonSettings, values: list[bytes]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.topic_documents, value, key=PROVINCE.encode())
    finally:
        await producer.stop()


# --- compressed batches -------------------------------------------------------------


def test_an_lz4_compressed_batch_straight_to_kafka_is_counted(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        asyncio.run(send_plain(common_settings, [event("before")]))
        wait_for(database_url, worker, lambda keys: keys >= 1)
        asyncio.run(
            send_raw_batch(
                common_settings,
                [(event("lz4-a"), []), (event("lz4-b"), [])],
                codec=default_records.DefaultRecordBatch.CODEC_LZ4,
            )
        )
        asyncio.run(send_plain(common_settings, [event("after")]))
        # The compressed events and the one after them: four distinct events in all.
        keys = wait_for(database_url, worker, lambda keys: keys >= 4, seconds=45)
        time.sleep(2)
        assert asyncio.run(stored(database_url)) == (4, {UNIT: 4, PROVINCE: 4}), worker.tail()
        assert keys == 4


# --- headers ------------------------------------------------------------------------


def test_a_header_name_that_is_not_utf8_does_not_stop_the_partition(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    name = RawName("x")
    name.raw = b"trace\xff\xfe"
    bad = event("odd-header")
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        asyncio.run(send_plain(common_settings, [event("before")]))
        wait_for(database_url, worker, lambda keys: keys >= 1)
        asyncio.run(send_raw_batch(common_settings, [(bad, [(name, b"v")])]))
        asyncio.run(send_plain(common_settings, [event("after")]))
        # The event after it counts, and the odd record is counted or dead-lettered.
        keys = wait_for(database_url, worker, lambda keys: keys >= 2, seconds=45)
        time.sleep(2)
        keys = asyncio.run(stored(database_url))[0]
        # Not counted (its header could not be read): dead-lettered as a reference to its
        # offset (it follows "before" in the partition), the original left on the topic.
        assert keys == 2, worker.tail()
        ((value, headers),) = asyncio.run(dead_letters(common_settings, 1))
        reference = orjson.loads(value)
        assert (reference["reference"], reference["offset"]) == (True, 1), reference
        assert headers["dlq_reason"] == b"undecodable-batch", headers
        assert b" offsets 1..1: the record batch could not be unpacked" in headers["dlq_detail"]
        assert b"UnicodeDecodeError" in headers["dlq_detail"], headers


# --- transactions (Apache Kafka) ------------------------------------------------------


@pytest.mark.broker("kafka", "transactional producers: tansu has no transactions")
def test_events_of_an_aborted_transaction_are_not_counted(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))

    async def publish() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=common_settings.kafka_bootstrap_servers,
            transactional_id=f"r62-{uuid.uuid4().hex[:8]}",
        )
        await producer.start()
        try:
            await producer.begin_transaction()
            for name in ("aborted-a", "aborted-b"):
                await producer.send_and_wait(
                    common_settings.topic_documents, event(name), key=PROVINCE.encode()
                )
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait(
                    common_settings.topic_documents, event("committed"), key=PROVINCE.encode()
                )
        finally:
            await producer.stop()

    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        asyncio.run(publish())
        asyncio.run(send_plain(common_settings, [event("after")]))
        # "after" is last in the partition: once it counts, everything before was read.
        wait_for(database_url, worker, lambda keys: keys >= 2)
        time.sleep(2)
        assert asyncio.run(stored(database_url)) == (2, {UNIT: 2, PROVINCE: 2}), worker.tail()


# --- a partition added while the workers run (Apache Kafka) ---------------------------


@pytest.mark.broker("kafka", "CreatePartitions on a running topic")
def test_events_of_a_partition_added_while_workers_run_count_within_a_minute(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

    asyncio.run(ensure_topics(common_settings))
    topic = common_settings.topic_documents

    async def grow_and_publish(values: list[bytes]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=common_settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            total = common_settings.topic_partitions + 1
            await admin.create_partitions({topic: NewPartitions(total_count=total)})
        finally:
            await admin.close()
        producer = make_producer(common_settings)
        await producer.start()
        try:
            for value in values:  # a publisher whose partitioner now picks the new one
                await producer.send_and_wait(
                    topic, value, key=PROVINCE.encode(), partition=total - 1
                )
        finally:
            await producer.stop()

    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        asyncio.run(send_plain(common_settings, [event("before")]))
        wait_for(database_url, worker, lambda keys: keys >= 1)
        asyncio.run(grow_and_publish([event("new-a"), event("new-b")]))
        wait_for(database_url, worker, lambda keys: keys >= 3, seconds=60)
        time.sleep(2)
        assert asyncio.run(stored(database_url)) == (3, {UNIT: 3, PROVINCE: 3}), worker.tail()
