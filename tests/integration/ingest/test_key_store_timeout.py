"""A key store that hangs rather than refuses (a lock, a stalled disk) answers within the
lookup timeout: the request falls back to the cached key, or gets 503, never waits on.
Found by the ingest review (tests/integration/ingest/test_review8_ingest.py, "suspicions":
the connection had a timeout, the query none)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from services.ingest.keys import parse_token
from services.ingest.keystore import LOOKUP_TIMEOUT_S, PgKeySource, create_key

pytestmark = pytest.mark.integration


async def test_a_lookup_blocked_by_a_lock_times_out_and_then_finds_the_key(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    source = PgKeySource(database_url)
    try:
        made = await create_key(conn, "tdoffice-38", ["38"], ["vn.egov.document.issued"],
                                sources=["https://tdoffice.thanhhoa.gov.vn"])  # fmt: skip
        parsed = parse_token(made.token)
        assert parsed is not None
        key_id = parsed[0]
        await source.start()
        assert (await source.find(key_id)) is not None
        locker = await asyncpg.connect(database_url)
        try:
            transaction = locker.transaction()
            await transaction.start()
            await locker.execute("LOCK TABLE ingest_api_keys IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(source.find(key_id), 4 * LOOKUP_TIMEOUT_S)
            assert time.monotonic() - started < 2 * LOOKUP_TIMEOUT_S
            await transaction.rollback()
        finally:
            await locker.close()
        found = await source.find(key_id)  # the pool's connection is usable again
        assert found is not None and found.name == "tdoffice-38"
    finally:
        await source.stop()
        await conn.close()
