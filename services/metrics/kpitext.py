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

from collections.abc import Callable, Iterator
from datetime import datetime

from services.common.citations import cite
from services.common.targetdata import BP_MAX
from services.common.targets import placement
from services.common.units import Unit, UnitRegistry
from services.metrics.dossiers import OUTCOMES
from services.metrics.figures import Figures, SeriesKey
from services.metrics.periods import EXPORTED_WINDOWS, Periods
from services.metrics.targets import Targets, describe_unit

_HEADERS = {
    "egov_kpi_ratio": ("gauge", "KPI rate (numerator / denominator), 0..1."),
    "egov_kpi_numerator": ("gauge", "KPI numerator in the window."),
    "egov_kpi_denominator": ("gauge", "KPI denominator in the window."),
    # A gauge, not a counter: the stored all-time total, whoever owns it, and it falls
    # when a dossier's count is taken back; rate() would read that as a reset
    # (deploy/prometheus/rules/egov-recording.yml joins the owners, then takes delta()).
    "egov_kpi_numerator_total": (
        "gauge",
        "All-time KPI numerator as stored (can fall: a re-judged dossier's count taken "
        "back); join owners with max by (kpi, unit), then delta(), never rate().",
    ),
    "egov_kpi_denominator_total": (
        "gauge",
        "All-time KPI denominator as stored (can fall: a re-judged dossier's count taken "
        "back); join owners with max by (kpi, unit), then delta(), never rate().",
    ),
    "egov_kpi_target_ratio": ("gauge", "Effective KPI target of a unit, 0..1."),
    "egov_kpi_target_override_ratio": (
        "gauge",
        "An operator's target in force today (docs/targets.md), 0..1: its KPI, scope "
        "(unit, province_level or province), province, level and unit, and the basis it "
        "rests on in words, as the wall cites it.",
    ),
    "egov_kpi_retired_info": (
        "gauge",
        "A KPI with stored figures that the catalogue no longer has (always 1): its series "
        "are kept as counted, with no target.",
    ),
    "egov_dossiers": (
        "gauge",
        "Dossiers behind the on-time resolution rate in the window, one per dossier: resolved "
        "early, on_time or late (in the period of the resolution), or open_overdue (still "
        "open when the appointment passed, in the period of the appointment). The rate is "
        "(early + on_time) / all four; withdrawn dossiers are in none.",
    ),
    "egov_unit_info": ("gauge", "Administrative unit: name, level and parent (always 1)."),
    "egov_unit_last_event_timestamp_seconds": (
        "gauge",
        "Event time of the latest event of a unit (and its ancestors) per family.",
    ),
}


CHUNK_BYTES = 1 << 20
"""A scrape is written in pieces of about this size, the event loop free between them."""


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
        return b"".join(self.chunks()).decode()

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The exposition, encoded, in pieces of about ``size`` bytes.

        Written from one snapshot of the figures taken first, so a scrape is consistent
        (a ratio and its numerator come from the same flush) however long the pieces
        take to send. A full scrape (10,000 units: ~900,000 samples, ~90 MB of text) held
        at once cost ~230 MB above the worker's ~250 MB at rest: the lines, their join
        and its encoding; in pieces it costs the snapshot and one piece.
        """
        parts: list[str] = []
        length = 0
        for line in self._lines(Periods.at(self._clock())):
            parts.append(line)
            length += len(line)
            if length >= size:
                yield "".join(parts).encode()
                parts.clear()
                length = 0
        if parts:
            yield "".join(parts).encode()

    def _lines(self, periods: Periods) -> Iterator[str]:
        windows = {w: self._figures.window_sums(w, periods) for w in EXPORTED_WINDOWS}
        totals = self._figures.total_sums()
        activity = self._figures.activity()
        series = sorted(self._figures.series())
        labels, label = self._labels, self._label
        yield _header("egov_kpi_ratio")
        for window, sums in windows.items():
            for key, (num, den) in sums.items():
                if den:
                    text = labels.get(key) or label(key)
                    yield f'egov_kpi_ratio{{{text},window="{window}"}} {num / den!r}\n'
        for name, part in (("egov_kpi_numerator", 0), ("egov_kpi_denominator", 1)):
            yield _header(name)
            for window, sums in windows.items():
                for key, row in sums.items():
                    text = labels.get(key) or label(key)
                    yield f'{name}{{{text},window="{window}"}} {row[part]}\n'
        for name, part in (("egov_kpi_numerator_total", 0), ("egov_kpi_denominator_total", 1)):
            yield _header(name)
            for key, row in totals.items():
                yield f"{name}{{{labels.get(key) or label(key)}}} {row[part]}\n"
        described: dict[str, Unit | None] = {}
        yield from self._dossier_lines(periods)
        yield _header("egov_kpi_target_ratio")
        for key in series:
            code, kpi = key
            if code not in described:
                described[code] = describe_unit(self._registry, code, periods)
            target = self._targets.target(described[code], kpi)
            if target is not None:
                yield f"egov_kpi_target_ratio{{{label(key)}}} {target!r}\n"
        yield from self._override_lines(periods, described)
        yield _header("egov_kpi_retired_info")
        for kpi in sorted({kpi for _, kpi in series if self._targets.retired(kpi)}):
            yield f'egov_kpi_retired_info{{kpi="{_escape(kpi)}"}} 1\n'
        yield _header("egov_unit_info")
        for code, unit in described.items():
            if unit is not None:
                yield (
                    f'egov_unit_info{{unit="{_escape(code)}",name="{_escape(unit.full_name)}",'
                    f'level="{unit.level}",parent="{_escape(unit.parent or "")}"}} 1\n'
                )
        yield _header("egov_unit_last_event_timestamp_seconds")
        for (unit_code, family), epoch in activity.items():
            yield (
                f'egov_unit_last_event_timestamp_seconds{{unit="{_escape(unit_code)}",'
                f'family="{_escape(family)}"}} {epoch!r}\n'
            )

    def _override_lines(self, periods: Periods, described: dict[str, Unit | None]) -> Iterator[str]:
        """``egov_kpi_target_override_ratio``: the overrides in force, cited. A few series
        (every worker writes all of them); Grafana lists them beside the defaults' table,
        so a target an operator set is never shown bare."""
        yield _header("egov_kpi_target_override_ratio")
        for o in self._targets.in_force(periods.day):
            scope = o.scope
            province, level = scope.province or "", scope.level or ""
            if scope.unit is not None:
                # Not added to ``described``: egov_unit_info is written for the units
                # whose figures this worker owns, once across the workers.
                unit = described.get(scope.unit) or describe_unit(
                    self._registry, scope.unit, periods
                )
                if unit is not None:
                    province, level = placement(self._registry, unit).province, unit.level
            labels = (
                f'kpi="{_escape(o.kpi)}",scope="{scope.kind}",province="{_escape(province)}",'
                f'level="{level}",unit="{_escape(scope.unit or "")}",'
                f'basis="{_escape(cite(o.basis, "vi"))}"'
            )
            yield f"egov_kpi_target_override_ratio{{{labels}}} {o.target_bp / BP_MAX!r}\n"

    def _dossier_lines(self, periods: Periods) -> Iterator[str]:
        """``egov_dossiers``: the four counts of every unit that has any, 0 included."""
        yield _header("egov_dossiers")
        for window in EXPORTED_WINDOWS:
            counts = self._figures.outcome_sums(window, periods)
            for unit in sorted({unit for unit, _ in counts}):
                text = f'unit="{_escape(unit)}",window="{window}"'
                for outcome in OUTCOMES:
                    n = counts.get((unit, outcome), 0)
                    yield f'egov_dossiers{{{text},outcome="{outcome}"}} {n}\n'
