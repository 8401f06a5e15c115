"""Prometheus exposition: a collector that reads the worker's state at scrape time.

Reading state when scraped (instead of mirroring it into Gauges) keeps no stale
series behind: what the worker no longer holds is simply not yielded.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from services.metrics.state import EventCounts


class StateCollector(Collector):
    """Yields the per-unit event counters from :class:`EventCounts`."""

    def __init__(self, counts: EventCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "egov_unit_events",
            "Events counted per unit (and each ancestor unit) and event type.",
            labels=["unit", "type"],
        )
        for (unit, event_type), value in sorted(self._counts.by_unit_type.items()):
            family.add_metric([unit, event_type], value)
        yield family


class PipelineMetrics:
    """Counters of what happened to records, by type and reason."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.processed = Counter(
            "egov_events_processed",
            "Valid events processed, by event type.",
            ["type"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "egov_events_dead_lettered",
            "Records sent to the dead-letter topic, by source topic and reason.",
            ["topic", "reason"],
            registry=registry,
        )
