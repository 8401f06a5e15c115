"""Event times as the figures key them: Vietnam calendar days and 5-minute buckets.

Plain arithmetic on epoch seconds, because it runs once per event, in ingest (summaries
of packed records, services/common/summaries.py) and in the metrics workers alike: both
must put an event in the same day and bucket.
"""

from __future__ import annotations

from datetime import date
from typing import Final

BUCKET_S: Final = 300
"""Width of a rolling-window bucket: 5 minutes. Vietnam's midnight (17:00 UTC) is a bucket
boundary, so a bucket never spans two days."""

VN_OFFSET_S: Final = 7 * 3600
"""Asia/Ho_Chi_Minh has been UTC+7 without daylight saving time since 1975."""

EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def local_day_of_epoch(epoch_s: float) -> date:
    """The calendar day in Vietnam of an instant given in epoch seconds."""
    return date.fromordinal(EPOCH_ORDINAL + int((epoch_s + VN_OFFSET_S) // 86400))


def bucket_of(epoch_s: float) -> int:
    """Start (epoch seconds) of the 5-minute bucket holding ``epoch_s``."""
    return int(epoch_s // BUCKET_S) * BUCKET_S
