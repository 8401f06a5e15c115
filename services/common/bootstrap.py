"""Prepares the shared PostgreSQL database: schema migrations and the unit registry."""

from __future__ import annotations

import asyncpg

from services.common.db import ensure_database, migrate
from services.common.settings import CommonSettings
from services.common.unitstore import load_units


async def prepare_database(settings: CommonSettings) -> int:
    """Create the database if missing, migrate it, load units; returns unit rows loaded."""
    dsn = settings.database_url.get_secret_value()
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await migrate(conn)
        return await load_units(conn, settings.units_dir)
    finally:
        await conn.close()
