"""How often each unit usually publishes each family, learned from its daily figures. Pure.

Silence is judged against the unit's own habit, not one fixed delay: a commune that
sends forty documents a day and nothing for two working hours has stopped; a commune
that holds three meetings a week and none since this morning has not. From the daily
figures (table ``kpi_daily``, read by :mod:`services.alerts.sources`) a unit's usual gap
between two events of a family is its working time over its events; it is silent after
``gap_factor`` such gaps (5: a silence that long happens by chance about once in 150
gaps if events come at random), never sooner than the family's floor, never later than
the lookback lets an alert fire. Without history the floor applies: 2 working hours for
documents and dossiers, one working week for meetings (judged weekly).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType

from services.common.calendar import DAY_END, DAY_START, VN_TZ, WorkingCalendar

WEEKLY_FAMILIES = frozenset({"meetings"})
"""Families a unit publishes a few times a week at most: judged over a working week."""

WORKDAY_S = (DAY_END.hour * 60 + DAY_END.minute - DAY_START.hour * 60 - DAY_START.minute) * 60.0
"""Working seconds in one working day (07:30-17:00)."""


@dataclass(frozen=True, slots=True)
class Usual:
    """One unit's events of one family over the working days it was watched."""

    events: int
    working_days: int
    day_s: float = WORKDAY_S

    @property
    def gap_s(self) -> float:
        """Usual working seconds between two events."""
        return self.working_days * self.day_s / self.events


@dataclass(frozen=True, slots=True)
class Cadence:
    """When a unit counts as silent, per (unit, family); the floors apply without history."""

    daily_after_s: float
    weekly_after_s: float
    gap_factor: float
    most_s: float
    usual: Mapping[tuple[str, str], Usual] = field(default_factory=dict)

    def floor_s(self, family: str) -> float:
        return self.weekly_after_s if family in WEEKLY_FAMILIES else self.daily_after_s

    def silent_after(self, unit: str, family: str) -> float:
        """Working seconds without an event after which the unit is silent in the family.

        At most ``most_s``, unless the unit's usual gap comes near it: then
        :data:`SPARSE_MARGIN` times its gap. Capped alone, a commune meeting every ten
        working days was paged on the ninth of every ordinary gap and resolved by its
        next meeting (review 65); past the lookback it is no longer expected at all."""
        floor = self.floor_s(family)
        usual = self.usual.get((unit, family))
        if usual is None or usual.events <= 0:
            return floor
        most = max(self.most_s, SPARSE_MARGIN * usual.gap_s)
        return max(floor, min(self.gap_factor * usual.gap_s, most))


SPARSE_MARGIN = 1.5
"""A unit is silent no sooner than this many of its usual gaps."""


HistoryRow = tuple[str, str, int, date]
"""(unit, family, events, first day with an event) over the learning window."""


def learn(
    rows: Iterable[HistoryRow],
    calendar: WorkingCalendar,
    first: date,
    today: date,
    last_seen: Mapping[tuple[str, str], datetime] = MappingProxyType({}),
) -> dict[tuple[str, str], Usual]:
    """Usual cadences from the events of the days ``first`` .. yesterday.

    A unit is counted from its first day with an event (a unit that began last week is
    not diluted by the weeks before it) up to the day of its last event (``last_seen``):
    the days since are its current silence, and counted they taught it to be silent,
    each day a longer usual gap (review 65). Working days only (Sunday and Tết are not
    gaps); today is left out, being incomplete.
    """
    day_s = 86_400.0 if calendar.always else WORKDAY_S
    counted: dict[tuple[date, date], int] = {}
    usual: dict[tuple[str, str], Usual] = {}
    for unit, family, events, since in rows:
        start, end = max(since, first), today
        last = last_seen.get((unit, family))
        last_day = last.astimezone(VN_TZ).date() if last is not None else None
        if last_day is not None and last_day >= start:  # else stale: its history says more
            end = min(today, last_day + timedelta(days=1))
        if (start, end) not in counted:
            counted[(start, end)] = _working_days(calendar, start, end)
        usual[(unit, family)] = Usual(events, max(counted[(start, end)], 1), day_s)
    return usual


def _working_days(calendar: WorkingCalendar, start: date, end: date) -> int:
    """Working days in [start, end)."""
    days, day = 0, start
    while day < end:
        if calendar.always or calendar.is_working_day(day):
            days += 1
        day += timedelta(days=1)
    return days
