"""Events dated in the future never blank today's figures; a failed step loses nothing.

Times are explicit: 23:58 and 00:02 around local midnight (Asia/Ho_Chi_Minh, +07:00).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from services.common.tally import Deltas, TallyEvent
from services.metrics.agents import Counting, register_agents
from services.metrics.app import create_app
from services.metrics.exposition import PipelineMetrics
from services.metrics.figures import Figures, PartitionFigures, WindowFigure, partition_from_rows
from services.metrics.periods import Periods, local_day
from services.metrics.pipeline import DeadLetter, Preparer, Record, retrying
from services.metrics.settings import MetricsSettings
from services.metrics.store import FlushResult
from services.metrics.tally import PartitionBatch
from tests.unit.metrics.helpers import as_bytes, catalogue, contract, decoder, document

TP = ("egov.documents", 0)
SERIES = ("01843", "document_signing")
BEFORE_MIDNIGHT = datetime(2026, 11, 22, 16, 58, tzinfo=UTC)  # 23:58 on the 22nd, local
AFTER_MIDNIGHT = datetime(2026, 11, 22, 17, 2, tzinfo=UTC)  # 00:02 on the 23rd, local
SKEW = timedelta(seconds=300)


def c(at: datetime, num: int = 1) -> TallyEvent:
    return TallyEvent(
        digest=b"x" * 16,
        type="vn.egov.document.issued",
        family="documents",
        epoch=at.timestamp(),
        day=local_day(at),
        units=("01843", "19"),
        counts=(("document_signing", num, 1),),
        crosswalked=False,
    )


def nine_of_ten(now: datetime) -> Figures:
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    figures.apply(TP, Deltas.of([c(now, 1)] * 9 + [c(now, 0)]), Periods.at(now))
    return figures


def window(figures: Figures, name: str, now: datetime) -> tuple[int, int]:
    fig = figures.window(name, Periods.at(now))[SERIES]
    return fig.numerator, fig.denominator


# --- the Preparer refuses what ingest refuses ------------------------------------------


def preparer() -> Preparer:
    return Preparer(decoder(), contract(), catalogue(), timedelta(days=7), SKEW)


def test_an_event_beyond_the_clock_skew_is_dead_lettered_as_time_in_future() -> None:
    now = BEFORE_MIDNIGHT
    within = document("01843", now + SKEW, "within")
    beyond = document("01843", now + SKEW + timedelta(seconds=1), "beyond")
    year_2030 = document("01843", datetime(2030, 1, 1, tzinfo=UTC), "2030")
    records = [
        Record(*TP, 0, b"19", as_bytes(within)),
        Record(*TP, 1, b"19", as_bytes(beyond), (("traceparent", b"00-x-01"),)),
        Record(*TP, 2, b"19", as_bytes(document("01843", now, "ok"), year_2030)),
    ]
    prepared = preparer().prepare(records, now)
    counted = prepared.batches[TP].event_views()
    assert [c.epoch for c in counted] == [(now + SKEW).timestamp(), now.timestamp()]
    assert prepared.batches[TP].next_offset == 3  # the position moves past all three
    reasons = [(d.reason, dict(d.headers).get("dlq_batch_index")) for d in prepared.dead_letters]
    assert reasons == [("time-in-future", None), ("time-in-future", b"1")]
    whole, element = prepared.dead_letters
    assert whole.value == as_bytes(beyond)  # original bytes and headers, and why
    assert dict(whole.headers)["traceparent"] == b"00-x-01"
    assert b"300 s ahead" in dict(whole.headers)["dlq_detail"]
    assert element.value == as_bytes(year_2030)


def test_the_default_skew_is_ingests_300_seconds() -> None:
    assert MetricsSettings().metrics_clock_skew_s == 300.0
    p = Preparer(decoder(), contract(), catalogue(), timedelta(days=7))
    late = document("01843", BEFORE_MIDNIGHT + timedelta(seconds=301))
    prepared = p.prepare([Record(*TP, 0, None, as_bytes(late))], BEFORE_MIDNIGHT)
    assert [d.reason for d in prepared.dead_letters] == ["time-in-future"]


# --- Tally never moves past the wall clock's period ------------------------------------


def test_an_event_at_0002_tomorrow_does_not_blank_today_at_2358() -> None:
    figures = nine_of_ten(BEFORE_MIDNIGHT)
    figures.apply(TP, Deltas.of([c(AFTER_MIDNIGHT, 1)]), Periods.at(BEFORE_MIDNIGHT))
    for name in ("day", "month", "year"):
        assert window(figures, name, BEFORE_MIDNIGHT) == (9, 10), name
    assert figures.totals()[SERIES] == WindowFigure(10, 11)  # counted: it is in PostgreSQL already
    # After midnight the held event is today's, and yesterday's nine are history.
    at_0003 = AFTER_MIDNIGHT + timedelta(minutes=1)
    assert window(figures, "day", at_0003) == (1, 1)
    assert window(figures, "month", at_0003) == (10, 11)


def test_at_new_years_eve_a_0002_event_does_not_blank_month_and_year() -> None:
    eve = datetime(2026, 12, 31, 16, 58, tzinfo=UTC)  # 23:58 on 31 December, local
    figures = nine_of_ten(eve)
    figures.apply(TP, Deltas.of([c(eve + timedelta(minutes=4))]), Periods.at(eve))
    for name in ("day", "month", "year"):
        assert window(figures, name, eve) == (9, 10), name
    new_year = eve + timedelta(minutes=5)
    for name in ("day", "month", "year"):
        assert window(figures, name, new_year) == (1, 1), name


def test_a_2030_event_that_got_through_leaves_todays_figures_alone() -> None:
    now = BEFORE_MIDNIGHT
    figures = nine_of_ten(now)
    figures.apply(TP, Deltas.of([c(datetime(2030, 6, 1, tzinfo=UTC))]), Periods.at(now))
    for name in ("day", "month", "year"):
        assert window(figures, name, now) == (9, 10), name


def test_a_series_first_seen_tomorrow_reads_empty_today_and_counts_tomorrow() -> None:
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    figures.apply(TP, Deltas.of([c(AFTER_MIDNIGHT)]), Periods.at(BEFORE_MIDNIGHT))
    assert window(figures, "day", BEFORE_MIDNIGHT) == (0, 0)
    assert window(figures, "day", AFTER_MIDNIGHT) == (1, 1)


def test_loaded_rows_after_today_never_become_the_current_day() -> None:
    today = local_day(BEFORE_MIDNIGHT)
    rows = [
        ("01843", "document_signing", today, 9, 10),
        ("01843", "document_signing", today + timedelta(days=1), 1, 1),
        ("01843", "document_signing", date(2030, 1, 1), 1, 1),
    ]
    figures = Figures()
    figures.assign(TP, partition_from_rows(rows, [], [], today=today))
    for name in ("day", "month", "year"):
        assert window(figures, name, BEFORE_MIDNIGHT) == (9, 10), name
    assert window(figures, "day", AFTER_MIDNIGHT) == (1, 1)
    assert figures.totals()[SERIES] == WindowFigure(11, 12)


# --- a failed step is retried or replayed, never skipped -------------------------------


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.DeadlockDetectedError("deadlock detected"),
        asyncpg.SerializationError("could not serialize access"),
        asyncpg.TooManyConnectionsError("too many clients"),
        asyncpg.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.AdminShutdownError("terminating connection"),
        asyncpg.InterfaceError("connection is closed"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_transient_database_errors_are_retried(error: Exception) -> None:
    calls: list[int] = []

    async def flush() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return "committed"

    assert await retrying("flush", flush, delay_s=0) == "committed"
    assert len(calls) == 2


async def test_a_non_transient_error_is_not_retried() -> None:
    async def flush() -> None:
        raise asyncpg.CheckViolationError("numerator > denominator")

    with pytest.raises(asyncpg.CheckViolationError):
        await retrying("flush", flush, delay_s=0)


class FakeState:
    """PartitionState without PostgreSQL: records what each flush was given."""

    def __init__(self) -> None:
        self.metrics = PipelineMetrics(CollectorRegistry(), ["vn.egov.document.issued"])
        self.flushed: list[PartitionBatch] = []
        self.readings: dict[tuple[str, int], int] = {}

    async def flush(self, batches: Sequence[PartitionBatch], periods: Periods) -> FlushResult:
        self.flushed += batches
        return FlushResult(tallies={b.tp: list(b.tallies) for b in batches if b.events})


class GatedState(FakeState):
    """A FakeState whose flushes wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started: list[list[int]] = []  # the offsets + 1 of each flush, as it starts

    async def flush(self, batches: Sequence[PartitionBatch], periods: Periods) -> FlushResult:
        self.started.append([b.next_offset for b in batches])
        await self.gate.wait()
        return await super().flush(batches, periods)


def signing(offset: int, now: datetime) -> Record:
    return Record(*TP, offset, b"19", as_bytes(document("01843", now, f"e{offset}")))


async def never_sent(dead: DeadLetter) -> None:
    raise AssertionError(f"dead-lettered: {dead.reason}")


async def test_records_decoded_during_a_flush_go_into_the_next_one_together() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    state = GatedState()
    counting = Counting(preparer(), state, lambda: now)  # type: ignore[arg-type]
    await counting.step([signing(0, now)], never_sent)
    await counting.step([signing(1, now)], never_sent)
    await counting.step([signing(2, now), signing(3, now)], never_sent)
    assert state.started == [[1]]  # one flush at a time: the first is still in flight
    state.gate.set()
    await counting.drain()
    assert state.started == [[1], [4]]  # the three later records in one flush
    assert [b.events for b in state.flushed] == [1, 3]
    assert state.metrics.flushes._value.get() == 2


async def test_decoding_waits_while_the_pending_flush_is_full() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    state = GatedState()
    counting = Counting(preparer(), state, lambda: now, flush_bytes=1)  # type: ignore[arg-type]
    await counting.step([signing(0, now)], never_sent)  # in flight
    await counting.step([signing(1, now)], never_sent)  # pending, and full
    third = asyncio.create_task(counting.step([signing(2, now)], never_sent))
    await asyncio.sleep(0.05)
    assert not third.done()  # holds its records until the pending flush is taken
    state.gate.set()
    await third
    await counting.drain()
    assert state.started == [[1], [2], [3]]
    assert sum(b.events for b in state.flushed) == 3  # nothing lost


async def test_a_dead_letter_send_failing_twice_is_retried_and_nothing_is_lost() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    state = FakeState()
    counting = Counting(preparer(), state, lambda: now, retry_delay_s=0)  # type: ignore[arg-type]
    attempts: list[bytes | None] = []
    delivered: list[DeadLetter] = []

    async def send(dead: DeadLetter) -> None:
        attempts.append(dead.value)
        if len(attempts) <= 2:  # the broker is down for the first two attempts
            raise KafkaTimeoutError()
        delivered.append(dead)

    records = [
        Record(*TP, 0, b"19", b"{not json"),
        Record(*TP, 1, b"19", as_bytes(document("01843", now, "a"))),
        Record(*TP, 2, b"19", as_bytes(document("01843", datetime(2030, 1, 1, tzinfo=UTC)))),
    ]
    await counting.step(records, send)
    await counting.drain()
    assert len(attempts) == 4  # the first record twice refused, then both delivered
    assert sorted(d.reason for d in delivered) == ["malformed-json", "time-in-future"]
    assert [c.epoch for b in state.flushed for c in b.event_views()] == [now.timestamp()]
    assert state.flushed[0].next_offset == 3
    dead = state.metrics.dead_lettered
    assert dead.labels(TP[0], "time-in-future", "19")._value.get() == 1


async def test_a_dead_letter_send_that_fails_otherwise_stops_the_counting() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    state = FakeState()
    failures: list[BaseException] = []
    counting = Counting(
        preparer(),
        state,  # type: ignore[arg-type]
        lambda: now,
        retry_delay_s=0,
        on_failure=failures.append,
    )

    async def send(dead: DeadLetter) -> None:
        raise RuntimeError("bug")

    await counting.step([Record(*TP, 0, None, b"{not json")], send)
    with pytest.raises(RuntimeError, match="bug"):
        await counting.drain()
    assert [str(f) for f in failures] == ["bug"]  # the worker is told at once
    good = Record(*TP, 1, b"19", as_bytes(document("01843", now, "a")))
    with pytest.raises(RuntimeError, match="bug"):  # and every later step fails too
        await counting.step([good], send)
    assert state.flushed == []  # the offset did not move: the records are read again


async def test_a_failed_step_crashes_the_worker_instead_of_counting_past_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No agent reads the event topics (services/metrics/fetched.py hands fetches to the
    counting); a step that fails with what is not infrastructure crashes the app."""
    settings = MetricsSettings(metrics_app_id="unit-crash")
    app = create_app(settings)
    exits: list[float] = []
    monkeypatch.setattr("services.metrics.agents.exit_soon", lambda: exits.append(1.0))
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    monkeypatch.setattr(app, "crash", crash)

    async def step(records: Sequence[Record], send: Any) -> None:
        raise ValueError("a bug")

    preparer = SimpleNamespace(partition_counts={})
    counting: Any = SimpleNamespace(step=step, on_failure=None, preparer=preparer)
    register_agents(app, settings, counting)
    assert not app.agents and app.fetched_handler is not None
    assert set(settings.event_topics) <= {t for c in app.topics for t in c.topics}
    assert not any(c.acks for c in app.topics)  # Faust must not wait for acks
    fetched = SimpleNamespace(
        topic="egov.documents", partition=0, offset=0, key=b"01", value=b"{}", headers=[],
        timestamp=1_700_000_000_000,
    )  # fmt: skip
    with pytest.raises(ValueError, match="a bug"):
        await app.fetched_handler([fetched])
    await asyncio.sleep(0)
    assert [type(e) for e in crashed] == [ValueError] and exits == [1.0]
