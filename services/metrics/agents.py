"""The counting of the event topics, wired onto the Faust app.

The app's consumer hands over all three family topics a fetch at a time
(services/metrics/fetched.py: no task or future per message), in steps of at most
``EGOV_METRICS_BATCH_SIZE`` records; ``Counting`` decodes each step, dead-letters what
is invalid (waiting for the broker to have it) and counts the rest in group commits,
one PostgreSQL transaction at a time.

A broker or database that is down blocks counting until it answers (``retrying``). A
flush PostgreSQL refuses for the data of a few records dead-letters those records and
counts the rest (services/metrics/refusals.py). Any other exception crashes the worker
(``app.crash``, and the process exits within ``CRASH_EXIT_S``): carrying on where the
consumer stands, past the failed step, the next flush would store a later offset,
losing those events. A restarted worker resumes from the offsets stored in PostgreSQL
instead, like after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from services.common.stalls import CountingStall
from services.metrics import refusals
from services.metrics.app import MetricsApp
from services.metrics.fetched import FetchedBatchConsumer
from services.metrics.figures import TopicPartition
from services.metrics.heap import HeapTrimmer
from services.metrics.logcheck import mark_last_records
from services.metrics.periods import Periods
from services.metrics.pipeline import (
    INFRASTRUCTURE_ERRORS,
    DeadLetter,
    PartitionState,
    Prepared,
    Preparer,
    Record,
    reference_of,
    retrying,
)
from services.metrics.rekeying import Forward
from services.metrics.settings import MetricsSettings
from services.metrics.stallwatch import StallWatch

log = logging.getLogger(__name__)

EX_SOFTWARE = 70
"""sysexits.h: an internal software error."""

YIELD_EVERY_BYTES = 64 * 1024
"""Record bytes decoded (~200 events, a few ms) between turns given to the event loop."""

DEAD_LETTER_ERRORS = (*INFRASTRUCTURE_ERRORS, KafkaError)
"""A dead-letter send that fails this way (broker down: KafkaTimeoutError) is retried:
the step does not move on until the broker has every dead letter."""

TOO_LARGE_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError)
"""The producer or the broker refused a dead letter for its size (a topic whose
``max.message.bytes`` is below what ``pipeline.DEAD_LETTER_MAX_BYTES`` allows): it goes
as a reference instead, never retried as it is."""

DEAD_LETTER_TIMEOUT_S = 30.0
"""One attempt to dead-letter a record; Faust's producer would wait 20 minutes."""

CRASH_EXIT_S = 15.0
"""A crashing worker that has not exited by then (Faust's shutdown waiting on a busy
broker or database) exits at once: its state is in PostgreSQL, and the process
supervisor restarts it from there, as after a SIGKILL."""


def exit_soon(timeout_s: float = CRASH_EXIT_S) -> None:
    """Make sure the process exits within ``timeout_s``, shut down cleanly or not."""
    timer = threading.Timer(timeout_s, os._exit, (EX_SOFTWARE,))
    timer.daemon = True  # a clean exit before then is not held up by it
    timer.start()


def record_of(fetched: Any) -> Record:
    """The pipeline's record of an aiokafka ``ConsumerRecord`` (timestamp in ms)."""
    ms = fetched.timestamp
    return Record(
        fetched.topic,
        fetched.partition,
        fetched.offset,
        fetched.key,
        fetched.value,
        tuple(fetched.headers or ()),
        ms / 1000.0 if ms and ms > 0 else None,
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


def _partition_counts(app: MetricsApp, topics: Sequence[str]) -> dict[str, int]:
    """The event topics' partition counts from the consumer's metadata (those it knows):
    where a record keyed by its province belongs (services/metrics/rekeying.py)."""
    counts: dict[str, int] = {}
    consumer = app._consumer  # never made here: only the one fetching has metadata
    if consumer is None:
        return counts
    try:
        # aiokafka's own consumer, in Faust's consumer thread: its cluster metadata (the
        # group coordinator's snapshot, Faust's topic_partitions, may be empty).
        kafka = cast(Any, consumer)._thread._ensure_consumer()
        for topic in topics:
            partitions = kafka.partitions_for_topic(topic)
            if partitions:
                counts[topic] = len(partitions)
    except Exception:  # not started, or stopping: partitions are then not checked
        log.debug("no partition counts from the consumer", exc_info=True)
    return counts


def _never_behind() -> bool:
    return False


def _reading_behind(app: MetricsApp, fetched: bool = False) -> bool:
    """``FetchedBatchConsumer.reading_behind`` of the app's consumer, or with ``fetched``
    its ``fetching_behind``; False when it cannot tell."""
    consumer = app.consumer  # a FetchedBatchConsumer but in Faust's test contexts
    try:
        if not isinstance(consumer, FetchedBatchConsumer):
            return False
        return consumer.fetching_behind() if fetched else consumer.reading_behind()
    except Exception:  # advice on when to publish, never a reason to crash the counting
        # Not started, or stopping: its consumer thread knows of nothing more to read.
        log.debug("could not tell whether the consumer reads behind", exc_info=True)
        return False


async def _no_step_yet(dead: DeadLetter) -> None:
    raise RuntimeError("a dead letter before any step")  # a step sets where they go


UNFORWARDABLE = "unforwardable"
"""Dead-letter reason of events keyed by another value than their province and too large
to publish again keyed by it (services/metrics/rekeying.py)."""


def _unforwardable(forward: Forward, exc: BaseException) -> DeadLetter:
    detail = (
        f"keyed {forward.had_key!r}, not by its events' province {forward.key.decode()!r} "
        f"(schemas/CONTRACT.md, section 5), and too large to publish again keyed by it: {exc!r}"
    )[:2000]
    headers = [
        *forward.headers,
        ("dlq_reason", UNFORWARDABLE.encode()),
        ("dlq_detail", detail.encode()),
        ("dlq_source", forward.source.encode()),
    ]
    return DeadLetter(forward.had_key, forward.value, headers, UNFORWARDABLE, forward.topic,
                      forward.partition, forward.offset, detail)  # fmt: skip


async def _nowhere_to_forward(forward: Forward) -> None:
    # Raised, so the worker stops rather than move the offsets past events never counted.
    raise RuntimeError(f"events of {forward.source} to forward, and no producer to send them")


class Counting:
    """Steps of the agent: decode records as they come, count them in group commits.

    At most one flush (PostgreSQL transaction) is in flight. Records decoded meanwhile
    wait in ``pending`` and all go into the next flush, started as soon as the one in
    flight commits: when the worker keeps up, every step is flushed at once (latency);
    under load a flush carries everything decoded during the previous one (up to
    ``flush_bytes`` of record values, then decoding waits), so each figure row and each
    transaction is paid for more events (throughput). Flushes commit in order, and a
    partition's offset moves only with the flush that counted its records.

    Decoding is summed as it goes (``PartitionBatch.sum_ahead``): a flush that starts
    has little left to do while PostgreSQL waits.
    """

    def __init__(
        self,
        preparer: Preparer,
        state: PartitionState,
        clock: Callable[[], datetime],
        flush_bytes: int = 16 * 2**20,
        retry_delay_s: float = 0.5,
        on_failure: Callable[[BaseException], None] | None = None,
        backlog_flush_interval_s: float = 0.0,
        stall: StallWatch | None = None,
    ) -> None:
        self.preparer = preparer
        self.state = state
        self.clock = clock
        self.flush_bytes = flush_bytes
        self.retry_delay_s = retry_delay_s
        self.backlog_flush_interval_s = backlog_flush_interval_s
        """While ``reading_behind``, the least time between the starts of two flushes
        (``MetricsSettings.metrics_backlog_flush_interval_s``)."""
        self._pending = Prepared()
        self._pending_bytes = 0
        self._in_flight = 0
        """Records of the flush in flight (taken from ``_pending``), until it settles."""
        self.stall = stall if stall is not None else StallWatch()
        """How long records have waited with no flush committed (services/metrics/
        stallwatch.py): past its threshold the worker's figures are no current reading."""
        self._flusher: asyncio.Task[None] | None = None
        self._flush_started = float("-inf")
        self._taken = asyncio.Event()
        self._grown = asyncio.Event()
        self._send: Callable[[DeadLetter], Any] = _no_step_yet
        self._held: list[refusals.Piece] = []
        """Records of a refused flush that no other record could vouch for (refusals.py):
        they go into the next flush again, uncounted until then, their offsets unmoved."""
        self._held_readings: dict[TopicPartition, int] = {}
        self.on_failure = on_failure
        """Called when a flush fails with what is not infrastructure (the worker wires it
        to crash at once: the agent itself may wait for records that never come)."""
        self.on_caught_up: Callable[[], None] | None = None
        """Called when a flush commits, nothing decoded waits for the next and the consumer
        has nothing more to hand over (``reading_behind``): everything there is to read is
        counted (the worker wires it to publish the /v1/kpis snapshot without waiting for
        its interval, services/metrics/snapshot.py)."""
        self.reading_behind: Callable[[], bool] = _never_behind
        """Whether the consumer knows of records it has not handed over and seen counted
        yet (a backlog between two fetches, or the fetch being counted),
        services/metrics/fetched.py."""
        self.fetching_behind: Callable[[], bool] = _never_behind
        """Whether the broker has records beyond those fetched (the fetch being counted is
        in hand): a flush waits for more of a backlog only then (``_gather_while_behind``)."""
        self.forward: Callable[[Forward], Awaitable[None]] = _nowhere_to_forward
        """Publishes events again keyed by their province (services/metrics/rekeying.py;
        the worker wires it to its producer)."""
        self._said_keys: set[tuple[str, bytes | None]] = set()
        """(topic, key) of the misplaced records already logged: once each, the counter
        and the health alert say the rest."""

    async def step(self, records: Sequence[Record], send: Callable[[DeadLetter], Any]) -> None:
        """Decode ``records`` into the pending flush; returns once they are decoded (their
        flush may still be pending or in flight: ``drain`` waits for it)."""
        self._send = send
        for piece in parts(records, YIELD_EVERY_BYTES):
            self._raise_failure()
            while self._pending_bytes >= self.flush_bytes and self._flusher is not None:
                await self._wait_taken(self._flusher)
            pending, now = self._pending, self.clock()
            self._drop_stale(pending)
            self.preparer.prepare(piece, now, pending)
            for tp, batch in pending.batches.items():
                if batch.reading < 0:
                    batch.reading = self.state.readings.get(tp, 0)
            pending.pieces.append((piece, now))
            self.stall.waiting()
            mark_last_records(pending.batches, piece)
            for batch in pending.batches.values():
                batch.sum_ahead()
            self._pending_bytes += sum(len(r.value or b"") for r in piece)
            self._grown.set()
            if self._flusher is None:
                self._flusher = asyncio.create_task(self._flush_pending())
            # Decoding is CPU work on the event loop: give the flush in flight a turn to
            # send its next statement, so PostgreSQL keeps working meanwhile.
            await asyncio.sleep(0)
        self._raise_failure()

    def _drop_stale(self, pending: Prepared) -> None:
        """Forget pending batches of a partition started again since they were decoded (a
        rebalance took it and gave it back): the consumer hands their records over again,
        from the stored position, and they must not share a batch with the new reading's."""
        readings = self.state.readings
        stale = {tp for tp, b in pending.batches.items() if b.reading != readings.get(tp, 0)}
        if not stale:
            return
        log.info("dropping pending records of %s, read again from their stored positions",
                 sorted(stale))  # fmt: skip
        for tp in stale:
            del pending.batches[tp]
        pending.pieces = [
            (kept, at)
            for records, at in pending.pieces
            if (kept := [r for r in records if (r.topic, r.partition) not in stale])
        ]

    def waiting_records(self) -> int:
        """Records handed over and not counted yet: pending, and in the flush in flight."""
        return self._in_flight + sum(len(records) for records, _ in self._pending.pieces)

    def stalled(self) -> CountingStall | None:
        """The stall to state (no flush committed for the watch's threshold while records
        wait), or None: the worker's web views answer from it."""
        return self.stall.stall(self.waiting_records())

    async def drain(self) -> None:
        """Wait until everything decoded is counted (and raise what a flush raised)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)
            self._raise_failure()

    def _raise_failure(self) -> None:
        """Raise what the flusher raised: the step, and so the worker, crashes with it."""
        flusher = self._flusher
        if flusher is not None and flusher.done():
            flusher.result()

    async def _wait_taken(self, flusher: asyncio.Task[None]) -> None:
        """Wait for the flusher to take the pending records (or to fail)."""
        self._taken.clear()
        taken = asyncio.ensure_future(self._taken.wait())
        try:
            await asyncio.wait({taken, flusher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            taken.cancel()
        self._raise_failure()

    async def _flush_pending(self) -> None:
        """Count what is pending, flush after flush, until nothing is. On an exception the
        task stays done with it, and the next step raises it."""
        try:
            while self._pending.batches or self._pending.dead_letters:
                await self._gather_while_behind()
                self._flush_started = asyncio.get_running_loop().time()
                prepared, self._pending, self._pending_bytes = self._pending, Prepared(), 0
                self._in_flight = sum(len(records) for records, _ in prepared.pieces)
                self._taken.set()
                await self._count(prepared)
                self._in_flight = 0
                self.stall.committed(self.waiting_records() > 0)
        except Exception as exc:
            if self.on_failure is not None:
                self.on_failure(exc)
            raise
        self._flusher = None
        self.stall.committed(self.waiting_records() > 0)
        if self.on_caught_up is not None and not self.reading_behind():
            self.on_caught_up()

    async def _gather_while_behind(self) -> None:
        """Before a flush, while the broker holds more than was fetched (a backlog,
        ``fetching_behind``): let decoding add to it until ``backlog_flush_interval_s``
        after the last flush started, until ``flush_bytes`` wait (decoding waits beyond),
        or until the consumer has fetched everything the broker had.
        A backlog then pays each flush's fixed part (its figure rows, the transaction)
        for more events; a worker that keeps up flushes at once."""
        loop = asyncio.get_running_loop()
        until = self._flush_started + self.backlog_flush_interval_s
        while self._pending_bytes < self.flush_bytes and loop.time() < until:
            if not self._behind():
                return
            self._grown.clear()
            # Woken by the next piece decoded; fetching_behind changes with the consumer's
            # fetches, which set no event here: looked at again every 50 ms at most.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._grown.wait(), min(until - loop.time(), 0.05))

    def _behind(self) -> bool:
        """``fetching_behind``, which is advice on when to flush: one that raises is
        taken as not behind (flush now), never as a reason to stop the counting."""
        try:
            return self.fetching_behind()
        except Exception:
            log.debug("could not tell whether the consumer reads behind", exc_info=True)
            return False

    async def _count(self, prepared: Prepared) -> None:
        metrics = self.state.metrics
        await self._dead_letters(prepared.dead_letters)
        await self._forwards(prepared.forwards)
        for event_type, n in Counter(prepared.too_late).items():
            metrics.too_late.labels(event_type).inc(n)
        for path, n in prepared.paths.items():
            metrics.records.labels(path).inc(n)
        if prepared.batches:
            await self._flush_or_narrow(prepared)

    async def _dead_letters(self, dead_letters: Sequence[DeadLetter]) -> None:
        """Delivered before the offsets move on: a crash in between re-sends them (at
        least once), it never loses them. Each is retried on its own, so a broker outage
        re-sends only the ones it did not take."""
        if not dead_letters:
            return
        send = self._send
        await asyncio.gather(*(self._dead_letter(send, d) for d in dead_letters))
        metrics, now = self.state.metrics, self.clock()
        for d in dead_letters:
            province = self.preparer.province_of(d, now)
            metrics.dead_lettered.labels(d.topic, d.reason, province).inc()
            metrics.last_dead_letter.labels(d.topic, d.reason).set_to_current_time()

    async def _forwards(self, forwards: Sequence[Forward]) -> None:
        """Published again keyed by their province before the offsets move on, as dead
        letters are (at least once; the dedup keys count each event once)."""
        if not forwards:
            return

        async def send(forward: Forward) -> BaseException | None:
            """Sent (None), or what refused it for its size: never retried as it is."""

            async def attempt() -> BaseException | None:
                try:
                    await self.forward(forward)
                except TOO_LARGE_ERRORS as exc:
                    refused: BaseException = exc  # aiokafka's errors are untyped
                    return refused
                return None

            what = f"publishing events of {forward.source} again, keyed by their province"
            outcome: BaseException | None = await retrying(
                what, attempt, self.retry_delay_s, DEAD_LETTER_ERRORS
            )
            return outcome

        refused = await asyncio.gather(*(send(f) for f in forwards))
        # An event larger than the producer takes (one alone above FORWARD_MAX_BYTES):
        # dead-lettered, visibly, rather than retried for ever (review 74).
        outcomes = list(zip(forwards, refused, strict=True))
        await self._dead_letters([_unforwardable(f, e) for f, e in outcomes if e is not None])
        metrics = self.state.metrics
        for f in (f for f, e in outcomes if e is None):
            metrics.rekeyed.labels(f.topic).inc(f.events)
            metrics.last_rekeyed.labels(f.topic).set_to_current_time()
            said = (f.topic, f.had_key)
            if said not in self._said_keys and len(self._said_keys) < 1000:
                self._said_keys.add(said)
                log.warning(
                    "%s is keyed %r, not by the province its events roll up to "
                    "(schemas/CONTRACT.md, section 5): its events are published again keyed "
                    "%r and counted there (said once per topic and key)",
                    f.source,
                    f.had_key,
                    f.key.decode(),
                )

    async def _flush_or_narrow(self, prepared: Prepared) -> None:
        """Flush; when PostgreSQL refuses the data of records in it, dead-letter those
        and flush the rest (services/metrics/refusals.py). Records held since an earlier
        refusal go into this flush again, with what came since."""
        # Before any wait: a rebalance from here on makes the consumer hand these over again.
        readings = dict(self.state.readings)
        still = self._still_held()
        pieces = [*still, *prepared.pieces]
        if still:
            prepared = refusals.rebuild(pieces, self.preparer)
        held: list[refusals.Piece] = []
        try:
            await self._flush(prepared)
            pieces = []
        except refusals.REFUSED_BY_STORE as exc:
            failure: BaseException = exc
        while pieces:
            log.warning(
                "PostgreSQL refused a flush of %d records (%r): looking for the records",
                sum(len(piece) for piece, _ in pieces),
                failure,
            )
            periods = Periods.at(self.clock())
            narrowed = await refusals.narrow(
                pieces, self.preparer, self.state.probe, periods, failure
            )
            await self._dead_letters(narrowed.refused)
            if narrowed.prepared is not None:
                await self._flush(narrowed.prepared)
            held += narrowed.held
            pieces = narrowed.rest
            if pieces:  # what the search left: flushed at once, or narrowed in turn
                try:
                    await self._flush(refusals.rebuild(pieces, self.preparer))
                    pieces = []
                except refusals.REFUSED_BY_STORE as exc:
                    failure = exc
        if held:
            count = sum(len(piece) for piece, _ in held)
            log.warning(
                "%d records held (offsets unmoved): PostgreSQL refuses records of a type"
                " nothing counts beside them; they go into the next flush again",
                count,
            )
            self._held, self._held_readings = held, readings
            self.state.metrics.held.set(count)

    def _still_held(self) -> list[refusals.Piece]:
        """The held records of partitions read on in the same reading as when they were
        held: a partition started again from its stored position since (a rebalance, a
        new claim) hands its records over again, held ones too."""
        if not self._held:
            return []
        claims, readings, then = self.state.claims, self.state.readings, self._held_readings
        kept: list[refusals.Piece] = []
        for piece, now in self._held:
            records = [
                r
                for r in piece
                if (r.topic, r.partition) in claims
                and readings.get((r.topic, r.partition)) == then.get((r.topic, r.partition))
            ]
            if records:
                kept.append((records, now))
        self._held = []
        self.state.metrics.held.set(0)
        return kept

    async def _dead_letter(self, send: Callable[[DeadLetter], Any], dead: DeadLetter) -> None:
        async def attempt() -> None:
            try:
                await send(dead)
            except TOO_LARGE_ERRORS as exc:
                if any(name == "dlq_reference" for name, _ in dead.headers):
                    raise  # a reference is small: the topic's limits need fixing
                log.warning(
                    "a dead letter of %d bytes was refused (%r): sent as a reference",
                    dead.size,
                    exc,
                )
                await send(reference_of(dead))

        what = f"dead-lettering a record of {dead.topic} ({dead.reason})"
        await retrying(what, attempt, self.retry_delay_s, DEAD_LETTER_ERRORS)

    async def _flush(self, prepared: Prepared) -> None:
        periods = Periods.at(self.clock())
        result = await self.state.flush(list(prepared.batches.values()), periods)
        # A flush of a narrowed part is progress too: the rest may take several.
        self.stall.committed(still_waiting=True)
        metrics = self.state.metrics
        metrics.flushes.inc()
        if result.fenced:
            metrics.fenced.inc(len(result.fenced))
        done = self.clock().timestamp()
        processed: Counter[str] = Counter()
        late: Counter[str] = Counter()
        crosswalked: Counter[str] = Counter()
        lags: list[float] = []
        for tally in result.counted:  # by group and bucket: no object per event
            by_type = tally.type_counts(periods.day)
            processed.update(by_type.processed)
            late.update(by_type.late)
            crosswalked.update(by_type.crosswalked)
            lags += [done - epoch for epoch in tally.epochs]
        for counter, counts in (
            (metrics.processed, processed),
            (metrics.late, late),
            (metrics.crosswalked, crosswalked),
            (metrics.duplicates, Counter(c.type for c in result.duplicates)),
        ):
            for event_type, n in counts.items():
                counter.labels(event_type).inc(n)
        metrics.event_lag.observe_many(lags)
        metrics.ingest_lag.observe_many([done - t for t in prepared.ingest_times])


def register_agents(app: MetricsApp, settings: MetricsSettings, counting: Counting) -> None:
    """Subscribe ``app`` to the event topics and count what its consumer fetches."""
    source = app.topic(
        *settings.event_topics,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        # Nothing is acknowledged to Faust (positions live in PostgreSQL): without this,
        # its livelock check would log the partitions as idle and never committed.
        acks=False,
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

    event_topics = {
        name: app.topic(name, key_serializer="raw", value_serializer="raw")
        for name in settings.event_topics
    }

    async def forward(moved: Forward) -> None:
        async def publish() -> None:
            future = await event_topics[moved.topic].send(
                key=moved.key,
                value=moved.value,
                timestamp=moved.timestamp,
                headers=list(moved.headers),
            )
            await future

        await asyncio.wait_for(publish(), DEAD_LETTER_TIMEOUT_S)

    counting.forward = forward

    heap = HeapTrimmer()
    crashing: set[asyncio.Task[None]] = set()

    def crash(exc: BaseException) -> None:
        """A flush failed (not infrastructure): crash now, not at the next step, which
        may wait for records that never come."""
        log.critical("counting failed, the worker stops: %r", exc)
        exit_soon()
        task = asyncio.ensure_future(app.crash(exc))
        crashing.add(task)
        task.add_done_callback(crashing.discard)

    counting.on_failure = crash

    step_records = settings.metrics_batch_size

    async def count_fetched(fetched: Sequence[Any]) -> None:
        counting.preparer.partition_counts = _partition_counts(app, settings.event_topics)
        for start in range(0, len(fetched), step_records):
            records = [record_of(r) for r in fetched[start : start + step_records]]
            try:
                await counting.step(records, send)
            except Exception as exc:
                crash(exc)  # not infrastructure (see the docstring): stop counting
                raise
            heap.processed(sum(len(r.value or b"") for r in records))
            del records  # before trimming: the step's records are garbage now
            heap.maybe_trim()

    app.topics.add(source)  # subscribed as an agent's topic would be, but no agent reads it
    app.fetched_handler = count_fetched
    counting.reading_behind = lambda: _reading_behind(app)
    counting.fetching_behind = lambda: _reading_behind(app, fetched=True)
