"""The JSON API's answers (docs/metrics-api.md), built from the figures. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.common.figures import DossierCounts, Figure, TargetBasis
from services.common.kpis import KpiCatalogue
from services.common.units import Unit, UnitRegistry
from services.metrics.dossiers import KPI as ON_TIME
from services.metrics.dossiers import OUTCOMES
from services.metrics.figures import Figures
from services.metrics.periods import ALL_WINDOWS, VN_TZ, Periods
from services.metrics.targets import Targets, describe_unit

FAMILIES = ("documents", "dossiers", "meetings")
"""Topic families: a unit's last event is the latest of these."""


class QueryError(ValueError):
    """A query parameter that cannot be answered; the message says which and why."""


@dataclass(frozen=True, slots=True)
class KpiQuery:
    units: frozenset[str]
    levels: frozenset[str]
    provinces: frozenset[str]
    kpis: frozenset[str]
    windows: tuple[str, ...]

    @classmethod
    def parse(cls, params: Mapping[str, list[str]], catalogue: KpiCatalogue) -> KpiQuery:
        windows = tuple(params.get("window") or ["day"])
        for window in windows:
            if window not in ALL_WINDOWS:
                raise QueryError(f"window {window!r}: expected one of {', '.join(ALL_WINDOWS)}")
        kpis = frozenset(params.get("kpi", ()))
        unknown = kpis - set(catalogue.ids)
        if unknown:
            raise QueryError(f"unknown kpi {sorted(unknown)}")
        return cls(
            frozenset(params.get("unit", ())),
            frozenset(params.get("level", ())),
            frozenset(params.get("province", ())),
            kpis,
            windows,
        )


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, VN_TZ).isoformat()


def kpi_items(
    query: KpiQuery,
    figures: Figures,
    registry: UnitRegistry,
    targets: Targets,
    periods: Periods,
) -> list[dict[str, Any]]:
    """One item per (series, window) this worker owns, filtered by the query.

    Each item is a :class:`~services.common.figures.Figure` written as JSON, the type the
    alerts and the wall read back. A series whose KPI the catalogue no longer has is
    served as it was counted, marked ``retired``, named by its id and with no target (so
    never judged)."""
    activity = figures.activity()
    items: list[dict[str, Any]] = []
    # A unit's description is the same for each of its KPIs and windows: found once per
    # call (alerts read 70,000 items per window every few seconds).
    described: dict[str, tuple[Unit | None, str | None, datetime | None]] = {}
    # A handful of distinct targets (a default per KPI and level, each override): each
    # basis made once, by what it rests on (an override's Effective is made anew per
    # lookup; its Override and a default's DatedTarget are shared).
    bases: dict[object, TargetBasis] = {}
    for window in query.windows:
        start = periods.start(window)
        outcomes = figures.outcome_sums(window, periods)
        for (code, kpi_id), fig in sorted(figures.window(window, periods).items()):
            if (query.units and code not in query.units) or (
                query.kpis and kpi_id not in query.kpis
            ):
                continue
            found = described.get(code)
            if found is None:
                last_of = (activity.get((code, f)) or 0.0 for f in FAMILIES)
                last = max(last_of, default=0.0)
                found = described[code] = (
                    describe_unit(registry, code, periods),
                    _province_of(registry, code, periods),
                    datetime.fromtimestamp(last, VN_TZ) if last else None,
                )
            unit, province, last_event = found
            level = unit.level if unit else None
            if (query.levels and level not in query.levels) or (
                query.provinces and province not in query.provinces
            ):
                continue
            retired = targets.retired(kpi_id)
            kpi = None if retired else targets.catalogue.get(kpi_id)
            target = targets.effective(unit, kpi_id, periods.day)  # the answer's day, once
            basis = None
            if target is not None:
                held_by = (target.origin, target.override or id(target.default))
                basis = bases.get(held_by)
                if basis is None:
                    basis = bases[held_by] = target.basis
            item = Figure(
                kpi_id,
                code,
                window,
                fig.numerator,
                fig.denominator,
                None if target is None else target.target_bp,
                kpi.min_volume if kpi is not None else 0,
                unit.full_name if unit else "",
                unit.full_name_en if unit else "",
                kpi.name_vi if kpi is not None else kpi_id,
                kpi.name_en if kpi is not None else kpi_id,
                level or "",
                province or "",
                unit.parent if unit else None,
                last_event,
                start,
                retired,
                dossier_counts(outcomes, code) if kpi_id == ON_TIME else None,
                basis,
            )
            items.append(item.to_json())
    return items


def dossier_counts(outcomes: Mapping[tuple[str, str], int], unit: str) -> DossierCounts:
    """The on-time item's four counts for ``unit`` (0 where none was counted)."""
    return DossierCounts(*(outcomes.get((unit, outcome), 0) for outcome in OUTCOMES))


def _province_of(registry: UnitRegistry, code: str, periods: Periods) -> str | None:
    unit = describe_unit(registry, code, periods)
    seen = 0
    while unit is not None and unit.parent is not None and seen < 4:
        unit = registry.get(unit.parent, unit.era)
        seen += 1
    return unit.code if unit else None


def activity_items(figures: Figures) -> list[dict[str, Any]]:
    return [
        {"unit": unit, "family": family, "last_event_time": _iso(epoch)}
        for (unit, family), epoch in sorted(figures.activity().items())
    ]


def history_items(rows: Iterable[tuple[date, int, int]]) -> list[dict[str, Any]]:
    return [
        {
            "day": day.isoformat(),
            "numerator": num,
            "denominator": den,
            "ratio": num / den if den else None,
        }
        for day, num, den in rows
    ]
