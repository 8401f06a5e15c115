"""The pure on-time ledger (services/metrics/dossiers.py): explicit times in, counts out."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from services.metrics.dossiers import (
    KPI,
    OUTCOME_SERIES,
    RECEIVED,
    RESOLVED,
    RESUBMITTED,
    Dossier,
    Due,
    Fact,
    Status,
    Tick,
    deltas_of,
    event_identity,
    fact_of,
    outcome_of_series,
    step,
    sweep,
)
from services.metrics.periods import VN_TZ

UNITS = ("16342", "404", "38")
DUE_TIME = "2024-03-20T17:00:00+07:00"


def at(text: str) -> float:
    """Epoch seconds of a Vietnam wall-clock time, ``2024-03-20 16:59``."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=VN_TZ).timestamp()


def run(
    events: list[tuple[str, float]], due: str | None = DUE_TIME
) -> tuple[Dossier | None, list[Tick]]:
    """Apply ``(kind, epoch)`` events in order; the receipt carries ``due``."""
    dossier: Dossier | None = None
    ticks: list[Tick] = []
    for kind, epoch in events:
        parsed = Due.parse(due) if due is not None and kind in ("received", "resubmitted") else None
        dossier, new = step(dossier, Fact("H38.404-1", kind, parsed), epoch, UNITS)
        ticks += new
    return dossier, ticks


def outcomes(ticks: list[Tick]) -> dict[str, int]:
    found: dict[str, int] = {}
    for tick in ticks:
        found[tick.outcome] = found.get(tick.outcome, 0) + tick.delta
    return {k: v for k, v in found.items() if v}


@pytest.mark.parametrize(
    ("resolved_at", "expected"),
    [
        ("2024-03-19 16:45", "early"),  # the day before the appointment
        ("2024-03-20 08:00", "on_time"),  # on the appointment date, before its time
        ("2024-03-20 17:00", "on_time"),  # at the appointment itself
        ("2024-03-20 17:01", "late"),  # a minute after
    ],
)
def test_a_timed_appointment_judges_by_date_then_time(resolved_at: str, expected: str) -> None:
    _, ticks = run([("received", at("2024-03-15 09:00")), ("final", at(resolved_at))])
    assert outcomes(ticks) == {expected: 1}
    assert ticks[-1].day == datetime.fromtimestamp(at(resolved_at), VN_TZ).date()
    due = Due.parse(DUE_TIME)  # the ledger hands judge the day it computed already
    assert due.judge(at(resolved_at), ticks[-1].day) == due.judge(at(resolved_at)) == expected


def test_a_date_only_appointment_is_judged_by_the_local_date() -> None:
    """Handed over at 23:30 on the appointment date (16:30 UTC) is on time; 00:10 the next
    day is late, although it is still the appointment date in UTC."""
    on_date = run(
        [("received", at("2024-05-02 14:00")), ("final", at("2024-05-08 23:30"))], "2024-05-08"
    )
    next_day = run(
        [("received", at("2024-05-02 14:00")), ("final", at("2024-05-09 00:10"))], "2024-05-08"
    )
    assert outcomes(on_date[1]) == {"on_time": 1}
    assert outcomes(next_day[1]) == {"late": 1}
    assert Due.parse("2024-05-08").day == date(2024, 5, 8)


def test_an_open_dossier_turns_overdue_in_the_period_of_its_appointment() -> None:
    dossier, _ = run([("received", at("2024-03-15 09:00"))])
    assert dossier is not None
    assert sweep([dossier], at("2024-03-20 17:00")) == ([], [])  # not yet: at the appointment
    marked, ticks = sweep([dossier], at("2024-03-21 09:00"))
    assert [d.status for d in marked] == [Status.OVERDUE]
    assert ticks == [Tick("open_overdue", UNITS, date(2024, 3, 20), at("2024-03-20 17:00"))]
    # Resolved later: not counted again; the one count moves from open overdue to late,
    # in the appointment's period (no longer open, and the rate is unchanged).
    done, more = step(marked[0], Fact("H38.404-1", "final"), at("2024-04-02 10:00"), UNITS)
    assert done is not None and done.status is Status.DONE
    due = (date(2024, 3, 20), at("2024-03-20 17:00"))
    assert more == [Tick("open_overdue", UNITS, *due, -1), Tick("late", UNITS, *due)]
    assert outcomes(ticks + more) == {"late": 1}
    assert sweep([done], at("2024-05-01 00:00")) == ([], [])


def test_a_resolution_that_happened_in_time_takes_back_a_premature_overdue_count() -> None:
    """The commune uploads in the evening: its 16:00 resolution reaches the worker after
    the sweep at 17:05 counted the dossier overdue. It counts as it happened."""
    dossier, _ = run([("received", at("2024-03-15 09:00"))])
    assert dossier is not None
    [marked], counted = sweep([dossier], at("2024-03-20 17:05"))
    _, ticks = step(marked, Fact("H38.404-1", "final"), at("2024-03-20 16:00"), UNITS)
    assert outcomes(counted + ticks) == {"on_time": 1}
    assert [(t.outcome, t.delta) for t in ticks] == [("open_overdue", -1), ("on_time", 1)]


def test_a_dossier_resolved_twice_counts_once() -> None:
    _, ticks = run(
        [
            ("received", at("2024-03-15 09:00")),
            ("final", at("2024-03-19 10:00")),
            ("final", at("2024-03-25 10:00")),
        ]
    )
    assert outcomes(ticks) == {"early": 1}


def test_withdrawn_leaves_the_rate() -> None:
    dossier, ticks = run(
        [("received", at("2024-03-15 09:00")), ("withdrawn", at("2024-03-18 10:00"))]
    )
    assert ticks == [] and dossier is not None and dossier.status is Status.WITHDRAWN
    assert sweep([dossier], at("2024-04-01 00:00")) == ([], [])
    # Resolved after withdrawal: still nothing.
    _, after = step(dossier, Fact("H38.404-1", "final"), at("2024-03-19 10:00"), UNITS)
    assert after == []


def test_withdrawn_after_the_appointment_stays_counted_overdue() -> None:
    dossier, _ = run([("received", at("2024-03-15 09:00"))])
    assert dossier is not None
    [marked], _ = sweep([dossier], at("2024-03-21 00:00"))
    _, ticks = step(marked, Fact("H38.404-1", "withdrawn"), at("2024-03-22 10:00"), UNITS)
    assert ticks == []


def test_returned_pauses_the_clock_until_resubmitted_with_a_new_appointment() -> None:
    dossier, _ = run([("received", at("2024-03-15 09:00")), ("returned", at("2024-03-18 10:00"))])
    assert dossier is not None and dossier.status is Status.PAUSED
    # Paused across the old appointment: never overdue.
    assert sweep([dossier], at("2024-03-25 00:00")) == ([], [])
    resumed, _ = step(
        dossier,
        Fact("H38.404-1", "resubmitted", Due.parse("2024-03-29")),
        at("2024-03-26 08:00"),
        UNITS,
    )
    assert resumed is not None and resumed.status is Status.OPEN
    _, ticks = step(resumed, Fact("H38.404-1", "final"), at("2024-03-29 15:00"), UNITS)
    assert outcomes(ticks) == {"on_time": 1}  # judged by the new appointment
    assert sweep([resumed], at("2024-03-29 23:59")) == ([], [])
    assert len(sweep([resumed], at("2024-03-30 00:00"))[1]) == 1


def test_returned_is_not_a_resolution() -> None:
    _, ticks = run([("received", at("2024-03-15 09:00")), ("returned", at("2024-03-19 10:00"))])
    assert ticks == []
    # Returned after its appointment: the clock had run past it, whether or not a sweep
    # saw that first (events judged at their own times): open overdue, not resolved.
    _, ticks = run([("received", at("2024-03-15 09:00")), ("returned", at("2024-03-21 10:00"))])
    assert outcomes(ticks) == {"open_overdue": 1}


def test_a_resolution_carries_its_own_appointment_when_the_receipt_did_not() -> None:
    _, ticks = step(None, Fact("d", "final", Due.parse(DUE_TIME)), at("2024-03-21 09:00"), UNITS)
    assert outcomes(ticks) == {"late": 1}
    # No appointment yet: not judged, never overdue; it waits for its receipt's.
    unknown, none = step(None, Fact("e", "final"), at("2024-03-21 09:00"), UNITS)
    assert none == [] and unknown is not None and unknown.status is Status.RESOLVED
    assert sweep([unknown], at("2030-01-01 00:00")) == ([], [])
    opened, _ = step(None, Fact("f", "received"), at("2024-03-15 09:00"), UNITS)
    assert opened is not None and sweep([opened], at("2030-01-01 00:00")) == ([], [])


def test_a_resolution_read_before_its_receipt_is_judged_when_the_receipt_comes() -> None:
    """A publisher's order (or a backfill's): the final first, then the receipt with
    the appointment. Judged once, at the resolution's instant (review 13; until 2026-12-05
    the dossier ended done unjudged); late, it counts on its appointment's day (review 21)."""
    resolved, ticks = step(None, Fact("g", "final"), at("2024-03-21 09:00"), UNITS)
    assert ticks == [] and resolved is not None and resolved.status is Status.RESOLVED
    receipt = Fact("g", "received", Due.parse(DUE_TIME))
    done, ticks = step(resolved, receipt, at("2024-03-25 08:00"), ("other", "units"))
    assert done is not None and done.status is Status.DONE
    assert outcomes(ticks) == {"late": 1}  # resolved on the 21st, due before
    # Counted for the units of its receipt, where it was received (until 2026-12-05, the
    # chain of the final read first).
    assert [(t.day, t.units) for t in ticks] == [(Due.parse(DUE_TIME).day, ("other", "units"))]
    # Anything after counts nothing more: a second receipt, a second final.
    for again in (receipt, Fact("g", "final")):
        after, more = step(done, again, at("2024-03-26 08:00"), UNITS)
        assert more == [] and after == done
    # A receipt without an appointment leaves it waiting; a second final too.
    waiting, _ = step(None, Fact("h", "final"), at("2024-03-21 09:00"), UNITS)
    for again in (Fact("h", "received"), Fact("h", "final")):
        after, more = step(waiting, again, at("2024-03-22 09:00"), UNITS)
        assert more == [] and after is not None
        assert after._replace(history=waiting.history) == waiting  # still waiting


def test_facts_and_identities_of_events() -> None:
    data = {"dossier_id": "H1", "due_at": "2024-03-20", "outcome": "approved"}
    assert fact_of(RESOLVED, data) == Fact("H1", "final", Due.parse("2024-03-20"))
    assert fact_of(RESOLVED, {**data, "outcome": "rejected"}).kind == "rejected"  # type: ignore[union-attr]
    assert fact_of(RESOLVED, {**data, "outcome": "withdrawn"}).kind == "withdrawn"  # type: ignore[union-attr]
    assert fact_of("vn.egov.document.issued", {}) is None
    assert fact_of("vn.egov.dossier.paid", {"dossier_id": "H1", "amount_vnd": 0}) is None
    # A dossier's final outcome is one, whatever the event ids; returns are each their own.
    assert event_identity(RESOLVED, "a", data) == event_identity(
        RESOLVED, "b", {**data, "outcome": "rejected"}
    )
    returned = {**data, "outcome": "returned"}
    assert event_identity(RESOLVED, "a", returned) != event_identity(RESOLVED, "b", returned)
    assert event_identity(RECEIVED, "a", data) == event_identity(RECEIVED, "b", data)
    assert event_identity(RESUBMITTED, "a", data) != event_identity(RESUBMITTED, "b", data)
    assert event_identity("vn.egov.document.issued", "a", {}) != event_identity(RECEIVED, "a", data)


def test_deltas_hold_the_rate_and_the_four_counts_for_every_unit() -> None:
    day, epoch = date(2024, 3, 20), at("2024-03-20 10:00")
    ticks = [
        Tick("early", UNITS, day, epoch),
        Tick("on_time", UNITS, day, epoch),
        Tick("late", UNITS, day, epoch),
        Tick("open_overdue", UNITS, day, epoch),
        Tick("open_overdue", UNITS, day, epoch, -1),
        Tick("open_overdue", UNITS, day, epoch),
    ]
    deltas = deltas_of(ticks)
    for unit in UNITS:
        assert deltas.daily[(unit, KPI, day)] == [2, 4]
        for outcome, series in OUTCOME_SERIES.items():
            assert deltas.daily[(unit, series, day)] == [0, 1], outcome
    assert outcome_of_series(OUTCOME_SERIES["late"]) == "late" and outcome_of_series(KPI) is None
    assert sum(den for (_, kpi, _), (_, den) in deltas.buckets.items() if kpi == KPI) == 12


def test_a_due_time_in_another_offset_is_a_vietnam_date() -> None:
    due = Due.parse("2024-03-20T23:30:00Z")  # 06:30 on 21 March in Vietnam
    assert due.day == date(2024, 3, 21)
    assert due.judge(due.last_on_time - timedelta(hours=8).total_seconds()) == "early"
