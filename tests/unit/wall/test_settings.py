"""The wall's settings: where sources are, read from EGOV_* variables."""

from __future__ import annotations

import pytest

from services.metrics.settings import MetricsSettings
from services.metrics.wall.settings import WallSettings


def test_defaults_to_this_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EGOV_METRICS_URLS", raising=False)
    wall = WallSettings(metrics_web_port=9123)
    assert wall.metrics_sources == ["http://127.0.0.1:9123"]
    assert wall.wall_lang == "vi" and wall.alerts_url == "http://127.0.0.1:8082"


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_METRICS_URLS", "http://a:8081/, http://b:8081")
    monkeypatch.setenv("EGOV_WALL_LANG", "en")
    monkeypatch.setenv("EGOV_ALERTS_URL", "")
    wall = WallSettings.extending(MetricsSettings(metrics_web_port=9000))
    assert wall.metrics_sources == ["http://a:8081", "http://b:8081"]
    assert (wall.wall_lang, wall.alerts_url, wall.metrics_web_port) == ("en", "", 9000)


def test_refuses_an_unknown_language(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_WALL_LANG", "fr")
    with pytest.raises(ValueError, match="wall_lang"):
        WallSettings()


def test_the_alerts_calendar_setting_also_sets_the_walls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_ALERT_SILENT_CALENDAR", "always")
    assert WallSettings().wall_silent_calendar == "always"


def test_the_walls_own_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_ALERT_SILENT_CALENDAR", "always")
    monkeypatch.setenv("EGOV_WALL_SILENT_CALENDAR", "working")
    assert WallSettings().wall_silent_calendar == "working"
