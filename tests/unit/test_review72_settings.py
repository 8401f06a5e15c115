"""Review 72: configuration as an operator sets it.

Each ``EGOV_*`` variable given a wrong value (empty, zero, negative, infinite, a URL
without its scheme, a window that does not exist, a retired or misspelt name) should be
refused when the service starts, in one line naming the variable. The tests marked
``xfail(strict=True)`` assert that and fail today: the value is accepted and goes wrong
later (a 503 on every request, a crash at the first fetch, no alert reaching
Alertmanager, alerts evaluated against nothing), or the refusal is a pydantic traceback
that names the Python field instead of the variable.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from services.alerts.settings import AlertsSettings
from services.ingest.settings import IngestSettings
from services.metrics.settings import MetricsSettings
from services.wall.settings import WallSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets: none of the caller's EGOV_* leak in."""
    for name in list(os.environ):
        if name.startswith(("EGOV_", "GRAFANA_")) or name in (
            "KAFKA_BOOTSTRAP_SERVERS",
            "DATABASE_URL",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://egov@127.0.0.1:1/egov_review72")


# --- how a refusal reads -------------------------------------------------------------


def test_a_refused_setting_is_one_line_naming_its_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EGOV_")}
    env.update(EGOV_WALL_POLL_INTERVAL_S="0.5s", EGOV_WALL_PORT="47283")
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "wall"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "EGOV_WALL_POLL_INTERVAL_S" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


# --- the alerts service's sources and windows ---------------------------------------


def test_the_alerts_service_refuses_no_metrics_worker_as_the_wall_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EGOV_METRICS_URLS", " , ")
    with pytest.raises(ValueError, match="EGOV_METRICS_URLS"):
        WallSettings()
    with pytest.raises(ValueError):
        AlertsSettings()


@pytest.mark.parametrize("windows", ["", "days", "day,week"])
def test_alert_windows_name_windows_that_exist(
    monkeypatch: pytest.MonkeyPatch, windows: str
) -> None:
    monkeypatch.setenv("EGOV_ALERT_WINDOWS", windows)
    with pytest.raises(ValueError):
        AlertsSettings()


@pytest.mark.parametrize("volume", ["years=3", "year=-3"])
def test_alert_min_volume_names_known_windows_and_positive_factors(
    monkeypatch: pytest.MonkeyPatch, volume: str
) -> None:
    monkeypatch.setenv("EGOV_ALERT_MIN_VOLUME", volume)
    with pytest.raises(ValueError):
        AlertsSettings()


@pytest.mark.parametrize(
    ("settings", "name", "value"),
    [
        (AlertsSettings, "EGOV_METRICS_URLS", "metrics-1:8081,metrics-2:8081"),
        (AlertsSettings, "EGOV_ALERTMANAGER_URL", "alertmanager:9093"),
        (AlertsSettings, "EGOV_INGEST_URL", "ingest:8080"),
        (WallSettings, "EGOV_METRICS_URLS", "metrics-1:8081"),
        (WallSettings, "EGOV_ALERTS_URL", "alerts:8082"),
    ],
)
def test_a_url_without_its_scheme_is_refused(
    monkeypatch: pytest.MonkeyPatch, settings: type, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EGOV_ALERT_ACK_SILENCE_S", "inf"),
        ("EGOV_ALERT_ACK_SILENCE_S", "1e12"),
        ("EGOV_ALERT_RESEND_S", "inf"),
        ("EGOV_ALERT_RECENT_HOURS", "inf"),
    ],
)
def test_a_duration_no_timedelta_holds_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        AlertsSettings()


# --- ingest and the workers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "name", "value"),
    [
        (IngestSettings, "EGOV_PRODUCE_TIMEOUT_S", "0"),
        (IngestSettings, "EGOV_PRODUCE_TIMEOUT_S", "-1"),
        (IngestSettings, "EGOV_KAFKA_REQUEST_TIMEOUT_S", "0"),
        (IngestSettings, "EGOV_MAX_BATCH_EVENTS", "0"),
        (IngestSettings, "EGOV_INGEST_PORT", "70000"),
        (MetricsSettings, "EGOV_METRICS_BATCH_SIZE", "0"),
        (MetricsSettings, "EGOV_METRICS_BATCH_SIZE", "-1"),
        (MetricsSettings, "EGOV_METRICS_SESSION_TIMEOUT_S", "0"),
    ],
)
def test_a_value_that_breaks_every_request_is_refused(
    monkeypatch: pytest.MonkeyPatch, settings: type, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        settings()


# --- names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("EGOV_HORIZON_DAYS", "30"), ("EGOV_KAFKA_BOOTSTRAP", "kafka:9092")],
)
def test_a_retired_or_misspelt_variable_is_not_silently_ignored(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(name, value)
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            IngestSettings()
        except ValueError as refused:
            assert name in str(refused)
            return
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert any(name in line for line in said), f"{name} ignored without a word"


# --- guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        (IngestSettings, "EGOV_PRODUCE_TIMEOUT_S"),
        (MetricsSettings, "EGOV_METRICS_SESSION_TIMEOUT_S"),
        (AlertsSettings, "EGOV_ALERT_FOR_S"),
        (WallSettings, "EGOV_WALL_POLL_INTERVAL_S"),
    ],
)
def test_a_duration_written_with_its_unit_is_refused(
    monkeypatch: pytest.MonkeyPatch, settings: type, name: str
) -> None:
    """Durations are plain seconds: ``30s`` is refused, never read as something else."""
    monkeypatch.setenv(name, "30s")
    with pytest.raises(ValueError):
        settings()
