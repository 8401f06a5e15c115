"""Working time in Vietnam: Monday to Friday 07:30-17:00 Asia/Ho_Chi_Minh, minus holidays.

Pure apart from :func:`load_calendar`, which reads data/holidays-vn.json. Silence is
counted in working time only: a commune that sends nothing on Sunday or during Tết is
not silent, and Monday 08:00 after a Friday 16:00 event is 1 h of silence, not 64 h.
The alerts (UnitSilent) and the wall (silent units) count it with this one calendar,
so the page and the pager agree.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import holidays

from services.common.paths import REPO_ROOT
from services.common.units import VN_TZ

__all__ = ["HOLIDAYS_FILE", "VN_TZ", "WorkingCalendar", "load_calendar"]

log = logging.getLogger(__name__)

HOLIDAYS_FILE = REPO_ROOT / "data" / "holidays-vn.json"
"""Public holidays and working Saturdays, with their source (see the file's ``$comment``)."""

DAY_START = time(7, 30)
DAY_END = time(17, 0)


@dataclass(frozen=True)
class WorkingCalendar:
    """Working hours on working days; ``always`` makes every second count (24/7 units)."""

    days_off: frozenset[date] = frozenset()
    working_saturdays: frozenset[date] = frozenset()
    always: bool = False
    names: dict[date, str] = field(default_factory=dict, compare=False)
    kinds: dict[date, str] = field(default_factory=dict, compare=False)
    """The ``kind`` of each day off in the holidays file (``tet``, ``swap``, ...)."""

    def is_working_day(self, day: date) -> bool:
        if day in self.working_saturdays:
            return True
        return day.weekday() < 5 and day not in self.days_off

    def is_working(self, at: datetime) -> bool:
        if self.always:
            return True
        local = at.astimezone(VN_TZ)
        return self.is_working_day(local.date()) and DAY_START <= local.time() < DAY_END

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working seconds in [start, end); 0 when end is not after start."""
        if end <= start:
            return 0.0
        if self.always:
            return (end - start).total_seconds()
        total = 0.0
        for day in _days(start.astimezone(VN_TZ).date(), end.astimezone(VN_TZ).date()):
            if not self.is_working_day(day):
                continue
            open_ = datetime.combine(day, DAY_START, VN_TZ)
            close = datetime.combine(day, DAY_END, VN_TZ)
            lo, hi = max(open_, start), min(close, end)
            if hi > lo:
                total += (hi - lo).total_seconds()
        return total

    def working_days_back(self, now: datetime, days: int) -> datetime:
        """Start (local midnight) of the ``days``-th working day before ``now``'s day."""
        day = now.astimezone(VN_TZ).date()
        found = 0
        while found < days:
            day -= timedelta(days=1)
            if self.always or self.is_working_day(day):
                found += 1
        return datetime.combine(day, time(0), VN_TZ)

    def break_around(self, day: date) -> tuple[date, date]:
        """First and last day of the run of consecutive days off (weekends included)
        that holds ``day``."""
        first = last = day
        while not self.is_working_day(first - timedelta(days=1)):
            first -= timedelta(days=1)
        while not self.is_working_day(last + timedelta(days=1)):
            last += timedelta(days=1)
        return first, last

    def longest_break(self, kind: str) -> int:
        """Days in the longest run of days off that holds a day off of ``kind`` (``tet``):
        what a commune closed for it may have to upload on the next working day."""
        lengths = [
            (last - first).days + 1
            for first, last in map(
                self.break_around, sorted(d for d, k in self.kinds.items() if k == kind)
            )
        ]
        return max(lengths, default=0)


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


LAW_YEARS_AHEAD = 10
"""Years after this one given the law's days off when the holidays file lists none."""


def load_calendar(
    path: Path, *, always: bool = False, today: date | None = None
) -> WorkingCalendar:
    """Read the holidays file (see its ``$comment`` and ``source``): the government's
    notices, swaps and extra Tết days included, for the years it lists.

    A year it does not list (its last is 2027) gets the days off the Labour Code fixes
    (Tết, 1/1, the Hùng Kings' day, 30/4, 1/5, 2/9, their substitutes), computed from
    the lunar calendar by the ``holidays`` library: without them Tết 2028 counted as
    working time and every commune paged UnitSilent on its third day (review 68). Such
    a year lacks the notice's swaps, so a warning says the file wants it."""
    raw = json.loads(path.read_text("utf-8"))
    off = {date.fromisoformat(d["date"]): d["name_en"] for d in raw["days_off"]}
    kinds = {date.fromisoformat(d["date"]): d.get("kind", "") for d in raw["days_off"]}
    saturdays = frozenset(date.fromisoformat(d["date"]) for d in raw.get("working_saturdays", []))
    listed = {d.year for d in off} | {d.year for d in saturdays}
    this_year = (today or datetime.now(VN_TZ).date()).year
    unlisted = [
        year
        for year in range(min(listed, default=this_year), this_year + LAW_YEARS_AHEAD + 1)
        if year not in listed
    ]
    for day, name in holidays.country_holidays("VN", years=unlisted).items():
        if day.weekday() < 5:  # weekends are off anyway; the file lists weekdays only
            off[day] = f"{name} (by law: {path.name} lists no {day.year})"
            kinds[day] = "tet" if "Lunar New Year" in name else "law"
    if missing := [y for y in (this_year, this_year + 1) if y in unlisted]:
        log.warning(
            "%s lists no days off for %s: the Labour Code's holidays are used, without "
            "the government's swaps and extra Tết days; add its notice to the file",
            path,
            ", ".join(map(str, missing)),
        )
    return WorkingCalendar(frozenset(off), saturdays, always, off, kinds)
