"""`make up` back-fills only the simulated traffic the last run did not publish.

The simulator first publishes the past day so that the wall has figures at once; PostgreSQL
keeps the figures in var/ across `make up` runs, so publishing that day again at every
start counted its traffic twice. ``devstack._simulator_history`` asks the database for
its latest event and back-fills the gap only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from pydantic import SecretStr

from services.common.settings import CommonSettings
from services.devstack import _simulator_history
from services.simulator.runner import AUTO_HISTORY_S

pytestmark = pytest.mark.integration


async def history_after(database_url: str, latest: datetime | None) -> dict[str, str]:
    if latest is not None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "INSERT INTO unit_activity VALUES ('egov.documents', 0, '01843', 'documents', $1)",
                latest,
            )
        finally:
            await conn.close()
    return await _simulator_history(CommonSettings(database_url=SecretStr(database_url)))


async def test_a_new_database_gets_the_past_day(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EGOV_SIMULATOR_HISTORY_S", raising=False)
    assert await history_after(database_url, None) == {}  # the simulator's own default


async def test_a_restart_back_fills_only_the_gap_since_the_last_event(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EGOV_SIMULATOR_HISTORY_S", raising=False)
    latest = datetime.now(UTC) - timedelta(hours=2)
    env = await history_after(database_url, latest)
    assert 7190 <= int(env["EGOV_SIMULATOR_HISTORY_S"]) <= 7210


async def test_a_database_idle_for_more_than_a_day_gets_the_past_day(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EGOV_SIMULATOR_HISTORY_S", raising=False)
    latest = datetime.now(UTC) - timedelta(seconds=AUTO_HISTORY_S + 60)
    assert await history_after(database_url, latest) == {}


async def test_an_event_ahead_of_the_clock_back_fills_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EGOV_SIMULATOR_HISTORY_S", raising=False)
    latest = datetime.now(UTC) + timedelta(minutes=3)
    assert await history_after(database_url, latest) == {"EGOV_SIMULATOR_HISTORY_S": "0"}


async def test_the_operators_history_is_kept(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EGOV_SIMULATOR_HISTORY_S", "3600")
    latest = datetime.now(UTC) - timedelta(minutes=5)
    assert await history_after(database_url, latest) == {}
