"""Whole fetches to the counting code (services/metrics/fetched.py): one call per fetch,
each partition's records in offset order, nothing below the read offset, nothing of a
partition no longer active, nothing from a fetch a rebalance overtook."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from services.metrics.app import seek_to_stored
from services.metrics.fetched import FetchedBatchConsumer

DOCS = "egov.documents"


def fetched(tp: TP, offsets: range) -> list[Any]:
    return [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o) for o in offsets]


class FakeConsumer(SimpleNamespace):
    """What ``_deliver_one_fetch`` reads of Faust's consumer."""

    def __init__(self, records: dict[TP, list[Any]], active: set[TP] | None) -> None:
        super().__init__(
            app=SimpleNamespace(
                event_topics=frozenset({DOCS}),
                consumer_generation_id=1,
                monitor=SimpleNamespace(track_tp_end_offset=lambda tp, offset: None),
            ),
            should_stop=False,
            flow_active=True,
            _read_offset={},
            _handing={},
            _buffered_partitions=set(),
            sought=0,
            per_message=[],
            highwaters={},
        )
        self._fetch = (records, active)

    async def _wait_next_records(self, timeout: float) -> Any:  # noqa: ASYNC109 (Faust's signature)
        return self._fetch

    async def sleep(self, seconds: float) -> None:
        return None

    async def perform_seek(self) -> None:
        self.sought += 1

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp, 0)

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    async def callback(self, message: Any) -> None:
        self.per_message.append(message)

    def _to_message(self, tp: TP, record: Any) -> Any:
        return record


async def deliver(consumer: FakeConsumer) -> list[list[Any]]:
    calls: list[list[Any]] = []

    async def handler(batch: Sequence[Any]) -> None:
        calls.append(list(batch))

    await FetchedBatchConsumer._deliver_one_fetch(consumer, handler, frozenset({DOCS}))  # type: ignore[arg-type]
    return calls


async def test_a_fetch_is_one_call_in_offset_order_per_partition() -> None:
    p0, p1, gone = TP(DOCS, 0), TP(DOCS, 1), TP(DOCS, 2)
    records = {
        p0: fetched(p0, range(5, 9)),
        p1: fetched(p1, range(0, 3)),
        gone: fetched(gone, range(2)),
    }
    consumer = FakeConsumer(records, active={p0, p1})
    consumer._read_offset[p0] = 7  # sought there: 5 and 6 were handed out before
    (batch,) = await deliver(consumer)
    assert [(r.partition, r.offset) for r in batch] == [(0, 7), (0, 8), (1, 0), (1, 1), (1, 2)]
    assert consumer._read_offset == {p0: 9, p1: 3}
    assert consumer.per_message == []


async def test_a_fetch_overtaken_by_a_rebalance_is_not_counted() -> None:
    p0 = TP(DOCS, 0)
    consumer = FakeConsumer({p0: fetched(p0, range(3))}, active={p0})
    consumer.flow_active = False
    assert await deliver(consumer) == [] and consumer.sought == 1
    assert consumer._read_offset == {}


async def test_records_of_other_topics_keep_faust_s_per_message_path() -> None:
    other = TP("faust-internal", 0)
    consumer = FakeConsumer({other: fetched(other, range(2))}, active=None)
    assert await deliver(consumer) == []
    assert [r.offset for r in consumer.per_message] == [0, 1]


def test_reading_behind_while_a_partition_s_high_watermark_is_above_its_read_offset() -> None:
    p0, p1, other = TP(DOCS, 0), TP(DOCS, 1), TP("faust-internal", 0)
    consumer = FakeConsumer({}, active=None)
    consumer.highwaters = {p0: 10, p1: 4, other: 50}
    consumer._read_offset.update({p0: 10, p1: 4, other: 0})
    behind = FetchedBatchConsumer.reading_behind
    assert not behind(consumer)  # type: ignore[arg-type]  # other topics are not ours
    consumer._read_offset[p1] = 3  # one offset left: a transaction's commit marker, say
    assert not behind(consumer)  # type: ignore[arg-type]
    consumer._read_offset[p1] = 2  # a fetch handed out offsets up to 1 of 0..3
    assert behind(consumer)  # type: ignore[arg-type]
    consumer._read_offset[p1] = None  # nothing handed out yet: not known to be behind
    consumer.highwaters[p0] = None
    assert not behind(consumer)  # type: ignore[arg-type]


async def test_the_fetch_being_counted_is_fetched_but_not_yet_read() -> None:
    """While the handler counts a fetch: ``fetching_behind`` only if the broker had more
    than the fetch (a flush waits for more only then, services/metrics/agents.py);
    ``reading_behind`` whenever the fetch had records to count (not caught up yet)."""
    p0 = TP(DOCS, 0)
    consumer = FakeConsumer({p0: fetched(p0, range(4))}, active=None)
    seen: list[tuple[bool, bool]] = []

    async def handler(batch: Sequence[Any]) -> None:
        seen.append(
            (
                FetchedBatchConsumer.fetching_behind(consumer),  # type: ignore[arg-type]
                FetchedBatchConsumer.reading_behind(consumer),  # type: ignore[arg-type]
            )
        )

    consumer._read_offset[p0] = 0  # sought to its stored position
    consumer.highwaters = {p0: 4}  # the fetch held everything
    await FetchedBatchConsumer._deliver_one_fetch(consumer, handler, frozenset({DOCS}))  # type: ignore[arg-type]
    consumer._fetch = ({p0: fetched(p0, range(4, 8))}, None)
    consumer.highwaters = {p0: 20}  # twelve more wait in the broker
    await FetchedBatchConsumer._deliver_one_fetch(consumer, handler, frozenset({DOCS}))  # type: ignore[arg-type]
    assert seen == [(False, True), (True, True)]
    assert consumer._read_offset == {p0: 8} and consumer._handing == {}
    behind = (FetchedBatchConsumer.fetching_behind, FetchedBatchConsumer.reading_behind)
    assert [b(consumer) for b in behind] == [True, True]  # type: ignore[arg-type]
    consumer.highwaters = {p0: 8}
    assert [b(consumer) for b in behind] == [False, False]  # type: ignore[arg-type]


async def test_a_rebalance_while_a_fetch_is_counted_keeps_the_positions_it_sought() -> None:
    """The handler awaits the counting; a rebalance meanwhile seeks the partition back to
    its stored position. That position stands: the records from it are handed over
    again, not filtered out as read."""
    p0 = TP(DOCS, 0)
    consumer = FakeConsumer({p0: fetched(p0, range(10, 14))}, active=None)
    consumer._read_offset[p0] = 10

    async def handler(batch: Sequence[Any]) -> None:
        consumer.app.consumer_generation_id += 1  # revoked and assigned again
        consumer._read_offset[p0] = 10  # seek_to_stored: nothing of it was flushed

    await FetchedBatchConsumer._deliver_one_fetch(consumer, handler, frozenset({DOCS}))  # type: ignore[arg-type]
    assert consumer._read_offset == {p0: 10}
    seen: list[list[int]] = []

    async def again(batch: Sequence[Any]) -> None:
        seen.append([r.offset for r in batch])

    await FetchedBatchConsumer._deliver_one_fetch(consumer, again, frozenset({DOCS}))  # type: ignore[arg-type]
    assert seen == [[10, 11, 12, 13]]  # handed over again
    assert consumer._read_offset == {p0: 14}


class SeekingConsumer(SimpleNamespace):
    """What ``seek_to_stored`` uses of Faust's consumer; ``seek`` is the racy one."""

    def __init__(self, assigned: set[TP]) -> None:
        async def positions(tps: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
            return {tp: 40 + tp[1] for tp in tps}

        super().__init__(
            app=SimpleNamespace(positions=positions, event_topics=frozenset({DOCS})),
            waited=[],
        )
        self._assigned = assigned

    def assignment(self) -> set[TP]:
        return self._assigned

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.waited.append(dict(partitions))

    async def seek(self, partition: TP, offset: int) -> None:
        raise AssertionError("Consumer.seek runs aiokafka's seek outside its thread")


async def test_stored_positions_are_sought_in_the_consumers_own_thread() -> None:
    """Through ``seek_wait`` (Faust runs it in the consumer thread), all at once: only
    the event topics, each at the position its owner stored."""
    consumer = SeekingConsumer({TP(DOCS, 0), TP(DOCS, 3), TP("other", 1)})
    await seek_to_stored(consumer)
    assert consumer.waited == [{TP(DOCS, 0): 40, TP(DOCS, 3): 43}]
