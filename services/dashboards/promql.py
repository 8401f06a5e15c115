"""The PromQL behind every panel, in one place so that its series names are easy to audit.

Series come from the services' own /metrics (see docs/metrics-api.md and the ingest and
alerts telemetry modules) and from the recording rules in
deploy/prometheus/rules/egov-recording.yml. Template variables ($province, $unit, $kpi,
$silence, $__rate_interval) are substituted by Grafana; the integration tests substitute
concrete values and run every query against a real Prometheus.
"""

from __future__ import annotations

RATE = "$__rate_interval"

# Recording rules (deploy/prometheus/rules/egov-recording.yml).
UNIT_PROVINCE_INFO = "unit:egov_unit_province:info"
UNIT_RATIO_DAY = "unit:egov_kpi_ratio:day"
UNIT_TARGET = "unit:egov_kpi_target:ratio"
UNIT_SILENCE = "unit:egov_silence:seconds"
PROVINCE_PREFIX = "province:egov_kpi"

# Series of the metrics service (names from the metrics design, "Exposition").
LAST_EVENT = "egov_unit_last_event_timestamp_seconds"
EVENT_TIME_LAG = "egov_event_lag_seconds"
INGEST_TIME_LAG = "egov_ingest_lag_seconds"

# Series of the alerts service (services/alerts/telemetry.py).
ALERTS_OPEN = "egov_alerts"
NOTIFICATIONS = "egov_alerts_notifications_total"
EVALUATION_LAG = "egov_alerts_evaluation_lag_seconds"


def province_figure(figure: str, window: str, kpi: str) -> str:
    """A province's own numerator, denominator or ratio (already rolled up by the worker)."""
    return f'{PROVINCE_PREFIX}_{figure}:{window}{{unit="$province", kpi="{kpi}"}}'


def target(unit: str, kpi: str = "") -> str:
    kpi_match = f', kpi="{kpi}"' if kpi else ', kpi=~"$kpi"'
    return f'{UNIT_TARGET}{{unit="{unit}"{kpi_match}}}'


def unit_figure(figure: str, window: str) -> str:
    """One unit's figure per KPI: `max by` keeps one copy when two workers export it."""
    return f'max by (kpi) (egov_kpi_{figure}{{unit="$unit", window="{window}", kpi=~"$kpi"}})'


def shortfall() -> str:
    """Units of the province below target today, by how far (target - rate > 0)."""
    return (
        f"({UNIT_TARGET} - on (kpi, unit) group_right () "
        f'{UNIT_RATIO_DAY}{{province="$province"}}) > 0'
    )


def beside_shortfall(expr: str) -> str:
    """``expr`` for exactly the rows of :func:`shortfall`, carrying the same labels."""
    return f"{expr} * on (kpi, unit) group_right () (0 * ({shortfall()}) + 1)"


def silent_units() -> str:
    return (
        f"({UNIT_SILENCE} > $silence) * on (unit) group_left (name, level, province) "
        f'{UNIT_PROVINCE_INFO}{{province="$province"}}'
    )


def last_event_ms() -> str:
    """Milliseconds since the epoch, the unit Grafana's date formats expect."""
    return f'max by (family) ({LAST_EVENT}{{unit="$unit"}}) * 1000'


def rate_by(metric: str, label: str, selector: str = "") -> str:
    return f"sum by ({label}) (rate({metric}{{{selector}}}[{RATE}]))"


def quantile(q: float, histogram: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[{RATE}])))"
