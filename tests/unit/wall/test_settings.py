"""The wall counts silence as the alerts service does unless told otherwise."""

import pytest

from services.metrics.wall.settings import WallSettings


def test_the_alerts_calendar_setting_also_sets_the_walls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_ALERT_SILENT_CALENDAR", "always")
    assert WallSettings().wall_silent_calendar == "always"


def test_the_walls_own_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_ALERT_SILENT_CALENDAR", "always")
    monkeypatch.setenv("EGOV_WALL_SILENT_CALENDAR", "working")
    assert WallSettings().wall_silent_calendar == "working"
