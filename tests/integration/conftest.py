"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.alerts import store as alerts_store
from services.common.db import create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool as the services open it, on the test's own migrated database."""
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def alerts_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool as the alerts service opens it (jsonb as Python values)."""
    pool = await alerts_store.create_pool(database_url)
    try:
        yield pool
    finally:
        await pool.close()
