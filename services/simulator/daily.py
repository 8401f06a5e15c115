"""The rhythm of a week in Vietnamese offices, for the simulated traffic. Pure.

Offices issue documents, receive dossiers and hold meetings in working hours (Mon-Fri
07:30-17:00 Asia/Ho_Chi_Minh, services/common/calendar.py); communes upload the day's
dossiers in the evening (DOMAIN.md: "Communes upload late (a day's dossiers in the
evening ...)"); little happens at night, at weekends and on public holidays.

:func:`traffic_factor` scales the configured rate: its mean over an ordinary week (no
public holiday) is 1, so the configured rate stays the weekly average in events per
second; a week with a holiday sends a little less.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Final

from services.common.calendar import DAY_END, DAY_START, WorkingCalendar
from services.common.units import VN_TZ

# (local hour from which it holds, relative traffic) over a day, in order from 00:00.
WORKING_DAY: Final[Sequence[tuple[float, float]]] = (
    (0.0, 0.02),  # night: a few automatic retries and 24/7 portals
    (6.0, 0.10),  # early starters
    (7.5, 1.00),  # office hours
    (17.0, 0.35),  # the evening burst: communes upload the day's work (EVENING_UPLOADS)
    (21.0, 0.05),
)
DAY_OFF: Final[Sequence[tuple[float, float]]] = (
    (0.0, 0.02),
    (7.5, 0.08),  # weekend duty desks of the one-stop shops
    (17.0, 0.02),
)
EVENING_END: Final = time(21, 0)
EVENING_UPLOADS: Final = 0.6
"""Share of a working day's evening traffic (17:00-21:00) that is communes uploading
events of that day's office hours, timed when they happened."""


def _day_total(profile: Sequence[tuple[float, float]]) -> float:
    """Traffic of a whole day under ``profile``, in weight x hours."""
    ends = [start for start, _ in profile[1:]] + [24.0]
    return sum((end - start) * weight for (start, weight), end in zip(profile, ends, strict=True))


# Mean weight over an ordinary week: dividing by it keeps the rate a weekly average.
WEEK_MEAN: Final = (5 * _day_total(WORKING_DAY) + 2 * _day_total(DAY_OFF)) / (7 * 24)


def _weight(profile: Sequence[tuple[float, float]], local: datetime) -> float:
    hour = local.hour + local.minute / 60 + local.second / 3600
    weight = profile[0][1]
    for start, value in profile:
        if hour >= start:
            weight = value
    return weight


def traffic_factor(at: datetime, calendar: WorkingCalendar) -> float:
    """How many times the weekly average rate is sent at ``at`` (tz-aware)."""
    local = at.astimezone(VN_TZ)
    working = calendar.is_working_day(local.date())
    return _weight(WORKING_DAY if working else DAY_OFF, local) / WEEK_MEAN


def office_hours(at: datetime) -> tuple[datetime, datetime]:
    """Start and end of the office hours of ``at``'s local day."""
    day = at.astimezone(VN_TZ).date()
    return datetime.combine(day, DAY_START, VN_TZ), datetime.combine(day, DAY_END, VN_TZ)


def in_evening_uploads(at: datetime, calendar: WorkingCalendar) -> bool:
    """True from 17:00 to 21:00 of a working day, when communes upload the day's work."""
    local = at.astimezone(VN_TZ)
    return calendar.is_working_day(local.date()) and DAY_END <= local.time() < EVENING_END


def evening_upload_time(now: datetime, fraction: float) -> datetime:
    """A time ``fraction`` (0-1) of the way through the office hours of ``now``'s day."""
    start, end = office_hours(now)
    return start + timedelta(seconds=fraction * (end - start).total_seconds())
