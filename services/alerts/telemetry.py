"""The alerts service's own Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.alerts.model import Alert


class _OpenAlerts(Collector):
    """Alerts by state, condition and severity, read from the book at scrape time."""

    def __init__(self, source: Callable[[], Iterable[Alert]]) -> None:
        self._source = source

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "egov_alerts", "Open alerts by state, condition and severity.",
            labels=["state", "alertname", "severity"],
        )  # fmt: skip
        counts: dict[tuple[str, str, str], int] = {}
        for state in ("pending", "firing"):
            for name in ("KpiBelowTarget", "KpiBudgetBurn", "UnitSilent", "IngestRejectionsHigh"):
                for severity in ("critical", "warning", "info"):
                    counts[(state, name, severity)] = 0
        for alert in self._source():
            key = (alert.state.value, alert.key.condition, alert.severity)
            counts[key] = counts.get(key, 0) + 1
        for labels, value in sorted(counts.items()):
            family.add_metric(list(labels), value)
        yield family


class AlertsMetrics:
    def __init__(self, registry: CollectorRegistry, open_alerts: Callable[[], Iterable[Alert]]):
        registry.register(_OpenAlerts(open_alerts))
        self.transitions = Counter(
            "egov_alerts_transitions_total", "Alert transitions by condition and new state.",
            ["alertname", "state"], registry=registry,
        )  # fmt: skip
        self.notifications = Counter(
            "egov_alerts_notifications_total",
            "Deliveries by sink (alertmanager, webhook, kafka) and outcome (sent, failed).",
            ["sink", "outcome"], registry=registry,
        )  # fmt: skip
        for sink in ("alertmanager", "webhook", "kafka"):
            for outcome in ("sent", "failed"):
                self.notifications.labels(sink, outcome)
        self.evaluation_seconds = Histogram(
            "egov_alerts_evaluation_duration_seconds", "Time of one evaluation cycle.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=registry,
        )  # fmt: skip
        self.last_evaluation = Gauge(
            "egov_alerts_last_evaluation_timestamp_seconds",
            "When the last evaluation completed (lag = time() - this).", registry=registry,
        )  # fmt: skip
        self.active = Gauge(
            "egov_alerts_active",
            "1 while this service holds the database's alerts lock and evaluates; 0 while "
            "it stands by (another holds it, or it waits to take it).", registry=registry,
        )  # fmt: skip
        self.evaluation_lag = Gauge(
            "egov_alerts_evaluation_lag_seconds",
            "Age of the figures at the last evaluation: now - the newest generated_at seen.",
            registry=registry,
        )  # fmt: skip
        self.source_errors = Counter(
            "egov_alerts_source_errors_total", "Metrics workers that did not answer.",
            registry=registry,
        )  # fmt: skip
        self.journal_backlog = Gauge(
            "egov_alerts_journal_backlog", "Transitions evaluated but not yet in PostgreSQL.",
            registry=registry,
        )  # fmt: skip
