"""The on-time ledger in a worker's own pieces (Preparer, PartitionState) on real PostgreSQL,
with the worker's clock moved by the test: one count per dossier, open overdue when the
appointment passes, and the state surviving a new worker that loads the partition."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import CollectorRegistry

from services.common.dossierfacts import Due, Fact
from services.common.signing import (
    SUMMARY_HEADER,
    SUMMARY_MAC_HEADER,
    VALIDATED_HEADER,
    RecordSigner,
)
from services.common.summaries import READ_VERSIONS, Summarizer, summary_fingerprint
from services.common.summaries import VERSION as SUMMARY_VERSION
from services.common.tally import dedup_digest
from services.ingest.publisher import pack, signed
from services.ingest.validation import EventValidator, Limits
from services.metrics import dossierstore
from services.metrics.dossiers import Dossier, Entry, Status, Verdict
from services.metrics.exposition import PipelineMetrics
from services.metrics.figures import Figures
from services.metrics.periods import VN_TZ, Periods
from services.metrics.pipeline import PartitionState, Preparer, Record
from tests.unit.metrics.helpers import catalogue, contract, decoder, registry

pytestmark = pytest.mark.integration

TP = ("egov.dossiers", 0)
UNIT, PROVINCE = "01843", "19"  # Phường Bắc Kạn, Thái Nguyên
V2 = "https://schemas.egov-pulse.vn/vn.egov.dossier.resolved/v2.json"
_ids = itertools.count()


def vn(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=VN_TZ)


def dossier_event(event_type: str, dossier: str, at: str, **data: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": f"ev-{next(_ids)}",
        "source": "urn:test:motcua",
        "type": f"vn.egov.dossier.{event_type}",
        "time": vn(at).isoformat(),
        "unit": UNIT,
        "data": {"dossier_id": dossier, **data},
    }
    if event_type == "received":
        event["data"].update(procedure_code="1.001612", service_level="full", channel="online")
    if event_type == "resolved":
        event["dataschema"] = V2
    assert contract().validate(event) == [], event
    return event


KEY = b"k" * 32
_MACS = (SUMMARY_MAC_HEADER, VALIDATED_HEADER)


def summary_signer(version: int = SUMMARY_VERSION) -> RecordSigner:
    """Ingest's signer writing summaries of ``version``; a worker's (the current version)
    verifies the older ones too."""
    fingerprint = summary_fingerprint(contract().fingerprint, catalogue(), registry(), version)
    signer = RecordSigner(KEY, contract().fingerprint, fingerprint)
    if version == SUMMARY_VERSION:
        for older in READ_VERSIONS:
            if older != version:
                fp = summary_fingerprint(contract().fingerprint, catalogue(), registry(), older)
                signer.verifies_summaries_of(older, fp)
    return signer


def as_version_1(summary: bytes, events: list[dict[str, Any]]) -> bytes:
    """What ingest wrote before version 2: no facts, and each event's digest its own."""
    parsed = orjson.loads(summary)
    del parsed["f"]
    parsed["k"] = b"".join(dedup_digest(e["source"], e["id"]) for e in events).hex()
    return orjson.dumps(parsed)


def as_version_2(summary: bytes) -> bytes:
    """What ingest wrote before version 3: ``final`` for both final outcomes."""
    parsed = orjson.loads(summary)
    facts = parsed["f"]
    facts["k"] = ["final" if k == "rejected" else k for k in facts["k"]]
    return orjson.dumps(parsed)


def ingest_records(events: list[dict[str, Any]], now: datetime, version: int) -> list[Any]:
    """The packed, summarised and signed records ingest makes of one request, with a
    summary of ``version`` (an older one as an ingest before an upgrade wrote it)."""
    limits = Limits(timedelta(seconds=300), horizon=None)
    validator = EventValidator(contract(), registry(), limits, Summarizer(catalogue()))
    records, errors = validator.check(events, now)
    assert errors == []
    out = list(signed(pack(records), summary_signer()))
    if version != SUMMARY_VERSION:
        older = summary_signer(version)
        for i, r in enumerate(out):
            summary = dict(r.headers)[SUMMARY_HEADER]
            if version == 1:
                summary = as_version_1(summary, orjson.loads(r.value))
            else:
                summary = as_version_2(summary)
            kept = [h for h in r.headers if h[0] not in (*_MACS, SUMMARY_HEADER)]
            where = {"topic": TP[0], "key": r.key}
            headers = kept + older.summary_headers(r.value, summary, headers=kept, **where)
            headers.append(older.header(r.value, headers=headers, **where))
            out[i] = dataclasses.replace(r, headers=headers)
    assert len(out) == 1 and SUMMARY_HEADER in dict(out[0].headers)
    return out


class Worker:
    """A worker's counting pieces around one pool, with a clock the test sets; ``path``:
    how its records come (``full``: one event a record, validated; ``summary``: packed by
    ingest with its current summary; ``v2``, ``v1``: with an older version's summary)."""

    def __init__(self, pool: asyncpg.Pool, name: str, path: str = "full") -> None:
        async def get_pool() -> asyncpg.Pool:
            return pool

        metrics = PipelineMetrics(CollectorRegistry(), sorted(contract().event_types))
        self.figures = Figures()
        self.state = PartitionState(get_pool, "g", name, self.figures, metrics)
        signer = summary_signer() if path != "full" else None
        self.preparer = Preparer(
            decoder(), contract(), catalogue(), timedelta(days=14), signer=signer
        )
        self.path = path
        self.paths: dict[str, int] = {}
        self.offset = 0

    async def start(self, now: datetime) -> None:
        self.offset = (await self.state.assign([TP], Periods.at(now)))[TP]

    async def count(self, events: list[dict[str, Any]], now: datetime) -> None:
        records = []
        if self.path == "full":
            for event in events:
                records.append(Record(*TP, self.offset, PROVINCE.encode(), orjson.dumps(event)))
                self.offset += 1
        else:
            version = {"v1": 1, "v2": 2}.get(self.path, SUMMARY_VERSION)
            for r in ingest_records(events, now, version):
                records.append(Record(*TP, self.offset, r.key, r.value, tuple(r.headers)))
                self.offset += 1
        prepared = self.preparer.prepare(records, now)
        for path, n in prepared.paths.items():
            self.paths[path] = self.paths.get(path, 0) + n
        assert prepared.dead_letters == []
        await self.state.flush(list(prepared.batches.values()), Periods.at(now))

    def outcomes(self, now: datetime, unit: str = UNIT) -> dict[str, int]:
        sums = self.figures.outcome_sums("month", Periods.at(now))
        return {outcome: n for (u, outcome), n in sorted(sums.items()) if u == unit and n}

    def on_time(self, now: datetime, unit: str = UNIT) -> tuple[int, int]:
        fig = self.figures.window("month", Periods.at(now))[(unit, "dossier_on_time")]
        return fig.numerator, fig.denominator


@pytest.mark.parametrize("path", ["full", "summary", "v2", "v1"])
async def test_dossiers_count_once_and_open_overdue_survives_a_new_worker(
    pool: asyncpg.Pool, path: str
) -> None:
    """The same whichever way the records come: one event a record read in full, packed
    with ingest's summary (counted as groups and facts, a dossier's second
    final outcome a duplicate by its digest), or with a version-2 or version-1 summary
    still in a topic (read event by event: version 2 says ``final`` for a refusal too,
    version 1's digests are per event)."""
    first = Worker(pool, "w1", path)
    evening = vn("2026-11-23 23:45")
    await first.start(evening)
    await first.count(
        [
            # A: timed appointment, left open past it.
            dossier_event("received", "A", "2026-11-20 09:00", due_at="2026-11-23T17:00:00+07:00"),
            # B: date-only appointment, handed over at 23:30 on that date (16:30 UTC).
            dossier_event("received", "B", "2026-11-20 09:05", due_at="2026-11-23"),
            dossier_event("resolved", "B", "2026-11-23 23:30", outcome="approved"),
            # C: resolved early.
            dossier_event("received", "C", "2026-11-20 09:10", due_at="2026-11-25"),
            dossier_event("resolved", "C", "2026-11-21 10:00", outcome="approved"),
            # D: withdrawn before its appointment.
            dossier_event("received", "D", "2026-11-20 09:15", due_at="2026-11-24"),
            dossier_event("resolved", "D", "2026-11-22 10:00", outcome="withdrawn"),
            # E: returned for completion before its appointment: the clock pauses.
            dossier_event("received", "E", "2026-11-20 09:20", due_at="2026-11-22"),
            dossier_event("resolved", "E", "2026-11-21 11:00", outcome="returned"),
        ],
        evening,
    )
    before_due = vn("2026-11-23 16:59")
    await first.state.sweep_dossiers(before_due)
    assert first.outcomes(evening) == {"early": 1, "on_time": 1}
    assert first.on_time(evening) == (2, 2)

    # The clock passes A's appointment: A is open overdue, in the period of its appointment.
    await first.state.sweep_dossiers(evening)
    expected = {"early": 1, "on_time": 1, "open_overdue": 1}
    assert first.outcomes(evening) == expected
    assert first.outcomes(evening, PROVINCE) == expected  # rolled up the hierarchy
    assert first.on_time(evening) == (2, 3)
    await first.state.sweep_dossiers(evening + timedelta(hours=1))  # counted once
    assert first.outcomes(evening) == expected

    # A new worker takes the partition (a restart, a rebalance): state and figures from
    # PostgreSQL, nothing counted again.
    second = Worker(pool, "w2", path)
    later = vn("2026-11-27 10:00")
    await second.start(later)
    assert second.outcomes(later) == expected
    await second.count(
        [
            # A resolved late: counted once already; its count moves from open overdue
            # to late, in the period of its appointment.
            dossier_event("resolved", "A", "2026-11-25 09:00", outcome="approved"),
            # C resolved a second time (another event id): one dossier, one count.
            dossier_event("resolved", "C", "2026-11-22 09:00", outcome="rejected"),
            # E back complete with a new appointment, resolved on it.
            dossier_event("resubmitted", "E", "2026-11-24 08:00", due_at="2026-11-26"),
            dossier_event("resolved", "E", "2026-11-26 15:00", outcome="approved"),
        ],
        later,
    )
    await second.state.sweep_dossiers(later)
    final = {"early": 1, "on_time": 2, "late": 1}
    assert second.outcomes(later) == final
    assert second.on_time(later) == (3, 4)  # D withdrawn: out of the denominator
    # What PostgreSQL holds is what the worker shows: the month's rows for the commune.
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kpi, sum(numerator) n, sum(denominator) d FROM kpi_daily"
            " WHERE unit = $1 AND kpi LIKE 'dossier_on_time%' GROUP BY kpi",
            UNIT,
        )
        stored = {r["kpi"]: (r["n"], r["d"]) for r in rows}
        late_day = await conn.fetchval(
            "SELECT day FROM kpi_daily WHERE unit = $1 AND kpi = 'dossier_on_time:late'",
            UNIT,
        )
    assert stored == {
        "dossier_on_time": (3, 4),
        "dossier_on_time:early": (0, 1),
        "dossier_on_time:on_time": (0, 2),
        "dossier_on_time:late": (0, 1),
        "dossier_on_time:open_overdue": (0, 0),  # counted, then moved to late
    }
    assert str(late_day) == "2026-11-23"  # the appointment's day, not the resolution's
    expected_paths = {
        "full": {"validated": 9},
        "summary": {"summary": 1},
        "v2": {"signed": 1},
        "v1": {"signed": 1},
    }
    assert first.paths == expected_paths[path]


@pytest.mark.parametrize("path", ["full", "summary", "v2"])
async def test_a_refusal_while_back_with_the_applicant_is_judged_at_the_return(
    pool: asyncpg.Pool, path: str
) -> None:
    """A dossier returned for completion and refused without coming back is judged where
    its clock stopped (early), not at the refusal (late), whichever way its records
    come: a version-2 summary still in a topic says ``final`` for the refusal as for an
    approval, so its record is read event by event. Its receipt and its approval-free
    neighbour count as well, once."""
    worker = Worker(pool, "w1", path)
    now = vn("2026-11-27 10:00")
    await worker.start(now)
    await worker.count(
        [
            dossier_event("received", "R", "2026-11-20 09:00", due_at="2026-11-22"),
            dossier_event("resolved", "R", "2026-11-21 11:00", outcome="returned"),
            dossier_event("resolved", "R", "2026-11-26 15:00", outcome="rejected"),
            dossier_event("received", "S", "2026-11-20 09:05", due_at="2026-11-25"),
            dossier_event("resolved", "S", "2026-11-25 15:00", outcome="approved"),
        ],
        now,
    )
    await worker.state.sweep_dossiers(now)
    assert worker.outcomes(now) == {"early": 1, "on_time": 1}
    assert worker.on_time(now) == (2, 2)
    expected_paths = {"full": {"validated": 5}, "summary": {"summary": 1}, "v2": {"signed": 1}}
    assert worker.paths == expected_paths[path]


@pytest.mark.parametrize("path", ["full", "summary"])
async def test_resolutions_read_after_the_sweep_move_their_counts_to_on_time(
    pool: asyncpg.Pool, path: str
) -> None:
    """Ingest was down at the appointment: the sweep counted the dossiers open overdue,
    then their resolutions, made before it, arrive. The flush moves each count (the
    rate's numerator +1, its denominator +0, a row INSERT .. ON CONFLICT refused as
    proposed: the worker stopped, review 77) and the figures read all on time."""
    worker = Worker(pool, "w1", path)
    evening = vn("2026-11-23 17:30")
    await worker.start(evening)
    ids = [f"K{i}" for i in range(3)]
    due = "2026-11-23T17:00:00+07:00"
    await worker.count(
        [dossier_event("received", d, "2026-11-20 09:00", due_at=due) for d in ids], evening
    )
    await worker.state.sweep_dossiers(evening)
    assert worker.on_time(evening) == (0, 3)
    await worker.count(
        [dossier_event("resolved", d, "2026-11-23 16:55", outcome="approved") for d in ids],
        evening + timedelta(minutes=5),
    )
    assert worker.outcomes(evening) == {"on_time": 3}
    assert worker.on_time(evening) == (3, 3)
    async with pool.acquire() as conn:
        stored = await conn.fetchrow(
            "SELECT numerator, denominator FROM kpi_daily"
            " WHERE unit = $1 AND kpi = 'dossier_on_time'",
            PROVINCE,
        )
    assert tuple(stored) == (3, 3)  # rolled up, counted once


async def test_a_sweep_by_a_worker_that_lost_the_partition_counts_nothing(
    pool: asyncpg.Pool,
) -> None:
    first = Worker(pool, "w1")
    now = vn("2026-11-20 10:00")
    await first.start(now)
    await first.count(
        [dossier_event("received", "A", "2026-11-20 09:00", due_at="2026-11-20")], now
    )
    second = Worker(pool, "w2")
    await second.start(now)  # takes the partition: the first one's epoch is stale
    await first.state.sweep_dossiers(vn("2026-11-21 09:00"))
    assert first.outcomes(vn("2026-11-21 09:00")) == {}
    await second.state.sweep_dossiers(vn("2026-11-21 09:00"))
    assert second.outcomes(vn("2026-11-21 09:00")) == {"open_overdue": 1}


async def test_a_flush_writes_new_dossiers_by_copy_and_updates_the_stored_ones(
    pool: asyncpg.Pool,
) -> None:
    """New dossiers (COPY) and stored ones (upsert) of one flush read back as the ledger
    left them, an unknown appointment and the unit chain included."""
    chain = (PROVINCE, UNIT)
    at = vn("2026-11-20 09:00").timestamp()
    due = Due.parse("2026-11-25")
    async with pool.acquire() as conn, conn.transaction():
        await dossierstore.apply(conn, TP, [(Fact("A", "received", due), at, chain)])
    async with pool.acquire() as conn, conn.transaction():
        await dossierstore.apply(
            conn,
            TP,
            [
                (Fact("A", "final"), at + 3600, chain),  # stored: updated
                (Fact("B", "received"), at, chain),  # new, no appointment known
                (Fact("C", "received", due), at, chain),  # new, then paused
                (Fact("C", "returned"), at + 60, chain),
            ],
        )
        stored = await dossierstore._load(conn, TP, ["A", "B", "C", "D"])
    received = Entry(at, "received", due)
    assert stored == {
        "A": Dossier(
            "A", Status.DONE, due, chain, None, (received, Entry(at + 3600, "final")),
            Verdict("early", date(2026, 11, 20), at + 3600),
        ),
        "B": Dossier("B", Status.OPEN, None, chain, None, (Entry(at, "received"),)),
        "C": Dossier("C", Status.PAUSED, due, chain, None, (received, Entry(at + 60, "returned"))),
    }  # fmt: skip


async def test_a_new_dossier_whose_row_appeared_meanwhile_fails_the_flush(
    pool: asyncpg.Pool,
) -> None:
    """The fence keeps other writers out; a row that is there all the same is never
    overwritten by one the ledger thought new."""
    chain = (PROVINCE, UNIT)
    async with pool.acquire() as conn:
        await dossierstore._save(conn, TP, [Dossier("A", Status.DONE, None, chain)], set())
        with pytest.raises(asyncpg.UniqueViolationError):
            async with conn.transaction():
                await dossierstore._save(conn, TP, [Dossier("A", Status.OPEN, None, chain)], set())
        assert await dossierstore._load(conn, TP, ["A"]) == {
            "A": Dossier("A", Status.DONE, None, chain)
        }


async def test_the_binary_copy_of_new_dossiers_round_trips_every_value(
    pool: asyncpg.Pool,
) -> None:
    """services/metrics/pgcopy.py writes what asyncpg's own codecs wrote: ids beyond
    ASCII, a date-time appointment to the microsecond, chains of one and several units,
    a shared appointment and a shared chain (encoded once), and every status."""
    one, two = ("19",), (PROVINCE, "01843", "01844")
    exact = Due(vn("2026-11-25 17:00").date(), vn("2026-11-25 17:00").timestamp() + 0.123456)
    day = Due.parse("2026-12-31")
    dossiers = [
        Dossier("HS-Bắc Kạn/2026/000123", Status.OPEN, exact, one),
        Dossier("đ" * 300, Status.PAUSED, day, two),
        Dossier("C", Status.OVERDUE, day, two),
        Dossier("D", Status.DONE, None, one),
        Dossier("E", Status.WITHDRAWN, exact, two),
    ]
    async with pool.acquire() as conn:
        await dossierstore._save(conn, TP, dossiers, set())
        stored = await dossierstore._load(conn, TP, [d.dossier_id for d in dossiers])
    assert stored == {d.dossier_id: d for d in dossiers}


@pytest.mark.parametrize(
    ("dossier_id", "refused"),
    [("nul\x00byte", asyncpg.DataError), ("lone \ud800 surrogate", UnicodeEncodeError)],
)
async def test_a_dossier_postgresql_cannot_store_fails_its_copy_as_refused(
    pool: asyncpg.Pool, dossier_id: str, refused: type[BaseException]
) -> None:
    """A value the binary COPY cannot carry fails the flush with what the refusals'
    search narrows (services/metrics/refusals.py REFUSED_BY_STORE), and writes nothing."""
    from services.metrics.refusals import REFUSED_BY_STORE

    assert issubclass(refused, REFUSED_BY_STORE)
    chain = (PROVINCE, UNIT)
    async with pool.acquire() as conn:
        with pytest.raises(refused):
            async with conn.transaction():
                await dossierstore._save(
                    conn,
                    TP,
                    [
                        Dossier("A", Status.OPEN, None, chain),
                        Dossier(dossier_id, Status.OPEN, None, chain),
                    ],
                    set(),
                )
        assert await dossierstore._load(conn, TP, ["A"]) == {}  # its neighbour neither
