"""Second review of the narrowing of refused flushes (services/metrics/refusals.py).

What the first review did not cover: ingest's summarised records searched event by
event (their dedup identity, lateness and headers against the summary path's), the
stored positions and fingerprints after a narrowed flush, what vouches for a refusal,
and what a search costs. Four defects it found are fixed and guarded here (a hold that
stopped every partition, a type refused throughout batched records searched to the end,
refused records last in a backlog hiding the good ones before them from the lookahead,
an element's dead letter made as a record of its own); a fifth, vouching by event type
and not by partition, was a strict xfail here until it was fixed on 2026-12-04. Same
set-up as test_store_refusals.py: real PostgreSQL, a trigger on the ledger raising
SQLSTATE class 22 for chosen dossiers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from services.common.headers import (
    ACCEPTED_HEADER,
    BACKFILL_HEADER,
    PUBLISHER_HEADER,
    accepted_header,
)
from services.common.signing import SUMMARY_HEADER
from services.common.summaries import Summarizer
from services.common.tally import UNBOUND
from services.ingest.publisher import pack, published_by, signed
from services.ingest.validation import EventValidator, Limits
from services.metrics import refusals
from services.metrics.agents import Counting
from services.metrics.logcheck import fingerprint
from services.metrics.periods import Periods
from services.metrics.pipeline import Preparer, Record
from services.metrics.store import FlushResult
from services.metrics.tally import PartitionBatch
from tests.integration.metrics.test_dossier_ledger import (
    _MACS,
    summary_signer,
)
from tests.integration.metrics.test_review3_nul_bytes import received
from tests.integration.metrics.test_review4_refusals import (
    DOCUMENTS,
    UNIT,
    all_offsets,
    batch_record,
    counting_on,
    doc,
    offsets_of,
    where,
)
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
from tests.unit.metrics.helpers import catalogue, contract, decoder, envelope, registry

pytestmark = pytest.mark.integration

RECEIVED = "vn.egov.dossier.received"

REFUSE_PARTITION = """
CREATE FUNCTION refuse_partition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW."partition" = 1 THEN
        RAISE EXCEPTION 'value out of range in partition %', NEW."partition"
            USING ERRCODE = '22003';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_partition BEFORE INSERT OR UPDATE ON dossier_state
    FOR EACH ROW EXECUTE FUNCTION refuse_partition();
"""


def summarising() -> Preparer:
    return Preparer(decoder(), contract(), catalogue(), timedelta(days=7), signer=summary_signer())


def packed(
    offset: int,
    *events: dict[str, object],
    now: datetime | None = None,
    publisher: str = "portal-a",
) -> Record:
    """Ingest's record of ``events`` from ``publisher``, accepted at ``now``: packed,
    summarised (version 2), stamped and signed, as ingest's publisher sends it."""
    at = now or datetime.now(UTC)
    limits = Limits(timedelta(seconds=300), horizon=None)
    validator = EventValidator(contract(), registry(), limits, Summarizer(catalogue()))
    records, errors = validator.check(list(events), at, publisher=publisher)
    assert errors == []
    stamp = accepted_header(at)
    (r,) = signed(published_by(pack(records)), summary_signer(), stamp=stamp)
    expected = {ACCEPTED_HEADER, SUMMARY_HEADER} | ({PUBLISHER_HEADER} if publisher else set())
    assert expected <= {h[0] for h in r.headers}
    return Record(TOPIC, 0, offset, r.key, r.value, tuple(r.headers), 1_765_000_000.5)


def resolution(dossier: str, event_id: str) -> bytes:
    at = datetime.now(UTC) - timedelta(minutes=5)
    event = envelope(
        "vn.egov.dossier.resolved", UNIT, at, event_id, dossier_id=dossier, outcome="approved"
    )
    return orjson.dumps(event)


def counting_probes(work: Counting, sizes: list[int]) -> None:
    state = work.state
    probe = state.probe

    async def counted(
        batches: Sequence[PartitionBatch], periods: Periods, *clones: Any
    ) -> FlushResult:
        sizes.append(sum(b.events for b in batches))
        return await probe(batches, periods, *clones)

    state.probe = counted  # type: ignore[method-assign]


async def stored_fingerprints(database_url: str) -> dict[tuple[str, int], bytes | None]:
    rows = await fetch(database_url, 'SELECT topic, "partition", last_record FROM consumer_offsets')
    return {(r["topic"], r["partition"]): r["last_record"] for r in rows}


def print_of(r: Record) -> bytes:
    ms = round(r.timestamp * 1000) if r.timestamp else 0
    return fingerprint(r.key, r.value, ms)


# --- defects ------------------------------------------------------------------------


async def test_a_refused_event_of_a_rare_type_does_not_stop_all_counting(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0), (TOPIC, 1), (DOCUMENTS, 0)])
    sent = Sent()
    # One resolution (a rarer type than receptions), refused; receptions and documents
    # keep flowing on the other partitions, flush after flush.
    await work.step([Record(TOPIC, 0, 0, b"19", resolution("R-0", "res-R-0"))], sent)
    await work.drain()
    for i in range(refusals.MAX_REFUSED + 5):
        await work.step([record(1, i, f"H-{i}"), doc(0, i, f"d{i}")], sent)
        await work.drain()
    held = work.state.metrics.held._value.get()
    assert len(await counted_ids(database_url)) == refusals.MAX_REFUSED + 5, f"{held} held"
    assert (await all_offsets(database_url))[(DOCUMENTS, 0)] == refusals.MAX_REFUSED + 5


async def test_a_type_refused_throughout_batched_records_stops_after_max_refused(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="%"))
    n = 30  # records of two events each
    records = [
        batch_record(0, i, received(f"a{i}", f"A-{i}"), received(f"b{i}", f"B-{i}"))
        for i in range(n)
    ]
    work = await counting_on(pool, [(TOPIC, 0)])
    sizes: list[int] = []
    counting_probes(work, sizes)
    sent = Sent()
    await work.step(records, sent)
    with pytest.raises(refusals.NotTheRecords):
        await work.drain()
    assert sent.letters == []
    # About what MAX_REFUSED refused records cost: a binary search and a probe each.
    per_refusal = math.ceil(math.log2(2 * n)) + 2
    bound = (refusals.MAX_REFUSED + 2) * per_refusal + refusals.LOOKAHEAD_PROBES + 2
    assert len(sizes) <= bound, f"{len(sizes)} probes"


async def test_refused_records_at_the_end_of_a_backlog_do_not_crash_every_restart(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    many = refusals.MAX_REFUSED + 1
    names = [f"R-{i}" for i in range(many)] + [f"H-{i}" for i in range(5)]
    names += [f"R-end-{i}" for i in range(refusals.LOOKAHEAD)]
    backlog = [record(0, i, name) for i, name in enumerate(names)]
    sent = Sent()
    crashes = 0
    for _restart in range(3):
        work = await counting_on(pool, [(TOPIC, 0)])
        await work.step(backlog, sent)
        try:
            await work.drain()
        except refusals.NotTheRecords:
            crashes += 1
            continue
        break
    assert crashes < 3
    assert await offsets_of(database_url, TOPIC) == {0: len(backlog)}
    assert await counted_ids(database_url) == [f"H-{i}" for i in range(5)]


async def test_a_partition_refused_whole_is_not_vouched_for_by_another(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Vouching is per partition (a strict xfail until 2026-12-04, when it was by type):
    a dossier counting on partition 0 says nothing of partition 1, whose rows the
    database refuses, nor does a canary, refused there too: partition 1 is held."""
    await execute(database_url, REFUSE_PARTITION)
    work = await counting_on(pool, [(TOPIC, 0), (TOPIC, 1)])
    sent = Sent()
    records = [record(0, 0, "H-0"), *(record(1, i, f"P-{i}") for i in range(3))]
    await work.step(records, sent)
    await work.drain()
    assert sent.letters == [], where(sent)
    assert await counted_ids(database_url) == ["H-0"]
    assert await offsets_of(database_url, TOPIC) == {0: 1, 1: 0}
    assert work.state.metrics.held._value.get() == 3
    # The database takes partition 1 again: its held records count, none lost.
    await execute(database_url, "DROP TRIGGER refuse_partition ON dossier_state")
    await work.step([record(1, 3, "P-3")], sent)
    await work.drain()
    assert sent.letters == []
    assert await counted_ids(database_url) == ["H-0", "P-0", "P-1", "P-2", "P-3"]
    assert await offsets_of(database_url, TOPIC) == {0: 1, 1: 4}


# --- guarded behaviour ---------------------------------------------------------------


async def test_duplicates_of_a_type_refused_throughout_vouch_for_nothing(
    database_url: str, pool: asyncpg.Pool
) -> None:
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    counted = [record(0, i, f"H-{i}") for i in range(3)]
    await work.step(counted, sent)
    await work.drain()
    await execute(database_url, REFUSE.format(pattern="%"))  # every dossier refused now
    # The same events delivered again (duplicates: no ledger row written) beside new
    # ones, which the database refuses: the duplicates say nothing of the new ones. The
    # duplicates before the refused record are flushed (nothing new counted); the
    # partition is held from it on.
    again = [Record(TOPIC, 0, 3 + i, r.key, r.value) for i, r in enumerate(counted)]
    await work.step([*again, record(0, 6, "N-6"), *again[:1]], sent)
    await work.drain()
    assert sent.letters == []
    assert await offsets_of(database_url, TOPIC) == {0: 6}
    assert work.state.metrics.held._value.get() == 1


async def test_a_summarised_record_searched_by_event_counts_as_its_summary_would(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Its events' dedup digests are the summary's: ingest's record delivered again once
    the database takes it counts only the refused event, and a summarised record of the
    same events counted before makes the searched events duplicates."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)], prep=summarising())
    sent = Sent()
    first = packed(0, received("ev-H-0", "H-0"), received("ev-H-1", "H-1"))
    both = packed(1, received("ev-H-1", "H-1"), received("ev-R-1", "R-1"))
    await work.step([first], sent)
    await work.drain()
    await work.step([both, record(0, 2, "H-2")], sent)
    await work.drain()
    assert where(sent) == [(0, 1, "store-refused")]
    assert dict(sent.letters[0].headers)["dlq_batch_index"] == b"1"
    assert await counted_ids(database_url) == ["H-0", "H-1", "H-2"]
    assert await keys(database_url) == 3
    assert work.state.metrics.duplicates.labels(RECEIVED)._value.get() == 1
    # The database takes R- dossiers again; ingest's record is delivered a second time.
    await execute(database_url, "DROP TRIGGER refuse_dossier ON dossier_state")
    twice = Record(TOPIC, 0, 3, both.key, both.value, both.headers, both.timestamp)
    await work.step([twice], sent)
    await work.drain()
    assert await counted_ids(database_url) == ["H-0", "H-1", "H-2", "R-1"]
    assert await keys(database_url) == 4
    assert work.state.metrics.duplicates.labels(RECEIVED)._value.get() == 2
    assert await offsets_of(database_url, TOPIC) == {0: 4}


async def test_a_summarised_record_searched_by_event_keeps_its_acceptance_time(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Accepted 10 days ago with events 5 minutes older: on time by its acceptance (the
    summary path counts it), so its events read one by one are on time too."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    accepted = datetime.now(UTC) - timedelta(days=10)
    old = [received("ev-H-0", "H-0"), received("ev-R-0", "R-0"), received("ev-H-1", "H-1")]
    for event in old:
        event["time"] = (accepted - timedelta(minutes=5)).isoformat()
    rec = packed(0, *old, now=accepted)
    prep = summarising()
    assert prep.prepare([rec], datetime.now(UTC)).paths == {"summary": 1}
    work = await counting_on(pool, [(TOPIC, 0)], prep=prep)
    sent = Sent()
    await work.step([rec], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused")]
    assert await counted_ids(database_url) == ["H-0", "H-1"]
    assert work.state.metrics.too_late.labels(RECEIVED)._value.get() == 0


def resigned(rec: Record, value: bytes, headers: Sequence[tuple[str, bytes]]) -> Record:
    """``rec`` with ``value`` and ``headers``, its summary and signature made again (they
    cover the value and every egov_ header), as ingest would have sent it."""
    signer = summary_signer()
    kept = [h for h in headers if h[0] not in (*_MACS, SUMMARY_HEADER)]
    summary = dict(headers)[SUMMARY_HEADER]
    out = kept + signer.summary_headers(value, summary, headers=kept, topic=TOPIC, key=rec.key)
    out.append(signer.header(value, headers=out, topic=TOPIC, key=rec.key))
    return Record(TOPIC, 0, rec.offset, rec.key, value, tuple(out), rec.timestamp)


def with_an_invalid_first_event(rec: Record) -> Record:
    """``rec`` with its first event breaking the worker's contract, signed again: an event
    that ingest let through (its contract older than the worker's, say)."""
    events = orjson.loads(rec.value or b"")
    events[0]["data"]["channel"] = 42  # not what the worker's contract allows
    bad = resigned(rec, orjson.dumps(events), rec.headers)
    assert summarising().prepare([bad], datetime.now(UTC)).paths == {"summary": 1}
    return bad


async def test_an_invalid_element_of_a_summarised_record_is_dead_lettered_once(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Counted from the summary, never read one by one: searched by event, the invalid
    event is news, dead-lettered once, and the record's offset passes it."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    bad = with_an_invalid_first_event(
        packed(0, received("ev-H-0", "H-0"), received("ev-R-0", "R-0"))
    )
    work = await counting_on(pool, [(TOPIC, 0)], prep=summarising())
    sent = Sent()
    await work.step([bad, record(0, 1, "H-1")], sent)
    await work.drain()
    assert sorted(d.reason for d in sent.letters) == ["schema-violation", "store-refused"]
    assert await counted_ids(database_url) == ["H-1"]
    assert await offsets_of(database_url, TOPIC) == {0: 2}


async def test_an_invalid_element_found_by_the_search_is_dead_lettered_as_an_element(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    bad = with_an_invalid_first_event(
        packed(0, received("ev-H-0", "H-0"), received("ev-R-0", "R-0"))
    )
    work = await counting_on(pool, [(TOPIC, 0)], prep=summarising())
    sent = Sent()
    await work.step([bad, record(0, 1, "H-1")], sent)
    await work.drain()
    (invalid,) = [d for d in sent.letters if d.reason == "schema-violation"]
    headers = dict(invalid.headers)
    assert headers["dlq_source"] == f"{TOPIC}[0]@0".encode()
    assert headers.get("dlq_batch_index") == b"0", headers


async def test_a_backfilled_summarised_record_searched_by_event_counts_as_backfill(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Backfilled (header egov_backfill, no publisher): events months old count, in
    their day, read one by one as from the summary."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    long_ago = datetime.now(UTC) - timedelta(days=60)
    old = [received("ev-H-0", "H-0"), received("ev-R-0", "R-0"), received("ev-H-1", "H-1")]
    for event in old:
        event["time"] = long_ago.isoformat()
    rec = packed(0, *old, publisher=UNBOUND)
    bad = resigned(rec, rec.value or b"", (*rec.headers, BACKFILL_HEADER))
    prep = summarising()
    assert prep.prepare([bad], datetime.now(UTC)).paths == {"summary": 1}
    work = await counting_on(pool, [(TOPIC, 0)], prep=prep)
    sent = Sent()
    await work.step([bad], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused")]
    assert await counted_ids(database_url) == ["H-0", "H-1"]
    assert work.state.metrics.backfilled.labels(RECEIVED)._value.get() == 2
    rows = await fetch(database_url, "SELECT count(*) AS n FROM metrics_seen_events WHERE backfill")
    assert rows[0]["n"] == 2


async def test_the_fingerprint_stored_after_a_narrowed_flush_is_the_last_records(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0), (TOPIC, 1)])
    sent = Sent()
    last0 = batch_record(0, 2, received("ev-H-2", "H-2"), received("ev-R-2", "R-2"))
    last1 = record(1, 1, "R-3")
    records = [record(0, 0, "H-0"), record(1, 0, "H-1"), record(0, 1, "R-1"), last0, last1]
    records = [
        Record(r.topic, r.partition, r.offset, r.key, r.value, (), 1_765_000_000.25 + r.offset)
        for r in records
    ]
    last0, last1 = records[3], records[4]
    await work.step(records, sent)
    await work.drain()
    assert await offsets_of(database_url, TOPIC) == {0: 3, 1: 2}
    prints = await stored_fingerprints(database_url)
    assert prints[(TOPIC, 0)] == print_of(last0)
    assert prints[(TOPIC, 1)] == print_of(last1)


async def test_after_a_hold_the_offsets_and_fingerprints_are_the_last_records(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    await execute(database_url, REFUSE_CANARIES)  # and its canaries: nothing vouches
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    held = Record(TOPIC, 0, 0, b"19", record(0, 0, "R-0").value, (), 1_765_000_000.0)
    await work.step([held], sent)
    await work.drain()
    assert await offsets_of(database_url, TOPIC) == {0: 0}
    after = Record(TOPIC, 0, 1, b"19", record(0, 1, "H-1").value, (), 1_765_000_001.0)
    await work.step([after], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused")]
    assert await offsets_of(database_url, TOPIC) == {0: 2}
    assert (await stored_fingerprints(database_url))[(TOPIC, 0)] == print_of(after)


async def test_a_search_stopped_at_max_refused_never_moves_past_an_unsearched_record(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """The first flush after the search stops stores the offset of the record before the
    next one refused, with that record's fingerprint (a crash then resumes there)."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    many = refusals.MAX_REFUSED + 2
    names = ["H-a", *(f"R-{i}" for i in range(many)), "H-b"]
    records = [
        Record(TOPIC, 0, i, b"19", record(0, i, n).value, (), 1_765_000_000.0 + i)
        for i, n in enumerate(names)
    ]
    work = await counting_on(pool, [(TOPIC, 0)])
    state = work.state
    flush = state.flush
    stored: list[tuple[int, bytes | None]] = []

    async def watched(batches: Sequence[PartitionBatch], periods: Periods) -> FlushResult:
        result = await flush(batches, periods)
        (batch,) = batches
        stored.append((batch.next_offset, batch.last_record))
        return result

    state.flush = watched  # type: ignore[method-assign]
    sent = Sent()
    await work.step(records, sent)
    await work.drain()
    # The failed flush raises before it stores: only the narrowed ones are seen.
    first_offset, first_print = stored[0]
    assert first_offset == refusals.MAX_REFUSED + 1
    assert first_print == print_of(records[first_offset - 1])
    assert stored[-1] == (len(records), print_of(records[-1]))
    assert await counted_ids(database_url) == ["H-a", "H-b"]
    assert len(sent.letters) == many


async def test_a_hold_after_a_search_stopped_at_max_refused_keeps_the_rest_uncounted(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """The search stops at the tenth refused record and what passed before is flushed;
    the rest's flush is refused for a record nothing vouches for, which is held with
    what follows it in its partition: the stored position is that of the record before
    it, with its fingerprint, never past the held one."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    await execute(database_url, REFUSE_CANARIES)  # and its canaries: nothing vouches
    names = [f"R-{i}" for i in range(refusals.MAX_REFUSED)]
    records = [
        Record(TOPIC, 0, i, b"19", record(0, i, n).value, (), 1_765_000_000.0 + i)
        for i, n in enumerate(names)
    ]
    at = len(records)
    records.append(Record(TOPIC, 0, at, b"19", record(0, at, "H-a").value, (), 1_765_000_100.0))
    records.append(Record(TOPIC, 0, at + 1, b"19", resolution("R-x", "res-R-x")))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    await work.step(records, sent)
    await work.drain()
    assert [d.offset for d in sent.letters] == list(range(refusals.MAX_REFUSED))
    assert await offsets_of(database_url, TOPIC) == {0: at + 1}
    assert (await stored_fingerprints(database_url))[(TOPIC, 0)] == print_of(records[at])
    assert await counted_ids(database_url) == ["H-a"]
    assert work.state.metrics.held._value.get() == 1
    # A resolution that counts vouches for the held one.
    await work.step([Record(TOPIC, 0, at + 2, b"19", resolution("H-a", "res-H-a"))], sent)
    await work.drain()
    assert [d.offset for d in sent.letters] == [*range(refusals.MAX_REFUSED), at + 1]
    assert await offsets_of(database_url, TOPIC) == {0: at + 3}
    rows = await fetch(database_url, "SELECT dossier_id, status FROM dossier_state")
    assert {r["dossier_id"]: r["status"] for r in rows} == {"H-a": "done"}
