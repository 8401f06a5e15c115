"""The ``EGOV_*`` names: retired ones refused, unknown ones warned, legitimate ones not."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.alerts.settings import KPI_WINDOWS, AlertsSettings
from services.common.variables import (
    RETIRED,
    RetiredVariable,
    check_environment,
    known_variables,
    refusal_lines,
)
from services.ingest.settings import IngestSettings
from services.metrics.periods import CALENDAR_WINDOWS
from services.wall.settings import WallSettings

REPO = Path(__file__).resolve().parents[3]
NAME = re.compile(r"\bEGOV_[A-Z0-9_]+\b")
NOT_VARIABLES = {
    "EGOV_WALL",  # prefixes the tests filter an environment by (startswith)
    "EGOV_ALERT",
    "EGOV_ALERT_INTERVAL",
    "EGOV_KAFKA_BOOTSTRAP",  # review 72's deliberate typo
    "EGOV_INGEST_PROT",  # this file's
}


def _names_written_in_the_repository() -> set[str]:
    files = [REPO / "Makefile", REPO / "README.md", *REPO.glob("docker-compose*.yml")]
    for folder in ("services", "tests", "bench", "docs", "deploy"):
        files += [p for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".md", ".yml")]
    names: set[str] = set()
    for path in files:
        names.update(NAME.findall(path.read_text("utf-8", errors="replace")))
    # A name ending in "_" is a prefix written in prose (EGOV_TOPIC_*).
    return {n for n in names if not n.endswith("_")} - NOT_VARIABLES - set(RETIRED)


def test_no_variable_the_repository_sets_or_documents_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = _names_written_in_the_repository()
    assert {"EGOV_VAR_DIR", "EGOV_TEST_BROKER", "EGOV_INGEST_PORT"} <= names
    caplog.set_level(logging.WARNING)
    check_environment(dict.fromkeys(names, "x"))
    assert [r.getMessage() for r in caplog.records] == []


def test_a_retired_variable_is_refused_naming_its_replacement() -> None:
    with pytest.raises(RetiredVariable, match="EGOV_COUNTING_GRACE_DAYS"):
        check_environment({"EGOV_HORIZON_DAYS": "30"})


def test_an_unknown_variable_is_warned_about_not_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    check_environment({"egov_ingest_prot": "8080", "PATH": "/bin"})
    assert [r.getMessage() for r in caplog.records] == [
        "EGOV_INGEST_PROT is set but no egov-pulse setting reads it (misspelt?)"
    ]


def test_every_settings_field_is_a_known_variable() -> None:
    assert {"EGOV_INGEST_PORT", "EGOV_WALL_PORT", "EGOV_METRICS_GRACE_DAYS"} <= known_variables()


def test_the_alert_windows_are_the_workers_calendar_windows() -> None:
    assert KPI_WINDOWS == CALENDAR_WINDOWS


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("EGOV_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", "postgresql://egov@127.0.0.1:1/egov_variables")
    return monkeypatch


def test_a_refusal_names_the_variable_read_under_an_alias(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EGOV_METRICS_GRACE_DAYS", "-1")
    clean_env.setenv("EGOV_INGEST_PORT", "0")
    with pytest.raises(ValidationError) as refused:
        IngestSettings()
    lines = refusal_lines(refused.value, os.environ)
    assert lines is not None and len(lines) == 2
    assert lines[0].startswith("EGOV_INGEST_PORT: ") or lines[1].startswith("EGOV_INGEST_PORT: ")
    assert any(line.startswith("EGOV_METRICS_GRACE_DAYS: ") for line in lines)


@pytest.mark.parametrize("port", ["1", "65535"])
def test_every_port_from_1_to_65535_is_taken(clean_env: pytest.MonkeyPatch, port: str) -> None:
    for name in ("EGOV_INGEST_PORT", "EGOV_ALERTS_PORT", "EGOV_WALL_PORT"):
        clean_env.setenv(name, port)
    assert IngestSettings().ingest_port == AlertsSettings().alerts_port == int(port)
    assert WallSettings().wall_port == int(port)


def test_empty_urls_still_turn_their_sink_off(clean_env: pytest.MonkeyPatch) -> None:
    for name in ("EGOV_ALERTMANAGER_URL", "EGOV_INGEST_URL", "EGOV_ALERTS_URL"):
        clean_env.setenv(name, "")
    alerts = AlertsSettings()
    assert (alerts.alertmanager_url, alerts.ingest_url) == ("", "")
    assert WallSettings().alerts_url == ""


def test_a_url_keeps_its_path_and_loses_its_trailing_slash(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EGOV_METRICS_URLS", "https://m1.example/egov/, http://10.0.0.2:8081")
    assert AlertsSettings().metrics_urls == ["https://m1.example/egov", "http://10.0.0.2:8081"]


def test_a_min_volume_factor_of_a_known_window_is_kept(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EGOV_ALERT_MIN_VOLUME", "year=3, day=1.1")
    assert {k: str(v) for k, v in AlertsSettings().alert_min_volume.items()} == {
        "year": "3",
        "day": "1.1",
    }
