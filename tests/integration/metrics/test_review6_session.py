"""Review of c10f2c9, b056bd4, 3052738, 5a69842 and e90f44b (adversarial, session 6).

Tests marked xfail(strict=True) show a defect still present; the others check a claim
that held (kept because they pin an edge the commits' own tests do not cover)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from services.common.dossierfacts import Due, ledger_id, split_key
from services.common.headers import BACKFILL_HEADER, accepted_header
from services.metrics import dossierstore, pipeline
from services.metrics.agents import Counting
from services.metrics.dossiers import Dossier, Entry, Status, Verdict
from services.metrics.logcheck import fingerprint, mark_last_records
from services.metrics.pipeline import Prepared, Preparer, Record
from services.metrics.refusals import REFUSED_BY_STORE
from services.metrics.tally import PartitionBatch
from tests.unit.metrics.helpers import catalogue, contract, decoder, document
from tests.unit.metrics.test_future_and_failures import FakeState, never_sent, signing

TP = ("egov.dossiers", 0)
REF_TP = ("egov.dossiers", 1)
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


# --- c10f2c9: the hand-built binary COPY of dossier rows -----------------------------


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


_READ_BACK = """
    SELECT dossier_id, publisher, status, due_day::text AS day,
           float8send(last_on_time) AS last,
           units::text AS units, array_ndims(units) AS ndims, cardinality(units) AS n,
           float8send(resolved_at) AS resolved, history
    FROM dossier_state WHERE topic = $1 AND "partition" = $2 ORDER BY dossier_id, publisher
"""


@pytest.mark.integration
async def test_pgcopy_writes_every_edge_value_as_asyncpgs_own_copy_did(
    conn: asyncpg.Connection,
) -> None:
    """Byte for byte (float8send), against asyncpg's copy_records_to_table that c10f2c9
    replaced: empty chains, an empty-string unit, 4-byte UTF-8, the calendar's ends,
    infinities, NaN, subnormal and extreme floats, -0.0, an empty id."""
    d = date(2026, 11, 25)
    dossiers = [
        Dossier("", Status.OPEN, Due(d, 1.5), ()),
        # The contract's years (2000-2100): asyncpg wrote date.min/max as -infinity and
        # infinity, pgcopy as 0001-01-01 and 9999-12-31 (unreachable: see the report).
        Dossier("a", Status.PAUSED, Due(date(2000, 1, 1), -math.inf), ("",)),
        Dossier("b", Status.OVERDUE, Due(date(2100, 12, 31), math.inf), ("", "x")),
        Dossier("c", Status.DONE, Due(d, math.nan), ("01843",)),
        Dossier("d", Status.WITHDRAWN, Due(d, 5e-324), ("đ" * 400, "19")),
        Dossier("e", Status.OPEN, Due(d, 1.7976931348623157e308), ()),
        Dossier("f😀", Status.OPEN, Due(d, -0.0), ("😀",)),
        Dossier("g" * 2000, Status.OPEN, None, ("01843", "19")),
        Dossier("h", Status.OPEN, Due(d, 1.5), ("01843", "19")),  # shared due and chain
        # A publisher's dossier (migration 0019): its key split into the two columns.
        Dossier(ledger_id("h", "motcua-19😀"), Status.OPEN, Due(d, 1.5), ("01843", "19")),
        # Resolved before its receipt (migration 0014): its instant, edge floats too.
        Dossier("i", Status.RESOLVED, None, ("01843",), 1_710_986_400.0),
        Dossier("j", Status.RESOLVED, None, ("01843",), -0.0),
        Dossier("k", Status.RESOLVED, None, (), math.inf),
        # Histories (migration 0016): none kept, empty, and edge times and appointments.
        Dossier("l", Status.OPEN, None, ("01843",), None, ()),
        Dossier(
            "m",
            Status.OVERDUE,
            Due(d, 1.5),
            ("01843",),
            None,
            (
                Entry(-math.inf, "received", Due(d, 1.5)),
                Entry(-0.0, "returned"),
                Entry(math.inf, "resubmitted", Due(date(2100, 12, 31), 5e-324)),
            ),
            Verdict("open_overdue", date(2000, 1, 1), -1.7976931348623157e308),
        ),
    ]
    async with conn.transaction():
        await dossierstore._save(conn, TP, dossiers, set())
        await conn.copy_records_to_table(
            "dossier_state",
            records=[
                (*REF_TP, *reversed(split_key(x.dossier_id)), x.status, x.due and x.due.day,
                 x.due and x.due.last_on_time, list(x.units), x.resolved_at,
                 None if x.history is None else dossierstore.history_bytes(x))
                for x in dossiers
            ],
            columns=dossierstore._COLUMNS,
        )  # fmt: skip
    ours = [dict(r) for r in await conn.fetch(_READ_BACK, *TP)]
    reference = [dict(r) for r in await conn.fetch(_READ_BACK, *REF_TP)]
    assert len(ours) == len(dossiers)
    assert ours == reference
    assert dossierstore.history_of(ours[-1]["history"]) == (
        dossiers[-1].history,
        dossiers[-1].counted,
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("units", "refused"),
    [(("01843", "bad\x00unit"), asyncpg.DataError), (("\udc80",), UnicodeEncodeError)],
)
async def test_a_unit_chain_postgresql_cannot_store_fails_as_refused(
    conn: asyncpg.Connection, units: tuple[str, ...], refused: type[BaseException]
) -> None:
    assert issubclass(refused, REFUSED_BY_STORE)
    with pytest.raises(refused):
        async with conn.transaction():
            await dossierstore._save(
                conn, TP, [Dossier("A", Status.OPEN, None, ("19",)),
                           Dossier("B", Status.OPEN, None, units)], set()
            )  # fmt: skip
    assert await conn.fetchval("SELECT count(*) FROM dossier_state") == 0


# --- b056bd4: the lazy fingerprint of a batch's last record --------------------------


def test_the_lazy_fingerprint_is_the_last_marked_records_as_before() -> None:
    batch = PartitionBatch(("t", 0), 3)
    batches = {("t", 0): batch}
    first = Record("t", 0, 2, b"k", b"v1", timestamp=1700000000.1234)
    mark_last_records(batches, [first])
    assert batch.last_record == fingerprint(b"k", b"v1", 1700000000123)
    # read, then a later record of the same batch: the fingerprint follows it
    batch.next_offset = 5
    later = Record("t", 0, 4, None, None, timestamp=None)
    other = Record("t", 0, 3, b"x", b"y", timestamp=5.0)
    mark_last_records(batches, [other, later])
    assert batch.last_record == fingerprint(None, None, 0)
    assert batch.last_record == fingerprint(None, None, 0)  # read twice: the same
    # a record that is not the one before next_offset leaves it alone
    mark_last_records(batches, [other])
    assert batch.last_record == fingerprint(None, None, 0)


# --- 3052738: runs of header-less records in one loop --------------------------------


class OneByOne(Preparer):
    """The Preparer of 3052738 with runs decided record by record (its own fallback)."""

    def _prepare_plain(self, out, batch, run, now_s, grace_s):  # type: ignore[no-untyped-def]
        for one in run:
            self._prepare_one(out, batch, one, now_s, grace_s)


def _outcome(prepared: Prepared) -> dict[str, Any]:
    return {
        "dead": [(d.value, tuple(d.headers), d.reason, d.detail, d.topic, d.partition, d.offset)
                 for d in prepared.dead_letters],
        "counted": [(tp, e) for tp, b in prepared.batches.items() for e in b.event_views()],
        "too_late": prepared.too_late,
        "next": {tp: b.next_offset for tp, b in prepared.batches.items()},
        "paths": prepared.paths,
        "ingest_times": prepared.ingest_times,
    }  # fmt: skip


def test_runs_between_headed_records_and_other_partitions_decide_as_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run after a backfilled record of its partition (the open builder is a backfill
    one, sealed by the run and restored by its take-back), a record raising inside the
    run, a record rejected whole, a too-late one, an interleaved partition."""
    t = "egov.documents"

    def ev(i: int, at: datetime = NOW - timedelta(hours=1)) -> bytes:
        return orjson.dumps(document("01843", at, f"e{i}"))

    # An event whose digest raises (what no valid event should do: the record's fault).
    real_digest = pipeline.event_digest  # type: ignore[attr-defined]

    def digest(source: str, event_type: str, event_id: str, *rest: Any) -> bytes:
        if event_id == "bad":
            raise RuntimeError("unexpected")
        return real_digest(source, event_type, event_id, *rest)

    monkeypatch.setattr(pipeline, "event_digest", digest)
    raising = orjson.dumps(document("01843", NOW - timedelta(hours=1), "bad"))
    stamp = (NOW - timedelta(minutes=5)).timestamp()
    records = [
        Record(t, 0, 0, b"19", ev(0), (), stamp),
        Record(t, 0, 1, b"19", ev(1, NOW - timedelta(days=40)),
               (BACKFILL_HEADER, accepted_header(NOW)), stamp),
        Record(t, 0, 2, b"19", ev(2), (), stamp),
        Record(t, 0, 3, b"19", raising, (), stamp),
        Record(t, 0, 4, b"19", b"{not json", (), None),
        Record(t, 0, 5, b"19", ev(5, NOW - timedelta(days=30)), (), stamp),
        Record(t, 0, 6, b"19", ev(6), (), None),
        Record(t, 1, 0, b"19", ev(7), (), stamp),
        Record(t, 1, 1, b"19", ev(8), (), stamp),
        Record(t, 0, 7, b"19", ev(9), (), stamp),
        Record(t, 0, 8, b"19", ev(10), (), stamp),
    ]  # fmt: skip
    args = (decoder(), contract(), catalogue(), timedelta(days=7))
    fast = Preparer(*args).prepare(records, NOW)
    reference = OneByOne(*args).prepare(records, NOW)
    assert _outcome(fast) == _outcome(reference)
    assert {d.offset for d in fast.dead_letters if d.reason == "unprocessable"} == {3}


# --- e90f44b: gathering a flush while the consumer reads behind ----------------------


def _counting(state: FakeState, behind: Any, interval_s: float = 0.3) -> Counting:
    counting = Counting(
        Preparer(decoder(), contract(), catalogue(), timedelta(days=7)),
        state,  # type: ignore[arg-type]
        lambda: NOW,
        backlog_flush_interval_s=interval_s,
    )
    counting.fetching_behind = behind
    return counting


async def test_a_consumer_behind_for_ever_with_nothing_new_delays_a_flush_one_interval() -> None:
    state = FakeState()
    counting = _counting(state, lambda: True)
    await counting.step([signing(0, NOW)], never_sent)  # the first flush: at once
    await counting.drain()
    await counting.step([signing(1, NOW)], never_sent)
    began = time.monotonic()
    await asyncio.wait_for(counting.drain(), 2.0)  # never stalls
    assert time.monotonic() - began < 0.3 + 0.2
    assert sum(b.events for b in state.flushed) == 2
    assert state.flushed[-1].next_offset == 2


async def test_a_flush_that_fails_after_gathering_is_raised_by_the_next_step() -> None:
    """A failure of a flush that waited for the interval still reaches the agent."""

    class FailingSecond(FakeState):
        async def flush(self, batches: Sequence[PartitionBatch], periods: Any) -> Any:
            if self.flushed:
                raise RuntimeError("boom")
            return await super().flush(batches, periods)

    failures: list[BaseException] = []
    counting = _counting(FailingSecond(), lambda: True)
    counting.on_failure = failures.append
    await counting.step([signing(0, NOW)], never_sent)
    await counting.drain()
    await counting.step([signing(1, NOW)], never_sent)  # gathers: behind, interval not over
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(counting.drain(), 2.0)
    assert len(failures) == 1
    with pytest.raises(RuntimeError):
        await counting.step([signing(2, NOW)], never_sent)


async def test_a_reading_behind_that_raises_never_stops_the_counting() -> None:
    def broken() -> bool:
        raise RuntimeError("consumer stopping")

    state = FakeState()
    counting = _counting(state, broken)
    await counting.step([signing(0, NOW)], never_sent)
    await counting.drain()
    await counting.step([signing(1, NOW)], never_sent)
    await counting.drain()
    assert sum(b.events for b in state.flushed) == 2


class _FakeConsumer:
    """What FetchedBatchConsumer._deliver_one_fetch and reading_behind use of a consumer:
    one event partition whose log holds ``high`` records; a fetch returns all of them
    from the read offset on (a worker that keeps up: nothing left unfetched)."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        from faust.types import TP as FaustTP

        self.tp = FaustTP("egov.documents", 0)
        self.high = 0
        self._read_offset: dict[Any, int] = {}
        self._handing: dict[Any, int] = {}
        self._buffered_partitions: set[Any] = set()
        self.flow_active = True
        self.should_stop = False
        self.app = SimpleNamespace(
            event_topics=frozenset({"egov.documents"}),
            consumer_generation_id=1,
            monitor=SimpleNamespace(track_tp_end_offset=lambda *a: None),
        )

    async def sleep(self, s: float) -> None:
        await asyncio.sleep(s)

    def assignment(self) -> list[Any]:
        return [self.tp]

    def highwater(self, tp: Any) -> int:
        return self.high

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109 (Faust's signature)
        from types import SimpleNamespace

        start = self._read_offset.get(self.tp, 0)
        fetched = [SimpleNamespace(topic=self.tp.topic, partition=0, offset=o)
                   for o in range(start, self.high)]  # fmt: skip
        return {self.tp: fetched}, None


async def test_a_worker_that_keeps_up_flushes_a_fetch_at_once() -> None:
    from services.metrics.fetched import FetchedBatchConsumer

    consumer = _FakeConsumer()
    starts: list[float] = []

    class Timed(FakeState):
        async def flush(self, batches: Sequence[PartitionBatch], periods: Any) -> Any:
            starts.append(time.monotonic())
            return await super().flush(batches, periods)

    state = Timed()
    counting = _counting(state, lambda: FetchedBatchConsumer.fetching_behind(consumer), 0.5)  # type: ignore[arg-type]

    async def handler(fetched: Sequence[Any]) -> None:  # the worker's count_fetched
        await counting.step([signing(r.offset, NOW) for r in fetched], never_sent)

    async def fetch() -> None:
        await FetchedBatchConsumer._deliver_one_fetch(
            consumer,  # type: ignore[arg-type]
            handler,
            frozenset({"egov.documents"}),
        )

    consumer.high = 2
    await fetch()
    await counting.drain()
    await asyncio.sleep(0.05)  # the worker has read everything; two more records come
    consumer.high = 4
    await fetch()
    handed = time.monotonic()
    assert not FetchedBatchConsumer.fetching_behind(consumer)  # type: ignore[arg-type]
    await asyncio.wait_for(counting.drain(), 2.0)
    assert sum(b.events for b in state.flushed) == 4
    assert starts[-1] - handed < 0.02, f"flushed {starts[-1] - handed:.3f} s after the hand-over"
