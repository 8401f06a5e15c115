"""The broker's log watched while a worker reads it (services/metrics/logwatch.py): gaps
that lost records, fetches that went backwards, checkpoints read back (review 89)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from faust.types import TP
from prometheus_client import CollectorRegistry

from services.metrics.fetched import FetchedBatchConsumer
from services.metrics.logcheck import TP as Key
from services.metrics.logcheck import LogCheck, Seen, Stored
from services.metrics.logwatch import LogWatch, holds, lost_in_gap, print_of

DOCS = "egov.documents"
P0 = TP(DOCS, 0)


def record(offset: int, value: bytes = b"v", tp: TP = P0) -> Any:
    return SimpleNamespace(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        key=b"k",
        value=value,
        timestamp=1_700_000_000_000 + offset,
    )


class Broker:
    """What ``LogCheck.observe`` answers, per partition, and what it was asked."""

    def __init__(self) -> None:
        self.seen: dict[Key, Seen] = {}
        self.asked: list[dict[Key, Stored]] = []
        self.down = False

    async def observe(self, stored: Mapping[Key, Stored]) -> dict[Key, Seen]:
        self.asked.append(dict(stored))
        if self.down:
            raise KafkaConnectionError("broker away")
        return {tp: self.seen[tp] for tp in stored}


def watching() -> tuple[LogWatch, Broker, CollectorRegistry]:
    registry = CollectorRegistry()
    check = LogCheck("localhost:1", registry)
    broker = Broker()
    check.observe = broker.observe  # type: ignore[method-assign]
    return LogWatch(check), broker, registry


def lost(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("egov_metrics_offsets_lost_total", {"topic": DOCS})


def resets(registry: CollectorRegistry, reason: str) -> float | None:
    return registry.get_sample_value(
        "egov_metrics_log_resets_total", {"topic": DOCS, "reason": reason}
    )


def test_a_gap_lost_the_offsets_below_the_log_start() -> None:
    assert lost_in_gap(200, 300, 300) == 100  # retention, then aiokafka's reset
    assert lost_in_gap(200, 300, 400) == 100  # deleted on since: the fetched ones were there


def test_a_gap_the_log_still_starts_before_lost_nothing() -> None:
    """A transaction's commit marker (one offset) or an aborted transaction."""
    assert lost_in_gap(200, 201, 0) == 0
    assert lost_in_gap(200, 250, 200) == 0


def test_a_checkpoint_holds_only_on_its_own_record() -> None:
    point = Stored(10, print_of(record(9)))
    assert holds(point, Seen(0, (9, print_of(record(9))), 20)) is True
    assert holds(point, Seen(0, (9, print_of(record(9, b"new"))), 20)) is False
    assert holds(point, Seen(0, (11, print_of(record(9))), 20)) is False  # a marker at 9
    assert holds(point, Seen(0, None, 20)) is None  # no answer is no evidence
    assert holds(point, Seen(12, None, 20)) is True  # retention deleted it since


async def test_a_gap_past_the_log_start_is_reported_as_at_assignment() -> None:
    watch, _, registry = watching()
    watch.sought({P0: 200})
    asked: list[tuple[Any, ...]] = []

    async def earliest(*tps: Any) -> dict[Any, int]:
        asked.append(tps)
        return {P0: 300}

    await watch.gaps({P0: 300}, earliest)
    assert asked == [(P0,)]
    assert lost(registry) == 100 and resets(registry, "deleted") == 1
    assert registry.get_sample_value(
        "egov_metrics_offsets_last_lost_timestamp_seconds", {"topic": DOCS}
    )
    assert watch.seeks == {}  # the consumer already reads from the log's start


async def test_a_marker_gap_reports_nothing() -> None:
    watch, _, registry = watching()
    watch.sought({P0: 200})

    async def earliest(*tps: Any) -> dict[Any, int]:
        return {P0: 0}

    await watch.gaps({P0: 201}, earliest)
    assert lost(registry) is None


async def test_a_gap_the_broker_cannot_explain_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    watch, _, registry = watching()
    watch.sought({P0: 200})

    async def earliest(*tps: Any) -> dict[Any, int]:
        raise KafkaConnectionError("away")

    await watch.gaps({P0: 300}, earliest)
    assert lost(registry) is None
    assert "fetched from 300, not 200" in caplog.text


async def test_a_fetch_that_went_back_over_a_replaced_log_counts_it_again() -> None:
    watch, broker, registry = watching()
    watch.sought({P0: 0})
    watch.handed({P0: record(199)})
    broker.seen[P0] = Seen(0, None, 50)  # the new log ends before offset 199
    await watch.went_back([P0])
    assert broker.asked == [{P0: Stored(200, print_of(record(199)))}]
    assert resets(registry, "replaced") == 1
    assert watch.take_seeks({P0}) == {P0: 0}


async def test_a_fetch_that_went_back_over_the_same_log_is_sought_back() -> None:
    """A fetch from before a seek, say: the record before the expected offset is there."""
    watch, broker, registry = watching()
    watch.sought({P0: 0})
    watch.handed({P0: record(199)})
    broker.seen[P0] = Seen(0, (199, print_of(record(199))), 400)
    await watch.went_back([P0])
    assert resets(registry, "replaced") is None
    assert watch.take_seeks({P0}) == {P0: 200}


async def test_a_checkpoint_replaced_in_the_log_counts_the_log_again() -> None:
    watch, broker, registry = watching()
    watch.sought({P0: 0})
    watch.handed({P0: record(99)})  # the chain starts at the first record handed out
    watch.handed({P0: record(199)})
    broker.seen[P0] = Seen(0, (99, print_of(record(99))), 200)
    await watch.recheck()
    assert broker.asked[-1] == {P0: Stored(100, print_of(record(99)))}
    watch.handed({P0: record(699, b"new log")})  # the topic was recreated meanwhile
    broker.seen[P0] = Seen(0, (199, print_of(record(199, b"new log"))), 700)
    await watch.recheck()
    assert broker.asked[-1] == {P0: Stored(200, print_of(record(199)))}  # the next checkpoint
    assert resets(registry, "replaced") == 1
    assert watch.take_seeks({P0}) == {P0: 0}
    await watch.recheck()  # nothing of the new reading handed out yet: nothing to read back
    assert len(broker.asked) == 2


async def test_a_checkpoint_without_an_answer_is_read_back_again() -> None:
    """Kept, not replaced by the last record: no replacement falls between two."""
    watch, broker, registry = watching()
    watch.sought({P0: 0})
    watch.handed({P0: record(99)})
    broker.seen[P0] = Seen(0, None, 200)
    watch.handed({P0: record(199)})
    await watch.recheck()
    broker.down = True
    await watch.recheck()
    broker.down = False
    await watch.recheck()
    assert [asked[P0].next_offset for asked in broker.asked] == [100, 100, 100]
    assert resets(registry, "replaced") is None and watch.seeks == {}


async def test_revoked_partitions_are_forgotten_and_their_seeks_dropped() -> None:
    watch, broker, _ = watching()
    p1 = TP(DOCS, 1)
    watch.sought({P0: 0, p1: 0})
    watch.handed({P0: record(9), p1: record(9, tp=p1)})
    watch.seeks = {P0: 0, p1: 0}
    watch.forget([(DOCS, 1)])
    assert set(watch.expected) == {P0} and watch.seeks == {P0: 0}
    assert watch.take_seeks(set()) == {} and watch.seeks == {}  # no longer assigned either
    broker.seen[P0] = Seen(0, (9, print_of(record(9))), 10)
    await watch.recheck()
    assert list(broker.asked[-1]) == [P0]


def test_a_stand_in_for_an_undecodable_batch_is_no_checkpoint() -> None:
    watch, _, _ = watching()
    watch.handed({P0: record(5, value=None)})  # type: ignore[arg-type]
    assert watch.expected == {P0: 6} and watch._points == {}


class WatchedConsumer(SimpleNamespace):
    """What ``_deliver_one_fetch`` reads of Faust's consumer, with the app's watch."""

    def __init__(self, watch: LogWatch, fetches: list[dict[TP, list[Any]]]) -> None:
        super().__init__(
            app=SimpleNamespace(
                event_topics=frozenset({DOCS}),
                consumer_generation_id=1,
                monitor=SimpleNamespace(track_tp_end_offset=lambda tp, offset: None),
                log_watch=watch,
            ),
            should_stop=False,
            flow_active=True,
            _read_offset={},
            _handing={},
            _buffered_partitions=set(),
            waited=[],
            starts={},
        )
        self._fetches = fetches

    async def _wait_next_records(self, timeout: float) -> Any:  # noqa: ASYNC109 (Faust's)
        return self._fetches.pop(0), None

    async def sleep(self, seconds: float) -> None:
        return None

    def highwater(self, tp: TP) -> int:
        return 0

    def assignment(self) -> set[TP]:
        return {P0}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.starts.get(tp, 0) for tp in tps}

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.waited.append(dict(partitions))
        self._read_offset.update(partitions)

    async def _seek_for(self, watch: LogWatch) -> None:
        await FetchedBatchConsumer._seek_for(self, watch)  # type: ignore[arg-type]

    async def _judge_jumps(self, watch: LogWatch, gaps: Any, back: Any) -> None:
        await FetchedBatchConsumer._judge_jumps(self, watch, gaps, back)  # type: ignore[arg-type]


async def deliver(consumer: WatchedConsumer) -> list[int]:
    counted: list[int] = []

    async def handler(batch: Sequence[Any]) -> None:
        counted.extend(r.offset for r in batch)

    await FetchedBatchConsumer._deliver_one_fetch(consumer, handler, frozenset({DOCS}))  # type: ignore[arg-type]
    return counted


async def test_a_fetch_past_a_deleted_range_is_counted_and_reported() -> None:
    watch, _, registry = watching()
    watch.sought({P0: 200})
    consumer = WatchedConsumer(watch, [{P0: [record(o) for o in range(300, 305)]}])
    consumer.starts[P0] = 300
    assert await deliver(consumer) == [300, 301, 302, 303, 304]
    assert lost(registry) == 100
    assert watch.expected == {P0: 305}


async def test_a_fetch_that_went_back_is_not_counted_and_the_watch_seeks() -> None:
    watch, broker, registry = watching()
    watch.sought({P0: 0})
    watch.handed({P0: record(199)})
    consumer = WatchedConsumer(
        watch, [{P0: [record(o, b"new") for o in range(0, 5)]}, {P0: [record(0, b"new")]}]
    )
    broker.seen[P0] = Seen(0, None, 5)
    assert await deliver(consumer) == []  # below what was handed out: judged first
    assert resets(registry, "replaced") == 1
    assert await deliver(consumer) == [0]  # sought to the new log's start, then fetched
    assert consumer.waited == [{P0: 0}]
    assert watch.expected == {P0: 1}


async def test_a_fetch_where_the_counting_expects_asks_the_broker_nothing() -> None:
    watch, broker, _ = watching()
    watch.sought({P0: 10})
    consumer = WatchedConsumer(watch, [{P0: [record(o) for o in range(10, 12)]}])

    async def no(*tps: TP) -> dict[TP, int]:
        raise AssertionError("asked the broker without a jump")

    consumer.earliest_offsets = no
    assert await deliver(consumer) == [10, 11]
    assert broker.asked == []
