"""The stream agent and the worker's periodic tasks, wired onto the Faust app.

One agent reads all three family topics, a step (batch of records, from
``take_events``) at a time: decode, dead-letter what is invalid (and wait for the
broker to have it), then count the rest in one PostgreSQL transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterable, Callable, Sequence
from datetime import datetime
from typing import Any

import faust

from services.metrics.periods import Periods
from services.metrics.pipeline import DeadLetter, PartitionState, Prepared, Preparer, Record
from services.metrics.settings import MetricsSettings

log = logging.getLogger(__name__)


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


class Counting:
    """One step of the agent: prepare, dead-letter, flush, report.

    The flush of a step runs while the next step is decoded (PostgreSQL works on the
    other core meanwhile); at most one flush is in flight, and flushes commit in order.
    """

    def __init__(
        self,
        preparer: Preparer,
        state: PartitionState,
        clock: Callable[[], datetime],
    ) -> None:
        self.preparer = preparer
        self.state = state
        self.clock = clock
        self._in_flight: asyncio.Task[None] | None = None

    async def step(self, records: Sequence[Record], send: Callable[[DeadLetter], Any]) -> Prepared:
        """Decode ``records`` and start counting them; returns once the flush is started."""
        now = self.clock()
        prepared = self.preparer.prepare(records, now)
        metrics = self.state.metrics
        if prepared.dead_letters:
            # Delivered before the offsets move on: a crash in between re-sends them
            # (at least once), it never loses them.
            await asyncio.gather(*(send(d) for d in prepared.dead_letters))
            for d in prepared.dead_letters:
                metrics.dead_lettered.labels(d.topic, d.reason).inc()
        for event_type, n in Counter(prepared.too_late).items():
            metrics.too_late.labels(event_type).inc(n)
        await self.drain()
        self._in_flight = asyncio.create_task(self._flush(prepared, now))
        return prepared

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
        for event_type, n in Counter(c.type for c in result.counted).items():
            metrics.processed.labels(event_type).inc(n)
        late = Counter(c.type for c in result.counted if c.day < today)
        for event_type, n in late.items():
            metrics.late.labels(event_type).inc(n)
        for event_type, n in Counter(c.type for c in result.counted if c.crosswalked).items():
            metrics.crosswalked.labels(event_type).inc(n)
        for event_type, n in Counter(c.type for c in result.duplicates).items():
            metrics.duplicates.labels(event_type).inc(n)
        metrics.event_lag.observe_many(done - c.epoch for c in result.counted)
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

    async def send(dead: DeadLetter) -> None:
        future = await dead_letter_topic.send(
            key=dead.key, value=dead.value, headers=list(dead.headers)
        )
        await future

    async def count_events(stream: AsyncIterable[Any]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.metrics_batch_size, within=settings.metrics_flush_interval_s
        ):
            await counting.step([record_of(e) for e in events], send)

    app.agent(source, name="count-events")(count_events)
