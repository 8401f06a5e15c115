"""Whether the counting is stalled: records read wait while no flush commits. Pure.

A flush that cannot commit (PostgreSQL unreachable, an operator's lock, a failover) is
retried for as long as it takes (services/metrics/pipeline.py ``retrying``), so the
worker stays up and its answers stand still while the events it has read wait
uncounted. What measures it is the time since the last flush committed while records
wait, not the age of the oldest record waiting: under a backlog records always wait,
but flushes keep committing (every few seconds at most), and a worker with nothing to
count waits for nothing. Past ``after_s`` the worker says it is stalled
(services/common/stalls.py): its figures are no current reading.

A step the counting cannot get past before records are handed to it counts the same
(review 91): claiming partitions and loading their figures, reading their stored
positions (services/metrics/pipeline.py ``PartitionState``). While PostgreSQL refuses it
(unreachable, an operator's lock on ``consumer_offsets``) the consumer hands over no
records, so without this a successor of a stalled worker, or one given partitions by a
rebalance during the outage, answered as if it kept up. Such a step is ``held``: it
waits from when it begins (retries included), as handed records do, and its wait ends
when it succeeds, the records' own wait (if any) standing. A claim that succeeds at once
waits milliseconds, far below ``after_s``: it never states a stall.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from types import TracebackType

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.stalls import CountingStall


class StallWatch:
    """When records began to wait with no flush committed since; the counting tells it
    (``waiting`` when it is handed records, ``committed`` after each flush)."""

    def __init__(
        self, after_s: float = math.inf, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.after_s = after_s
        """Stalled from this long on (``MetricsSettings.metrics_stall_after_s``; by default
        never, for counting wired without a worker's settings)."""
        self._monotonic = monotonic
        self._since: float | None = None
        self._held: dict[Held, float] = {}
        """The steps under way that hold the counting, with when each began."""

    def waiting(self) -> None:
        """Records were handed to the counting: if nothing waited, the wait starts now."""
        if self._since is None:
            self._since = self._monotonic()

    def committed(self, still_waiting: bool) -> None:
        """A flush committed (or settled what it took): what still waits waits from now."""
        self._since = self._monotonic() if still_waiting else None

    def held(self) -> Held:
        """A step the counting cannot get past (PostgreSQL's, retried until it succeeds),
        as a context: it waits from entry; leaving it (done, or cancelled) ends its wait."""
        return Held(self)

    def _started(self) -> float | None:
        """Since when something has waited (records or a held step); None: nothing."""
        starts = [*self._held.values(), *(() if self._since is None else (self._since,))]
        return min(starts, default=None)

    def stalled_s(self) -> float:
        """Seconds records (or a held step) have waited with no flush committed; 0 when
        nothing waits."""
        since = self._started()
        return 0.0 if since is None else max(0.0, self._monotonic() - since)

    def stall(self, waiting_records: int) -> CountingStall | None:
        """The stall to state, once it has lasted ``after_s``; None before."""
        stalled = self.stalled_s()
        if self._started() is None or stalled < self.after_s:
            return None
        return CountingStall(stalled, waiting_records, self.after_s)


class Held:
    """One step the counting waits on (``StallWatch.held``), while its context lasts."""

    __slots__ = ("_watch",)

    def __init__(self, watch: StallWatch) -> None:
        self._watch = watch

    def __enter__(self) -> Held:
        self._watch._held[self] = self._watch._monotonic()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._watch._held.pop(self, None)


class StallCollector(Collector):
    """The counting's wait, read at scrape time: on-call sees the worker is the cause."""

    def __init__(self, watch: StallWatch, waiting_records: Callable[[], int]) -> None:
        self._watch = watch
        self._waiting_records = waiting_records

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "egov_metrics_counting_stalled_seconds",
            "Seconds records read have waited with no flush committed (0: none wait); "
            "past EGOV_METRICS_STALL_AFTER_S the worker answers /v1/kpis 503.",
            value=self._watch.stalled_s(),
        )
        yield GaugeMetricFamily(
            "egov_metrics_counting_waiting_records",
            "Records read and handed to the counting, not yet counted by a flush.",
            value=self._waiting_records(),
        )
