"""Review of the narrowing of flushes PostgreSQL refuses (services/metrics/refusals.py).

The first group showed defects of its first version (a held record read again after a
rebalance, a type refused throughout dead-lettered in a trickle, the good events of a
batched record dead-lettered with a refused one, a backlog with many bad records
crashing after every restart), each fixed since and guarded here; the second guards
what was right from the start. Same set-up as test_store_refusals.py: real PostgreSQL,
a trigger on the ledger raising SQLSTATE class 22 for chosen dossier ids."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import CollectorRegistry

from services.metrics import dossierstore, refusals
from services.metrics.agents import Counting
from services.metrics.exposition import PipelineMetrics
from services.metrics.figures import Figures, TopicPartition
from services.metrics.periods import Periods
from services.metrics.pipeline import PartitionState, Preparer, Record
from services.metrics.store import FlushResult
from services.metrics.tally import PartitionBatch
from tests.integration.metrics.test_dossier_ledger import ingest_records, summary_signer
from tests.integration.metrics.test_review3_nul_bytes import received
from tests.integration.metrics.test_store_refusals import (
    REFUSE,
    REFUSE_CANARIES,
    TOPIC,
    Sent,
    counted_ids,
    execute,
    fetch,
    keys,
    record,
)
from tests.unit.metrics.helpers import (
    as_bytes,
    catalogue,
    contract,
    decoder,
    document,
    envelope,
)
from tests.unit.metrics.test_future_and_failures import preparer

pytestmark = pytest.mark.integration

DOCUMENTS = "egov.documents"
UNIT = "01843"

REFUSE_RESOLVED = """
CREATE FUNCTION refuse_resolved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.dossier_id LIKE 'X-%' AND NEW.status <> 'open' THEN
        RAISE EXCEPTION 'value out of range for dossier %', NEW.dossier_id
            USING ERRCODE = '22003';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_resolved BEFORE INSERT OR UPDATE ON dossier_state
    FOR EACH ROW EXECUTE FUNCTION refuse_resolved();
"""


async def counting_on(
    pool: asyncpg.Pool,
    tps: Sequence[TopicPartition],
    clock: Any = None,
    prep: Preparer | None = None,
) -> Counting:
    """A worker's counting on ``tps``, on real PostgreSQL."""

    async def get_pool() -> asyncpg.Pool:
        return pool

    now = clock or (lambda: datetime.now(UTC))
    metrics = PipelineMetrics(CollectorRegistry(), sorted(contract().event_types))
    state = PartitionState(get_pool, "refusals", "w1", Figures(), metrics)
    await state.assign(list(tps), Periods.at(now()))
    return Counting(prep or preparer(), state, now, retry_delay_s=0.01)


def doc(partition: int, offset: int, event_id: str) -> Record:
    event = document(UNIT, datetime.now(UTC) - timedelta(minutes=5), event_id)
    return Record(DOCUMENTS, partition, offset, b"19", as_bytes(event))


def batch_record(partition: int, offset: int, *events: dict[str, Any]) -> Record:
    """One record holding several events (a JSON list), as a producer may batch them."""
    return Record(TOPIC, partition, offset, b"19", orjson.dumps(list(events)))


async def all_offsets(database_url: str) -> dict[tuple[str, int], int]:
    rows = await fetch(database_url, 'SELECT topic, "partition", next_offset FROM consumer_offsets')
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


def where(sent: Sent) -> list[tuple[int, int, str]]:
    return [(d.partition, d.offset, d.reason) for d in sent.letters]


# --- defects of the first version, fixed --------------------------------------------


async def test_a_partition_kept_by_a_rebalance_during_a_hold_dead_letters_its_record_once(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    await execute(database_url, REFUSE_CANARIES)  # and its canaries: nothing vouches
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    await work.step([record(0, 0, "R-0")], sent)
    await work.drain()
    assert sent.letters == []  # held
    # A rebalance keeps partition 0: worker.positions() sends the consumer back to the
    # stored offset 0 (state.resumed_at), the claim and its epoch unchanged.
    work.state.resumed_at({(TOPIC, 0): 0})
    await work.step([record(0, 0, "R-0"), record(0, 1, "H-1")], sent)
    await work.drain()
    assert await counted_ids(database_url) == ["H-1"]
    assert where(sent) == [(0, 0, "store-refused")]


async def test_a_rebalance_during_a_hold_of_several_records_does_not_crash(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    await execute(database_url, REFUSE_CANARIES)  # and its canaries: nothing vouches
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    refused = [record(0, i, f"R-{i}") for i in range(6)]
    await work.step(refused, sent)
    await work.drain()
    assert sent.letters == []  # held
    work.state.resumed_at({(TOPIC, 0): 0})  # kept by a rebalance, read again from 0
    await work.step([*refused, record(0, 6, "H-6")], sent)
    await work.drain()  # raises NotTheRecords today
    assert await counted_ids(database_url) == ["H-6"]
    assert [d.offset for d in sent.letters] == list(range(6))


async def test_a_partition_claimed_again_while_narrowing_dead_letters_its_record_once(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    await execute(database_url, REFUSE_CANARIES)  # and its canaries: nothing vouches
    work = await counting_on(pool, [(TOPIC, 0)])
    state = work.state
    probe = state.probe
    reclaimed: list[bool] = []

    async def probe_after_a_rebalance(
        batches: Sequence[PartitionBatch], periods: Periods, *clones: Any
    ) -> FlushResult:
        if not reclaimed:  # a rebalance between two probes: lost and claimed again
            reclaimed.append(True)
            await state.revoke([(TOPIC, 0)])
            await state.assign([(TOPIC, 0)], periods)
        return await probe(batches, periods, *clones)

    state.probe = probe_after_a_rebalance  # type: ignore[method-assign]
    sent = Sent()
    await work.step([record(0, 0, "R-0")], sent)
    await work.drain()
    assert reclaimed and sent.letters == []
    # The new claim reads the partition again from its stored offset, 0.
    await work.step([record(0, 0, "R-0"), record(0, 1, "H-1")], sent)
    await work.drain()
    assert await counted_ids(database_url) == ["H-1"]
    assert where(sent) == [(0, 0, "store-refused")]


async def test_a_database_refusing_every_dossier_dead_letters_none_in_a_trickle(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="%"))
    work = await counting_on(pool, [(TOPIC, 0), (DOCUMENTS, 0)])
    sent = Sent()
    failed = None
    for i in range(refusals.MAX_REFUSED + 2):  # live traffic: a flush per step
        try:
            await work.step([record(0, i, f"H-{i}"), doc(0, i, f"d{i}")], sent)
            await work.drain()
        except refusals.NotTheRecords as exc:
            failed = exc
            break
    assert sent.letters == [], f"{len(sent.letters)} good dossiers dead-lettered"
    assert failed is not None


async def test_the_good_events_of_a_batched_record_with_a_refused_event_count(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    both = batch_record(0, 0, received("ev-H-1", "H-1"), received("ev-R-1", "R-1"))
    await work.step([both, record(0, 1, "H-2")], sent)
    await work.drain()
    assert await offsets_of(database_url, TOPIC) == {0: 2}
    assert await counted_ids(database_url) == ["H-1", "H-2"]


async def test_an_element_dead_lettered_at_decode_is_not_dead_lettered_again(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    bad = received("ev-bad", "B-1")
    bad["data"]["channel"] = 42
    assert contract().validate(bad) != []
    mixed = batch_record(0, 0, bad, received("ev-R-1", "R-1"))
    await work.step([mixed, record(0, 1, "H-2")], sent)
    await work.drain()
    assert await counted_ids(database_url) == ["H-2"]
    carrying_bad = [d.reason for d in sent.letters if b"ev-bad" in (d.value or b"")]
    assert carrying_bad == ["schema-violation"]


async def test_the_good_events_of_a_summarised_record_with_a_refused_event_count(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    now = datetime.now(UTC)
    prep = Preparer(decoder(), contract(), catalogue(), timedelta(days=7), signer=summary_signer())
    work = await counting_on(pool, [(TOPIC, 0)], prep=prep)
    sent = Sent()
    packed = [
        Record(TOPIC, 0, i, r.key, r.value, tuple(r.headers))
        for i, r in enumerate(
            [
                *ingest_records([received("ev-H-1", "H-1"), received("ev-R-1", "R-1")], now, 2),
                *ingest_records([received("ev-H-2", "H-2"), received("ev-H-3", "H-3")], now, 2),
            ]
        )
    ]
    await work.step(packed, sent)
    await work.drain()
    assert work.state.metrics.records.labels("summary")._value.get() == 2
    assert await offsets_of(database_url, TOPIC) == {0: 2}
    assert await counted_ids(database_url) == ["H-1", "H-2", "H-3"]


async def test_eleven_refused_records_in_a_large_backlog_do_not_crash_every_restart(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    backlog = [
        record(0, i, f"R-{i}" if i % 20 == 19 else f"H-{i}")
        for i in range(20 * (refusals.MAX_REFUSED + 1))
    ]
    sent = Sent()
    for _restart in range(2):
        work = await counting_on(pool, [(TOPIC, 0)])
        await work.step(backlog, sent)
        try:
            await work.drain()
        except refusals.NotTheRecords:
            continue
        break
    assert await offsets_of(database_url, TOPIC) == {0: len(backlog)}
    assert len(sent.letters) == refusals.MAX_REFUSED + 1


# --- guarded behaviour -----------------------------------------------------------------


async def offsets_of(database_url: str, topic: str) -> dict[int, int]:
    return {p: n for (t, p), n in (await all_offsets(database_url)).items() if t == topic}


async def test_records_dead_lettered_at_decode_in_a_refused_flush_go_once(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    records = [
        Record(TOPIC, 0, 0, b"19", b"{not json"),
        record(0, 1, "R-1"),
        record(0, 2, "H-2"),
        Record(TOPIC, 0, 3, b"19", b"[]"),
    ]
    await work.step(records, sent)
    await work.drain()
    reasons = [(d.offset, d.reason) for d in sent.letters]
    assert [r for r in reasons if r[1] == "store-refused"] == [(1, "store-refused")]
    assert sorted(o for o, _ in reasons) == [0, 1, 3]  # each once
    assert await counted_ids(database_url) == ["H-2"]
    assert await offsets_of(database_url, TOPIC) == {0: 4}


async def test_interleaved_partitions_and_topics_count_around_refused_records(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    tps = [(TOPIC, 0), (TOPIC, 1), (DOCUMENTS, 0), (DOCUMENTS, 1)]
    work = await counting_on(pool, tps)
    sent = Sent()
    await work.step([record(1, 0, "H-1"), doc(0, 0, "d0"), record(0, 0, "R-1")], sent)
    await work.step([doc(1, 0, "d1"), record(0, 1, "H-2"), record(1, 1, "R-2")], sent)
    await work.step([doc(0, 1, "d2"), record(1, 2, "H-3")], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused"), (1, 1, "store-refused")]
    assert await counted_ids(database_url) == ["H-1", "H-2", "H-3"]
    assert await keys(database_url) == 6  # 3 dossiers, 3 documents
    assert await all_offsets(database_url) == {
        (TOPIC, 0): 2,
        (TOPIC, 1): 3,
        (DOCUMENTS, 0): 2,
        (DOCUMENTS, 1): 1,
    }


async def test_duplicates_around_a_refused_record_count_once(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    records = [
        record(0, 0, "H-1"),
        record(0, 1, "R-1"),
        record(0, 2, "H-1"),  # the same event again
        record(0, 3, "R-1"),  # the refused event again: its record is refused too
        record(0, 4, "H-2"),
    ]
    await work.step(records, sent)
    await work.drain()
    assert where(sent) == [(0, 1, "store-refused"), (0, 3, "store-refused")]
    assert await counted_ids(database_url) == ["H-1", "H-2"]
    assert await keys(database_url) == 2
    assert work.state.metrics.duplicates.labels("vn.egov.dossier.received")._value.get() == 1
    assert await offsets_of(database_url, TOPIC) == {0: 5}


async def test_held_records_are_decoded_again_at_their_own_clock(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    await execute(database_url, REFUSE_CANARIES)  # and its canaries: nothing vouches
    start = datetime.now(UTC)
    now = [start]
    work = await counting_on(pool, [(TOPIC, 0)], clock=lambda: now[0])
    sent = Sent()
    future = received("ev-F-1", "F-1")
    future["time"] = (start + timedelta(minutes=10)).isoformat()  # beyond the 300 s skew
    await work.step([record(0, 0, "R-0"), Record(TOPIC, 0, 1, b"19", orjson.dumps(future))], sent)
    await work.drain()
    assert where(sent) == [(0, 1, "time-in-future")]  # R-0 held with it
    now[0] = start + timedelta(hours=1)  # F-1 would be on time now
    later = received("ev-H-2", "H-2")
    later["time"] = (now[0] - timedelta(minutes=5)).isoformat()
    await work.step([Record(TOPIC, 0, 2, b"19", orjson.dumps(later))], sent)
    await work.drain()
    assert where(sent) == [(0, 1, "time-in-future"), (0, 0, "store-refused")]
    assert await counted_ids(database_url) == ["H-2"]
    assert await offsets_of(database_url, TOPIC) == {0: 3}


async def test_held_records_of_a_partition_lost_to_another_worker_are_dropped(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    await execute(database_url, REFUSE_CANARIES)  # and its canaries: nothing vouches
    work = await counting_on(pool, [(TOPIC, 0), (TOPIC, 1)])
    sent = Sent()
    await work.step([record(0, 0, "R-0")], sent)
    await work.drain()
    await work.state.revoke([(TOPIC, 0)])  # another worker reads it from offset 0
    await work.step([record(1, 0, "H-1")], sent)
    await work.drain()
    assert sent.letters == []
    assert await counted_ids(database_url) == ["H-1"]
    assert await offsets_of(database_url, TOPIC) == {0: 0, 1: 1}


async def test_a_dossier_received_and_resolved_in_a_refused_flush_is_resolved_once(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    at = datetime.now(UTC) - timedelta(minutes=5)
    resolved = envelope(
        "vn.egov.dossier.resolved", UNIT, at, "res-D", dossier_id="D-1", outcome="approved"
    )
    assert contract().validate(resolved) == []
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    records = [
        record(0, 0, "D-1"),
        record(0, 1, "R-1"),
        Record(TOPIC, 0, 2, b"19", orjson.dumps(resolved)),
    ]
    await work.step(records, sent)
    await work.drain()
    assert where(sent) == [(0, 1, "store-refused")]
    rows = await fetch(database_url, "SELECT dossier_id, status FROM dossier_state")
    assert {r["dossier_id"]: r["status"] for r in rows} == {"D-1": "done"}


async def test_a_refused_resolution_leaves_its_dossier_received(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """The refusal depends on the ledger's row after both events: the shortest failing
    prefix ends with the resolution, which alone is dead-lettered (another resolution
    counted beside it vouches for it)."""
    await execute(database_url, REFUSE_RESOLVED)
    at = datetime.now(UTC) - timedelta(minutes=5)
    resolved = envelope(
        "vn.egov.dossier.resolved", UNIT, at, "res-X", dossier_id="X-1", outcome="approved"
    )
    other = envelope(
        "vn.egov.dossier.resolved", UNIT, at, "res-H", dossier_id="H-3", outcome="approved"
    )
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    records = [
        record(0, 0, "X-1"),
        record(0, 1, "H-2"),
        Record(TOPIC, 0, 2, b"19", orjson.dumps(resolved)),
        Record(TOPIC, 0, 3, b"19", orjson.dumps(other)),
    ]
    await work.step(records, sent)
    await work.drain()
    assert where(sent) == [(0, 2, "store-refused")]
    rows = await fetch(database_url, "SELECT dossier_id, status FROM dossier_state")
    assert {r["dossier_id"]: r["status"] for r in rows} == {
        "X-1": "open",
        "H-2": "open",
        "H-3": "done",
    }


async def test_narrowing_costs_about_log2_probes_per_refused_record(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """The cost today, to guard against worse: one probe of the whole failed flush (which
    is known to fail already), then per refused record a binary search from the start
    (ceil(log2 n) probes) and a probe of what remains, and one probe of what passes to
    see what it counts (the refused records' types vouched for); each probe decodes its
    prefix again on the event loop."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    n = 64
    records = [record(0, i, f"H-{i}") for i in range(n - 3)]
    records += [record(0, i, f"R-{i}") for i in range(n - 3, n)]
    work = await counting_on(pool, [(TOPIC, 0)])
    probe = work.state.probe
    sizes: list[int] = []

    async def counted(
        batches: Sequence[PartitionBatch], periods: Periods, *clones: Any
    ) -> FlushResult:
        sizes.append(sum(b.events for b in batches))
        return await probe(batches, periods, *clones)

    work.state.probe = counted  # type: ignore[method-assign]
    sent = Sent()
    await work.step(records, sent)
    await work.drain()
    assert len(sent.letters) == 3
    assert len(sizes) <= 1 + 3 * (6 + 1) + 1
    assert sizes[0] == n  # the redundant first probe: the failed flush again


async def test_a_refusal_raised_while_asyncpg_encodes_copy_rows_is_narrowed(
    database_url: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UnicodeEncodeError from asyncpg's COPY encoder (client side, mid-COPY): the probe's
    rollback must still work on that connection, and the rest count."""
    save = dossierstore._save

    async def save_with_a_lone_surrogate(conn: Any, tp: Any, changed: Any, stored: Any) -> None:
        changed = list(changed)
        if any(d.dossier_id.startswith("R-") for d in changed):
            await conn.copy_records_to_table(
                "dossier_state",
                records=[(tp[0], tp[1], "\ud800", "open", None, None, ["x"])],
                columns=dossierstore._COLUMNS,
            )
        await save(conn, tp, changed, stored)

    monkeypatch.setattr(dossierstore, "_save", save_with_a_lone_surrogate)
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    await work.step([record(0, 0, "H-0"), record(0, 1, "R-1"), record(0, 2, "H-2")], sent)
    await work.drain()
    assert where(sent) == [(0, 1, "store-refused")]
    assert await counted_ids(database_url) == ["H-0", "H-2"]
    assert await offsets_of(database_url, TOPIC) == {0: 3}
