"""Decision 766/QĐ-TTg's scorecard of one unit and period, from its figures. Pure.

The indicators, their maxima, rate formulas and points rules are cited data
(data/scorecard-766.json, docs/scorecard.md). An indicator is *measured* when the data
names the KPI of data/kpis.json that counts it and a points rule is given; its points
are an exact :class:`~fractions.Fraction` of the integer counts, never a float. Every
other indicator is *not measured here*: it keeps its maximum and says why, and the
score says how many of the 100 points are measured, so that a partial score is never
read as a full one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, Literal

from services.common.figures import Figure
from services.common.paths import REPO_ROOT
from services.common.rates import BP_SCALE, Lang, format_count, format_date
from services.common.units import VN_TZ

SCORECARD_766: Final = REPO_ROOT / "data" / "scorecard-766.json"
TOTAL_POINTS: Final = 100

PeriodKind = Literal["month", "quarter", "ytd"]


class ScorecardDataError(ValueError):
    """data/scorecard-766.json is malformed; the message names the indicator and why."""


class State(StrEnum):
    """What an indicator's points rest on, in one period."""

    MEASURED = "measured"
    """Counted here: its points follow from the counts."""
    NO_DATA = "no_data"
    """Counted here, but nothing was counted in the period: no points are claimed."""
    NOT_MEASURED = "not_measured"
    """No event of the contract counts it (or no rule is given): the reason is cited."""


@dataclass(frozen=True, slots=True)
class PointsRule:
    """How points follow from a rate: proportional up to a threshold, or not given.

    ``full_at_bp`` is the rate from which the maximum is earned (10000: the plain
    proportion; 8000: full points from 80 %). ``full_when_none``: the source scores
    an empty period at full points (no petition is no late petition).
    """

    given: bool
    full_at_bp: int = BP_SCALE
    full_when_none: bool = False
    source: str = ""

    def points(self, max_points: int, numerator: int, denominator: int) -> Fraction | None:
        """The points earned, exact; None when nothing is counted and no rule says more."""
        if denominator <= 0:
            return Fraction(max_points) if self.full_when_none else None
        if not 0 <= numerator <= denominator:
            raise ValueError(f"numerator {numerator} outside 0..{denominator}")
        # min(n/d, F/10000) / (F/10000), kept in integers: min(n*10000, F*d) / (F*d)
        reached = min(numerator * BP_SCALE, self.full_at_bp * denominator)
        return Fraction(max_points * reached, self.full_at_bp * denominator)


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator of the decision: names, maximum, cited formula, what measures it."""

    id: str
    group: str
    name_vi: str
    name_en: str
    max_points: int
    formula_vi: str
    formula_en: str
    rule: PointsRule
    citation: str
    kpi: str | None
    """The KPI of data/kpis.json that counts this indicator's rate; None: not measured."""
    not_measured_vi: str = ""
    not_measured_en: str = ""
    deviation_vi: str = ""
    deviation_en: str = ""
    """How the KPI's rate differs from the decision's, where it does (shown beside it)."""

    @property
    def measured(self) -> bool:
        return self.kpi is not None and self.rule.given

    def name(self, lang: Lang) -> str:
        return self.name_vi if lang == "vi" else self.name_en

    def why_not_measured(self, lang: Lang) -> str:
        return self.not_measured_vi if lang == "vi" else self.not_measured_en

    def deviation(self, lang: Lang) -> str:
        return self.deviation_vi if lang == "vi" else self.deviation_en


@dataclass(frozen=True, slots=True)
class Group:
    """One of the five groups, with its maximum (18, 20, 22, 22, 18)."""

    id: str
    number: int
    name_vi: str
    name_en: str
    max_points: int
    indicators: tuple[Indicator, ...]

    def name(self, lang: Lang) -> str:
        return self.name_vi if lang == "vi" else self.name_en


@dataclass(frozen=True, slots=True)
class Scorecard:
    """The decision's indicators as cited data (data/scorecard-766.json)."""

    decision: str
    groups: tuple[Group, ...]

    @classmethod
    def load(cls, path: Path = SCORECARD_766, kpi_ids: Iterable[str] | None = None) -> Scorecard:
        """Read and check the file: maxima add up to each group and to 100; with
        ``kpi_ids`` (the catalogue's), every KPI named exists."""
        raw = json.loads(path.read_text(encoding="utf-8"))
        card = cls(raw["decision"]["id"], tuple(_group(g) for g in raw["groups"]))
        card._check(None if kpi_ids is None else frozenset(kpi_ids))
        return card

    @property
    def indicators(self) -> tuple[Indicator, ...]:
        return tuple(i for g in self.groups for i in g.indicators)

    def _check(self, kpi_ids: frozenset[str] | None) -> None:
        for group in self.groups:
            total = sum(i.max_points for i in group.indicators)
            if total != group.max_points:
                raise ScorecardDataError(f"group {group.id}: indicators add to {total}")
        if sum(g.max_points for g in self.groups) != TOTAL_POINTS:
            raise ScorecardDataError(f"groups do not add to {TOTAL_POINTS} points")
        ids = [i.id for i in self.indicators]
        if len(set(ids)) != len(ids):
            raise ScorecardDataError("an indicator id is used twice")
        for ind in self.indicators:
            if kpi_ids is not None and ind.kpi is not None and ind.kpi not in kpi_ids:
                raise ScorecardDataError(f"indicator {ind.id}: no KPI {ind.kpi!r}")
            if not ind.measured and not ind.not_measured_en:
                raise ScorecardDataError(f"indicator {ind.id}: not measured, and no reason")


def _group(raw: Mapping[str, Any]) -> Group:
    indicators = tuple(_indicator(raw["id"], i) for i in raw["indicators"])
    return Group(
        raw["id"], raw["number"], raw["name_vi"], raw["name_en"], raw["max_points"], indicators
    )


def _indicator(group: str, raw: Mapping[str, Any]) -> Indicator:
    try:
        return Indicator(
            id=raw["id"],
            group=group,
            name_vi=raw["name_vi"],
            name_en=raw["name_en"],
            max_points=int(raw["max_points"]),
            formula_vi=raw["formula_vi"],
            formula_en=raw["formula_en"],
            rule=_rule(raw["points"]),
            citation=raw["citation"],
            kpi=raw.get("kpi"),
            not_measured_vi=raw.get("not_measured_vi", ""),
            not_measured_en=raw.get("not_measured_en", ""),
            deviation_vi=raw.get("deviation_vi", ""),
            deviation_en=raw.get("deviation_en", ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ScorecardDataError(f"indicator {raw.get('id')!r}: {exc!r}") from None


def _rule(raw: Mapping[str, Any]) -> PointsRule:
    kind = raw["rule"]
    if kind == "not_given":
        return PointsRule(False, source=raw["source"])
    if kind != "proportional":
        raise ValueError(f"unknown points rule {kind!r}")
    full_at = int(raw["full_at_bp"])
    if not 0 < full_at <= BP_SCALE:
        raise ValueError(f"full_at_bp {full_at} outside 1..{BP_SCALE}")
    return PointsRule(True, full_at, raw.get("when_none") == "full", raw["source"])


@dataclass(frozen=True, slots=True)
class Period:
    """A scoring period in Vietnam days: a month, a quarter, or the year to a day.

    ``number`` is the month (1..12) or the quarter (1..4); a year to date runs from
    1 January to ``through`` inclusive. ``window`` names the /v1/kpis window whose
    figures cover it.
    """

    kind: PeriodKind
    year: int
    number: int = 0
    through: date | None = None

    def __post_init__(self) -> None:
        top = {"month": 12, "quarter": 4, "ytd": 0}[self.kind]
        if self.kind == "ytd":
            if self.through is None or self.through.year != self.year:
                raise ValueError("a year to date needs the day it runs to, in that year")
        elif not 1 <= self.number <= top:
            raise ValueError(f"{self.kind} {self.number} outside 1..{top}")

    @property
    def window(self) -> str:
        return {"month": "month", "quarter": "quarter", "ytd": "year"}[self.kind]

    @property
    def start(self) -> date:
        """Its first Vietnam day, where the window's figures start (``period_start``)."""
        month = {"month": self.number, "quarter": 3 * self.number - 2, "ytd": 1}[self.kind]
        return date(self.year, month, 1)

    def covers(self, fig: Figure) -> bool:
        """Whether a figure counts this period: its window, and its start when it says."""
        if fig.window != self.window:
            return False
        return fig.period_start is None or fig.period_start.astimezone(VN_TZ).date() == self.start

    def label(self, lang: Lang) -> str:
        """ "Tháng 11/2026", "Quý 4/2026", "Năm 2026 đến 04/12/2026" (vi); "Nov 2026",
        "Q4 2026", "2026 to 4 Dec 2026" (en)."""
        if self.kind == "month":
            if lang == "vi":
                return f"Tháng {self.number}/{self.year}"
            # format_date's English month name, without the day: one table of month names
            return format_date(date(self.year, self.number, 1), lang).split(" ", 1)[1]
        if self.kind == "quarter":
            return (
                f"Quý {self.number}/{self.year}" if lang == "vi" else f"Q{self.number} {self.year}"
            )
        through = format_date(self.through or date(self.year, 12, 31), lang)
        return f"Năm {self.year} đến {through}" if lang == "vi" else f"{self.year} to {through}"


@dataclass(frozen=True, slots=True)
class IndicatorScore:
    """One indicator in one period: its state, the counts behind it and its points."""

    indicator: Indicator
    state: State
    points: Fraction | None = None
    numerator: int = 0
    denominator: int = 0
    low_volume: bool = False
    """Fewer items than the KPI's minimum volume: the points are shown, with care."""

    @property
    def lost(self) -> Fraction:
        """Points missed against the maximum (0 when not measured: nothing is known)."""
        if self.state is not State.MEASURED or self.points is None:
            return Fraction(0)
        return self.indicator.max_points - self.points

    @property
    def shown(self) -> int:
        """Its points as shown, in hundredths (:func:`points_hundredths`); 0 when not
        measured. What every total adds up."""
        if self.state is not State.MEASURED or self.points is None:
            return 0
        return points_hundredths(self.points, self.indicator.max_points)

    @property
    def lost_shown(self) -> int:
        """Its lost points as shown, in hundredths: the maximum less the points shown, so
        that a row's two figures add up to its maximum (17,71 and 2,29 of 20, where each
        rounded alone read 17,71 and 2,30: review 49)."""
        if self.state is not State.MEASURED or self.points is None:
            return 0
        return self.indicator.max_points * 100 - self.shown


@dataclass(frozen=True, slots=True)
class GroupScore:
    """A group's indicators in one period, with what its measured ones earned."""

    group: Group
    indicators: tuple[IndicatorScore, ...]

    @property
    def points(self) -> Fraction:
        """Points earned by the measured indicators (the others are unknown, not 0)."""
        return sum((s.points or Fraction(0) for s in self._measured()), Fraction(0))

    @property
    def measured_max(self) -> int:
        """How many of the group's points rest on counts here."""
        return sum(s.indicator.max_points for s in self._measured())

    @property
    def shown(self) -> int:
        """Its points as shown, in hundredths: the sum of its indicators' shown points, so
        that a subtotal is what its rows add up to (review 49: the group's exact points
        rounded once read 10,01 beside rows of 5,01, 4,00 and 1,01)."""
        return sum(s.shown for s in self.indicators)

    def _measured(self) -> Iterable[IndicatorScore]:
        return (s for s in self.indicators if s.state is State.MEASURED and s.points is not None)


@dataclass(frozen=True, slots=True)
class Score:
    """A unit's scorecard for one period: groups, what is measured, what costs most."""

    decision: str
    unit: str
    period: Period
    groups: tuple[GroupScore, ...]
    as_of: datetime | None = None
    """The time of the figures it was computed from (their newest event), if known."""

    @property
    def points(self) -> Fraction:
        return sum((g.points for g in self.groups), Fraction(0))

    @property
    def measured_max(self) -> int:
        """How many of the 100 points are measured here in this period."""
        return sum(g.measured_max for g in self.groups)

    @property
    def shown(self) -> int:
        """Its points as shown, in hundredths: the sum of its groups' (``GroupScore.shown``)."""
        return sum(g.shown for g in self.groups)

    @property
    def indicators(self) -> tuple[IndicatorScore, ...]:
        return tuple(s for g in self.groups for s in g.indicators)

    def costliest(self) -> IndicatorScore | None:
        """The measured indicator that loses the most points (first in the decision's
        order on a tie); None when none loses any or none is measured."""
        measured = [s for s in self.indicators if s.lost > 0]
        return max(measured, key=lambda s: s.lost, default=None)


def score(
    card: Scorecard,
    figures: Sequence[Figure],
    unit: str,
    period: Period,
) -> Score:
    """The scorecard of ``unit`` for ``period`` from its figures of ``period.window``.

    Figures of other units, windows and periods (last month's, kept by a reader) are
    ignored; two figures of one KPI for the unit and period are a caller's bug (merge the
    workers' answers first) and refused.
    """
    mine: dict[str, Figure] = {}
    for fig in figures:
        if fig.unit != unit or not period.covers(fig):
            continue
        if fig.kpi in mine:
            raise ValueError(f"two {period.window} figures of {fig.kpi} for unit {unit}")
        mine[fig.kpi] = fig
    groups = tuple(
        GroupScore(g, tuple(_indicator_score(i, mine) for i in g.indicators)) for g in card.groups
    )
    newest = [f.last_event_time for f in mine.values() if f.last_event_time is not None]
    return Score(card.decision, unit, period, groups, max(newest, default=None))


def _indicator_score(ind: Indicator, figures: Mapping[str, Figure]) -> IndicatorScore:
    if not ind.measured or ind.kpi is None:
        return IndicatorScore(ind, State.NOT_MEASURED)
    fig = figures.get(ind.kpi)
    n, d = (fig.numerator, fig.denominator) if fig is not None else (0, 0)
    points = ind.rule.points(ind.max_points, n, d)
    if points is None:
        return IndicatorScore(ind, State.NO_DATA, None, n, d)
    low = fig is not None and 0 < d < fig.min_volume
    return IndicatorScore(ind, State.MEASURED, points, n, d, low)


def points_hundredths(points: Fraction, maximum: int | None = None) -> int:
    """Points in hundredths, rounded half up from the exact fraction (never a float),
    keeping the ends as rates do (services/common/rates.py ``rate_bp``): never 0,00 while
    any point is earned (or lost), never ``maximum`` while any is missing (99,999 of
    100,000 dossiers on time earn 19,99 of 20, not "20,00" beside "99,99 %")."""
    scaled = points * 100
    hundredths = (2 * scaled.numerator + scaled.denominator) // (2 * scaled.denominator)
    if hundredths == 0 and points > 0:
        return 1
    if maximum is not None and points < maximum and hundredths >= maximum * 100:
        return maximum * 100 - 1
    return hundredths


def format_points(points: Fraction, lang: Lang, maximum: int | None = None) -> str:
    """Points with two decimals, as the portal publishes them: "17,70" (vi), "17.70" (en);
    out of ``maximum``, whose ends it keeps (``points_hundredths``)."""
    return format_hundredths(points_hundredths(points, maximum), lang)


def format_hundredths(hundredths: int, lang: Lang) -> str:
    """Points already in shown hundredths (``IndicatorScore.shown`` and the totals of
    them), with two decimals."""
    whole, part = divmod(hundredths, 100)
    mark = "," if lang == "vi" else "."
    return f"{format_count(whole, lang)}{mark}{part:02d}"
