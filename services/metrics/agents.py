"""The stream agent and the worker's periodic tasks, wired onto the Faust app.

One agent reads all three family topics, a step (batch of records, from
``take_events``) at a time: decode, dead-letter what is invalid (and wait for the
broker to have it), then count the rest in one PostgreSQL transaction.

A broker or database that is down blocks the step until it answers (``retrying``).
Any other exception crashes the worker (``CrashingSupervisor``): Faust's default
supervisor would restart the agent where the consumer stands, past the failed step,
and the next flush would store a later offset, losing those events. A restarted worker
resumes from the offsets stored in PostgreSQL instead, like after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterable, Callable, Sequence
from datetime import datetime
from typing import Any

import faust
from aiokafka.errors import KafkaError
from mode import CrashingSupervisor

from services.metrics.heap import HeapTrimmer
from services.metrics.periods import Periods
from services.metrics.pipeline import (
    INFRASTRUCTURE_ERRORS,
    DeadLetter,
    PartitionState,
    Prepared,
    Preparer,
    Record,
    retrying,
)
from services.metrics.settings import MetricsSettings

log = logging.getLogger(__name__)

YIELD_EVERY_BYTES = 64 * 1024
"""Record bytes decoded (~200 events, a few ms) between turns given to the event loop."""

DEAD_LETTER_ERRORS = (*INFRASTRUCTURE_ERRORS, KafkaError)
"""A dead-letter send that fails this way (broker down: KafkaTimeoutError) is retried:
the step does not move on until the broker has every dead letter."""

DEAD_LETTER_TIMEOUT_S = 30.0
"""One attempt to dead-letter a record; Faust's producer would wait 20 minutes."""


def record_of(event: Any) -> Record:
    message = event.message
    headers = message.headers or ()
    if isinstance(headers, dict):
        headers = list(headers.items())
    timestamp = message.timestamp if message.timestamp and message.timestamp > 0 else None
    return Record(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        tuple(headers),
        timestamp,
    )


def parts(records: Sequence[Record], max_bytes: int) -> list[Sequence[Record]]:
    """``records`` cut, in order, into runs holding at most ``max_bytes`` of values
    (a record larger than that is a run of its own)."""
    runs: list[Sequence[Record]] = []
    start = size = 0
    for i, record in enumerate(records):
        length = len(record.value or b"")
        if size and size + length > max_bytes:
            runs.append(records[start:i])
            start, size = i, 0
        size += length
    if start < len(records):
        runs.append(records[start:])
    return runs


class Counting:
    """One step of the agent: prepare, dead-letter, flush, report.

    A step is counted in parts of at most ``flush_bytes`` of record values, one flush
    (transaction) each: the flush of a part runs while the next part is decoded
    (PostgreSQL works on the other core meanwhile). At most one flush is in flight, and
    flushes commit in order.
    """

    def __init__(
        self,
        preparer: Preparer,
        state: PartitionState,
        clock: Callable[[], datetime],
        flush_bytes: int = 8 * 2**20,
        retry_delay_s: float = 0.5,
    ) -> None:
        self.preparer = preparer
        self.state = state
        self.clock = clock
        self.flush_bytes = flush_bytes
        self.retry_delay_s = retry_delay_s
        self._in_flight: asyncio.Task[None] | None = None

    async def step(self, records: Sequence[Record], send: Callable[[DeadLetter], Any]) -> None:
        """Decode ``records`` and start counting them; returns once the last flush is started."""
        for part in parts(records, self.flush_bytes):
            await self._step(part, send)

    async def _step(self, records: Sequence[Record], send: Callable[[DeadLetter], Any]) -> None:
        now = self.clock()
        prepared = Prepared()
        for piece in parts(records, YIELD_EVERY_BYTES):
            self.preparer.prepare(piece, now, prepared)
            # Decoding is CPU work on the event loop: give the flush in flight a turn to
            # send its next statement, so PostgreSQL keeps working meanwhile.
            await asyncio.sleep(0)
        metrics = self.state.metrics
        if prepared.dead_letters:
            # Delivered before the offsets move on: a crash in between re-sends them
            # (at least once), it never loses them. Each is retried on its own, so a
            # broker outage re-sends only the ones it did not take.
            await asyncio.gather(*(self._dead_letter(send, d) for d in prepared.dead_letters))
            for d in prepared.dead_letters:
                metrics.dead_lettered.labels(d.topic, d.reason).inc()
        for event_type, n in Counter(prepared.too_late).items():
            metrics.too_late.labels(event_type).inc(n)
        for path, n in prepared.paths.items():
            metrics.records.labels(path).inc(n)
        # Summed while the previous flush is still in PostgreSQL, not inside this one.
        for batch in prepared.batches.values():
            batch.sum_ahead()
        await self.drain()
        self._in_flight = asyncio.create_task(self._flush(prepared, now))

    async def _dead_letter(self, send: Callable[[DeadLetter], Any], dead: DeadLetter) -> None:
        async def attempt() -> None:
            await send(dead)

        what = f"dead-lettering a record of {dead.topic} ({dead.reason})"
        await retrying(what, attempt, self.retry_delay_s, DEAD_LETTER_ERRORS)

    async def drain(self) -> None:
        """Wait for the flush in flight, if any (and raise what it raised)."""
        task, self._in_flight = self._in_flight, None
        if task is not None:
            await task

    async def _flush(self, prepared: Prepared, now: datetime) -> None:
        periods = Periods.at(now)
        result = await self.state.flush(list(prepared.batches.values()), periods)
        metrics = self.state.metrics
        metrics.flushes.inc()
        if result.fenced:
            metrics.fenced.inc(len(result.fenced))
        done = self.clock().timestamp()
        today = periods.day
        counted = result.counted  # a flush can count 100,000 events: comprehensions only
        processed = Counter([c.type for c in counted])
        late = Counter([c.type for c in counted if c.day < today])
        crosswalked = Counter([c.type for c in counted if c.crosswalked])
        lags = [done - c.epoch for c in counted]
        for packed in result.counted_packed:  # whole groups, and the lags of their events
            for event_type, events, day, via_crosswalk in packed.groups():
                processed[event_type] += events
                if day < today:
                    late[event_type] += events
                if via_crosswalk:
                    crosswalked[event_type] += events
            lags += [done - epoch for epoch in packed.epochs]
        for counter, counts in (
            (metrics.processed, processed),
            (metrics.late, late),
            (metrics.crosswalked, crosswalked),
            (metrics.duplicates, Counter(c.type for c in result.duplicates)),
        ):
            for event_type, n in counts.items():
                counter.labels(event_type).inc(n)
        metrics.event_lag.observe_many(lags)
        shift = done - now.timestamp()
        metrics.ingest_lag.observe_many(lag + shift for lag in prepared.ingest_lags)


def register_agents(app: faust.App, settings: MetricsSettings, counting: Counting) -> None:
    """Attach the event agent to ``app``."""
    source = app.topic(
        *settings.event_topics,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    dead_letter_topic = app.topic(
        settings.topic_dead_letter, key_serializer="raw", value_serializer="raw"
    )

    async def deliver(dead: DeadLetter) -> None:
        future = await dead_letter_topic.send(
            key=dead.key, value=dead.value, headers=list(dead.headers)
        )
        await future

    async def send(dead: DeadLetter) -> None:
        await asyncio.wait_for(deliver(dead), DEAD_LETTER_TIMEOUT_S)

    heap = HeapTrimmer()

    async def count_events(stream: AsyncIterable[Any]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.metrics_batch_size, within=settings.metrics_flush_interval_s
        ):
            records = [record_of(e) for e in events]
            await counting.step(records, send)
            heap.processed(sum(len(r.value or b"") for r in records))
            del events, records  # before trimming: the step's records are garbage now
            heap.maybe_trim()

    # Crash the worker on an exception that is not infrastructure (see the docstring).
    app.agent(source, name="count-events", supervisor_strategy=CrashingSupervisor)(count_events)
