"""A flush PostgreSQL refuses for one record's data (SQLSTATE class 22): that record is
dead-lettered as ``store-refused`` and every other one counts (services/metrics/
refusals.py). A database refusing more than a few records' data dead-letters nothing:
the step fails, nothing moves, and the same records count once it accepts them again.

The refusal is PostgreSQL's own: a trigger on the ledger raises class 22 for chosen
dossier ids, standing for a value a future contract lets through and PostgreSQL cannot
hold (as a NUL byte in a dossier id did until 2026-12-04)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import pytest
from prometheus_client import CollectorRegistry

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.metrics import refusals
from services.metrics.agents import Counting
from services.metrics.exposition import PipelineMetrics
from services.metrics.figures import Figures
from services.metrics.periods import Periods
from services.metrics.pipeline import DeadLetter, PartitionState, Record
from tests.integration.metrics.harness import workers
from tests.integration.metrics.test_dead_letters import dead_letters
from tests.integration.metrics.test_review3_nul_bytes import produce, received
from tests.integration.metrics.test_workers import stored
from tests.unit.metrics.test_future_and_failures import preparer

pytestmark = pytest.mark.integration

TOPIC = "egov.dossiers"

REFUSE = """
CREATE FUNCTION refuse_dossier() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.dossier_id LIKE '{pattern}' THEN
        RAISE EXCEPTION 'value out of range for dossier %', NEW.dossier_id
            USING ERRCODE = '22003';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_dossier BEFORE INSERT OR UPDATE ON dossier_state
    FOR EACH ROW EXECUTE FUNCTION refuse_dossier();
"""

REFUSE_CANARIES = REFUSE.replace("refuse_dossier", "refuse_canary").format(pattern="canary-%")
"""The canaries' dossiers refused as well (services/metrics/refusals.py ``_canary``): a
database refusing more than the record, so that nothing vouches for a refused record
alone in its flush, which is held."""


async def execute(database_url: str, query: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(query)
    finally:
        await conn.close()


async def fetch(database_url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def record(partition: int, offset: int, dossier: str) -> Record:
    value = orjson.dumps(received(f"ev-{dossier}", dossier))
    return Record(TOPIC, partition, offset, b"19", value)


class Sent:
    """The dead-letter topic, as a list."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def __call__(self, dead: DeadLetter) -> None:
        self.letters.append(dead)


async def counting(pool: asyncpg.Pool, partitions: Sequence[int]) -> Counting:
    """A worker's counting on ``partitions`` of the dossiers topic, on real PostgreSQL."""

    async def get_pool() -> asyncpg.Pool:
        return pool

    metrics = PipelineMetrics(CollectorRegistry(), ["vn.egov.dossier.received"])
    state = PartitionState(get_pool, "refusals", "w1", Figures(), metrics)
    await state.assign([(TOPIC, p) for p in partitions], Periods.at(datetime.now(UTC)))
    return Counting(preparer(), state, lambda: datetime.now(UTC), retry_delay_s=0.01)


async def counted_ids(database_url: str) -> list[str]:
    rows = await fetch(database_url, "SELECT dossier_id FROM dossier_state ORDER BY 1")
    return [r["dossier_id"] for r in rows]


async def offsets(database_url: str) -> dict[int, int]:
    rows = await fetch(database_url, 'SELECT "partition", next_offset FROM consumer_offsets')
    return {r["partition"]: r["next_offset"] for r in rows}


async def keys(database_url: str) -> int:
    return (await fetch(database_url, "SELECT count(*) AS n FROM metrics_seen_events"))[0]["n"]


async def test_refused_records_are_dead_lettered_and_every_other_counts(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    records = [
        record(0, 0, "H-1"),
        record(0, 1, "R-1"),  # between two that count
        record(0, 2, "H-2"),
        record(1, 0, "R-2"),  # the first of its partition
        record(1, 1, "H-3"),
        record(1, 2, "R-3"),  # the last of its partition: the offset still passes it
    ]
    work = await counting(pool, [0, 1])
    sent = Sent()
    await work.step(records, sent)
    await work.drain()

    assert await counted_ids(database_url) == ["H-1", "H-2", "H-3"]
    assert await keys(database_url) == 3  # a refused record's key is not kept
    assert await offsets(database_url) == {0: 3, 1: 3}
    refused = [(d.partition, d.offset, orjson.loads(d.value or b"")["id"]) for d in sent.letters]
    assert refused == [(0, 1, "ev-R-1"), (1, 0, "ev-R-2"), (1, 2, "ev-R-3")]
    for dead in sent.letters:
        headers = dict(dead.headers)
        assert dead.reason == headers["dlq_reason"].decode() == "store-refused"
        assert b"SQLSTATE 22003" in headers["dlq_detail"], headers
        assert b"value out of range for dossier R-" in headers["dlq_detail"], headers
    metrics = work.state.metrics
    assert metrics.dead_lettered.labels(TOPIC, "store-refused", "19")._value.get() == 3
    assert metrics.processed.labels("vn.egov.dossier.received")._value.get() == 3


async def test_a_database_refusing_every_record_dead_letters_none_and_loses_none(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="%"))
    first = [record(0, i, f"H-{i}") for i in range(4)]
    work = await counting(pool, [0])
    sent = Sent()
    # Refused, with nothing that counts beside them: held, nothing written or sent.
    await work.step(first, sent)
    await work.drain()
    assert sent.letters == []
    assert await offsets(database_url) == {0: 0}
    # More records, refused too: more than a flush may hold, so the step fails.
    more = [record(0, 4 + i, f"H-{4 + i}") for i in range(refusals.MAX_REFUSED)]
    await work.step(more, sent)
    with pytest.raises(refusals.NotTheRecords) as failed:
        await work.drain()
    assert isinstance(failed.value.__cause__, asyncpg.DataError)
    assert sent.letters == []
    assert await counted_ids(database_url) == []
    assert await keys(database_url) == 0
    assert await offsets(database_url) == {0: 0}

    # The database accepts them again: a restarted worker counts every one, once.
    await execute(database_url, "DROP TRIGGER refuse_dossier ON dossier_state")
    again = await counting(pool, [0])
    await again.step(first + more, sent)
    await again.drain()
    assert sent.letters == []
    assert len(await counted_ids(database_url)) == 4 + refusals.MAX_REFUSED
    assert await offsets(database_url) == {0: 4 + refusals.MAX_REFUSED}


async def test_a_refused_record_alone_is_held_until_a_record_that_counts_comes(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    await execute(database_url, REFUSE_CANARIES)  # and its canaries: nothing vouches
    work = await counting(pool, [0])
    sent = Sent()
    await work.step([record(0, 0, "R-0")], sent)
    await work.drain()
    assert sent.letters == []  # alone, it cannot be told from a database refusing all
    assert await offsets(database_url) == {0: 0}
    await work.step([record(0, 1, "H-1")], sent)
    await work.drain()
    assert [(d.offset, d.reason) for d in sent.letters] == [(0, "store-refused")]
    assert await counted_ids(database_url) == ["H-1"]
    assert await offsets(database_url) == {0: 2}


async def test_held_records_of_a_partition_claimed_again_are_read_again_not_twice(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    await execute(database_url, REFUSE_CANARIES)  # and its canaries: nothing vouches
    work = await counting(pool, [0])
    sent = Sent()
    await work.step([record(0, 0, "R-0")], sent)
    await work.drain()
    # A rebalance gives the partition back: the consumer reads it from offset 0 again.
    await work.state.assign([(TOPIC, 0)], Periods.at(datetime.now(UTC)))
    await work.step([record(0, 0, "R-0"), record(0, 1, "H-1")], sent)
    await work.drain()
    assert [(d.offset, d.reason) for d in sent.letters] == [(0, "store-refused")]
    assert await counted_ids(database_url) == ["H-1"]
    assert await offsets(database_url) == {0: 2}


async def test_more_refused_records_than_one_search_sets_aside_all_count_around(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Refused records first, the ones that vouch for them after: the search stops at
    MAX_REFUSED, a record of their type further on (probed alone) vouches for them, what
    passed is flushed, and the rest is searched next: every record counted or refused."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    many = refusals.MAX_REFUSED + 1
    records = [record(0, i, f"R-{i}") for i in range(many)]
    records += [record(0, many + i, f"H-{i}") for i in range(3)]
    work = await counting(pool, [0])
    sent = Sent()
    await work.step(records, sent)
    await work.drain()
    assert [d.offset for d in sent.letters] == list(range(many))
    assert {d.reason for d in sent.letters} == {"store-refused"}
    assert await counted_ids(database_url) == ["H-0", "H-1", "H-2"]
    assert await offsets(database_url) == {0: many + 3}


async def test_a_type_refused_throughout_a_large_flush_dead_letters_none(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """The database refuses every dossier (a defect, not the records): MAX_REFUSED of
    them refused with no dossier counted anywhere in the flush stop the worker, and the
    documents beside them are not counted past them either."""
    await execute(database_url, REFUSE.format(pattern="%"))
    records = [record(0, i, f"H-{i}") for i in range(refusals.MAX_REFUSED + 5)]
    work = await counting(pool, [0])
    sent = Sent()
    await work.step(records, sent)
    with pytest.raises(refusals.NotTheRecords, match=r"vn\.egov\.dossier\.received"):
        await work.drain()
    assert sent.letters == []
    assert await counted_ids(database_url) == []
    assert await offsets(database_url) == {0: 0}


def test_a_worker_dead_letters_a_refused_record_and_keeps_counting(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """Straight to Kafka, one real worker: it neither stops nor restarts."""
    asyncio.run(ensure_topics(common_settings))
    asyncio.run(execute(database_url, REFUSE.format(pattern="R-%")))
    events = [received(f"r{i}", d) for i, d in enumerate(["H-1", "R-1", "H-2", "H-3"])]
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        assert worker.proc is not None
        pid = worker.proc.pid
        asyncio.run(produce(common_settings, events))
        deadline = time.monotonic() + 30
        while asyncio.run(stored(database_url))[0] < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        found = asyncio.run(dead_letters(common_settings, 1))
        alive = worker.proc.poll() is None and worker.proc.pid == pid
        tail = worker.tail()
    assert asyncio.run(counted_ids(database_url)) == ["H-1", "H-2", "H-3"], tail
    assert len(found) == 1, found
    value, headers = found[0]
    assert orjson.loads(value)["id"] == "r1"
    assert headers["dlq_reason"] == b"store-refused"
    assert b"SQLSTATE 22003" in headers["dlq_detail"], headers
    assert alive, tail
