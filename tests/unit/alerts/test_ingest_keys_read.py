"""The ingest keys' names never stop or stall an evaluation (review 70).

A lock an operator holds on ``ingest_api_keys`` made every cycle wait for the pool's 15 s
command timeout; a role out of connection slots (53300) raised out of the evaluation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from services.alerts import service as service_module
from services.alerts.directory import UnitDirectory
from services.alerts.service import AlertsService
from services.alerts.settings import AlertsSettings
from services.common.calendar import WorkingCalendar
from services.common.db import DATABASE_UNAVAILABLE, outage_cause

KEYS = [{"key_id": "k1", "name": "dvc-xa", "units": ["19"]}]


class FakePool:
    """A pool whose one query waits for ``release`` (a lock) or raises ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.release = asyncio.Event()
        self.reads = 0

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakePool]:
        if self.error is not None:
            raise self.error
        yield self

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        self.reads += 1
        await self.release.wait()
        return KEYS

    async def close(self) -> None:
        pass


def service_with(pool: FakePool) -> AlertsService:
    service = AlertsService(
        AlertsSettings(),
        directory=UnitDirectory([]),
        calendar=WorkingCalendar(always=True),
        families={},
    )
    service.state.pool = pool  # type: ignore[assignment]
    return service


async def test_a_locked_keys_table_costs_one_short_wait_then_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service_module, "KEYS_WAIT_S", 0.05)
    pool = FakePool()
    service = service_with(pool)
    started = time.monotonic()
    await service._learn_keys()  # waits KEYS_WAIT_S, then goes on
    for _ in range(5):
        await service._learn_keys()  # the read in flight: no wait, no second read
    assert time.monotonic() - started < 1.0 and pool.reads == 1
    pool.release.set()  # the lock released: the names arrive
    await asyncio.sleep(0.01)
    assert "k1" in service.evaluator.key_owners
    await service.close()


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.TooManyConnectionsError("too many connections for role"),
        asyncpg.ReadOnlySQLTransactionError("read-only transaction"),
        asyncpg.QueryCanceledError("canceling statement"),
        RuntimeError("anything else"),
    ],
)
async def test_a_failing_keys_read_never_raises_out_of_the_evaluation(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    service = service_with(FakePool(error))
    await service._learn_keys()
    assert "ingest keys not read" in caplog.text
    await service.close()


def test_the_services_share_what_an_unavailable_database_is() -> None:
    from services.alerts.journal import UNAVAILABLE
    from services.metrics.pipeline import INFRASTRUCTURE_ERRORS

    assert UNAVAILABLE is DATABASE_UNAVAILABLE and INFRASTRUCTURE_ERRORS is DATABASE_UNAVAILABLE
    assert "lock_timeout" in outage_cause(asyncpg.LockNotAvailableError("lock"))
    assert "refuses writes" in outage_cause(asyncpg.ReadOnlySQLTransactionError("ro"))
    assert "no room" in outage_cause(asyncpg.TooManyConnectionsError("full"))
