"""Migration 0011 on a real PostgreSQL: overrides without a KPI become one row per KPI.

A database at the schema before 0011 gets the old shape of rows (an all-KPI override
beside a per-KPI one of the same unit, and their history); after ``migrate`` every
override names its KPI, the per-KPI one still wins, nothing is lost from the history,
and the operators of the past have no scope until re-created.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from services.alerts import operators
from services.common.db import migrate, migration_files
from tests.conftest import create_database, drop_database

pytestmark = pytest.mark.integration

KPIS = [
    "document_electronic", "document_signing", "dossier_on_time", "dossier_online",
    "dossier_online_payment", "meeting_online", "meeting_paperless",
]  # fmt: skip
SET_AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
async def before_0011() -> AsyncIterator[asyncpg.Connection]:
    """A database with the migrations before 0011 only (its own, dropped afterwards)."""
    dsn = await create_database("egov_test_m11")  # migrated to the end: rebuilt below
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        for version, sql in migration_files():
            if version >= "0011":
                break
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations(version) VALUES ($1)", version)
        yield conn
    finally:
        await conn.close()
        await drop_database(dsn)


async def test_kpi_less_overrides_become_one_row_per_kpi_keeping_their_history(
    before_0011: asyncpg.Connection,
) -> None:
    conn = before_0011
    await conn.execute(
        "INSERT INTO kpi_target_overrides (unit, kpi, target, changed_by, changed_at, reason) "
        "VALUES ('01843', NULL, 0.975, 'an', $1, 'xã mới'), "
        "       ('01843', 'meeting_online', 0.5, 'bình', $1, 'ít phòng họp'), "
        "       ('14758', 'document_signing', 0.9, 'chi', $1, 'kế hoạch')",
        SET_AT,
    )
    await conn.execute(
        "INSERT INTO kpi_target_override_history (unit, kpi, action, target, changed_by, "
        "changed_at, reason) VALUES "
        "('01843', NULL, 'set', 0.95, 'an', $1, 'lần đầu'), "
        "('01843', NULL, 'set', 0.975, 'an', $1, 'xã mới'), "
        "('01843', 'meeting_online', 'set', 0.5, 'bình', $1, 'ít phòng họp'), "
        "('14758', 'document_signing', 'set', 0.9, 'chi', $1, 'kế hoạch')",
        SET_AT,
    )
    await conn.execute(
        "INSERT INTO operators (name, token_hash) VALUES ('cũ', $1)",
        operators.token_hash("egovop_x"),
    )

    assert "0011_scoped_targets" in await migrate(conn)

    rows = await conn.fetch(
        "SELECT unit, province, level, kpi, target_bp, changed_by, changed_at, reason "
        "FROM kpi_target_overrides ORDER BY unit, kpi"
    )
    by_unit = {(r["unit"], r["kpi"]): r for r in rows}
    # Every KPI of 01843 got the all-KPI target, except the one it had its own for.
    assert sorted(k for u, k in by_unit if u == "01843") == KPIS
    assert {r["kpi"]: r["target_bp"] for r in rows if r["unit"] == "01843"} == {
        **dict.fromkeys(KPIS, 9750),
        "meeting_online": 5000,
    }
    split = by_unit[("01843", "document_signing")]
    assert (split["changed_by"], split["changed_at"], split["reason"]) == ("an", SET_AT, "xã mới")
    assert by_unit[("14758", "document_signing")]["target_bp"] == 9000
    assert all(r["province"] is None and r["level"] is None for r in rows)
    assert len(rows) == 8

    history = await conn.fetch(
        "SELECT unit, kpi, action, target_bp, changed_by, reason "
        "FROM kpi_target_override_history ORDER BY id"
    )
    assert all(h["kpi"] is not None for h in history)
    firsts = [h for h in history if h["reason"].startswith("lần đầu")]
    seconds = [h for h in history if h["reason"].startswith("xã mới")]
    assert sorted(h["kpi"] for h in firsts) == sorted(h["kpi"] for h in seconds) == KPIS
    assert {h["target_bp"] for h in firsts} == {9500} and {h["target_bp"] for h in seconds} == {
        9750
    }
    # In the order they were made: every "lần đầu" row before every "xã mới" row.
    assert max(history.index(h) for h in firsts) < min(history.index(h) for h in seconds)
    kept = [(h["unit"], h["kpi"], h["target_bp"]) for h in history if h["changed_by"] != "an"]
    assert sorted(kept) == [("01843", "meeting_online", 5000), ("14758", "document_signing", 9000)]

    # From now on a KPI is required, and a past operator has no scope until re-created.
    with pytest.raises(asyncpg.NotNullViolationError):
        await conn.execute(
            "INSERT INTO kpi_target_overrides (unit, kpi, target_bp, changed_by) "
            "VALUES ('01843', NULL, 9000, 'x')"
        )
    past = await operators.authenticate(conn, "egovop_x")
    assert past is not None and not past.national and past.provinces == frozenset()
    assert not past.may_act_on("19")
