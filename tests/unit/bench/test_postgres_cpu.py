"""PostgreSQL's CPU as the in-process benchmark reads it (bench/common.py), on the test's
own server: it grows by what a statement costs, and no more while the server idles."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from bench.common import postgres_cpu_seconds

pytestmark = pytest.mark.integration


async def test_postgres_cpu_grows_by_the_work_of_a_statement(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT 1")  # the backend started before the first reading
        before = postgres_cpu_seconds()
        started = time.process_time()
        # ~0.3-1 s of one backend's CPU, almost none of this process's.
        await conn.fetchval("SELECT count(*) FROM generate_series(1, 20000000)")
        ours = time.process_time() - started
        spent = postgres_cpu_seconds() - before
        idle = postgres_cpu_seconds()
        await asyncio.sleep(0.3)
        idle = postgres_cpu_seconds() - idle
    finally:
        await conn.close()
    assert spent > 0.2 > ours
    assert idle < 0.05
