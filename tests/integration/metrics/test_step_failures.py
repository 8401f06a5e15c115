"""A step that fails with an error that is not infrastructure crashes the worker; the
restarted worker reads again from the offsets stored in PostgreSQL and loses nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import orjson
import pytest

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import document, publish, workers
from tests.integration.metrics.test_workers import stored

pytestmark = pytest.mark.integration
UNIT, PROVINCE = "01843", "19"

# The next flush's figure upsert fails once with an internal error (SQLSTATE XX000, not
# a transient one). A sequence is not rolled back with the transaction: it fails once.
FAIL_ONCE = """
CREATE SEQUENCE flush_failures;
CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('flush_failures') = 1 THEN
        RAISE EXCEPTION 'injected flush failure' USING ERRCODE = 'XX000';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER fail_once BEFORE INSERT ON kpi_daily
    FOR EACH STATEMENT EXECUTE FUNCTION fail_once();
"""


async def sql(database_url: str, query: str) -> object:
    conn = await asyncpg.connect(database_url)
    try:
        if ";" in query:  # a script: no result
            return await conn.execute(query)
        return await conn.fetchval(query)
    finally:
        await conn.close()


def messages(first: int, count: int) -> list[tuple[bytes, bytes]]:
    return [
        (PROVINCE.encode(), orjson.dumps(document(f"ev-{n}", UNIT)))
        for n in range(first, first + count)
    ]


def wait_for(condition, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_failed_flush_crashes_the_worker_and_the_restart_counts_everything(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        asyncio.run(publish(common_settings, messages(0, 50)))
        wait_for(lambda: asyncio.run(stored(database_url))[0] == 50, "the first 50 events")
        asyncio.run(sql(database_url, FAIL_ONCE))
        asyncio.run(publish(common_settings, messages(50, 50)))
        wait_for(
            lambda: asyncio.run(sql(database_url, "SELECT is_called FROM flush_failures")),
            "the injected failure",
        )
        # The worker crashes as soon as the flush fails. Were it to go on (Faust's default
        # supervisor restarts the agent where the consumer stands), these records'
        # flush would store a later offset and the failed ones would be lost.
        asyncio.run(publish(common_settings, messages(100, 50)))
        assert worker.proc is not None
        wait_for(lambda: worker.proc is not None and worker.proc.poll() is not None, "a crash")
        log = worker.log.read_text(errors="replace")
        assert "counting failed, the worker stops: InternalServerError('injected flush" in log
        assert asyncio.run(stored(database_url))[0] == 50  # nothing after the failure
        worker.start()  # what the process supervisor (compose restart policy) does
        wait_for(lambda: asyncio.run(stored(database_url))[0] >= 150, "all 150 events")
        counted = asyncio.run(stored(database_url))
        day = {
            labels["unit"]: value
            for labels, value in worker.samples("egov_kpi_denominator")
            if labels["kpi"] == "document_electronic" and labels["window"] == "day"
        }
    assert counted == (150, {UNIT: 150, PROVINCE: 150})
    assert day[UNIT] == day[PROVINCE] == 150
