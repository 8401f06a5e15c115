"""The wall service's settings: its port and its sources, read from EGOV_* variables."""

from __future__ import annotations

import pytest

from services.wall.settings import WallSettings


def test_defaults_to_make_ups_worker_and_its_own_port(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EGOV_METRICS_URLS", "EGOV_WALL_PORT", "EGOV_ALERTS_URL", "EGOV_WALL_LANG"):
        monkeypatch.delenv(name, raising=False)
    wall = WallSettings()
    assert wall.metrics_sources == ["http://127.0.0.1:8081"]
    assert (wall.wall_host, wall.wall_port) == ("127.0.0.1", 8083)
    assert wall.wall_lang == "vi" and wall.alerts_url == "http://127.0.0.1:8082"


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_METRICS_URLS", "http://a:8081/, http://b:8081")
    monkeypatch.setenv("EGOV_WALL_LANG", "en")
    monkeypatch.setenv("EGOV_WALL_PORT", "9000")
    monkeypatch.setenv("EGOV_ALERTS_URL", "")
    wall = WallSettings()
    assert wall.metrics_sources == ["http://a:8081", "http://b:8081"]
    assert (wall.wall_lang, wall.alerts_url, wall.wall_port) == ("en", "", 9000)


def test_refuses_a_wall_without_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_METRICS_URLS", " , ")
    with pytest.raises(ValueError, match="EGOV_METRICS_URLS"):
        WallSettings()


def test_ignores_the_counting_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The wall shares one environment with the workers under `make up` and compose.
    monkeypatch.setenv("EGOV_METRICS_WEB_PORT", "8081")
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@y/z")
    assert not hasattr(WallSettings(), "database_url")


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
