"""The effective target: unit > province+level > province > the default of the day."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.common.kpis import KpiCatalogue
from services.common.targets import (
    InvalidScope,
    Override,
    OverrideIndex,
    Placement,
    Scope,
    effective_target,
    placement,
)
from services.common.units import UnitRegistry

SIGNING = KpiCatalogue.load().get("document_signing")
DAY = date(2026, 12, 4)
COMMUNE_19 = Placement("01843", "commune", "19")
COMMUNE_38 = Placement("14758", "commune", "38")
DEPARTMENT_19 = Placement("19-SNV", "department", "19")


def bp(where: Placement, *overrides: Override, day: date = DAY) -> tuple[int, str] | None:
    found = effective_target(SIGNING, where, day, OverrideIndex(overrides))
    return None if found is None else (found.target_bp, found.origin)


def test_the_most_specific_scope_wins() -> None:
    unit = Override(Scope(unit="01843"), SIGNING.id, 8000)
    level = Override(Scope(province="19", level="commune"), SIGNING.id, 9000)
    province = Override(Scope(province="19"), SIGNING.id, 9500)
    assert bp(COMMUNE_19) == (10_000, "default")
    assert bp(COMMUNE_19, province) == (9500, "province")
    assert bp(COMMUNE_19, province, level) == (9000, "province_level")
    assert bp(COMMUNE_19, province, level, unit) == (8000, "unit")


def test_a_province_and_level_override_reaches_that_level_of_that_province_only() -> None:
    communes_of_19 = Override(Scope(province="19", level="commune"), SIGNING.id, 9000)
    assert bp(COMMUNE_19, communes_of_19) == (9000, "province_level")
    assert bp(COMMUNE_38, communes_of_19) == (10_000, "default")
    assert bp(DEPARTMENT_19, communes_of_19) == (10_000, "default")


def test_an_override_of_another_kpi_does_not_apply() -> None:
    other = Override(Scope(unit="01843"), "meeting_online", 1000)
    assert bp(COMMUNE_19, other) == (10_000, "default")


def test_a_dated_override_switches_on_its_day_and_the_latest_start_wins() -> None:
    old = Override(Scope(unit="01843"), SIGNING.id, 9000)
    new = Override(Scope(unit="01843"), SIGNING.id, 9600, date(2026, 12, 10), date(2026, 12, 31))
    assert bp(COMMUNE_19, old, new, day=date(2026, 12, 9)) == (9000, "unit")
    assert bp(COMMUNE_19, old, new, day=date(2026, 12, 10)) == (9600, "unit")
    assert bp(COMMUNE_19, old, new, day=date(2026, 12, 31)) == (9600, "unit")
    assert bp(COMMUNE_19, old, new, day=date(2027, 1, 1)) == (9000, "unit")
    assert bp(COMMUNE_19, new, day=date(2027, 1, 1)) == (10_000, "default")


def test_the_default_of_the_day_applies_when_no_override_does() -> None:
    assert bp(COMMUNE_19, day=date(2020, 1, 31)) == (9500, "default")
    assert bp(COMMUNE_19, day=date(2020, 2, 1)) == (10_000, "default")


@pytest.mark.parametrize(
    "scope",
    [
        {},
        {"unit": "01843", "province": "19"},
        {"unit": "01843", "level": "commune"},
        {"level": "commune"},
        {"province": "19", "level": "xã"},
    ],
)
def test_a_scope_is_a_unit_or_a_province_and_level(scope: dict[str, str]) -> None:
    with pytest.raises(InvalidScope):
        Scope(**scope)


def test_a_units_province_is_its_top_ancestor_in_its_era() -> None:
    registry = UnitRegistry.from_dir()
    assert placement(registry, registry.get("01843", "2025")) == COMMUNE_19
    assert placement(registry, registry.get("19", "2025")) == Placement("19", "province", "19")
    old = registry.get("01843", "2024")  # a Bắc Kạn ward under Bắc Kạn city before 2025
    assert placement(registry, old).province == "06"


def test_indexes_of_the_same_overrides_are_equal_whatever_the_order() -> None:
    a = Override(Scope(unit="01843"), SIGNING.id, 8000)
    b = Override(Scope(province="19"), SIGNING.id, 9000)
    assert OverrideIndex([a, b]) == OverrideIndex([b, a])
    assert OverrideIndex([a]) != OverrideIndex([a, b])


def test_an_index_remembers_defaults_per_kpi_level_and_day_of_that_very_kpi() -> None:
    index = OverrideIndex()
    first = effective_target(SIGNING, COMMUNE_19, DAY, index)
    assert first is not None and effective_target(SIGNING, COMMUNE_38, DAY, index) is first
    assert effective_target(SIGNING, DEPARTMENT_19, DAY, index) is not first  # another level
    # Another catalogue's KPI of the same id (a reload) is not answered from the memo.
    dated = SIGNING.schedule[-1]
    lower = replace(dated, target_bp={level: 5000 for level in dated.target_bp})
    reloaded = replace(SIGNING, schedule=(*SIGNING.schedule[:-1], lower))
    found = effective_target(reloaded, COMMUNE_19, DAY, index)
    assert found is not None and (found.target_bp, found.origin) == (5000, "default")
