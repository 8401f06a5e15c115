"""Review of b217555: a flush's all-new dedup keys go in by binary COPY inside a
savepoint; any key not new (stored before, twice in the flush, in two partitions, live
and backfilled) undoes it and the flush decides event by event. Each event counts once."""

from __future__ import annotations

from datetime import date, timedelta

import asyncpg
import pytest

from services.common.tally import dedup_digest
from services.metrics import store
from services.metrics.periods import Periods
from services.metrics.tally import PartitionBatch
from tests.integration.metrics.test_store import (
    GROUP,
    NOW,
    TP,
    conn,  # noqa: F401 (the fixture)
    counted,
    daily,
    entry,
    event,
    keys,
    packed,
    partition,
)

pytestmark = pytest.mark.integration

TP1 = ("egov.documents", 1)
TODAY = date(2026, 11, 23)


def on(tp: tuple[str, int], batch: PartitionBatch) -> PartitionBatch:
    batch.tp = tp
    return batch


async def test_one_key_in_two_partitions_of_one_flush_counts_once(
    conn: asyncpg.Connection,  # noqa: F811
) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP, TP1])
    b0 = partition(1, packed(entry("a"), entry("b")))
    b1 = on(TP1, partition(1, packed(entry("b"), entry("c"))))
    result = await store.flush(conn, GROUP, claims, [b0, b1], Periods.at(NOW))
    assert sorted(c.digest for c in counted(result)) == sorted(
        dedup_digest("urn:test", e) for e in "abc"
    )
    assert [c.digest for c in result.duplicates] == [dedup_digest("urn:test", "b")]
    assert await daily(conn, "01843", TODAY) == (3, 3)
    assert len(await keys(conn)) == 3


async def test_a_live_and_a_backfilled_delivery_in_one_flush_count_once_and_mark_the_key(
    conn: asyncpg.Connection,  # noqa: F811
) -> None:
    """The backfilled delivery keeps the key from pruning, whichever came first."""
    claims = await store.claim(conn, GROUP, "w1", [TP])
    batch = partition(2, packed(entry("a"), entry("b")), packed(entry("a"), backfill=True))
    result = await store.flush(conn, GROUP, claims, [batch], Periods.at(NOW))
    assert [c.digest for c in result.duplicates] == [dedup_digest("urn:test", "a")]
    assert await daily(conn, "01843", TODAY) == (2, 2)
    assert {(d, b) for d, _, b in await keys(conn)} == {
        (dedup_digest("urn:test", "a"), True),
        (dedup_digest("urn:test", "b"), False),
    }


async def test_the_last_of_many_keys_stored_before_undoes_the_copy_not_the_rest(
    conn: asyncpg.Connection,  # noqa: F811
) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    await store.flush(conn, GROUP, claims, [partition(1, [event("k4999")])], Periods.at(NOW))
    many = packed(*(entry(f"k{i}") for i in range(5000)))
    result = await store.flush(conn, GROUP, claims, [partition(2, many)], Periods.at(NOW))
    assert [c.digest for c in result.duplicates] == [dedup_digest("urn:test", "k4999")]
    assert len(counted(result)) == 4999
    assert await daily(conn, "01843", TODAY) == (5000, 5000)
    assert len(await keys(conn)) == 5000
    assert await conn.fetchval("SELECT next_offset FROM consumer_offsets") == 2


async def test_a_flush_replayed_after_a_crash_counts_nothing_again(
    conn: asyncpg.Connection,  # noqa: F811
) -> None:
    claims = await store.claim(conn, GROUP, "w1", [TP])
    yesterday = NOW - timedelta(days=1)

    def batch() -> PartitionBatch:
        return partition(3, packed(entry("a"), entry("b", yesterday)), [event("s")])

    await store.flush(conn, GROUP, claims, [batch()], Periods.at(NOW))
    before = (await daily(conn, "01843", TODAY), await daily(conn, "01843", TODAY - timedelta(1)))
    again = await store.flush(conn, GROUP, claims, [batch()], Periods.at(NOW))
    assert counted(again) == [] and len(again.duplicates) == 3
    after = (await daily(conn, "01843", TODAY), await daily(conn, "01843", TODAY - timedelta(1)))
    assert after == before == ((2, 2), (1, 1))


async def test_a_fenced_partition_s_keys_are_not_copied(
    conn: asyncpg.Connection,  # noqa: F811
) -> None:
    """Keys of a partition another worker took over stay free for the new owner."""
    claims = await store.claim(conn, GROUP, "w1", [TP, TP1])
    await store.claim(conn, GROUP, "w2", [TP1])  # w2 took partition 1 over
    b0 = partition(1, packed(entry("a")))
    b1 = on(TP1, partition(1, packed(entry("z"))))
    result = await store.flush(conn, GROUP, claims, [b0, b1], Periods.at(NOW))
    assert result.fenced == {TP1}
    assert {d for d, _, _ in await keys(conn)} == {dedup_digest("urn:test", "a")}
