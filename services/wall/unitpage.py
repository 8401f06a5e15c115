"""A unit's trends by day, month and year, and its periods compared. Pure.

Everything comes from the unit's daily figures of /v1/kpis/history (today's unit on
today's boundaries: days before the 2025 reform restated, and saying so): a month or a
year is the sum of its days' counts, so the rate of a period is computed from integer
counts like any other rate. Compared: this month to date, the previous month and the
same month last year; this year to date and last year to the same day. A day is judged
against the target in force that day, a period against the one in force on its last
counted day (review 67: a target changed on 1 January does not judge December).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from services.wall.history import FormerUnit
from services.wall.trend import TrendPoint, points_from_json

DAYS_SHOWN: Final = 14
MONTHS_SHOWN: Final = 13


@dataclass(frozen=True, slots=True)
class Total:
    """The summed counts of the days from ``first`` to ``last`` inclusive."""

    key: str
    """What it is: "this_month", "previous_month", "same_month_last_year", "ytd",
    "last_year_to_date", or a month ("2026-11") or a year ("2026") in a series."""
    first: date
    last: date
    numerator: int
    denominator: int
    restated: bool
    target_bp: int | None = None
    """The target in force on its last counted day (None: not said, or nothing counted):
    the one its result is judged against, as the period closed under it."""


@dataclass(frozen=True, slots=True)
class UnitTrends:
    """One KPI of one unit: the last days, months and years, and the periods compared."""

    kpi: str
    days: tuple[TrendPoint, ...]
    months: tuple[Total, ...]
    years: tuple[Total, ...]
    compared: tuple[Total, ...]
    left_out: tuple[FormerUnit, ...] = ()
    """Former units only partly merged into the unit: in none of its restated days."""

    @property
    def restated(self) -> bool:
        return any(p.restated for p in self.days) or any(
            t.restated for t in (*self.months, *self.years, *self.compared)
        )


def history_days(today: date) -> int:
    """Days of history to ask for: from 1 January last year through today (<= 731)."""
    return (today - date(today.year - 1, 1, 1)).days + 1


def trends(
    kpi: str,
    items: Sequence[Mapping[str, Any]],
    today: date,
    left_out: Sequence[FormerUnit] = (),
) -> UnitTrends:
    """The trends and comparisons of one KPI from its /v1/kpis/history items (and the
    former units the answer says its restated days leave out)."""
    points = points_from_json(items)
    by_day = {date.fromisoformat(p.day): p for p in points}
    days = tuple(
        by_day.get(d, TrendPoint(d.isoformat(), 0, 0))
        for d in (today - timedelta(days=i) for i in range(DAYS_SHOWN - 1, -1, -1))
    )
    months = tuple(
        _sum(f"{first:%Y-%m}", first, _month_end(first), by_day.values())
        for first in _months_back(today, MONTHS_SHOWN)
    )
    years = tuple(
        _sum(str(y), date(y, 1, 1), min(date(y, 12, 31), today), by_day.values())
        for y in (today.year - 1, today.year)
    )
    compared = comparisons(by_day.values(), today)
    return UnitTrends(kpi, days, months, years, compared, tuple(left_out))


def comparisons(points: Iterable[TrendPoint], today: date) -> tuple[Total, ...]:
    """This month, the previous month, the same month last year; the year to date and
    last year to the same day (29 February read as 28 February in another year)."""
    pts = list(points)
    first = today.replace(day=1)
    previous = _months_back(today, 2)[0]
    last_year = _same_day_last_year(today)
    return (
        _sum("this_month", first, today, pts),
        _sum("previous_month", previous, _month_end(previous), pts),
        _sum("same_month_last_year", last_year.replace(day=1), _month_end(last_year), pts),
        _sum("ytd", date(today.year, 1, 1), today, pts),
        _sum("last_year_to_date", date(last_year.year, 1, 1), last_year, pts),
    )


def _sum(key: str, first: date, last: date, points: Iterable[TrendPoint]) -> Total:
    n = d = 0
    restated = False
    latest: TrendPoint | None = None
    for p in points:
        if first <= date.fromisoformat(p.day) <= last:
            n, d = n + p.numerator, d + p.denominator
            restated = restated or p.restated
            latest = p if latest is None or p.day > latest.day else latest
    target = latest.target_bp if latest is not None else None
    return Total(key, first, last, n, d, restated, target)


def _month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def _months_back(today: date, count: int) -> list[date]:
    """The first days of the ``count`` months ending with today's, oldest first."""
    firsts = []
    year, month = today.year, today.month
    for _ in range(count):
        firsts.append(date(year, month, 1))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return list(reversed(firsts))


def _same_day_last_year(today: date) -> date:
    try:
        return today.replace(year=today.year - 1)
    except ValueError:  # 29 February
        return date(today.year - 1, 2, 28)
