"""Effective targets and unit descriptions for the exported figures. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from services.common.kpis import KpiCatalogue
from services.common.units import ERAS, Unit, UnitRegistry, era_at
from services.metrics.periods import Periods


class Targets:
    """Operator override (unit + KPI, else unit) or the catalogue default for the level;
    none for a KPI the catalogue no longer has (an override cannot revive it)."""

    def __init__(self, catalogue: KpiCatalogue) -> None:
        self.catalogue = catalogue
        self.overrides: Mapping[tuple[str, str | None], float] = {}
        self._known = frozenset(catalogue.ids)

    def retired(self, kpi: str) -> bool:
        """Whether ``kpi`` has figures stored but is no longer in the catalogue (removed or
        renamed in data/kpis.json): its figures are served as retired, with no target."""
        return kpi not in self._known

    def target(self, unit: Unit | None, kpi: str) -> float | None:
        """The target, or None: a unit not placed in the registry, or a retired KPI."""
        if unit is not None and kpi in self._known:
            for key in ((unit.code, kpi), (unit.code, None)):
                if key in self.overrides:
                    return self.overrides[key]
            return self.catalogue.get(kpi).target_for(unit.level)
        return None


def describe_unit(registry: UnitRegistry, code: str, periods: Periods) -> Unit | None:
    """The unit a code names now, else in the other era (history still being exported)."""
    current = era_at(periods.now)
    for era in (current, *(e for e in ERAS if e != current)):
        try:
            return registry.get(code, era)
        except KeyError:
            continue
    return None
