"""Reads the dead-letter and event topics without a consumer group (the adapter).

No group: nothing is committed, nobody's position moves (the workers' group included),
and no GROUP ACL is needed, only READ on the topics (services/common/kafka_acls.py).
The client takes the service's Kafka settings (SASL, TLS: ``kafka_security``) like
every other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.common.settings import CommonSettings
from services.deadletters.letters import DeadLetter, Target

FETCH_MAX_BYTES = 16 * 1024 * 1024
"""A referenced record may be larger than the consumer's default 1 MiB fetch."""


UNKNOWN_TOPIC = 3
"""Kafka's UNKNOWN_TOPIC_OR_PARTITION: no such topic, so no dead letters (any other error,
an authorization refused among them, is the broker's answer and is said)."""


class ReadError(Exception):
    """The broker did not answer, refused the read, or could not hand out the records."""


class TopicReader:
    """One group-less consumer, assigned a partition range at a time."""

    def __init__(self, settings: CommonSettings) -> None:
        self._settings = settings
        self._timeout_s = settings.kafka_request_timeout_s
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=int(self._timeout_s * 1000),
            fetch_max_bytes=FETCH_MAX_BYTES,
            max_partition_fetch_bytes=FETCH_MAX_BYTES,
            **settings.kafka_security,
        )

    async def __aenter__(self) -> TopicReader:
        try:
            await asyncio.wait_for(self._consumer.start(), self._timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._consumer.stop()
            raise ReadError(f"the broker did not answer ({exc!r})") from exc
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def dead_letters(self, topic: str, since_ms: int | None) -> list[DeadLetter]:
        """Every record of ``topic`` (from ``since_ms`` on, when given) up to its end now."""
        try:
            partitions = await self._partitions(topic)
            if not partitions:
                return []
            tps = [TopicPartition(topic, p) for p in partitions]
            self._consumer.assign(tps)
            starts = await self._starts(tps, since_ms)
            ends = await self._consumer.end_offsets(tps)
            letters: list[DeadLetter] = []
            for tp in tps:
                records = await self._range(tp, starts[tp], ends[tp] - 1)
                letters += [_letter(r) for r in records]
        except (KafkaError, OSError, TimeoutError) as exc:
            raise ReadError(f"the broker refused to hand out {topic} ({exc!r})") from exc
        return sorted(letters, key=lambda d: (d.timestamp_ms, d.place))

    async def referenced(self, target: Target) -> tuple[list[tuple[bytes | None, Headers]], int]:
        """The values and headers of ``target``'s records still in their topic, and the
        first offset the topic still holds (beyond ``target.first``: expired, some or all)."""
        tp = TopicPartition(target.topic, target.partition)
        try:
            self._consumer.assign([tp])
            first = (await self._consumer.beginning_offsets([tp]))[tp]
            end = (await self._consumer.end_offsets([tp]))[tp]
            start = max(first, target.first)
            records = await self._range(tp, start, min(target.last, end - 1))
        except KafkaError as exc:
            raise ReadError(f"{target.place} could not be read ({exc!r})") from exc
        return [(r.value, _headers(r)) for r in records if r.offset >= target.first], first

    async def _partitions(self, topic: str) -> list[int]:
        """``topic``'s partitions ([] when it does not exist). The consumer's own metadata
        holds only the topics it was asked about (``topics()`` fetches into a copy): on
        Apache Kafka it knows none at first, so the admin client describes the topic."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            request_timeout_ms=int(self._timeout_s * 1000),
            **self._settings.kafka_security,
        )
        await asyncio.wait_for(admin.start(), self._timeout_s)
        try:
            described = await admin.describe_topics([topic])
        finally:
            await admin.close()
        for found in described:
            code = found.get("error_code")
            if found.get("topic") != topic or code == UNKNOWN_TOPIC:
                continue
            if code:
                raise ReadError(f"the broker refused to describe {topic} (error {code})")
            return sorted(int(p["partition"]) for p in found.get("partitions", []))
        return []

    async def _starts(
        self, tps: list[TopicPartition], since_ms: int | None
    ) -> dict[TopicPartition, int]:
        starts: dict[TopicPartition, int] = await self._consumer.beginning_offsets(tps)
        if since_ms is None:
            return starts
        try:
            found = await self._consumer.offsets_for_times({tp: since_ms for tp in tps})
        except KafkaError:
            return starts  # a broker without timestamp look-ups: filtered as read instead
        ends = await self._consumer.end_offsets(tps)
        return {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}

    async def _range(self, tp: TopicPartition, first: int, last: int) -> list[_Record]:
        """Records ``first``..``last`` of ``tp`` (those the log holds), in order."""
        if last < first:
            return []
        self._consumer.seek(tp, first)
        found: list[_Record] = []
        deadline = time.monotonic() + max(30.0, 3 * self._timeout_s)
        while await self._consumer.position(tp) <= last:
            if time.monotonic() > deadline:
                raise ReadError(f"{tp.topic}[{tp.partition}] was not read to offset {last} in time")
            try:
                fetched = await self._consumer.getmany(tp, timeout_ms=500)
            except KafkaError:
                raise
            except Exception as exc:  # a batch aiokafka cannot unpack: its bytes' fault
                raise ReadError(
                    f"{tp.topic}[{tp.partition}] from offset {first} cannot be unpacked "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            found += [r for r in fetched.get(tp, []) if r.offset <= last]
        return found


class _Record(Protocol):
    """What is read of aiokafka's ``ConsumerRecord`` (aiokafka ships no type hints)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


Headers = tuple[tuple[str, bytes], ...]


def _headers(record: _Record) -> Headers:
    return tuple((str(name), bytes(value or b"")) for name, value in record.headers)


def _letter(record: _Record) -> DeadLetter:
    return DeadLetter(
        f"{record.topic}[{record.partition}]@{record.offset}",
        record.timestamp,
        record.key,
        record.value,
        _headers(record),
    )
