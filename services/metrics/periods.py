"""Calendar periods and rolling windows in Vietnam time; time is always an input here.

Calendar windows (``day``, ``month``, ``year``) are periods of Asia/Ho_Chi_Minh: today
starts at 00:00 +07:00, not at 00:00 UTC. Rolling windows (``5m`` .. ``6h``) are sums
of 5-minute buckets ending now. Vietnam has no daylight saving time, so every bucket
boundary in UTC is also one in local time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

# Re-exported: the per-event arithmetic is shared with ingest's summaries.
from services.common.timekeys import BUCKET_S as BUCKET_S
from services.common.timekeys import EPOCH_ORDINAL as EPOCH_ORDINAL
from services.common.timekeys import VN_OFFSET_S as VN_OFFSET_S
from services.common.timekeys import bucket_of as bucket_of
from services.common.timekeys import local_day_of_epoch as local_day_of_epoch

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

CALENDAR_WINDOWS = ("day", "month", "year")
ROLLING_WINDOWS = {"5m": 1, "30m": 6, "1h": 12, "6h": 72}
"""Rolling window -> number of 5-minute buckets it sums (the current one included)."""
EXPORTED_WINDOWS = ("1h", "day", "month", "year")
"""Windows on /metrics; the others are served by the JSON API for burn-rate rules."""
ALL_WINDOWS = (*EXPORTED_WINDOWS, "5m", "30m", "6h")
BUCKET_RETENTION_S = 7 * 3600
"""Buckets kept: the longest rolling window (6 h) and a margin."""


def local_day(at: datetime) -> date:
    """The calendar day in Vietnam of an aware datetime."""
    return at.astimezone(VN_TZ).date()


def month_of(day: date) -> int:
    """A month as one comparable integer (year * 12 + month - 1)."""
    return day.year * 12 + day.month - 1


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=VN_TZ)


@dataclass(frozen=True, slots=True)
class Periods:
    """The current calendar periods at one instant (``now``)."""

    now: datetime
    day: date
    month: int
    year: int

    @classmethod
    def at(cls, now: datetime) -> Periods:
        day = local_day(now)
        return cls(now, day, month_of(day), day.year)

    def start(self, window: str) -> datetime:
        """Start of a window ending now, in Vietnam time."""
        if window == "day":
            return day_start(self.day)
        if window == "month":
            return day_start(self.day.replace(day=1))
        if window == "year":
            return day_start(self.day.replace(month=1, day=1))
        first = bucket_of(self.now.timestamp()) - (ROLLING_WINDOWS[window] - 1) * BUCKET_S
        return datetime.fromtimestamp(first, VN_TZ)

    def first_bucket(self, window: str) -> int:
        """Oldest bucket start that a rolling window sums."""
        return bucket_of(self.now.timestamp()) - (ROLLING_WINDOWS[window] - 1) * BUCKET_S

    def is_late(self, event_day: date) -> bool:
        """An event that arrives after its day has ended (counted where it happened)."""
        return event_day < self.day


def too_late_before(now: datetime, grace: timedelta) -> float:
    """Epoch seconds before which an event is too late to count (refused, reported)."""
    return (now - grace).timestamp()
