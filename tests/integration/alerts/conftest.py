"""Fixtures of the alerts integration tests: fake metrics, receiver, Alertmanager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.alerts.directory import UnitDirectory
from services.alerts.service import AlertsService
from services.alerts.settings import AlertsSettings
from services.common.calendar import WorkingCalendar
from services.common.unit_info import UnitInfo

# Shared fixtures, registered here by import.
from tests.integration.alerts.harness import (
    Alertmanager,
    FakeMetrics,
    Receiver,
    alertmanager,
    fake_metrics,
    receiver,
    repeating_alertmanager,
)

DIRECTORY = UnitDirectory(
    [UnitInfo(f"c{i}", f"Xã {i}", f"Commune {i}", "commune", "19") for i in range(4)]
)


ServiceFactory = Callable[..., AlertsService]


@pytest.fixture
def make_service(database_url: str, fake_metrics: FakeMetrics, tmp_path: Path) -> ServiceFactory:
    """Services of one test share one local state file, as restarts of one service do."""

    def make(**overrides: Any) -> AlertsService:
        calendar = overrides.pop("calendar", WorkingCalendar(always=True))
        values: dict[str, Any] = {
            "database_url": database_url,
            "metrics_urls": [fake_metrics.url],
            "ingest_url": "",
            "alert_kafka_enabled": False,
            "alert_burn_enabled": False,
            "alert_for_s": 2.0,
            "alert_silent_after_s": 3600.0,
            "alert_state_file": tmp_path / "alerts-state.json",
        }
        values.update(overrides)
        return AlertsService(AlertsSettings(**values), directory=DIRECTORY, calendar=calendar)

    return make
