"""``GET /v1/kpis/history``: its bounded query and its answer (docs/metrics-api.md). Pure.

Every parameter is bounded before PostgreSQL is asked: one unit known to the registry,
one KPI id, at most ``metrics_history_max_days`` days (or one calendar year), so a
request reads at most that many rows per predecessor of the unit. A value outside its
bounds is a :class:`LimitError` (400), naming the parameter and its limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.common.rates import rate_bp
from services.common.units import REFORM_DATE, UnitRegistry
from services.metrics.api import QueryError
from services.metrics.eras import Crosswalk, Lineage
from services.metrics.targets import Targets

DEFAULT_DAYS = 30
FIRST_YEAR = 2000
"""The earliest ``year`` answered (no figures are older)."""
KPI_ID = re.compile(r"[a-z0-9_]{1,64}")
"""A KPI id as the catalogue writes them; a retired one is still answered."""
UNIT_MAX_CHARS = 32

TargetOn = Callable[[date], int | None]
"""The target (basis points) in force for the answer's unit and KPI on a day; None: none."""


def no_target(day: date) -> None:
    """For a caller with no targets at hand: every day's ``target_bp`` is null."""
    return None


def targets_on(targets: Targets, registry: UnitRegistry, query: HistoryQuery) -> TargetOn:
    """Each day's target as /v1/kpis would have served it that day (catalogue default or
    override in force then): a past day is judged against its own target, not today's,
    once a dated target changes (1 January, a province's plan; review 67). A restated day
    takes the target of today's unit, on whose boundaries it is shown."""
    unit = registry.get(query.lineage.unit, query.lineage.era)

    def on(day: date) -> int | None:
        found = targets.effective(unit, query.kpi, day)
        return found.target_bp if found is not None else None

    return on


class LimitError(QueryError):
    """A parameter outside its bounds; ``parameter`` and ``limit`` say which and what."""

    def __init__(self, parameter: str, limit: str, detail: str) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.limit = limit


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """One unit's daily figures of one KPI, ``first`` to ``last`` (local days)."""

    lineage: Lineage
    kpi: str
    first: date
    last: date

    @classmethod
    def parse(
        cls,
        params: Mapping[str, list[str]],
        registry: UnitRegistry,
        crosswalk: Crosswalk,
        today: date,
        max_days: int,
    ) -> HistoryQuery:
        """Raises :class:`QueryError` (or its :class:`LimitError`) for what cannot be read."""
        unit, kpi = _one(params, "unit"), _one(params, "kpi")
        if unit is None or kpi is None:
            raise QueryError("unit and kpi are required")
        if len(unit) > UNIT_MAX_CHARS:
            raise LimitError("unit", f"{UNIT_MAX_CHARS} characters", "unit is too long")
        if not KPI_ID.fullmatch(kpi):
            raise QueryError(f"kpi {kpi[:64]!r}: not a KPI id")
        lineage = Lineage.of(unit, registry, crosswalk)
        if lineage is None:
            raise QueryError(f"unknown unit {unit!r}")
        first, last = _days(params, today, max_days)
        return cls(lineage, kpi, first, last)


def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise QueryError(f"{name} given {len(values)} times: give it once")
    return values[0] if values else None


HUGE = 10**12
"""Stands for any integer of more digits: past every limit, and never parsed whole."""


def _integer(params: Mapping[str, list[str]], name: str) -> int | None:
    text = _one(params, name)
    if text is None:
        return None
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise QueryError(f"{name} must be an integer")
    value = int(digits) if len(digits) <= 12 else HUGE
    return -value if text.startswith("-") else value


def _days(params: Mapping[str, list[str]], today: date, max_days: int) -> tuple[date, date]:
    days, year = _integer(params, "days"), _integer(params, "year")
    if days is not None and year is not None:
        raise QueryError("give days or year, not both")
    if year is not None:
        if not FIRST_YEAR <= year <= today.year:
            raise LimitError(
                "year", f"{FIRST_YEAR}..{today.year}", f"year must be {FIRST_YEAR} to {today.year}"
            )
        return date(year, 1, 1), min(date(year, 12, 31), today)
    days = DEFAULT_DAYS if days is None else days
    if not 1 <= days <= max_days:
        raise LimitError("days", f"1..{max_days}", f"days must be 1 to {max_days}")
    return today - timedelta(days=days - 1), today


@dataclass(frozen=True, slots=True)
class DayFigure:
    day: date
    numerator: int
    denominator: int
    restated: bool
    target_bp: int | None = None
    """The target in force that day (None: none, e.g. a retired KPI)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "numerator": self.numerator,
            "denominator": self.denominator,
            "ratio": self.numerator / self.denominator if self.denominator else None,
            "rate_bp": rate_bp(self.numerator, self.denominator),
            "restated": self.restated,
            "target_bp": self.target_bp,
        }


def day_figures(
    query: HistoryQuery, rows: Iterable[tuple[date, int, int]], target_on: TargetOn = no_target
) -> list[DayFigure]:
    """The stored rows (one a day), each marked restated when read through the crosswalk,
    with the target in force that day."""
    lineage = query.lineage
    return [DayFigure(day, n, d, lineage.restated_on(day), target_on(day)) for day, n, d in rows]


def year_totals(days: Iterable[DayFigure]) -> list[dict[str, Any]]:
    """Each calendar year's sums over the days answered, restated when any day is."""
    years: dict[int, list[DayFigure]] = {}
    for figure in days:
        years.setdefault(figure.day.year, []).append(figure)
    totals = []
    for year, figures in sorted(years.items()):
        num = sum(f.numerator for f in figures)
        den = sum(f.denominator for f in figures)
        totals.append(
            {
                "year": year,
                "first_day": figures[0].day.isoformat(),
                "last_day": figures[-1].day.isoformat(),
                "numerator": num,
                "denominator": den,
                "ratio": num / den if den else None,
                "rate_bp": rate_bp(num, den),
                "restated": any(f.restated for f in figures),
            }
        )
    return totals


def answer(
    query: HistoryQuery, rows: Iterable[tuple[date, int, int]], target_on: TargetOn = no_target
) -> dict[str, Any]:
    """The JSON answer: days (each with its own target), year totals, and how days before
    the reform were read."""
    days = day_figures(query, rows, target_on)
    lineage = query.lineage
    restates = lineage.restated and query.first < REFORM_DATE
    return {
        "unit": lineage.unit,
        "era": lineage.era,
        "kpi": query.kpi,
        "from": query.first.isoformat(),
        "to": query.last.isoformat(),
        "restated": restates,
        "restated_from": list(lineage.whole) if restates else [],
        "left_out": list(lineage.left_out) if restates else [],
        "items": [d.to_json() for d in days],
        "years": year_totals(days),
    }
