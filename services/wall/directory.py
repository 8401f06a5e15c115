"""Today's units of each province, from the unit registry: the units a page expects to hear from."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable

from services.common.unit_info import UnitInfo
from services.common.units import Era, Unit, UnitRegistry

TODAY: Era = "2025"
"""The era of today's directory: province → commune (and the provinces' departments)."""


class TodayUnits:
    """Today's units under each province, named as the workers name them (full names).

    A metrics worker serves figures only for the series it has counted, so a commune that
    never sent anything (new after the 2025 reform, a new key) has none, while the pager's
    UnitSilent fires for it: the overview takes a province's units from here too. Every
    province's list is built once, so a page pays a lookup, not a walk of the registry.
    """

    def __init__(self, units: Iterable[Unit]) -> None:
        by_code = {u.code: u for u in units}
        under: dict[str, list[UnitInfo]] = defaultdict(list)
        for unit in sorted(by_code.values(), key=lambda u: u.code):
            province = _province_of(by_code, unit)
            if province != unit.code:
                under[province].append(
                    UnitInfo(
                        unit.code,
                        unit.full_name,
                        unit.full_name_en,
                        unit.level,
                        province,
                        unit.parent,
                    )
                )
        self._under = {code: tuple(units) for code, units in under.items()}

    @classmethod
    def of(cls, registry: UnitRegistry) -> TodayUnits:
        return cls(registry.units(TODAY))

    def under(self, province: str) -> tuple[UnitInfo, ...]:
        """Every unit of today's directory under ``province``, by code; none for a code
        today's directory does not know (a 2024-era province)."""
        return self._under.get(province, ())


def _province_of(by_code: dict[str, Unit], unit: Unit) -> str:
    seen = {unit.code}
    while unit.parent is not None and unit.parent in by_code and unit.parent not in seen:
        unit = by_code[unit.parent]
        seen.add(unit.code)
    return unit.code


@functools.cache
def shipped_registry() -> UnitRegistry:
    """The unit data shipped with the repository (data/units/), read when first needed."""
    return UnitRegistry.from_dir()


@functools.cache
def shipped_units() -> TodayUnits:
    """Today's units of :func:`shipped_registry`: what pure callers get unless they pass
    the composition root's (``EGOV_UNITS_DIR``)."""
    return TodayUnits.of(shipped_registry())
