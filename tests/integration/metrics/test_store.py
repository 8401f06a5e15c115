"""The flush transaction on real PostgreSQL: dedup, late events, fencing, reloading, and
the packed records of ingest's summaries; each test with and without ``expect_new`` (the
dedup keys tried as all new first, then decided one by one when one is not)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from services.common.summaries import Entry, SummaryReader, encode_entries
from services.common.tally import TallyBatch, TallyEvent, dedup_digest
from services.metrics import store
from services.metrics.eras import Lineage
from services.metrics.periods import Periods, bucket_of, local_day
from services.metrics.tally import PartitionBatch

pytestmark = pytest.mark.integration

GROUP = "g"
TP = ("egov.documents", 0)
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam


@pytest.fixture(autouse=True, params=[False, True], ids=["decided", "expect-new"])
def expect_new(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every ``store.flush`` of the test with this ``expect_new`` (as a worker passes it)."""
    monkeypatch.setattr(store, "flush", functools.partial(store.flush, expect_new=request.param))
    return bool(request.param)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


def event(event_id: str, at: datetime = NOW, num: int = 1) -> TallyEvent:
    return TallyEvent(
        digest=dedup_digest("urn:test", event_id),
        type="vn.egov.document.issued",
        family="documents",
        epoch=at.timestamp(),
        day=local_day(at),
        units=("01843", "19"),
        counts=(("document_signing", num, 1),),
        crosswalked=False,
    )


def partition(next_offset: int, *parts: list[TallyEvent] | TallyBatch) -> PartitionBatch:
    """A partition batch as the Preparer fills it: events read one by one (lists), and
    batches decoded whole from ingest's summaries, in offset order."""
    batch = PartitionBatch(TP, next_offset)
    for part in parts:
        if isinstance(part, TallyBatch):
            batch.append(part, summarised=True)
        else:
            for e in part:
                batch.builder(e.backfill, {e.type: e.family}).add_event(e)
    return batch


def counted(result: store.FlushResult) -> list[TallyEvent]:
    """The events a flush counted, one by one."""
    return [e for t in result.counted for e in t.event_views()]


async def daily(conn: asyncpg.Connection, unit: str, day: date) -> tuple[int, int] | None:
    row = await conn.fetchrow(
        "SELECT sum(numerator) n, sum(denominator) d FROM kpi_daily"
        " WHERE unit = $1 AND kpi = 'document_signing' AND day = $2",
        unit,
        day,
    )
    return None if row is None or row["n"] is None else (row["n"], row["d"])


async def test_a_duplicate_delivered_twice_counts_once(conn: asyncpg.Connection) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    batch = partition(3, [event("a"), event("b", num=0), event("a")])
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    assert len(counted(result)) == 2 and len(result.duplicates) == 1
    # Redelivered later (a publisher retry, or a replay after a crash): counted 0 times.
    again = partition(5, [event("b", num=0), event("c")])
    result = await store.flush(conn, GROUP, claims, [again], Periods.at(NOW))
    assert [c.digest for c in result.duplicates] == [dedup_digest("urn:test", "b")]
    assert await daily(conn, "01843", date(2026, 11, 23)) == (2, 3)
    assert await daily(conn, "19", date(2026, 11, 23)) == (2, 3)
    assert await conn.fetchval("SELECT next_offset FROM consumer_offsets") == 5
    assert await conn.fetchval("SELECT count(*) FROM metrics_seen_events") == 3


async def test_a_late_event_lands_in_the_day_it_happened(conn: asyncpg.Connection) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    yesterday = NOW - timedelta(days=1)
    batch = partition(2, [event("today"), event("yesterday", yesterday, num=0)])
    await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    assert await daily(conn, "01843", date(2026, 11, 22)) == (0, 1)
    assert await daily(conn, "01843", date(2026, 11, 23)) == (1, 1)
    loaded = (await store.load_figures(conn, [TP], Periods.at(NOW)))[TP]
    tally = loaded.tallies[("01843", "document_signing")]
    assert tally.calendar("day", Periods.at(NOW)) == (1, 1)
    assert tally.calendar("month", Periods.at(NOW)) == (1, 2)


async def test_a_fenced_flush_changes_nothing(conn: asyncpg.Connection) -> None:
    stale = await store.claim(conn, GROUP, "w1", [TP])
    await store.flush(conn, GROUP, stale, [partition(1, [event("a")])], Periods.at(NOW))
    fresh = await store.claim(conn, GROUP, "w2", [TP])  # the partition moved to w2
    assert fresh[TP].next_offset == 1 and fresh[TP].epoch == stale[TP].epoch + 1
    zombie = partition(9, [event("b"), event("c")])
    result = await store.flush(conn, GROUP, stale, [zombie], Periods.at(NOW))
    assert result.fenced == {TP} and counted(result) == []
    assert await daily(conn, "01843", date(2026, 11, 23)) == (1, 1)
    assert await conn.fetchval("SELECT next_offset FROM consumer_offsets") == 1
    # The new owner counts those events when it reads them.
    result = await store.flush(conn, GROUP, fresh, [zombie], Periods.at(NOW))
    assert len(counted(result)) == 2
    assert await daily(conn, "01843", date(2026, 11, 23)) == (3, 3)


async def test_a_failing_flush_rolls_back_everything(conn: asyncpg.Connection) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    # numerator > denominator violates a CHECK: the flush fails after inserting the keys.
    bad = dataclasses.replace(event("x"), counts=(("document_signing", 2, 1),))
    with pytest.raises(asyncpg.CheckViolationError):
        await store.flush(conn, GROUP, claims, [partition(4, [event("ok"), bad])], Periods.at(NOW))
    assert await conn.fetchval("SELECT count(*) FROM metrics_seen_events") == 0
    assert await conn.fetchval("SELECT count(*) FROM kpi_daily") == 0
    assert await conn.fetchval("SELECT next_offset FROM consumer_offsets") == 0


async def test_reload_gives_day_month_year_and_buckets(conn: asyncpg.Connection) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    events = [
        event("now"),
        event("earlier-this-month", NOW - timedelta(days=5)),
        event("last-year", datetime(2025, 11, 1, tzinfo=UTC)),
    ]
    late_flush = Periods.at(NOW)
    await store.flush(conn, GROUP, claims, [partition(3, events)], late_flush)
    loaded = (await store.load_figures(conn, [TP], Periods.at(NOW)))[TP]
    tally = loaded.tallies[("19", "document_signing")]
    periods = Periods.at(NOW)
    assert tally.calendar("day", periods) == (1, 1)
    assert tally.calendar("month", periods) == (2, 2)
    assert tally.calendar("year", periods) == (2, 2)
    assert tally.total == (3, 3)
    assert sum(n for n, _ in loaded.buckets[("19", "document_signing")].values()) == 1
    assert loaded.activity[("01843", "documents")] == NOW.timestamp()
    thai_nguyen = Lineage("19", "2025", ("06", "19"))  # Bắc Kạn merged into it in 2025
    last = date(2026, 11, 23)
    assert await store.history(conn, thai_nguyen, "document_signing", date(2025, 1, 1), last) == [
        (date(2025, 11, 1), 1, 1),
        (date(2026, 11, 18), 1, 1),
        (date(2026, 11, 23), 1, 1),
    ]


async def test_prune_forgets_keys_older_than_the_grace(conn: asyncpg.Connection) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    old = event("old", NOW - timedelta(days=18))
    waited = event("waited", NOW - timedelta(days=14))  # could still wait in the broker
    batch = partition(3, [old, waited, event("new")])
    await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    keys, _ = await store.prune(conn, Periods.at(NOW), timedelta(days=7))
    assert keys == 1  # older than grace + the broker's retention + a day
    assert await conn.fetchval("SELECT count(*) FROM metrics_seen_events") == 2


# --- Packed records (ingest's summaries): counted whole when every key is new; decided
# event by event, exactly as single events are, when one was seen before or repeats.

TYPE = "vn.egov.document.issued"
CHAIN = ("01843", "19")
FAMILIES = {TYPE: "documents"}


def entry(event_id: str, at: datetime = NOW, num: int = 1) -> Entry:
    key = (TYPE, CHAIN, False, (("document_signing", num, 1),), bucket_of(at.timestamp()))
    return key, at.timestamp(), dedup_digest("urn:test", event_id), None


def packed(*entries: Entry, backfill: bool = False) -> TallyBatch:
    """A record's summary as the worker reads it."""
    tally = SummaryReader().read(encode_entries(list(entries)), backfill=backfill)
    tally.families = [FAMILIES[t] for t in tally.types]
    return tally


async def keys(conn: asyncpg.Connection) -> set[tuple[bytes, date, bool]]:
    rows = await conn.fetch("SELECT digest, event_day, backfill FROM metrics_seen_events")
    return {(r["digest"], r["event_day"], r["backfill"]) for r in rows}


async def test_a_packed_record_of_new_events_counts_whole(conn: asyncpg.Connection) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    yesterday = NOW - timedelta(days=1)
    batch = partition(
        7, [event("s1")], packed(entry("a"), entry("b", num=0), entry("c", yesterday))
    )
    batch.sum_ahead()
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    assert counted(result)[0].digest == dedup_digest("urn:test", "s1")
    assert [t.events for t in result.counted] == [1, 3] and result.duplicates == []
    assert await daily(conn, "01843", date(2026, 11, 23)) == (2, 3)
    assert await daily(conn, "19", date(2026, 11, 22)) == (1, 1)
    assert {(d, day) for d, day, _ in await keys(conn)} == {
        (dedup_digest("urn:test", "s1"), date(2026, 11, 23)),
        (dedup_digest("urn:test", "a"), date(2026, 11, 23)),
        (dedup_digest("urn:test", "b"), date(2026, 11, 23)),
        (dedup_digest("urn:test", "c"), date(2026, 11, 22)),
    }
    assert await conn.fetchval("SELECT next_offset FROM consumer_offsets") == 7


async def test_packed_records_store_each_key_with_its_day_and_backfill_flag(
    conn: asyncpg.Connection,
) -> None:
    """The whole-record path copies its keys in one binary stream: each keeps its day
    (before and after 2000-01-01, PostgreSQL's day zero) and its record's backfill flag."""
    claims = await store.claim(conn, GROUP, "w1", [TP])
    old = datetime(1999, 12, 31, 3, 0, tzinfo=UTC)
    live = packed(entry("a"), entry("b", NOW - timedelta(days=1)))
    backfilled = packed(entry("c", old), entry("d", old), entry("e"), backfill=True)
    batch = partition(3, live, backfilled)
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    assert result.events == 5 and result.duplicates == []
    today, yesterday = date(2026, 11, 23), date(2026, 11, 22)
    assert await keys(conn) == {
        (dedup_digest("urn:test", "a"), today, False),
        (dedup_digest("urn:test", "b"), yesterday, False),
        (dedup_digest("urn:test", "c"), date(1999, 12, 31), True),
        (dedup_digest("urn:test", "d"), date(1999, 12, 31), True),
        (dedup_digest("urn:test", "e"), today, True),
    }


async def test_a_key_seen_before_is_decided_event_by_event(conn: asyncpg.Connection) -> None:
    """The whole-record insert is undone; the new keys of the record are still stored."""
    claims = await store.claim(conn, GROUP, "w1", [TP])
    await store.flush(conn, GROUP, claims, [partition(1, [event("a")])], Periods.at(NOW))
    batch = partition(2, packed(entry("a"), entry("b"), entry("c", num=0)))
    batch.sum_ahead()
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    assert [c.digest for c in result.duplicates] == [dedup_digest("urn:test", "a")]
    assert [c.digest for c in counted(result)] == [dedup_digest("urn:test", e) for e in "bc"]
    assert await daily(conn, "01843", date(2026, 11, 23)) == (2, 3)
    assert len(await keys(conn)) == 3
    assert await conn.fetchval("SELECT next_offset FROM consumer_offsets") == 2


async def test_a_key_twice_in_one_flush_counts_once(conn: asyncpg.Connection) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    batch = partition(
        4,
        [event("x", num=0)],
        packed(entry("a"), entry("x")),
        packed(entry("a"), entry("b")),
    )
    batch.sum_ahead()
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    # Offset order decides which delivery counts: the single "x" (numerator 0) came first.
    digest = {e: dedup_digest("urn:test", e) for e in ("a", "b", "x")}
    assert sorted(c.digest for c in counted(result)) == sorted(digest.values())
    assert sorted(c.digest for c in result.duplicates) == sorted([digest["a"], digest["x"]])
    (x,) = [c for c in counted(result) if c.digest == digest["x"]]
    assert x.counts == (("document_signing", 0, 1),)
    assert await daily(conn, "01843", date(2026, 11, 23)) == (2, 3)
    assert len(await keys(conn)) == 3


async def test_a_backfilled_packed_copy_of_a_live_event_marks_its_key(
    conn: asyncpg.Connection,
) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    await store.flush(conn, GROUP, claims, [partition(1, [event("a")])], Periods.at(NOW))
    batch = partition(2, packed(entry("a"), entry("b"), backfill=True))
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    assert [c.digest for c in counted(result) if c.backfill] == [dedup_digest("urn:test", "b")]
    assert {(d, b) for d, _, b in await keys(conn)} == {
        (dedup_digest("urn:test", "a"), True),
        (dedup_digest("urn:test", "b"), True),
    }
    assert await daily(conn, "01843", date(2026, 11, 23)) == (2, 2)


async def test_prune_deletes_in_pieces_until_nothing_is_left(conn: asyncpg.Connection) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    old = [event(f"old-{i}", NOW - timedelta(days=18)) for i in range(7)]
    batch = partition(8, [*old, event("new")])
    await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    keys, _ = await store.prune(conn, Periods.at(NOW), timedelta(days=7), piece=3)
    assert keys == 7  # three pieces: 3, 3, 1
    assert await conn.fetchval("SELECT count(*) FROM metrics_seen_events") == 1


async def test_pooled_sessions_cannot_hold_locks_for_long(database_url: str) -> None:
    """A vanished worker's session is ended by the server (keepalive, idle transaction),
    and a flush waits for a row lock 10 s at most (services/common/db.py)."""
    from services.common.db import create_pool

    shown = {
        "lock_timeout": "10s",
        "idle_in_transaction_session_timeout": "1min",
        "tcp_keepalives_idle": "10",
        "tcp_keepalives_interval": "5",
        "tcp_keepalives_count": "3",
    }
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as pooled:
            for name, value in shown.items():
                assert await pooled.fetchval("SELECT current_setting($1)", name) == value, name
    finally:
        await pool.close()
