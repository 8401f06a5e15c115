"""Whether the counting is stalled: records read wait while no flush commits. Pure.

A flush that cannot commit (PostgreSQL unreachable, an operator's lock, a failover) is
retried for as long as it takes (services/metrics/pipeline.py ``retrying``), so the
worker stays up and its answers stand still while the events it has read wait
uncounted. What measures it is the time since the last flush committed while records
wait, not the age of the oldest record waiting: under a backlog records always wait,
but flushes keep committing (every few seconds at most), and a worker with nothing to
count waits for nothing. Past ``after_s`` the worker says it is stalled
(services/common/stalls.py): its figures are no current reading.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

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

    def waiting(self) -> None:
        """Records were handed to the counting: if nothing waited, the wait starts now."""
        if self._since is None:
            self._since = self._monotonic()

    def committed(self, still_waiting: bool) -> None:
        """A flush committed (or settled what it took): what still waits waits from now."""
        self._since = self._monotonic() if still_waiting else None

    def stalled_s(self) -> float:
        """Seconds records have waited with no flush committed; 0 when none wait."""
        since = self._since
        return 0.0 if since is None else max(0.0, self._monotonic() - since)

    def stall(self, waiting_records: int) -> CountingStall | None:
        """The stall to state, once it has lasted ``after_s``; None before."""
        stalled = self.stalled_s()
        if self._since is None or stalled < self.after_s:
            return None
        return CountingStall(stalled, waiting_records, self.after_s)


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
