"""The KPI series in Prometheus text format, written directly from the figures at scrape time.

With ~3,400 units today (~10,800 in the pre-2025 hierarchy) and 7 KPIs, a scrape is
hundreds of thousands of samples; prometheus_client's generic writer (a sample
object, label escaping and float formatting per sample) takes seconds for that, and
a scrape runs on the worker's event loop, so it would stall counting. Here each
series' label text is built once and reused. Reading the figures when scraped keeps
no stale series: what the worker no longer owns is simply not written, and calendar
windows roll over with the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.common.units import Unit, UnitRegistry
from services.metrics.figures import Figures, SeriesKey
from services.metrics.periods import EXPORTED_WINDOWS, Periods
from services.metrics.targets import Targets, describe_unit

_HEADERS = {
    "egov_kpi_ratio": ("gauge", "KPI rate (numerator / denominator), 0..1."),
    "egov_kpi_numerator": ("gauge", "KPI numerator in the window."),
    "egov_kpi_denominator": ("gauge", "KPI denominator in the window."),
    "egov_kpi_numerator_total": ("counter", "All-time KPI numerator (for any lookback)."),
    "egov_kpi_denominator_total": ("counter", "All-time KPI denominator (for any lookback)."),
    "egov_kpi_target_ratio": ("gauge", "Effective KPI target of a unit, 0..1."),
    "egov_unit_info": ("gauge", "Administrative unit: name, level and parent (always 1)."),
    "egov_unit_last_event_timestamp_seconds": (
        "gauge",
        "Event time of the latest event of a unit (and its ancestors) per family.",
    ),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _header(name: str) -> str:
    kind, doc = _HEADERS[name]
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


class KpiText:
    """Renders the KPI families of the partitions this worker owns right now."""

    def __init__(
        self,
        figures: Figures,
        registry: UnitRegistry,
        targets: Targets,
        clock: Callable[[], datetime],
    ) -> None:
        self._figures = figures
        self._registry = registry
        self._targets = targets
        self._clock = clock
        self._labels: dict[SeriesKey, str] = {}

    def _label(self, key: SeriesKey) -> str:
        text = self._labels.get(key)
        if text is None:
            unit, kpi = key
            text = self._labels[key] = f'kpi="{_escape(kpi)}",unit="{_escape(unit)}"'
        return text

    def render(self) -> str:
        periods = Periods.at(self._clock())
        ratio, num, den = [], [], []
        for window in EXPORTED_WINDOWS:
            for key, fig in self._figures.window(window, periods).items():
                labels = f'{{{self._label(key)},window="{window}"}} '
                num.append(f"egov_kpi_numerator{labels}{fig.numerator}\n")
                den.append(f"egov_kpi_denominator{labels}{fig.denominator}\n")
                if fig.denominator:
                    ratio.append(f"egov_kpi_ratio{labels}{fig.numerator / fig.denominator!r}\n")
        totals_n, totals_d = [], []
        for key, fig in self._figures.totals().items():
            labels = f"{{{self._label(key)}}} "
            totals_n.append(f"egov_kpi_numerator_total{labels}{fig.numerator}\n")
            totals_d.append(f"egov_kpi_denominator_total{labels}{fig.denominator}\n")
        parts = [
            _header("egov_kpi_ratio"),
            *ratio,
            _header("egov_kpi_numerator"),
            *num,
            _header("egov_kpi_denominator"),
            *den,
            _header("egov_kpi_numerator_total"),
            *totals_n,
            _header("egov_kpi_denominator_total"),
            *totals_d,
            *self._units(periods),
            _header("egov_unit_last_event_timestamp_seconds"),
        ]
        for (unit, family), epoch in self._figures.activity().items():
            parts.append(
                f'egov_unit_last_event_timestamp_seconds{{unit="{_escape(unit)}",'
                f'family="{_escape(family)}"}} {epoch!r}\n'
            )
        return "".join(parts)

    def _units(self, periods: Periods) -> list[str]:
        targets = [_header("egov_kpi_target_ratio")]
        info = [_header("egov_unit_info")]
        described: dict[str, Unit | None] = {}
        for key in self._figures.series():
            code, kpi = key
            if code not in described:
                unit = described[code] = describe_unit(self._registry, code, periods)
                if unit is not None:
                    info.append(
                        f'egov_unit_info{{unit="{_escape(code)}",name="{_escape(unit.full_name)}",'
                        f'level="{unit.level}",parent="{_escape(unit.parent or "")}"}} 1\n'
                    )
            value = self._targets.target(described[code], kpi)
            if value is not None:
                targets.append(f"egov_kpi_target_ratio{{{self._label(key)}}} {value!r}\n")
        return targets + info
