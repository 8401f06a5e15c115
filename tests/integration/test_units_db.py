"""Units in PostgreSQL: migration 0002, an idempotent load, and from_db == from_dir."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from services.common.paths import REPO_ROOT
from services.common.units import UnitRegistry
from services.common.unitstore import load_units
from tests.servers import admin_dsn

pytestmark = pytest.mark.integration

MIGRATIONS = tuple(
    REPO_ROOT / "services" / "common" / "migrations" / name
    for name in ("0002_units.sql", "0021_crosswalk_districts.sql")
)
VN = timezone(timedelta(hours=7))
SAMPLE = (
    *("01", "06", "19", "38", "404", "16342", "16351", "01843", "01954"),
    *("19-STTTT", "06-STTTT", "67-SNV", "80-STTTT", "99999"),
)


@pytest.fixture
async def conn() -> AsyncIterator[asyncpg.Connection]:
    """A fresh database of this test's own with the unit tables' migrations applied (0002,
    and 0021's district rows of the crosswalk), dropped afterwards."""
    name = f"egov_units_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn(), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        connection = await asyncpg.connect(admin_dsn().rsplit("/", 1)[0] + f"/{name}", timeout=10)
        try:
            for migration in MIGRATIONS:
                await connection.execute(migration.read_text(encoding="utf-8"))
            yield connection
        finally:
            await connection.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _outcome(registry: UnitRegistry, code: str, at: datetime) -> object:
    try:
        res = registry.resolve(code, at)
    except Exception as exc:  # the error class and its details are what must agree
        return (type(exc).__name__, str(exc), getattr(exc, "candidates", None))
    return (res.unit, res.chain, res.via_crosswalk)


async def test_load_is_fast_and_idempotent(conn: asyncpg.Connection) -> None:
    started = time.perf_counter()
    count = await load_units(conn)
    assert time.perf_counter() - started < 3.0
    again = await load_units(conn)
    assert count == again == await conn.fetchval("SELECT count(*) FROM units")
    assert (
        await conn.fetchval("SELECT count(*) FROM units WHERE era = '2025' AND level = 'commune'")
        == 3321
    )
    crosswalk = await conn.fetchval("SELECT count(*) FROM unit_crosswalk")
    assert crosswalk > 9000


async def test_from_db_equals_from_dir(conn: asyncpg.Connection) -> None:
    await load_units(conn)
    from_db = await UnitRegistry.from_db(conn)
    from_dir = UnitRegistry.from_dir()
    for era in ("2024", "2025"):
        assert sorted(from_db.units(era), key=lambda u: u.code) == sorted(
            from_dir.units(era), key=lambda u: u.code
        )
    split = await conn.fetchval(
        "SELECT old_code FROM unit_crosswalk GROUP BY old_code HAVING count(*) > 1 LIMIT 1"
    )
    for code in (*SAMPLE, split):
        for at in (datetime(2024, 6, 1, tzinfo=VN), datetime(2026, 6, 1, tzinfo=VN)):
            assert _outcome(from_db, code, at) == _outcome(from_dir, code, at), (code, at)


async def test_load_prunes_rows_the_files_no_longer_have(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO units VALUES ('00000', '2025', 'commune', 'x', 'x', 'x', 'x', '01')"
    )
    await load_units(conn)
    assert await conn.fetchval("SELECT count(*) FROM units WHERE code = '00000'") == 0
