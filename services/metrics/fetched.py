"""Records to the counting code in the batches the consumer fetched: no per-message dispatch.

Faust hands an agent one message at a time. Its fetcher (``Consumer._drain_messages``)
turns each fetched record into a ``Message`` and awaits ``wait_first(callback(message),
suspend_flow.wait())``: two tasks and a future per message, then a queue put and a get
in the agent's stream, whose ``take_events`` wakes once per message again. For 1,000
single-event records that was ~135 ms of the event loop against ~19 ms of decoding
(issue 18). Faust offers no batch delivery (``Stream.take``/``take_events`` buffer what
came one by one), so this consumer replaces that one loop and nothing else.

:class:`FetchedBatchConsumer` reads with Faust's own ``_wait_next_records`` (its consumer
thread, group membership, pause/resume and active partitions) and hands each fetch,
the aiokafka ``ConsumerRecord`` lists of every partition in offset order, to the app's
``fetched_handler`` in one call. It keeps what Faust's loop keeps: records of a
partition no longer active are left out, as are records below the partition's read
offset (what Faust has handed out, or where a seek put it), and a fetch that a
rebalance overtook (the flow stopped, or a new generation) is dropped, as Faust drops
it, and read again from where the partitions are sought. Records of a topic the handler
does not take (none today) go through Faust's per-message path as before.

Offsets: nothing is acknowledged to Faust, so Faust commits nothing to Kafka. The
positions that matter are stored with the figures in PostgreSQL and sought on
assignment (``ResumingConsumer.perform_seek``, services/metrics/app.py): a record's
offset moves only with the flush that counted it.

A flush that commits with nothing decoded waiting has caught up only if the consumer has
nothing more to hand over: ``reading_behind`` says whether the broker reported, at its
last fetch, records beyond those handed out (services/metrics/agents.py and snapshot.py:
a backlog publishes no /v1/kpis snapshot between two fetches).

A fetch of an event partition that does not start where the counting expects (past it:
retention deleted what was not fetched yet, or a transaction's marker; below it: a log
replaced under the consumer) is shown to the app's ``log_watch`` before it is counted,
and the seeks the watch decides are made between two fetches
(services/metrics/logwatch.py, review 89).

Upstream, the same change would be a batch callback on the conductor, called from
``_drain_messages`` with each fetch (docs/faust-batch-delivery.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from mode import Service

if TYPE_CHECKING:
    from services.metrics.logwatch import LogWatch

FetchedHandler = Callable[[Sequence[Any]], Awaitable[None]]
"""Counts a fetch: aiokafka ``ConsumerRecord`` objects, each partition's in offset order."""

POLL_TIMEOUT_S = 1.0
"""How long one fetch may wait for records (Faust's own ``getmany(timeout=1.0)``)."""


class FetchedBatchConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer delivering whole fetches to ``app.fetched_handler``
    (see the module docstring); without a handler, Faust's per-message loop."""

    async def _drain_messages(self, fetcher: Any) -> None:
        handler: FetchedHandler | None = getattr(self.app, "fetched_handler", None)
        if handler is None:
            await super()._drain_messages(fetcher)
            return
        ours: frozenset[str] = getattr(self.app, "event_topics", frozenset())
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                try:
                    await self._deliver_one_fetch(handler, ours)
                finally:
                    self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise

    _handing: dict[Any, int] = {}  # noqa: RUF012 -- replaced, never changed in place
    """The offset after each partition's last record of the fetch the handler is counting
    (empty between fetches): the read offsets move only once the handler returns."""

    def reading_behind(self) -> bool:
        """Whether an event partition had, at its last fetch, records beyond those handed
        out and counted: its high watermark more than one above its read offset (unknown
        counts as not behind), the fetch being counted included. One is slack on purpose:
        a transactional publisher's commit marker takes the offset after its last record
        and is never handed out, so ``read + 1 == high`` for good after it; at worst one
        record still unread lets a snapshot build early. What the counting asks before
        saying it has caught up (services/metrics/agents.py, snapshot.py)."""
        return _behind(self, self._read_offset, {})

    def fetching_behind(self) -> bool:
        """Whether the broker had, at the last fetch, records beyond those fetched: as
        ``reading_behind``, but the fetch being counted is in hand. What a flush asks
        before it waits for more of a backlog (services/metrics/agents.py): a worker that
        keeps up is not behind while it counts the fetch that held everything there was."""
        return _behind(self, self._read_offset, self._handing)

    async def _deliver_one_fetch(self, handler: FetchedHandler, ours: frozenset[str]) -> None:
        watch: LogWatch | None = getattr(self.app, "log_watch", None)
        if watch is not None and watch.seeks and self.flow_active:
            await self._seek_for(watch)
        records, active = await self._wait_next_records(POLL_TIMEOUT_S)
        generation = self.app.consumer_generation_id
        await self.sleep(0)  # a fetch may come back at once, again and again
        if records is None or self.should_stop or not records:
            return
        if not self.flow_active:  # a rebalance began: as Faust's getmany, read it again
            await self.perform_seek()
            return
        batch: list[Any] = []
        others: list[tuple[Any, Any]] = []
        last: dict[Any, Any] = {}
        gaps: dict[Any, int] = {}
        back: list[Any] = []
        expected: Mapping[Any, int] = {} if watch is None else watch.expected
        read_offset = self._read_offset
        for tp, fetched in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            at = expected.get(tp)
            if at is not None and fetched[0].offset != at:  # one comparison per partition
                if fetched[0].offset < at:
                    back.append(tp)  # reset below what was handed out: not counted
                    continue
                gaps[tp] = fetched[0].offset
            start = read_offset.get(tp)
            kept = fetched if start is None else [r for r in fetched if r.offset >= start]
            if not kept:
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic in ours:
                batch += kept
                last[tp] = kept[-1]
            else:
                others += [(tp, r) for r in kept]
        if watch is not None and (gaps or back):
            await self._judge_jumps(watch, gaps, back)
        if not self.flow_active or self.app.consumer_generation_id != generation:
            return  # overtaken by a rebalance while filtering: the new owner reads it
        if batch:
            # Offset order per partition: the last record of each stays.
            handing = {TP(r.topic, r.partition): r.offset + 1 for r in batch}
            self._handing = handing
            try:
                await handler(batch)
            finally:
                self._handing = {}
            if self.app.consumer_generation_id == generation:
                read_offset.update(handing)
                if watch is not None:
                    watch.handed(last)
            # Else a rebalance came while the handler ran: revoked partitions' offsets are
            # gone, and the assigned ones were sought to their stored positions
            # (services/metrics/app.py), which must stand. Moving them to this fetch's end
            # would filter out of the next fetch the records the counting now expects
            # again (records it held, services/metrics/refusals.py, are dropped on a new
            # reading), and a later flush would store an offset past them.
        for tp, record in others:
            await self.callback(self._to_message(tp, record))
            read_offset[tp] = record.offset + 1

    async def _judge_jumps(self, watch: LogWatch, gaps: Mapping[Any, int], back: list[Any]) -> None:
        """Ask the watch about fetches that did not start where the counting expects."""
        if gaps:
            await watch.gaps(gaps, self.earliest_offsets)
        if back:
            await watch.went_back(back)

    async def _seek_for(self, watch: LogWatch) -> None:
        """Make the seeks the watch decided (in the consumer's thread, as on assignment)."""
        seeks = watch.take_seeks(self.assignment())
        if seeks:
            await self.seek_wait({TP(*tp): offset for tp, offset in seeks.items()})
            watch.sought(seeks)


def _behind(
    consumer: FetchedBatchConsumer,
    read_offset: Mapping[Any, int | None],
    handing: Mapping[Any, int],
) -> bool:
    """Whether an event partition's high watermark is more than one above where reading
    stands: ``handing``'s offset for a partition of the fetch being counted, else its read
    offset."""
    ours: frozenset[str] = getattr(consumer.app, "event_topics", frozenset())
    for tp in consumer.assignment():
        if tp.topic not in ours:
            continue
        read, high = handing.get(tp, read_offset.get(tp)), consumer.highwater(tp)
        if read is not None and high is not None and read + 1 < high:
            return True
    return False
