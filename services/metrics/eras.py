"""Daily figures across the 2025 reform: each day's era, and history on today's units. Pure.

Figures are stored with their era (migration 0012): a code means one unit before
2025-07-01 and possibly another after (16342 was Xã Thăng Long, then Xã Thăng Bình),
so a unit's history never reads rows of another era under the same code. Before the
reform, a unit of today is *restated*: its days are the sums of the 2024-era units the
crosswalk (data/units/crosswalk-2025.csv) says were wholly merged into it (``merged`` or
``unchanged``); a department, the departments of its kind in its province's
predecessors. An old unit only partly merged (``partial``) cannot be split by figures:
it is left out and named. Pure apart from :meth:`Crosswalk.from_dir`.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from services.common.units import ERAS, REFORM_DATE, Era, UnitRegistry, era_at
from services.metrics.periods import day_start

PREVIOUS_ERA: Era = ERAS[0]
CURRENT_ERA: Era = ERAS[-1]


def era_of_day(day: date) -> Era:
    """The era of a local calendar day: the one its first instant is in."""
    return era_at(day_start(day))


def era_start(day: date) -> date:
    """The first day of ``day``'s era (``date.min`` for the first era)."""
    return REFORM_DATE if era_of_day(day) == CURRENT_ERA else date.min


@dataclass(frozen=True, slots=True)
class Predecessor:
    """A 2024-era unit and how it went into a unit of today (a crosswalk row)."""

    code: str
    match: str


class Crosswalk:
    """2025 unit code -> the 2024-era units that went into it, from crosswalk-2025.csv."""

    def __init__(self, rows: Iterable[Mapping[str, str]]) -> None:
        links: dict[str, list[Predecessor]] = defaultdict(list)
        for row in rows:
            links[row["new_code"]].append(Predecessor(row["old_code"], row["match"]))
        self._links = {code: tuple(sorted(p, key=lambda x: x.code)) for code, p in links.items()}

    @classmethod
    def from_dir(cls, units_dir: Path) -> Crosswalk:
        with (units_dir / "crosswalk-2025.csv").open(encoding="utf-8", newline="") as fh:
            return cls(list(csv.DictReader(fh)))

    def predecessors(self, code: str) -> tuple[Predecessor, ...]:
        return self._links.get(code, ())


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where one unit's daily figures are read from, era by era."""

    unit: str
    era: Era
    """The unit's own era: today's (``2025``) when the code names a unit today."""
    whole: tuple[str, ...] = ()
    """2024-era codes summed for the days before the reform (today's units only)."""
    left_out: tuple[str, ...] = ()
    """2024-era codes only partly merged into the unit: not in its restated days."""
    unchanged: bool = False
    """The crosswalk's only link is the unit itself, ``unchanged``: nothing is restated."""

    @classmethod
    def of(cls, code: str, registry: UnitRegistry, crosswalk: Crosswalk) -> Lineage | None:
        """The lineage of ``code``, or None when no unit of either era has it."""
        if _known(registry, code, CURRENT_ERA):
            links = crosswalk.predecessors(code)
            unit = registry.get(code, CURRENT_ERA)
            if unit.level == "department" and unit.parent is not None:
                links = _department_links(code, unit.parent, registry, crosswalk)
            whole = tuple(p.code for p in links if p.match != "partial")
            left_out = tuple(p.code for p in links if p.match == "partial")
            unchanged = links == (Predecessor(code, "unchanged"),)
            return cls(code, CURRENT_ERA, whole, left_out, unchanged)
        if _known(registry, code, PREVIOUS_ERA):
            return cls(code, PREVIOUS_ERA)
        return None

    @property
    def restated(self) -> bool:
        """Whether its days before the reform are read through the crosswalk: not its own
        figures, unless the crosswalk keeps it ``unchanged`` and alone."""
        return self.era == CURRENT_ERA and not self.unchanged

    def restated_on(self, day: date) -> bool:
        return self.restated and day < REFORM_DATE


def _department_links(
    code: str, province: str, registry: UnitRegistry, crosswalk: Crosswalk
) -> tuple[Predecessor, ...]:
    """A department (the project's codes: province-ABBREV) goes back to the departments of
    the same kind in the provinces merged into its province, as the province does."""
    kind = code.split("-", 1)[-1]
    return tuple(
        Predecessor(f"{p.code}-{kind}", p.match)
        for p in crosswalk.predecessors(province)
        if _known(registry, f"{p.code}-{kind}", PREVIOUS_ERA)
    )


def _known(registry: UnitRegistry, code: str, era: Era) -> bool:
    try:
        registry.get(code, era)
    except KeyError:
        return False
    return True
