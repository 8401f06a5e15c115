"""The counting grace covers the longest Tết break of the holidays file (issue 16).

A commune closed for Tết uploads the break's events on the first working day after it:
the first day of the break is then ``longest break`` days old, and must still count.
"""

from __future__ import annotations

import pytest

from services.common.calendar import HOLIDAYS_FILE, load_calendar
from services.metrics.settings import MetricsSettings


def test_the_default_grace_covers_the_longest_tet_break(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EGOV_COUNTING_GRACE_DAYS", "EGOV_METRICS_GRACE_DAYS"):
        monkeypatch.delenv(name, raising=False)
    longest = load_calendar(HOLIDAYS_FILE).longest_break("tet")
    assert longest >= 9  # read from the file, not assumed: 25/1-2/2/2025, 14/2-22/2/2026
    grace = MetricsSettings(metrics_app_id="unit-grace-tet").metrics_grace_days
    # Its first day is uploaded on the working day after the break: one day older.
    assert grace >= longest + 1
