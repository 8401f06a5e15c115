"""Review of the canaries and per-partition vouching of refused flushes (commit 5c495c4,
services/metrics/refusals.py ``_canary``, ``_canary_counts``, ``_unvouched``).

The canary of 5c495c4 was a valid example event of the refused record's type, with the
refused event's time, unit and record headers and identities of its own, one per
(partition, type). This review found it vouching for what it never tried: a dossier
already in the ledger (the canary's was always new), the on-time figure of a final
resolution (the example was a returned one), another refused record's unit; and no
canary at all for a record that is a batch of one event. Those were strict xfails
here; since the fix the canary is the refused event itself with identities of its own,
one per refused record, its dossier a copy of the refused one's ledger row, and they
pass. The other tests guard what held: nothing of a canary stays, per-partition
vouching with several partitions and types in one flush, a summarised record accepted
long ago, a rebalance while the canary is probed, and ``_expect_new``.

Same set-up as test_store_refusals.py: real PostgreSQL, triggers raising SQLSTATE class
22 for chosen rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from services.metrics import refusals
from services.metrics.periods import Periods
from services.metrics.pipeline import Record
from tests.integration.metrics.test_review3_nul_bytes import received
from tests.integration.metrics.test_review4_refusals import (
    DOCUMENTS,
    UNIT,
    all_offsets,
    counting_on,
    doc,
    offsets_of,
    where,
)
from tests.integration.metrics.test_review5_refusals import packed, resolution, summarising
from tests.integration.metrics.test_store_refusals import (
    REFUSE,
    TOPIC,
    Sent,
    counted_ids,
    execute,
    fetch,
    keys,
    record,
)
from tests.unit.metrics.helpers import province_key

pytestmark = pytest.mark.integration

OTHER_UNIT = "16342"
"""A unit of another province than ``UNIT`` (Thanh Hoa), valid now."""

REFUSE_UPDATES = """
CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'value out of range updating dossier %', NEW.dossier_id
        USING ERRCODE = '22003';
END $$;
CREATE TRIGGER refuse_update BEFORE UPDATE ON dossier_state
    FOR EACH ROW EXECUTE FUNCTION refuse_update();
"""
"""A database refusing every change of a dossier already in the ledger (a defect of
ours: a migration, a trigger), and taking new dossiers."""

REFUSE_ON_TIME = """
CREATE FUNCTION refuse_on_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kpi LIKE 'dossier_on_time%' THEN
        RAISE EXCEPTION 'value out of range for %', NEW.kpi USING ERRCODE = '22003';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_on_time BEFORE INSERT OR UPDATE ON kpi_daily
    FOR EACH ROW EXECUTE FUNCTION refuse_on_time();
"""
"""A database refusing every on-time figure (a defect of ours), whatever the record."""

REFUSE_UNIT = f"""
CREATE FUNCTION refuse_unit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF '{OTHER_UNIT}' = ANY(NEW.units) THEN
        RAISE EXCEPTION 'value out of range for unit {OTHER_UNIT}' USING ERRCODE = '22003';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_unit BEFORE INSERT OR UPDATE ON dossier_state
    FOR EACH ROW EXECUTE FUNCTION refuse_unit();
"""
"""A database refusing the dossiers of one unit (not the records' values)."""


def received_at(offset: int, dossier: str, unit: str, partition: int = 0) -> Record:
    event = received(f"ev-{dossier}", dossier)
    event["unit"] = unit
    value = orjson.dumps(event)  # keyed by its province, as the contract asks
    return Record(TOPIC, partition, offset, province_key(value), value)


def resolved(offset: int, dossier: str, partition: int = 0) -> Record:
    """A final resolution (v1, approved, with an appointment long past: late)."""
    return Record(TOPIC, partition, offset, b"19", resolution(dossier, f"res-{dossier}"))


async def rows(database_url: str, table: str, columns: str) -> list[tuple[object, ...]]:
    found = await fetch(database_url, f"SELECT {columns} FROM {table} ORDER BY {columns}")  # noqa: S608
    return [tuple(r) for r in found]


# --- defects ------------------------------------------------------------------------


async def test_a_database_refusing_every_dossier_update_dead_letters_nothing(
    database_url: str, pool: asyncpg.Pool
) -> None:
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    n = 3
    await work.step([record(0, i, f"H-{i}") for i in range(n)], sent)
    await work.drain()
    assert await counted_ids(database_url) == [f"H-{i}" for i in range(n)]
    await execute(database_url, REFUSE_UPDATES)
    # Their resolutions: every one refused, for the database's fault, not theirs.
    await work.step([resolved(n + i, f"H-{i}") for i in range(n)], sent)
    await work.drain()
    assert sent.letters == [], where(sent)
    assert await offsets_of(database_url, TOPIC) == {0: n}
    assert work.state.metrics.held._value.get() == n
    # Once the database takes updates again, the held resolutions count.
    await execute(database_url, "DROP TRIGGER refuse_update ON dossier_state")
    await work.step([record(0, 2 * n, "H-new")], sent)
    await work.drain()
    states = await fetch(database_url, "SELECT dossier_id, status FROM dossier_state")
    assert {r["dossier_id"]: r["status"] for r in states} == {
        **{f"H-{i}": "done" for i in range(n)},
        "H-new": "open",
    }
    assert await offsets_of(database_url, TOPIC) == {0: 2 * n + 1}


async def test_max_refused_resolutions_for_a_ledger_refusing_updates_crash_not_dead_letter(
    database_url: str, pool: asyncpg.Pool
) -> None:
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    n = refusals.MAX_REFUSED + 1
    await work.step([record(0, i, f"H-{i}") for i in range(n)], sent)
    await work.drain()
    await execute(database_url, REFUSE_UPDATES)
    await work.step([resolved(n + i, f"H-{i}") for i in range(n)], sent)
    with pytest.raises(refusals.NotTheRecords):
        await work.drain()
    assert sent.letters == [], where(sent)
    assert await offsets_of(database_url, TOPIC) == {0: n}


async def test_a_database_refusing_every_on_time_figure_dead_letters_no_resolution(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE_ON_TIME)
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    # A final resolution with an appointment (late): its on-time figure is refused, as
    # would be any other's. The receipts beside it count.
    await work.step([record(0, 0, "H-0"), resolved(1, "N-1"), record(0, 2, "H-2")], sent)
    await work.drain()
    assert sent.letters == [], where(sent)
    assert await counted_ids(database_url) == ["H-0"]
    assert await offsets_of(database_url, TOPIC) == {0: 1}
    assert work.state.metrics.held._value.get() == 2


async def test_a_record_refused_for_its_unit_is_not_vouched_for_by_another_units_canary(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE_UNIT)
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    records = [received_at(0, "H-b", OTHER_UNIT), received_at(1, "R-1", UNIT)]
    await work.step(records, sent)
    await work.drain()
    # H-b is refused for its unit: nothing vouches for it, its partition is held (R-1
    # with it: the partition is held from its first unvouched record on).
    assert sent.letters == [], where(sent)
    assert await offsets_of(database_url, TOPIC) == {0: 0}
    assert work.state.metrics.held._value.get() == 2
    assert await counted_ids(database_url) == []


async def test_the_same_records_in_the_other_order_are_judged_alike(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """The counterpart of the test above: the verdict on each record is its own canary's,
    whatever the order (it was the last refused record's canary's, for all of them):
    R-1, refused for its dossier id, is dead-lettered; H-b, refused for its unit, holds
    its partition from it on."""
    await execute(database_url, REFUSE_UNIT)
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    records = [received_at(0, "R-1", UNIT), received_at(1, "H-b", OTHER_UNIT)]
    await work.step(records, sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused")]
    assert await offsets_of(database_url, TOPIC) == {0: 1}
    assert work.state.metrics.held._value.get() == 1
    assert await counted_ids(database_url) == []


async def test_a_refused_batch_of_one_event_is_dead_lettered_at_once(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    one = Record(TOPIC, 0, 0, b"19", orjson.dumps([received("ev-R-0", "R-0")]))
    await work.step([one], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused")]
    assert await offsets_of(database_url, TOPIC) == {0: 1}
    assert work.state.metrics.held._value.get() == 0
    assert await counted_ids(database_url) == []
    assert await keys(database_url) == 0


async def test_a_refused_batch_of_one_event_is_dead_lettered_beside_its_type(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """The counterpart of the xfail above: a receipt beside it vouches, as before."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    one = Record(TOPIC, 0, 0, b"19", orjson.dumps([received("ev-R-0", "R-0")]))
    await work.step([one, record(0, 1, "H-1")], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused")]
    assert await counted_ids(database_url) == ["H-1"]
    assert await offsets_of(database_url, TOPIC) == {0: 2}
    assert work.state.metrics.held._value.get() == 0


# --- claims that hold ----------------------------------------------------------------


async def test_a_canary_leaves_no_figure_key_or_dossier_behind(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Partition 0: receipts and a refused resolution, vouched for by its canary alone
    (a resolution of a dossier of its own, which writes a ledger row, a key, figures and
    activity in the probe). Partition 1: the same receipts without it. Every stored
    figure, key, dossier and activity is the same in both, and ``_expect_new`` stays."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0), (TOPIC, 1)])
    expect_new = work.state._expect_new
    sent = Sent()
    at = datetime.now(UTC) - timedelta(minutes=5)

    def receipt(partition: int, offset: int, dossier: str) -> Record:
        event = received(f"ev-{partition}-{dossier}", f"{dossier}-{partition}")
        event["time"] = at.isoformat()
        return Record(TOPIC, partition, offset, b"19", orjson.dumps(event))

    refused = Record(TOPIC, 0, 1, b"19", resolution("R-1", "res-R-1"))
    await work.step([receipt(0, 0, "H-0"), refused, receipt(0, 2, "H-2")], sent)
    await work.step([receipt(1, 0, "H-0"), receipt(1, 1, "H-2")], sent)
    await work.drain()
    assert where(sent) == [(0, 1, "store-refused")]
    assert await offsets_of(database_url, TOPIC) == {0: 3, 1: 2}
    assert work.state._expect_new == expect_new
    assert work.state.metrics.held._value.get() == 0
    assert await keys(database_url) == 4
    dossiers = await counted_ids(database_url)
    assert dossiers == ["H-0-0", "H-0-1", "H-2-0", "H-2-1"]
    for table, columns in (
        ("kpi_daily", "unit, kpi, day, numerator, denominator"),
        ("kpi_buckets", "unit, kpi, bucket_start, numerator, denominator"),
        ("unit_activity", "unit, family, last_event_time"),
    ):
        p0 = await rows(database_url, f"{table} WHERE partition = 0", columns)
        p1 = await rows(database_url, f"{table} WHERE partition = 1", columns)
        assert p0 == p1, table
        assert p0, table
        assert not any("on_time" in str(r) for r in p0), table


async def test_several_partitions_and_types_in_one_flush_each_vouched_where_it_is(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """A receipt refused in partition 0 beside resolutions only, a resolution refused in
    partition 1 beside receipts only, and documents: the canaries vouch for each in its
    partition; everything else counts, once, and every offset moves past its records."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0), (TOPIC, 1), (DOCUMENTS, 0)])
    sent = Sent()
    records = [
        resolved(0, "N-0", 0),
        record(1, 0, "H-10"),
        received_at(1, "R-1", UNIT, 0),
        doc(0, 0, "d0"),
        resolved(1, "R-11", 1),
        resolved(2, "N-2", 0),
        record(1, 2, "H-12"),
        doc(0, 1, "d1"),
    ]
    await work.step(records, sent)
    await work.drain()
    assert sorted(where(sent)) == [(0, 1, "store-refused"), (1, 1, "store-refused")]
    assert await counted_ids(database_url) == ["H-10", "H-12", "N-0", "N-2"]
    assert await all_offsets(database_url) == {(TOPIC, 0): 3, (TOPIC, 1): 3, (DOCUMENTS, 0): 2}
    assert await keys(database_url) == 6
    assert work.state.metrics.held._value.get() == 0


async def test_a_summarised_record_accepted_long_ago_refused_whole_is_vouched_for(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Accepted 10 days ago, its events 5 minutes older (on time only by its acceptance
    header): the canary keeps that header, counts, and vouches for each event."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    accepted = datetime.now(UTC) - timedelta(days=10)
    old = [received("ev-R-0", "R-0"), received("ev-R-1", "R-1")]
    for event in old:
        event["time"] = (accepted - timedelta(minutes=5)).isoformat()
    rec = packed(0, *old, now=accepted)
    prep = summarising()
    assert prep.prepare([rec], datetime.now(UTC)).paths == {"summary": 1}
    work = await counting_on(pool, [(TOPIC, 0)], prep=prep)
    sent = Sent()
    await work.step([rec], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused"), (0, 0, "store-refused")]
    assert [dict(d.headers)["dlq_batch_index"] for d in sent.letters] == [b"0", b"1"]
    assert await offsets_of(database_url, TOPIC) == {0: 1}
    assert await keys(database_url) == 0
    assert work.state.metrics.held._value.get() == 0
    assert work.state.metrics.too_late.labels("vn.egov.dossier.received")._value.get() == 0


async def test_a_rebalance_while_the_canary_is_probed_loses_and_doubles_nothing(
    database_url: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partition is revoked as its canary is probed: no verdict, nothing
    dead-lettered or counted there, no crash; claimed again, its records are read again
    and each is counted or dead-lettered once."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0), (TOPIC, 1)])
    state = work.state
    revoked: list[tuple[str, int]] = []
    canary_counts = refusals._canary_counts

    async def revoking(item: Any, *args: Any) -> bool:
        tp = (item.record.topic, item.record.partition)
        revoked.append(tp)
        await state.revoke([tp])
        return await canary_counts(item, *args)

    monkeypatch.setattr(refusals, "_canary_counts", revoking)
    sent = Sent()
    first = [received_at(0, "R-0", UNIT, 0), record(1, 0, "H-10")]
    await work.step(first, sent)
    await work.drain()
    assert revoked == [(TOPIC, 0)]
    assert sent.letters == [], where(sent)
    assert await counted_ids(database_url) == ["H-10"]
    assert await offsets_of(database_url, TOPIC) == {0: 0, 1: 1}
    # Claimed again: read from offset 0, with what came since.
    monkeypatch.setattr(refusals, "_canary_counts", canary_counts)
    await state.assign([(TOPIC, 0)], Periods.at(datetime.now(UTC)))
    await work.step([received_at(0, "R-0", UNIT, 0), record(0, 1, "H-1")], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused")]
    assert await counted_ids(database_url) == ["H-1", "H-10"]
    assert await offsets_of(database_url, TOPIC) == {0: 2, 1: 1}
    assert await keys(database_url) == 2
    assert work.state.metrics.held._value.get() == 0
