"""Packed records (ingest's summaries) in the flush transaction, on real PostgreSQL.

Counted whole when every key is new; decided event by event, exactly as single events
are, when one key was seen before or repeats within the flush.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from services.common.summaries import Entry, SummaryReader, encode
from services.metrics import store
from services.metrics.contributions import Contribution, Packed, dedup_digest
from services.metrics.periods import Periods, bucket_of, local_day
from services.metrics.store import PartitionBatch

pytestmark = pytest.mark.integration

GROUP = "g"
TP = ("egov.documents", 0)
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam
TYPE = "vn.egov.document.issued"
CHAIN = ("01843", "19")
FAMILIES = {TYPE: "documents"}


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


def entry(event_id: str, at: datetime = NOW, num: int = 1) -> Entry:
    key = (TYPE, CHAIN, False, (("document_signing", num, 1),), bucket_of(at.timestamp()))
    return key, at.timestamp(), dedup_digest("urn:test", event_id)


def packed(*entries: Entry, position: int = 0, backfill: bool = False) -> Packed:
    summary = SummaryReader().read(encode(list(entries)))
    return Packed.of(summary, FAMILIES, backfill, position)


def single(event_id: str, at: datetime = NOW, num: int = 1) -> Contribution:
    return Contribution(
        dedup_digest("urn:test", event_id),
        TYPE,
        "documents",
        at.timestamp(),
        local_day(at),
        CHAIN,
        (("document_signing", num, 1),),
        False,
    )


async def daily(conn: asyncpg.Connection, unit: str, day: date) -> tuple[int, int] | None:
    row = await conn.fetchrow(
        "SELECT sum(numerator) n, sum(denominator) d FROM kpi_daily"
        " WHERE unit = $1 AND kpi = 'document_signing' AND day = $2",
        unit,
        day,
    )
    return None if row is None or row["n"] is None else (row["n"], row["d"])


async def keys(conn: asyncpg.Connection) -> set[tuple[bytes, date, bool]]:
    rows = await conn.fetch("SELECT digest, event_day, backfill FROM metrics_seen_events")
    return {(r["digest"], r["event_day"], r["backfill"]) for r in rows}


async def test_a_packed_record_of_new_events_counts_whole(conn: asyncpg.Connection) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    yesterday = NOW - timedelta(days=1)
    batch = PartitionBatch(
        TP,
        7,
        [single("s1")],
        [packed(entry("a"), entry("b", num=0), entry("c", yesterday), position=1)],
    )
    batch.sum_ahead()
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    assert [c.digest for c in result.counted] == [dedup_digest("urn:test", "s1")]
    assert [p.events for p in result.counted_packed] == [3] and result.duplicates == []
    assert await daily(conn, "01843", date(2026, 11, 23)) == (2, 3)
    assert await daily(conn, "19", date(2026, 11, 22)) == (1, 1)
    assert {(d, day) for d, day, _ in await keys(conn)} == {
        (dedup_digest("urn:test", "s1"), date(2026, 11, 23)),
        (dedup_digest("urn:test", "a"), date(2026, 11, 23)),
        (dedup_digest("urn:test", "b"), date(2026, 11, 23)),
        (dedup_digest("urn:test", "c"), date(2026, 11, 22)),
    }
    assert await conn.fetchval("SELECT next_offset FROM consumer_offsets") == 7


async def test_a_key_seen_before_is_decided_event_by_event(conn: asyncpg.Connection) -> None:
    """The whole-record insert is undone; the new keys of the record are still stored."""
    claims = await store.claim(conn, GROUP, "w1", [TP])
    await store.flush(conn, GROUP, claims, [PartitionBatch(TP, 1, [single("a")])], Periods.at(NOW))
    batch = PartitionBatch(TP, 2, [], [packed(entry("a"), entry("b"), entry("c", num=0))])
    batch.sum_ahead()
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    assert [c.digest for c in result.duplicates] == [dedup_digest("urn:test", "a")]
    assert len(result.counted) == 2 and result.counted_packed == []
    assert await daily(conn, "01843", date(2026, 11, 23)) == (2, 3)
    assert len(await keys(conn)) == 3
    assert await conn.fetchval("SELECT next_offset FROM consumer_offsets") == 2


async def test_a_key_twice_in_one_flush_counts_once(conn: asyncpg.Connection) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    batch = PartitionBatch(
        TP,
        4,
        [single("x", num=0)],
        [packed(entry("a"), entry("x"), position=1), packed(entry("a"), entry("b"), position=1)],
    )
    batch.sum_ahead()
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    # Offset order decides which delivery counts: the single "x" (numerator 0) came first.
    digest = {e: dedup_digest("urn:test", e) for e in ("a", "b", "x")}
    assert sorted(c.digest for c in result.counted) == sorted(digest.values())
    assert sorted(c.digest for c in result.duplicates) == sorted([digest["a"], digest["x"]])
    (x,) = [c for c in result.counted if c.digest == digest["x"]]
    assert x.counts == (("document_signing", 0, 1),)
    assert await daily(conn, "01843", date(2026, 11, 23)) == (2, 3)
    assert len(await keys(conn)) == 3


async def test_a_backfilled_packed_copy_of_a_live_event_marks_its_key(
    conn: asyncpg.Connection,
) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    await store.flush(conn, GROUP, claims, [PartitionBatch(TP, 1, [single("a")])], Periods.at(NOW))
    batch = PartitionBatch(TP, 2, [], [packed(entry("a"), entry("b"), backfill=True)])
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    assert [c.digest for c in result.backfilled] == [dedup_digest("urn:test", "b")]
    assert {(d, b) for d, _, b in await keys(conn)} == {
        (dedup_digest("urn:test", "a"), True),
        (dedup_digest("urn:test", "b"), True),
    }
    assert await daily(conn, "01843", date(2026, 11, 23)) == (2, 2)
