"""Review 52 (fixed 2026-12-05): a service migrating at start-up did it on a pooled
connection, whose statements are cancelled after 30 s (the alerts service's after 15 s).
Migration 0019 rebuilds ``dossier_state``'s key, about 1.7 s a million rows (5 s on 2 M,
20.6 s on 8 M, measured by the review; the ledger keeps its rows for good): past ~18 M
rows every attempt of an upgraded worker was cancelled, rolled back and retried for
ever, a pool left open each time, and nothing was counted.

The review's test filled 16 M rows (about 100 s); this one keeps what it showed, cheaply:
a migration slower than the pool's statement timeout, made slow on purpose, still
completes when the worker and the alerts service migrate (``db.migrate_database``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from services.alerts import store as alerts_store
from services.alerts.spool import Spool
from services.alerts.state import AlertState
from services.common import db
from services.metrics import worker
from services.metrics.worker import LazyPool

pytestmark = pytest.mark.integration

SLOW = "9999_slower_than_the_pools_timeout"


@pytest.fixture
def slow_migration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every migration, then one that takes 2 s; the pools' statement timeout cut to 1 s."""
    files = db.migration_files()
    monkeypatch.setattr(db, "migration_files", lambda: [*files, (SLOW, "SELECT pg_sleep(2)")])
    real = asyncpg.create_pool

    async def impatient(*args: object, **kwargs: object) -> asyncpg.Pool:
        return await real(*args, **{**kwargs, "command_timeout": 1})  # type: ignore[arg-type]

    monkeypatch.setattr(asyncpg, "create_pool", impatient)
    yield


async def applied(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", SLOW))
    finally:
        await conn.close()


async def test_a_worker_migrates_past_its_pools_statement_timeout(
    database_url: str, slow_migration: None
) -> None:
    pool = await LazyPool(database_url)()
    try:
        assert await pool.fetchval("SELECT 1") == 1  # and the pool serves after it
    finally:
        await pool.close()
    assert await applied(database_url)
    assert worker.create_pool is db.create_pool  # the pool itself is the impatient one


async def test_the_alerts_service_migrates_past_its_pools_statement_timeout(
    database_url: str, slow_migration: None, tmp_path: Path
) -> None:
    pool = await alerts_store.create_pool(database_url)
    try:
        with pytest.raises(TimeoutError):  # the pool's own connections would give up
            await pool.execute("SELECT pg_sleep(2)")
    finally:
        await pool.close()
    state = AlertState(lambda _: [], Spool(tmp_path / "state.json"))
    now = datetime.now(UTC)
    # It retries for ever: bounded here, so that the defect fails the test, not CI's clock.
    await asyncio.wait_for(state.load(database_url, now, now), 30)
    assert await applied(database_url)
