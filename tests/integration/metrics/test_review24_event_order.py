"""Review 24: the on-time ledger judging each dossier from all its events in their own order
(9a7c853, migration 0016_dossier_history), whatever order they are read in.

Reviewed: docs/dossiers.md ("How it is judged", "In the events' own order"), the pure ledger
(services/metrics/dossiers.py: ``step``, ``judged`` and its ``now`` floor, ``_walk``,
``_assumed``, ``sweep``), its PostgreSQL adapter (services/metrics/dossierstore.py:
``history_bytes``/``history_of``, ``_load``/``_save``, ``sweep``, ``apply``), the facts
(``rejected``) and summary version 3, and migration 0016. Realistic one-stop sequences of
phường Bắc Kạn (01843, Thái Nguyên 19) were read out of order, across a new worker on the
same pool, with sweeps at various wall-clock times, on rows written before 0016 (history
NULL), and in pure form against time order (20,000 generated lives, shuffled, with sweeps
between reads: no difference when the events' times are distinct).

Defect found (a strict xfail first, fixed the same day: events of one instant now sort in
the order of a dossier's life, a return, a resubmission, an ending; two resubmissions of
one instant by their appointments):

- **Events of one instant were judged in reading order.** ``_walk`` sorts a dossier's
  events by time with ties "in reading order" (``rest.sort(key=_by_time)``), so a
  resubmission and the approval given on the spot in the same minute (a procedure
  resolved at the counter once the applicant brings the missing paper) count on time read
  in that order and late when the approval is pushed live and the resubmission comes in
  the commune's evening upload: the approval then sorts first, ends the dossier while it
  is still back with the applicant, and is judged against the old appointment. The same
  for a return and a resubmission of one instant (the dossier stays paused, never open
  overdue). One-stop systems stamp to the minute or the second; the claim "whatever
  order they are read in" does not hold for them.

Claims checked that hold (each can fail): a row from before 0016 counted open overdue
whose withdrawal, stamped before its appointment, is read after the sweep gives its count
back and leaves no negative stored row; a final read first from another ward moves its
count to the receipt's chain in the stored rows, none negative; a dossier swept open
overdue by one worker and re-judged by another (restart) after the cycle read late keeps
one open-overdue count, moved to the new appointment's day; histories round-trip exactly
(the ``-inf`` instants of a row from before 0016, microsecond appointments); a dossier
whose events are at distinct instants counts the same in all 120 reading orders with the
production clock (each event judged at its own time).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.common.dossierfacts import Due, Fact
from services.metrics import dossierstore
from services.metrics.dossiers import Dossier, Entry, Status, Tick, Verdict, step
from services.metrics.periods import VN_TZ
from tests.integration.metrics.test_dossier_ledger import Worker, dossier_event, vn
from tests.integration.metrics.test_review21_on_time import (
    H,
    outcome,
    received,
    resubmitted,
    stored,
    windows,
)
from tests.integration.metrics.test_review22_pause_order import returned

CHAIN = ("19", "01843")  # phường Bắc Kạn, Thái Nguyên
NEIGHBOUR = "01840"  # phường Đức Xuân, Thái Nguyên


async def all_rows(pool: asyncpg.Pool) -> dict[tuple[str, str], int]:
    """Stored denominators of every unit's dossier series, summed over days."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT unit, kpi, min(denominator) AS low, sum(denominator) AS d FROM kpi_daily"
            " WHERE kpi LIKE 'dossier_on_time:%' GROUP BY unit, kpi"
        )
    assert all(r["low"] >= 0 for r in rows), rows  # no stored day below zero
    return {(r["unit"], r["kpi"]): int(r["d"]) for r in rows if r["d"]}


# --- defect --------------------------------------------------------------------------


@pytest.mark.integration
async def test_an_approval_on_the_spot_read_before_its_resubmission_is_on_time(
    pool: asyncpg.Pool,
) -> None:
    """Received on the 20th (appointment the 23rd), returned for completion on the 21st;
    the applicant brings the paper on the 25th at 10:00 and the office, given a new
    appointment of that day, approves it on the spot, stamped 10:00 too. The approval is
    pushed live; the resubmission comes in the commune's evening upload. In their own
    order (resubmitted, then approved) it is on time, on the 25th."""
    worker = Worker(pool, "w1")
    await worker.start(vn("2026-11-20 10:00"))
    await worker.count([received("2401", "2026-11-20 09:00", "2026-11-23")], vn("2026-11-20 10:00"))
    await worker.count([returned("2401", "2026-11-21 10:00")], vn("2026-11-21 11:00"))
    await worker.count([outcome("2401", "2026-11-25 10:00")], vn("2026-11-25 10:05"))
    evening = vn("2026-11-25 20:00")
    await worker.count([resubmitted("2401", "2026-11-25 10:00", "2026-11-25")], evening)
    await worker.state.sweep_dossiers(evening)
    assert windows(worker, evening)["month"] == {"on_time": 1}


def test_a_return_and_resubmission_of_one_instant_count_the_same_in_either_order() -> None:
    """Pure: the office returns the dossier and records the completed paper in the same
    minute (the applicant was at the counter). Either reading order, the clock runs on
    with the new appointment, which passes: open overdue."""
    start = datetime(2026, 11, 20, 9, 0, tzinfo=VN_TZ)
    receipt = (Fact("D", "received", Due.of_day(start.date() + timedelta(days=3))), start)
    minute = start + timedelta(days=1)
    back = (Fact("D", "returned"), minute)
    again = (Fact("D", "resubmitted", Due.of_day(start.date() + timedelta(days=5))), minute)
    now = (start + timedelta(days=10)).timestamp()
    found = []
    for order in ([receipt, back, again], [receipt, again, back]):
        dossier: Dossier | None = None
        ticks: list[Tick] = []
        for fact, at in order:
            dossier, new = step(dossier, fact, at.timestamp(), CHAIN, now)
            ticks += new
        net: dict[str, int] = {}
        for t in ticks:
            net[t.outcome] = net.get(t.outcome, 0) + t.delta
        found.append({k: v for k, v in net.items() if v})
    assert found == [{"open_overdue": 1}, {"open_overdue": 1}]


# --- claims that hold ----------------------------------------------------------------


@pytest.mark.integration
async def test_a_legacy_overdue_row_gives_its_count_back_to_a_withdrawal_in_time(
    pool: asyncpg.Pool,
) -> None:
    """Counted open overdue by a sweep before histories were kept (history NULL); the
    applicant had withdrawn it the day before its appointment, read after a restart: the
    count is taken back where it was added, no stored day goes below zero, and a second
    withdrawal read (another event id) changes nothing."""
    first = Worker(pool, "w1")
    await first.start(vn("2026-11-20 10:00"))
    await first.count([received("2402", "2026-11-20 09:00", "2026-11-23")], vn("2026-11-20 10:00"))
    await first.state.sweep_dossiers(vn("2026-11-24 08:00"))
    assert first.outcomes(vn("2026-11-24 08:00")) == {"open_overdue": 1}
    async with pool.acquire() as conn:
        await conn.execute("UPDATE dossier_state SET history = NULL")
    second = Worker(pool, "w2")
    now = vn("2026-11-24 20:00")
    await second.start(now)
    assert second.outcomes(now) == {"open_overdue": 1}
    await second.count([outcome("2402", "2026-11-22 15:00", "withdrawn")], now)
    await second.state.sweep_dossiers(now + timedelta(days=3))
    assert second.outcomes(now) == {}
    assert await all_rows(pool) == {}
    async with pool.acquire() as conn:
        status = await conn.fetchval("SELECT status FROM dossier_state")
    assert status == "withdrawn"


@pytest.mark.integration
async def test_a_final_read_first_from_another_ward_moves_to_the_receipts_chain(
    pool: asyncpg.Pool,
) -> None:
    """A v1-style final carrying the appointment, published from phường Đức Xuân before
    the receipt of phường Bắc Kạn is read: counted early at Đức Xuân first, then moved to
    Bắc Kạn's chain when the receipt comes. Stored: Bắc Kạn and the province one each,
    Đức Xuân none, and no day below zero."""
    worker = Worker(pool, "w1")
    now = vn("2026-11-22 12:00")
    await worker.start(now)
    final = dossier_event(
        "resolved", H + "2403", "2026-11-21 10:00", outcome="approved", due_at="2026-11-25"
    )
    final["unit"] = NEIGHBOUR
    await worker.count([final], now)
    assert worker.outcomes(now, NEIGHBOUR) == {"early": 1}
    await worker.count([received("2403", "2026-11-20 09:00", "2026-11-25")], now)
    assert worker.outcomes(now, NEIGHBOUR) == {}
    assert worker.outcomes(now) == {"early": 1}
    assert await all_rows(pool) == {
        ("01843", "dossier_on_time:early"): 1,
        ("19", "dossier_on_time:early"): 1,
    }


@pytest.mark.integration
async def test_a_swept_dossier_rejudged_by_a_new_worker_keeps_one_open_overdue_count(
    pool: asyncpg.Pool,
) -> None:
    """Swept open overdue on the 24th (appointment the 23rd) by one worker; the cycle it
    went through (returned on the 21st, back complete on the 22nd with an appointment of
    the 23rd at 12:00) reaches the worker that took over, resubmission first. Its clock
    ran past 12:00 on the 23rd: still open overdue, one count, on the 23rd; the sweep of
    the new worker adds nothing."""
    first = Worker(pool, "w1")
    await first.start(vn("2026-11-20 10:00"))
    await first.count([received("2404", "2026-11-20 09:00", "2026-11-23")], vn("2026-11-20 10:00"))
    await first.state.sweep_dossiers(vn("2026-11-24 09:00"))
    second = Worker(pool, "w2")
    evening = vn("2026-11-24 20:00")
    await second.start(evening)
    await second.count(
        [
            resubmitted("2404", "2026-11-22 10:00", "2026-11-23T12:00:00+07:00"),
            returned("2404", "2026-11-21 10:00"),
        ],
        evening,
    )
    await second.state.sweep_dossiers(evening)
    assert second.outcomes(evening) == {"open_overdue": 1}
    assert await stored(pool, "dossier_on_time:open_overdue") == {
        ("dossier_on_time:open_overdue", vn("2026-11-23 12:00").date()): 1
    }
    await second.count([outcome("2404", "2026-11-25 09:00")], vn("2026-11-25 10:00"))
    assert second.outcomes(vn("2026-11-25 10:00")) == {"late": 1}
    assert await all_rows(pool) == {
        ("01843", "dossier_on_time:late"): 1,
        ("19", "dossier_on_time:late"): 1,
    }


def test_histories_round_trip_exactly() -> None:
    """A row from before 0016 judged once keeps ``_assumed``'s instants of minus infinity;
    a timed appointment to the microsecond and an event a microsecond after it come back
    as they were, and so does the verdict."""
    due = Due(vn("2026-11-23 17:00").date(), vn("2026-11-23 17:00").timestamp() + 0.000001)
    history = (
        Entry(float("-inf"), "received", due),
        Entry(float("-inf"), "returned"),
        Entry(due.last_on_time + 0.000001, "resubmitted", Due.of_day(due.day)),
        Entry(due.last_on_time + 86400.5, "rejected"),
    )
    verdict = Verdict("late", due.day, due.last_on_time)
    dossier = Dossier(H + "2405", Status.DONE, due, CHAIN, None, history, verdict)
    raw = dossierstore.history_bytes(dossier)
    assert dossierstore.history_of(raw) == (history, verdict)
    with pytest.raises(dossierstore.HistoryError):
        dossierstore.history_of(raw[:-1])


def test_distinct_instants_count_the_same_in_every_reading_order() -> None:
    """Pure: a receipt, two return cycles and a rejection, all at distinct instants, read
    in every order with the production clock (each event judged at its own time) and a
    sweep at the end: the same net counts and verdict as in time order."""
    start = datetime(2026, 11, 20, 9, 0, tzinfo=VN_TZ).timestamp()
    day = 86400.0
    life = [
        (Fact("D", "received", Due.of_day(vn("2026-11-23 00:00").date())), start),
        (Fact("D", "returned"), start + day),
        (Fact("D", "resubmitted", Due.of_day(vn("2026-11-27 00:00").date())), start + 2 * day),
        (Fact("D", "returned"), start + 6 * day),
        (Fact("D", "rejected"), start + 15 * day),
    ]
    end = start + 20 * day
    results = set()
    for order in itertools.permutations(life):
        dossier: Dossier | None = None
        net: dict[Any, int] = {}
        for fact, at in order:
            dossier, ticks = step(dossier, fact, at, CHAIN)
            for t in ticks:
                net[(t.outcome, t.day)] = net.get((t.outcome, t.day), 0) + t.delta
        assert dossier is not None
        results.add((frozenset((k, v) for k, v in net.items() if v), dossier.counted))
    assert len(results) == 1
    ((counts, verdict),) = results
    assert verdict is not None and verdict.outcome == "early"  # stopped on the 26th
    assert dict(counts) == {("early", verdict.day): 1}
    assert end > verdict.epoch
