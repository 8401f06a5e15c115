"""Effective targets and unit descriptions for the exported figures. Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime

from services.common.kpis import KpiCatalogue
from services.common.targets import (
    Effective,
    Override,
    OverrideIndex,
    Placement,
    effective_target,
    placement,
)
from services.common.units import ERAS, VN_TZ, Unit, UnitRegistry, era_at
from services.metrics.periods import Periods


def _today_in_vietnam() -> date:
    return datetime.now(VN_TZ).date()


class Targets:
    """The effective target of a unit's KPI on a day (services/common/targets.py: unit >
    province+level > province > the catalogue default for the day); none for a KPI the
    catalogue no longer has (an override cannot revive it).

    ``overrides`` is replaced whole by the worker's refresh timer. ``registry`` places a
    unit in its province (loaded from data/units when not given and first needed);
    ``today`` gives the Vietnam day when a caller does not pass one.
    """

    def __init__(
        self,
        catalogue: KpiCatalogue,
        registry: UnitRegistry | None = None,
        today: Callable[[], date] = _today_in_vietnam,
    ) -> None:
        self.catalogue = catalogue
        self._registry = registry
        self._today = today
        self._index = OverrideIndex()
        self._placed: dict[tuple[str, str], Placement] = {}
        self._known = frozenset(catalogue.ids)

    @property
    def overrides(self) -> OverrideIndex:
        return self._index

    @overrides.setter
    def overrides(self, overrides: Iterable[Override]) -> None:
        self._index = OverrideIndex(overrides)

    def retired(self, kpi: str) -> bool:
        """Whether ``kpi`` has figures stored but is no longer in the catalogue (removed or
        renamed in data/kpis.json): its figures are served as retired, with no target."""
        return kpi not in self._known

    def effective(self, unit: Unit | None, kpi: str, day: date | None = None) -> Effective | None:
        """The target and its origin, or None: a unit not placed in the registry, or a
        retired KPI."""
        if unit is None or kpi not in self._known:
            return None
        where = self._placement(unit)
        return effective_target(self.catalogue.get(kpi), where, day or self._today(), self._index)

    def target(self, unit: Unit | None, kpi: str, day: date | None = None) -> float | None:
        """``effective`` as a ratio 0..1 (the /metrics gauge and /v1/kpis still take one)."""
        found = self.effective(unit, kpi, day)
        return found.ratio if found is not None else None

    def in_force(self, day: date | None = None) -> list[Override]:
        """The overrides applied on ``day`` (today) to KPIs of the catalogue."""
        return [o for o in self._index.in_force(day or self._today()) if o.kpi in self._known]

    def _placement(self, unit: Unit) -> Placement:
        if not self._index.by_province and self._registry is None:
            return Placement(unit.code, unit.level, "")  # the province would decide nothing
        key = (unit.era, unit.code)
        found = self._placed.get(key)
        if found is None:
            if self._registry is None:
                self._registry = UnitRegistry.from_dir()
            found = self._placed[key] = placement(self._registry, unit)
        return found


def describe_unit(registry: UnitRegistry, code: str, periods: Periods) -> Unit | None:
    """The unit a code names now, else in the other era (history still being exported)."""
    current = era_at(periods.now)
    for era in (current, *(e for e in ERAS if e != current)):
        try:
            return registry.get(code, era)
        except KeyError:
            continue
    return None
