"""Loads the unit files of data/units/ into PostgreSQL (tables of migration 0002)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from services.common.paths import UNITS_DIR
from services.common.unitdata import CROSSWALK_FIELDS


def unit_records(units_dir: Path) -> list[tuple[str, str, str, str, str, str, str, str | None]]:
    """Every unit row (both eras, departments included) as (code, era, level, ...)."""
    records = []
    for era in ("2024", "2025"):
        for row in _read_csv(units_dir / f"units-{era}.csv"):
            records.append(
                (row["code"], era, row["level"], *_names(row), row["parent_code"] or None)
            )
    for row in _read_csv(units_dir / "departments.csv"):
        records.append((row["code"], row["era"], "department", *_names(row), row["province_code"]))
    return records


def _names(row: dict[str, str]) -> tuple[str, str, str, str]:
    return (row["name"], row["name_en"], row["full_name"], row["full_name_en"])


def _read_csv(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def crosswalk_records(units_dir: Path) -> list[tuple[str, ...]]:
    return [
        tuple(r[f] for f in CROSSWALK_FIELDS) for r in _read_csv(units_dir / "crosswalk-2025.csv")
    ]


_UPSERT_UNITS = """
INSERT INTO units (code, era, level, name, name_en, full_name, full_name_en, parent_code)
SELECT code, era, level, name, name_en, full_name, full_name_en, parent_code FROM units_in
ON CONFLICT (code, era) DO UPDATE SET level = EXCLUDED.level, name = EXCLUDED.name,
  name_en = EXCLUDED.name_en, full_name = EXCLUDED.full_name,
  full_name_en = EXCLUDED.full_name_en, parent_code = EXCLUDED.parent_code
WHERE (units.level, units.name, units.name_en, units.full_name, units.full_name_en,
       units.parent_code) IS DISTINCT FROM
      (EXCLUDED.level, EXCLUDED.name, EXCLUDED.name_en, EXCLUDED.full_name,
       EXCLUDED.full_name_en, EXCLUDED.parent_code)
"""
_UPSERT_CROSSWALK = """
INSERT INTO unit_crosswalk (old_code, old_level, new_code, match, old_name, new_name)
SELECT old_code, old_level, new_code, match, old_name, new_name FROM crosswalk_in
ON CONFLICT (old_code, new_code) DO UPDATE SET old_level = EXCLUDED.old_level,
  match = EXCLUDED.match, old_name = EXCLUDED.old_name, new_name = EXCLUDED.new_name
"""
_PRUNE = """
DELETE FROM units u WHERE NOT EXISTS
  (SELECT 1 FROM units_in i WHERE i.code = u.code AND i.era = u.era);
DELETE FROM unit_crosswalk c WHERE NOT EXISTS
  (SELECT 1 FROM crosswalk_in i WHERE i.old_code = c.old_code AND i.new_code = c.new_code);
"""


async def load_units(conn: asyncpg.Connection, units_dir: Path = UNITS_DIR) -> int:
    """Make the units and unit_crosswalk tables equal the files; returns the unit count.

    Idempotent: COPY into temporary tables, upsert, then delete rows the files no
    longer have, all in one transaction.
    """
    units, crosswalk = unit_records(units_dir), crosswalk_records(units_dir)
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE units_in (LIKE units) ON COMMIT DROP;"
            "CREATE TEMP TABLE crosswalk_in (LIKE unit_crosswalk) ON COMMIT DROP;"
        )
        await conn.copy_records_to_table("units_in", records=units, columns=_UNIT_COLUMNS)
        await conn.copy_records_to_table(
            "crosswalk_in", records=crosswalk, columns=CROSSWALK_FIELDS
        )
        await conn.execute(_UPSERT_UNITS)
        await conn.execute(_UPSERT_CROSSWALK)
        await conn.execute(_PRUNE)
    return len(units)


_UNIT_COLUMNS = (
    "code",
    "era",
    "level",
    "name",
    "name_en",
    "full_name",
    "full_name_en",
    "parent_code",
)
