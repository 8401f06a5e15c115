"""Prometheus exposition of what happened to records: counters by type and reason, lags.

The KPI series themselves are written by :mod:`services.metrics.kpitext`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 21600, 86400, 604800)


class LagHistogram(Collector):
    """A histogram in seconds that takes a whole flush of observations at once.

    prometheus_client's Histogram takes a lock and walks the buckets per observation;
    a flush can count 100,000 events, so the buckets are found with bisect instead.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._doc = documentation
        self._bounds = list(buckets)
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0

    def observe_many(self, values: Iterable[float]) -> None:
        # Sorted once (C), then one bisect per bucket instead of one per value.
        ordered = sorted(values)
        counts, below = self._counts, 0
        for i, bound in enumerate(self._bounds):
            upto = bisect_right(ordered, bound, below)  # le: a value on a bound is in it
            counts[i] += upto - below
            below = upto
        counts[-1] += len(ordered) - below
        self._sum += math.fsum(ordered)

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip([*self._bounds, float("inf")], self._counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        family = HistogramMetricFamily(self._name, self._doc)
        family.add_metric([], buckets, self._sum)
        yield family


RECORD_PATHS = ("summary", "signed", "validated")


class PipelineMetrics:
    """Counters of what happened to records and events, by type and reason, and lags."""

    def __init__(self, registry: CollectorRegistry, event_types: Iterable[str] = ()) -> None:
        def by_type(name: str, doc: str) -> Counter:
            counter = Counter(name, doc, ["type"], registry=registry)
            for event_type in event_types:  # known in advance: exported as 0 from the start
                counter.labels(event_type)
            return counter

        self.processed = by_type("egov_events_processed", "Events counted (first delivery).")
        self.duplicates = by_type(
            "egov_events_duplicate", "Events delivered again (same source and id): not counted."
        )
        self.late = by_type(
            "egov_events_late", "Events counted after their day ended (in the day they happened)."
        )
        self.too_late = by_type(
            "egov_events_too_late", "Events beyond the grace period: dead-lettered, not counted."
        )
        self.backfilled = by_type(
            "egov_events_backfilled",
            "Events from a backfill counted (first delivery) in their day, however old.",
        )
        self.crosswalked = by_type(
            "egov_events_crosswalked", "Events with a retired unit code, counted for its successor."
        )
        self.dead_lettered = Counter(
            "egov_events_dead_lettered",
            "Records (or batch elements) dead-lettered, by source topic, reason and the "
            "province whose figures miss them: the record's key when it is a province code "
            "(today's or a pre-2025 one), else the province of the event's unit; empty when "
            "neither tells (unknown: any province's figures may miss it).",
            ["topic", "reason", "province"],
            registry=registry,
        )
        # What the health alert EgovDeadLetters reads: a time, which neither a scrape
        # gap nor a series born at its first dead letter can fool, as they fooled
        # increase() on the counter (review 41).
        self.last_dead_letter = Gauge(
            "egov_events_last_dead_lettered_timestamp_seconds",
            "When a record of the topic was last dead-lettered for the reason (Unix time).",
            ["topic", "reason"],
            registry=registry,
        )
        self.rekeyed = Counter(
            "egov_events_rekeyed",
            "Events of records published straight to Kafka with a key other than their "
            "province, published again keyed by it (counted on arrival there), by topic.",
            ["topic"],
            registry=registry,
        )
        # What the health alert EgovRecordsMiskeyed reads, as EgovDeadLetters reads the
        # time of the last dead letter (review 41).
        self.last_rekeyed = Gauge(
            "egov_events_last_rekeyed_timestamp_seconds",
            "When events of the topic were last published again keyed by their province.",
            ["topic"],
            registry=registry,
        )
        self.event_lag = LagHistogram(
            "egov_event_lag_seconds",
            "From event time to counted (late uploads show here).",
            LAG_BUCKETS,
        )
        self.ingest_lag = LagHistogram(
            "egov_ingest_lag_seconds",
            "From the record's Kafka timestamp (ingest time) to counted.",
            LAG_BUCKETS,
        )
        registry.register(self.event_lag)
        registry.register(self.ingest_lag)
        self.flushes = Counter(
            "egov_metrics_flushes", "Flush transactions committed.", registry=registry
        )
        self.records = Counter(
            "egov_metrics_records",
            "Records decoded, by how: 'summary' (counted by ingest's groups), 'signed' (read "
            "event by event, not validated again), 'validated' (read and validated in full). "
            "Ingest's records landing in 'validated' mean the signing keys differ.",
            ["path"],
            registry=registry,
        )
        for path in RECORD_PATHS:  # exported as 0 from the start
            self.records.labels(path)
        self.fenced = Counter(
            "egov_metrics_fenced_batches",
            "Partition batches dropped because another worker owns the partition now.",
            registry=registry,
        )
        self.held = Gauge(
            "egov_metrics_records_held",
            "Records of a flush PostgreSQL refused that nothing vouches for yet: held "
            "uncounted, their offsets unmoved, until records that count beside them come.",
            registry=registry,
        )
