"""Prometheus metrics of the ingest service itself."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    """Requests and events by outcome and reason, events per key id, latency, batch sizes.

    ``labels()`` validates and locks on every call (a few microseconds, several times per
    request): the hot path goes through :meth:`request`, :meth:`event` and :meth:`key`,
    which keep the children they have made. Label values are bounded (statuses, problem
    slugs, contract types, key ids), so the caches are too.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "egov_ingest_requests_total",
            "HTTP requests to POST /v1/events by outcome (HTTP status) and problem type.",
            ["status", "reason"],
            registry=registry,
        )
        self.events = Counter(
            "egov_ingest_events_total",
            "Events by outcome (accepted, rejected, out_of_scope, unavailable), reason "
            "(the refusal code) and event type (empty when the event has no valid type).",
            ["outcome", "reason", "type"],
            registry=registry,
        )
        self.key_events = Counter(
            "egov_ingest_key_events_total",
            "Events per publisher API key id (the public part of the key, never the secret) "
            "by outcome.",
            ["key_id", "outcome"],
            registry=registry,
        )
        self.produce_seconds = Histogram(
            "egov_ingest_produce_duration_seconds",
            "Time from the first send to the broker's acknowledgement of a whole request.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.batch_size = Histogram(
            "egov_ingest_batch_events",
            "Events per request.",
            buckets=(1, 2, 5, 10, 50, 100, 250, 500, 1000),
            registry=registry,
        )
        self.inflight_bytes = Gauge(
            "egov_ingest_inflight_bytes",
            "Body bytes of the requests ingest has read and not yet answered (bounded by "
            "EGOV_MAX_INFLIGHT_BYTES; past it, 503 broker-unavailable at once).",
            registry=registry,
        )
        self.connections_refused = Counter(
            "egov_ingest_connections_refused_total",
            "Connections closed before their request head was whole, by reason: "
            "headers-too-slow (EGOV_HEADER_TIMEOUT_S), headers-too-large "
            "(EGOV_MAX_HEADER_BYTES).",
            ["reason"],
            registry=registry,
        )
        for reason in ("headers-too-slow", "headers-too-large"):
            self.connections_refused.labels(reason)
        self._requests: dict[tuple[str, str], Counter] = {}
        self._events: dict[tuple[str, str, str], Counter] = {}
        self._keys: dict[tuple[str, str], Counter] = {}

    def connection_refused(self, reason: str) -> None:
        self.connections_refused.labels(reason).inc()

    def request(self, status: str, reason: str) -> Counter:
        child = self._requests.get((status, reason))
        if child is None:
            child = self._requests[status, reason] = self.requests.labels(status, reason)
        return child

    def prime(self, event_types: Iterable[str]) -> None:
        """Export the accepted count of every contract type at 0 from the start: a series
        born at its first event reads as starting there, so Prometheus's increase() (the
        health alert EgovAcceptedNotCounted) missed the first batch of each type after
        every start of ingest (review 41)."""
        for event_type in sorted(event_types):
            self.event("accepted", "", event_type)

    def event(self, outcome: str, reason: str, event_type: str) -> Counter:
        child = self._events.get((outcome, reason, event_type))
        if child is None:
            child = self.events.labels(outcome, reason, event_type)
            self._events[outcome, reason, event_type] = child
        return child

    def key(self, key_id: str, outcome: str) -> Counter:
        child = self._keys.get((key_id, outcome))
        if child is None:
            child = self._keys[key_id, outcome] = self.key_events.labels(key_id, outcome)
        return child
