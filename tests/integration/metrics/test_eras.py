"""Daily figures stored with their era, on real PostgreSQL (issue 16, item 6).

Migration 0012 keeps every existing row and gives it its era; a unit's history reads its
own era only, and before the reform its predecessors' figures summed (restated): a code
reused after 2025-07-01 never mixes its old unit into the new one, and a restated year
total is the sum of the merged units' old figures and the new unit's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest

from services.common.db import migrate, migration_files
from services.common.paths import UNITS_DIR
from services.metrics import history, store
from services.metrics.eras import Crosswalk
from services.metrics.periods import Periods
from tests.conftest import create_database, drop_database
from tests.unit.metrics.helpers import registry

pytestmark = pytest.mark.integration

KPI = "document_signing"
CROSSWALK = Crosswalk.from_dir(UNITS_DIR)
TP = ("egov.documents", 0)
NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
TODAY = date(2026, 12, 4)

# (topic, partition, unit, kpi, day, numerator, denominator)
ROWS = [
    # 2024 era: Xã Thăng Long (16342), Xã Thăng Bình (16351), Xã Thăng Thọ (16360), all
    # merged into today's Xã Thăng Bình (16342); Phường Xuân La (00103), which is not
    # Phường Tây Hồ (00103 today), and Phường Quảng An (00109), merged into Tây Hồ.
    ("egov.documents", 0, "16342", KPI, date(2025, 3, 2), 29, 30),
    ("egov.documents", 0, "16351", KPI, date(2025, 3, 2), 7, 10),
    ("egov.documents", 1, "16360", KPI, date(2025, 6, 30), 4, 5),
    ("egov.documents", 0, "00103", KPI, date(2025, 6, 30), 1, 1000),
    ("egov.documents", 0, "00109", KPI, date(2025, 6, 30), 3, 4),
    # 2025 era: the units that hold these codes today.
    ("egov.documents", 0, "16342", KPI, date(2025, 7, 1), 9, 9),
    ("egov.documents", 1, "16342", KPI, date(2025, 7, 1), 1, 2),
    ("egov.documents", 0, "00103", KPI, date(2025, 9, 1), 5, 5),
    ("egov.documents", 0, "16342", KPI, TODAY, 2, 3),
]


async def insert(conn: asyncpg.Connection, rows: list[tuple[object, ...]]) -> None:
    await conn.executemany(
        "INSERT INTO kpi_daily (topic, partition, unit, kpi, day, numerator, denominator)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        rows,
    )


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        await insert(connection, ROWS)
        yield connection
    finally:
        await connection.close()


async def read(conn: asyncpg.Connection, unit: str, **params: str) -> dict[str, object]:
    lists = {"unit": [unit], "kpi": [KPI]} | {k: [v] for k, v in params.items()}
    query = history.HistoryQuery.parse(lists, registry(), CROSSWALK, TODAY, 800)
    rows = await store.history(conn, query.lineage, query.kpi, query.first, query.last)
    return history.answer(query, rows)


async def test_existing_rows_get_their_era_from_their_day() -> None:
    dsn = await create_database()  # migrated fully; start again from before 0012
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            await conn.execute(migration_files()[0][1])
            for version, sql in migration_files():
                if version < "0012":
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations VALUES ($1)", version)
            await insert(conn, ROWS)
            assert "0012_figures_era" in await migrate(conn)
            eras = await conn.fetch("SELECT unit, day, era FROM kpi_daily ORDER BY day, unit")
            assert len(eras) == len(ROWS)  # every row kept
            assert {(r["day"] < date(2025, 7, 1), r["era"]) for r in eras} == {
                (True, "2024"),
                (False, "2025"),
            }
        finally:
            await conn.close()
    finally:
        await drop_database(dsn)


async def test_a_reused_code_never_mixes_its_old_unit_into_the_new_one(
    conn: asyncpg.Connection,
) -> None:
    body = await read(conn, "00103", year="2025")
    # Tây Hồ before the reform is Quảng An's figures; Xuân La's 1/1000 is nowhere.
    assert [(i["day"], i["numerator"], i["denominator"]) for i in body["items"]] == [  # type: ignore[attr-defined]
        ("2025-06-30", 3, 4),
        ("2025-09-01", 5, 5),
    ]
    assert "00103" in body["left_out"]  # type: ignore[operator]


async def test_a_restated_year_total_is_the_merged_units_old_figures_plus_the_new(
    conn: asyncpg.Connection,
) -> None:
    body = await read(conn, "16342", year="2025")
    [year] = body["years"]  # type: ignore[misc]
    old = (29 + 7 + 4, 30 + 10 + 5)  # Thăng Long + Thăng Bình + Thăng Thọ, Jan-Jun
    new = (9 + 1, 9 + 2)  # today's Thăng Bình from 1 July, both partitions
    assert (year["numerator"], year["denominator"]) == (old[0] + new[0], old[1] + new[1])
    assert year["restated"] is True and body["restated"] is True
    assert [i["restated"] for i in body["items"]] == [True, True, False]  # type: ignore[attr-defined]
    # The last 30 days are today's unit only: nothing restated.
    recent = await read(conn, "16342", days="30")
    assert recent["restated"] is False
    assert [(i["day"], i["numerator"]) for i in recent["items"]] == [("2026-12-04", 2)]  # type: ignore[attr-defined]


async def test_a_worker_loads_only_todays_era(conn: asyncpg.Connection) -> None:
    loaded = await store.load_figures(conn, [TP, ("egov.documents", 1)], Periods.at(NOW))
    tallies = {tp: figures.tallies for tp, figures in loaded.items()}
    thang_binh = tallies[TP][("16342", KPI)]
    assert thang_binh.total == (9 + 2, 9 + 3)  # Thăng Long's 29/30 not in it
    assert ("16351", KPI) not in tallies[TP] and ("00109", KPI) not in tallies[TP]
    assert tallies[TP][("00103", KPI)].total == (5, 5)  # Tây Hồ's, not Xuân La's
