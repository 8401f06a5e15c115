"""Units of one level ranked by a KPI's rate or by their 766 score, low volume apart. Pure.

The rule, stated on the page (docs/wall.md, "Rankings"): a unit whose volume is below
the KPI's ``min_volume`` (the figure's own, the one the alerts and the wall's "too few
to judge" use) is **listed apart, unranked**, with its rate and volume shown; the others
are ranked by their exact rate (the fractions compared in integers, never a float or the
rounded rate), equal rates sharing a rank (1, 2, 2, 4), the larger volume listed first
within a tie. So a commune at 1 of 1 is never above one at 990 of 1,000: it is not in the
ranking at all until it has counted enough to be judged.

By score, a unit is ranked on the share of its measured points (points earned / points
measured for it, the 766 scorecard of :mod:`services.common.scorecard`); a unit any of
whose measured indicators is low-volume is listed apart, and one with nothing measured
is listed as no data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Final

from services.common.figures import Figure
from services.common.scorecard import Period, Score, Scorecard, score
from services.common.unit_info import UnitInfo

SCORE: Final = "score"
"""The ranking key of the 766 score (any other key is a KPI id)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One unit in a ranking: its place (None when listed apart) and what it rests on."""

    unit: UnitInfo
    rank: int | None
    value: Fraction | None
    """The rate (numerator / denominator) or the share of measured points; None: no data."""
    numerator: int
    denominator: int
    """The volume shown beside the rate (for a score: the measured indicators' items)."""
    min_volume: int
    low_volume: bool = False
    """Counted, but below the minimum volume: listed apart, never ranked."""
    figure: Figure | None = None
    score: Score | None = None


@dataclass(frozen=True, slots=True)
class Ranking:
    """Units of one level of one province ranked by one key (a KPI id or ``score``)."""

    key: str
    level: str
    province: str
    window: str
    ranked: tuple[Entry, ...]
    apart: tuple[Entry, ...]
    """Below the minimum volume: shown with their volume, never ranked; highest rate first
    (those that a plain sort would have put on top)."""
    no_data: tuple[Entry, ...]
    """Nothing counted in the window."""

    @property
    def min_volume(self) -> int:
        """The minimum volume stated on the page (the largest among the entries)."""
        entries = (*self.ranked, *self.apart, *self.no_data)
        return max((e.min_volume for e in entries), default=0)


def units_of(figures: Iterable[Figure], province: str, level: str) -> dict[str, UnitInfo]:
    """The units of ``level`` in ``province`` that any figure names, by code."""
    found: dict[str, UnitInfo] = {}
    for f in figures:
        if f.province == province and f.level == level and f.unit not in found:
            found[f.unit] = UnitInfo(
                f.unit, f.unit_name, f.unit_name_en, f.level, f.province, f.parent
            )
    return found


def levels_of(figures: Iterable[Figure], province: str) -> list[str]:
    """The levels under the province that figures name, most units first."""
    counts: dict[str, set[str]] = {}
    for f in figures:
        if f.province == province and f.level and f.level != "province":
            counts.setdefault(f.level, set()).add(f.unit)
    return sorted(counts, key=lambda lvl: (-len(counts[lvl]), lvl))


def rank_kpi(
    figures: Sequence[Figure], kpi: str, province: str, level: str, window: str
) -> Ranking:
    """Units of ``level`` in ``province`` by their ``window`` rate of ``kpi``."""
    units = units_of(figures, province, level)
    mine = {f.unit: f for f in figures if f.kpi == kpi and f.window == window and f.unit in units}
    entries = []
    for code, unit in units.items():
        fig = mine.get(code)
        if fig is None:
            entries.append(Entry(unit, None, None, 0, 0, 0))
            continue
        value = Fraction(fig.numerator, fig.denominator) if fig.denominator > 0 else None
        low = 0 < fig.denominator < fig.min_volume
        entries.append(
            Entry(unit, None, value, fig.numerator, fig.denominator, fig.min_volume, low, fig)
        )
    return _ranking(kpi, level, province, window, entries)


def rank_score(
    card: Scorecard, figures: Sequence[Figure], province: str, level: str, period: Period
) -> Ranking:
    """Units of ``level`` in ``province`` by the share of their measured 766 points."""
    units = units_of(figures, province, level)
    by_unit: dict[str, list[Figure]] = {code: [] for code in units}
    for f in figures:
        if f.unit in by_unit and period.covers(f):
            by_unit[f.unit].append(f)
    entries = []
    for code, unit in units.items():
        mine = by_unit[code]
        s = score(card, mine, code, period)
        measured = [i for i in s.indicators if i.points is not None and i.denominator > 0]
        n = sum(i.numerator for i in measured)
        d = sum(i.denominator for i in measured)
        value = s.points / s.measured_max if s.measured_max else None
        kpis = {i.indicator.kpi for i in measured}
        floor = max((f.min_volume for f in mine if f.kpi in kpis), default=0)
        # Low volume anywhere in what is measured: the score is shown, never ranked.
        low = any(i.low_volume for i in measured)
        entries.append(Entry(unit, None, value, n, d, floor, low, None, s))
    return _ranking(SCORE, level, province, period.window, entries)


def _ranking(key: str, level: str, province: str, window: str, entries: list[Entry]) -> Ranking:
    judged = [e for e in entries if e.value is not None and not e.low_volume]
    apart = [e for e in entries if e.value is not None and e.low_volume]
    none = [e for e in entries if e.value is None]
    judged.sort(key=lambda e: (-(e.value or 0), -e.denominator, e.unit.code))
    ranked: list[Entry] = []
    for i, e in enumerate(judged):
        tied = ranked and ranked[-1].value == e.value
        rank = ranked[-1].rank if tied else i + 1
        ranked.append(replace(e, rank=rank))
    apart.sort(key=lambda e: (-(e.value or 0), -e.denominator, e.unit.code))
    none.sort(key=lambda e: e.unit.code)
    return Ranking(key, level, province, window, tuple(ranked), tuple(apart), tuple(none))
