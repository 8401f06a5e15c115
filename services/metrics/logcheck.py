"""Stored positions checked against the broker's log when partitions are assigned.

A worker resumes each partition where PostgreSQL says its figures end. That position
belongs to the log it was read from, and the broker may no longer have that log:
- the embedded tansu keeps its log in memory, so after a restart it starts again from
  offset 0; once new events are published the stored position points *into* the new
  log, and resuming there would skip every new record before it, silently;
- a topic deleted and created again starts from 0 as well;
- Apache Kafka's retention may delete records while the workers are down.

So each flush stores, with the position, a fingerprint of the record just before it
(:func:`fingerprint`). At assignment the record at ``position - 1`` is read back: if it
is not there or is another record, the log was replaced, and the partition is counted
again from the log's start (dedup keys make re-reading harmless); if the position is
before the log's start, the records in between were deleted, and how many is said (a
position of 0 too: records deleted before the partition's first flush were never
counted either). Either way a log line and a metric say so, and no record is skipped in
silence. Between assignments the same judgement and report serve the watch on the
running consumer (services/metrics/logwatch.py).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaTimeoutError, OffsetOutOfRangeError
from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from services.metrics.pipeline import Record
    from services.metrics.tally import PartitionBatch

log = logging.getLogger(__name__)

TP = tuple[str, int]

READ_BACK_S = 5.0
"""How long to wait for the records at the stored positions before deciding that
they are gone (tansu answers a fetch beyond its log's end with nothing, not an error)."""


def fingerprint(key: bytes | None, value: bytes | None, timestamp_ms: int) -> bytes:
    """8 bytes that tell one record from another at the same offset of another log."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (key or b"", value or b"", str(max(timestamp_ms, 0)).encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def mark_last_records(batches: Mapping[TP, PartitionBatch], records: Sequence[Record]) -> None:
    """Mark, in each partition's batch, the record its next offset follows (its fingerprint
    is made when a flush reads it: ``PartitionBatch.last_record``)."""
    last: dict[TP, Record] = {}
    for record in records:  # in offset order per partition
        last[(record.topic, record.partition)] = record
    for tp, record in last.items():
        batch = batches.get(tp)
        if batch is not None and batch.next_offset == record.offset + 1:
            # Faust gives the broker's timestamp in seconds; the read-back, milliseconds.
            ms = round(record.timestamp * 1000) if record.timestamp else 0
            batch.ends_with(record.key, record.value, ms)


@dataclass(frozen=True, slots=True)
class Stored:
    """A partition's stored position and the fingerprint of the record before it."""

    next_offset: int
    last_record: bytes | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where to resume one partition, and why not where it was stored (None: it was)."""

    offset: int
    reason: str | None = None
    lost: int = 0


class Seen(NamedTuple):
    """What the broker answered for one partition: its log's start, the first record it
    gave at the offset read back (offset and fingerprint; None: none), its log's end."""

    log_start: int
    found: tuple[int, bytes] | None
    log_end: int | None


class Inconclusive(KafkaTimeoutError):  # type: ignore[misc]  # aiokafka is untyped
    """The broker holds the record before a stored position but did not send it in time
    (a leader moving, a slow fetch): decide nothing yet; the caller retries."""


def judge(
    stored: Stored,
    log_start: int,
    found: tuple[int, bytes] | None,
    log_end: int | None = None,
) -> Verdict:
    """The decision for one partition, from what the broker answered.

    ``found`` is the first record the broker gave at ``next_offset - 1`` (its offset and
    fingerprint), or None if it gave none. ``log_end`` is the end offset the broker
    reports, when it can be trusted (Apache Kafka; tansu reports its last batch's base
    offset, a lower bound, still enough to tell a record before it is there): a record
    that should be there but did not come is no verdict (until 2026-12-05 tansu's read-
    back slower than ``READ_BACK_S`` was taken for a replaced log and counted again)."""
    if stored.next_offset < log_start:  # a position of 0 too: never counted (review 89)
        return Verdict(log_start, "deleted", log_start - stored.next_offset)
    if stored.next_offset <= 0:
        return Verdict(0)  # nothing was read before it: nothing to read back
    if stored.next_offset == log_start and found is None:
        return Verdict(log_start)  # only the record before it is gone: nothing was lost
    if found is None:
        if log_end is not None and stored.next_offset - 1 < log_end:
            raise Inconclusive(f"no answer for offset {stored.next_offset - 1} yet")
        return Verdict(log_start, "replaced")
    offset, fingerprint_now = found
    if offset != stored.next_offset - 1:
        return Verdict(log_start, "replaced")
    if stored.last_record is not None and stored.last_record != fingerprint_now:
        return Verdict(log_start, "replaced")
    return Verdict(stored.next_offset)


class LogCheck:
    """Reads back the record before each stored position, on a consumer of its own, and
    says what the broker's log lost or replaced (the metrics EgovOffsetsLost reads)."""

    def __init__(
        self,
        bootstrap_servers: str,
        registry: CollectorRegistry,
        security: Mapping[str, object] | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._security = dict(security or {})  # the worker's Kafka credentials
        self.resets = Counter(
            "egov_metrics_log_resets_total",
            "Partitions whose position did not belong to the broker's log, at assignment"
            " or while read, by reason: replaced (broker restarted without its log, topic"
            " recreated: counted again from the log's start) or deleted (retention"
            " removed records before they were counted)",
            ["topic", "reason"],
            registry=registry,
        )
        self.lost = Counter(
            "egov_metrics_offsets_lost_total",
            "Offsets the broker deleted before this service counted them (retention)",
            ["topic"],
            registry=registry,
        )
        # What the health alert EgovOffsetsLost reads: a time, not the counter's
        # increase(), which misses a series born at its first loss (review 41).
        self.last_lost = Gauge(
            "egov_metrics_offsets_last_lost_timestamp_seconds",
            "When the broker last deleted offsets of the topic before they were counted"
            " (Unix time)",
            ["topic"],
            registry=registry,
        )

    async def resume_at(self, stored: Mapping[TP, Stored]) -> dict[TP, int]:
        """The offset to read each partition from next, checked against the log (a
        position of 0 against the log's start only)."""
        verdicts = await self.check(stored) if stored else {}
        for tp, verdict in verdicts.items():
            self.report(tp, stored[tp].next_offset, verdict)
        return {tp: v.offset for tp, v in verdicts.items()}

    def report(self, tp: TP, before: int, verdict: Verdict) -> None:
        """Say, in the metrics and the log, that ``tp`` does not go on from ``before``."""
        if verdict.reason is None:
            return
        topic, partition = tp
        self.resets.labels(topic, verdict.reason).inc()
        if verdict.reason == "deleted":
            self.lost.labels(topic).inc(verdict.lost)
            self.last_lost.labels(topic).set_to_current_time()
            log.error(
                "%s[%d]: the broker deleted %d offsets (%d..%d) before they were counted;"
                " resuming at %d",
                topic, partition, verdict.lost, before, before + verdict.lost - 1, verdict.offset,
            )  # fmt: skip
        else:
            log.warning(
                "%s[%d]: the position %d is not in the broker's log (restarted without"
                " it, or the topic was recreated); counting the log again from %d (dedup"
                " keys skip what was counted)",
                topic, partition, before, verdict.offset,
            )  # fmt: skip

    async def check(self, stored: Mapping[TP, Stored]) -> dict[TP, Verdict]:
        """Each partition's verdict (raises ``Inconclusive`` when one has no answer yet)."""
        seen = await self.observe(stored)
        return {tp: judge(s, *seen[tp]) for tp, s in stored.items()}

    async def observe(self, stored: Mapping[TP, Stored]) -> dict[TP, Seen]:
        """What the broker holds at each partition's start, end and ``next_offset - 1``."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="none",
            # tansu answers a waiting fetch late unless the wait is short.
            fetch_max_wait_ms=100,
            **self._security,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(*tp) for tp in stored]
            consumer.assign(tps)
            starts = await consumer.beginning_offsets(tps)
            # tansu's end is its last batch's base offset: below the true end, so still
            # a bound that says a record before it is in the log (not yet answered).
            ends = await consumer.end_offsets(tps)
            found = await self._read_back(consumer, stored, starts)
        finally:
            await consumer.stop()
        return {
            tp: Seen(starts[TopicPartition(*tp)], found.get(tp), ends.get(TopicPartition(*tp)))
            for tp in stored
        }

    @staticmethod
    async def _read_back(
        consumer: AIOKafkaConsumer,
        stored: Mapping[TP, Stored],
        starts: Mapping[TopicPartition, int],
    ) -> dict[TP, tuple[int, bytes]]:
        """The first record at ``next_offset - 1`` of each partition that has one."""
        waiting: set[TopicPartition] = set()
        for tp, s in stored.items():
            partition = TopicPartition(*tp)
            if s.next_offset - 1 >= starts[partition]:
                consumer.seek(partition, s.next_offset - 1)
                waiting.add(partition)
            else:
                consumer.pause(partition)  # before the log's start: nothing to read back
        found: dict[TP, tuple[int, bytes]] = {}
        deadline = time.monotonic() + READ_BACK_S
        while waiting and time.monotonic() < deadline:
            try:
                batches = await consumer.getmany(*waiting, timeout_ms=200, max_records=100)
            except OffsetOutOfRangeError as exc:  # Apache Kafka: beyond the log's end
                for partition in exc.args[0] if exc.args else ():
                    waiting.discard(partition)
                    consumer.pause(partition)
                continue
            for partition, records in batches.items():
                if records and partition in waiting:
                    first = records[0]
                    ms = first.timestamp if first.timestamp and first.timestamp > 0 else 0
                    print_ = fingerprint(first.key, first.value, ms)
                    found[(partition.topic, partition.partition)] = (first.offset, print_)
                    waiting.discard(partition)
                    consumer.pause(partition)
        return found
