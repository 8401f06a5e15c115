"""Review 15: a final outcome read before its dossier's receipt (commit 9f983c3).

The pure ledger (``dossiers.step``) and the worker's own pieces (``Preparer``,
``PartitionState``, ``dossierstore``) against a real, migrated PostgreSQL of each test's
own. Two defects were found: a final read after a return but before the receipt was
never judged (fixed on 2026-12-05: any final with no appointment known waits); and a
dossier resolved first was judged by the first appointment read, not the one in force at
its resolution (a strict xfail here until the ledger judged a dossier from its events in
their own order, 2026-12-05). The other tests check claims that hold (each can fail).
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from services.metrics import dossierstore
from services.metrics.dossiers import Dossier, Due, Fact, Status, Tick, step, sweep
from services.metrics.dossierstore import DossierClone
from tests.integration.metrics.test_dossier_ledger import (
    PROVINCE,
    TP,
    UNIT,
    Worker,
    dossier_event,
    vn,
)

pytestmark = pytest.mark.integration

CHAIN = (PROVINCE, UNIT)
MIGRATION = (
    Path(__file__).resolve().parents[3]
    / "services/common/migrations/0014_dossier_resolved_first.sql"
)


def at(text: str) -> float:
    return vn(text).timestamp()


def run(events: list[tuple[Fact, float]]) -> tuple[Dossier | None, list[Tick]]:
    dossier: Dossier | None = None
    ticks: list[Tick] = []
    for fact, epoch in events:
        dossier, new = step(dossier, fact, epoch, CHAIN)
        ticks += new
    return dossier, ticks


def outcomes(ticks: list[Tick]) -> dict[str, int]:
    found: dict[str, int] = {}
    for tick in ticks:
        found[tick.outcome] = found.get(tick.outcome, 0) + tick.delta
    return {k: v for k, v in found.items() if v}


DUE = Due.parse("2026-11-23")


def filler(dossier: str) -> dict[str, object]:
    """Another dossier's receipt, its appointment far ahead (never counted here)."""
    return dossier_event("received", dossier, "2026-11-24 09:00", due_at="2026-12-31")


# --- the pure ledger -------------------------------------------------------------------


def test_resolved_first_then_receipt_counts_once_whatever_follows() -> None:
    """Final, receipt with due (judged), then a return, a resubmission with a new
    appointment, a second receipt, a withdrawal, a sweep years later: one count."""
    dossier, ticks = run(
        [
            (Fact("A", "final"), at("2026-11-25 10:00")),
            (Fact("A", "received", DUE), at("2026-11-26 10:00")),
            (Fact("A", "returned"), at("2026-11-26 11:00")),
            (Fact("A", "resubmitted", Due.parse("2026-12-30")), at("2026-11-27 10:00")),
            (Fact("A", "received", DUE), at("2026-11-27 11:00")),
            (Fact("A", "withdrawn"), at("2026-11-27 12:00")),
        ]
    )
    assert outcomes(ticks) == {"late": 1}
    # Late counts on its appointment's day (since 2026-12-05; before, the resolution's).
    assert [t.day for t in ticks] == [DUE.day]
    assert dossier is not None and dossier.status is Status.DONE
    assert dossier.resolved_at is None
    assert sweep([dossier], at("2030-01-01 00:00")) == ([], [])


def test_resolved_first_a_return_or_withdrawal_before_the_receipt_keeps_it_waiting() -> None:
    """A return or a withdrawal read for a RESOLVED dossier changes nothing; the receipt
    still judges it once, on time here (resolved on the appointment date)."""
    for kind in ("returned", "withdrawn"):
        dossier, ticks = run(
            [
                (Fact("B", "final"), at("2026-11-23 16:00")),
                (Fact("B", kind), at("2026-11-23 17:00")),
                (Fact("B", "received", DUE), at("2026-11-24 10:00")),
            ]
        )
        assert outcomes(ticks) == {"on_time": 1}, kind
        assert dossier is not None and dossier.status is Status.DONE


def test_a_return_then_final_read_before_the_receipt_is_judged_when_it_comes() -> None:
    """Judged at the final (the 25th), late: a final outcome of a paused dossier is judged
    at its own instant (docs/dossiers.md; review 21's strict xfail asks otherwise for a
    rejection of a dossier never completed)."""
    _, ticks = run(
        [
            (Fact("C", "returned"), at("2026-11-20 10:00")),
            (Fact("C", "final"), at("2026-11-25 10:00")),
            (Fact("C", "received", DUE), at("2026-11-26 10:00")),
        ]
    )
    assert outcomes(ticks) == {"late": 1}


def test_resolved_first_is_judged_by_the_appointment_in_force_at_its_resolution() -> None:
    """Read final, receipt (due 23rd), return, resubmission (due 30th): judged by the
    resubmission's appointment, as the same events read in their own order are.

    A strict xfail until 2026-12-05 (judged by the first appointment read). Its read-order
    run then stamped the receipt, return and resubmission after the final (the times it
    was read at), which no ledger judging by event times can call early: it now reads the
    same events, with the same times, in another order."""
    events = [
        (Fact("D", "received", DUE), at("2026-11-20 10:00")),
        (Fact("D", "returned"), at("2026-11-21 10:00")),
        (Fact("D", "resubmitted", Due.parse("2026-11-30")), at("2026-11-22 10:00")),
        (Fact("D", "final"), at("2026-11-25 10:00")),
    ]
    _, ordered = run(events)
    _, ticks = run([events[3], events[0], events[1], events[2]])
    assert outcomes(ordered) == {"early": 1}
    assert outcomes(ticks) == outcomes(ordered)
    # Read in any order, it counts once, early.
    _, backwards = run(events[::-1])
    assert outcomes(backwards) == {"early": 1}


# --- through the worker ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["full", "summary", "v1"])
async def test_a_receipt_in_a_later_flush_judges_the_final_once_in_its_day(
    pool: asyncpg.Pool, path: str
) -> None:
    worker = Worker(pool, "w1", path)
    first = vn("2026-11-25 12:00")
    await worker.start(first)
    await worker.count(
        [
            dossier_event("resolved", "R", "2026-11-25 10:00", outcome="approved"),
            filler("F1"),  # ingest summarises a record of more than one event
        ],
        first,
    )
    await worker.state.sweep_dossiers(first)
    assert worker.outcomes(first) == {}
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, resolved_at FROM dossier_state WHERE dossier_id = 'R'"
        )
    assert row is not None
    assert row["status"] == "resolved" and row["resolved_at"] == at("2026-11-25 10:00")

    later = vn("2026-11-27 12:00")
    second = Worker(pool, "w2", path)  # a restart: the state comes from PostgreSQL
    await second.start(later)
    receipt = dossier_event("received", "R", "2026-11-20 09:00", due_at="2026-11-23")
    await second.count([receipt, filler("F2")], later)
    again = dossier_event("received", "R", "2026-11-20 09:00", due_at="2026-11-23")
    await second.count([again, filler("F3")], later)  # another event id: a duplicate of the receipt
    await second.state.sweep_dossiers(later)
    assert second.outcomes(later) == {"late": 1}
    assert second.on_time(later) == (0, 1)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kpi, day, denominator FROM kpi_daily WHERE unit = $1"
            " AND kpi = 'dossier_on_time:late'",
            UNIT,
        )
        state = await conn.fetchrow(
            "SELECT status, resolved_at FROM dossier_state WHERE dossier_id = 'R'"
        )
    # Late: on its appointment's day (the 23rd), where a sweep would have counted it.
    assert [(str(r["day"]), r["denominator"]) for r in rows] == [("2026-11-23", 1)]
    assert state is not None
    assert state["status"] == "done" and state["resolved_at"] is None
    expected_path = {"full": "validated", "summary": "summary", "v1": "signed"}[path]
    assert set(worker.paths) == set(second.paths) == {expected_path}


async def test_final_then_receipt_in_one_flush_counts_once(pool: asyncpg.Pool) -> None:
    worker = Worker(pool, "w1")
    now = vn("2026-11-25 12:00")
    await worker.start(now)
    await worker.count(
        [
            dossier_event("resolved", "S", "2026-11-22 10:00", outcome="rejected"),
            dossier_event("received", "S", "2026-11-20 09:00", due_at="2026-11-23"),
            dossier_event("resolved", "S", "2026-11-22 11:00", outcome="approved"),
        ],
        now,
    )
    await worker.state.sweep_dossiers(now)
    assert worker.outcomes(now) == {"early": 1}


async def test_a_resolved_row_round_trips_and_is_never_swept(pool: asyncpg.Pool) -> None:
    resolved_at = at("2026-11-25 10:00") + 0.123456
    waiting = Dossier("W", Status.RESOLVED, None, CHAIN, resolved_at)
    async with pool.acquire() as conn:
        await dossierstore._save(conn, TP, [waiting], set())  # COPY
        assert await dossierstore._load(conn, TP, ["W"]) == {"W": waiting}
        moved = waiting._replace(resolved_at=resolved_at + 1)
        await dossierstore._save(conn, TP, [moved], {"W"})  # upsert
        assert await dossierstore._load(conn, TP, ["W"]) == {"W": moved}
        async with conn.transaction():
            deltas = await dossierstore.sweep(conn, TP, at("2030-01-01 00:00"))
        assert not deltas.daily and not deltas.buckets


async def test_a_canary_clone_of_a_resolved_row_takes_the_same_transition(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await dossierstore.apply(conn, TP, [(Fact("X", "final"), at("2026-11-25 10:00"), CHAIN)])
        await dossierstore.clone(conn, DossierClone(TP, "X", "canary-X"))
        receipt = Fact("canary-X", "received", DUE)
        deltas = await dossierstore.apply(conn, TP, [(receipt, at("2026-11-26 10:00"), CHAIN)])
        stored = await dossierstore._load(conn, TP, ["X", "canary-X"])
    late = {k: v for k, v in deltas.daily.items() if k[1] == "dossier_on_time:late"}
    assert {(unit, day) for unit, _, day in late} == {(u, DUE.day) for u in CHAIN}
    assert stored["X"].status is Status.RESOLVED
    assert stored["canary-X"].status is Status.DONE


async def test_the_migration_is_rerunnable_on_existing_rows(pool: asyncpg.Pool) -> None:
    """0014 on a table with rows of every status (and a 'resolved' one): rows kept,
    the constraint still refusing an unknown status."""
    rows = [Dossier(s, s, None, CHAIN) for s in Status if s is not Status.RESOLVED]
    rows.append(Dossier("r", Status.RESOLVED, None, CHAIN, 1.5))
    async with pool.acquire() as conn:
        await dossierstore._save(conn, TP, rows, set())
        await conn.execute(MIGRATION.read_text())
        loaded = await dossierstore._load(conn, TP, [d.dossier_id for d in rows])
        assert loaded == {d.dossier_id: d for d in rows}
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                'INSERT INTO dossier_state (topic, "partition", dossier_id, status, units)'
                " VALUES ('t', 0, 'z', 'bogus', '{}')"
            )
