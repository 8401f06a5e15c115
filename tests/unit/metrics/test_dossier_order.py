"""The on-time ledger judges a dossier from its events in their own order: read in any
order, a dossier's events count what they count read in time order (services/metrics/
dossiers.py, 2026-12-05; until then pauses were judged in reading order, reviews 21-22)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from services.metrics.dossiers import (
    HISTORY_LIMIT,
    Dossier,
    Due,
    Fact,
    Status,
    Tick,
    apply,
    over_limit,
    step,
    sweep,
)
from services.metrics.periods import VN_TZ

UNITS = ("01843", "19")  # phường Bắc Kạn, Thái Nguyên
START = datetime(2026, 11, 2, 8, 0, tzinfo=VN_TZ)


def at(hours: float) -> float:
    return (START + timedelta(hours=hours)).timestamp()


def due(days: int) -> Due:
    return Due.of_day(START.date() + timedelta(days=days))


Event = tuple[Fact, float]


@st.composite
def dossier_lives(draw: st.DrawFn) -> list[Event]:
    """A receipt with its appointment, return cycles (each resubmission with a new one,
    some cycles not completed), then an approval, a rejection, a withdrawal or nothing:
    one dossier's events in time order, whole hours apart or at one instant (one-stop
    systems stamp to the minute: an approval given on the spot shares its resubmission's
    time), on and around their appointments."""
    hours = 0
    events: list[Event] = [(Fact("D", "received", due(draw(st.integers(1, 10)))), at(hours))]
    for _ in range(draw(st.integers(0, 3))):
        hours += draw(st.integers(0, 200))
        events.append((Fact("D", "returned"), at(hours)))
        if draw(st.booleans()):
            hours += draw(st.integers(0, 200))
            new_due = due(int(hours // 24) + draw(st.integers(0, 8)))
            events.append((Fact("D", "resubmitted", new_due), at(hours)))
    ending = draw(st.sampled_from(["final", "rejected", "withdrawn", None]))
    if ending is not None:
        hours += draw(st.integers(0, 300))
        events.append((Fact("D", ending), at(hours)))
    return events


def counted(events: list[Event], now: float) -> tuple[dict[str, int], Dossier | None]:
    """Apply ``events`` in this order with the clock at ``now``: net counts per outcome."""
    dossier: Dossier | None = None
    ticks: list[Tick] = []
    for fact, epoch in events:
        dossier, new = step(dossier, fact, epoch, UNITS, now)
        ticks += new
    found: dict[str, int] = {}
    for tick in ticks:
        found[tick.outcome] = found.get(tick.outcome, 0) + tick.delta
    return {k: v for k, v in found.items() if v}, dossier


@given(dossier_lives(), st.randoms(use_true_random=False))
@settings(max_examples=300, deadline=None)
def test_any_reading_order_counts_what_time_order_counts(
    events: list[Event], random: Random
) -> None:
    now = events[-1][1] + 3600
    expected, in_order = counted(events, now)
    shuffled = list(events)
    random.shuffle(shuffled)
    found, read = counted(shuffled, now)
    assert found == expected, shuffled
    assert sum(expected.values()) <= 1 and all(n == 1 for n in expected.values())
    assert in_order is not None and read is not None
    assert (read.status, read.due, read.counted) == (
        in_order.status,
        in_order.due,
        in_order.counted,
    )


@given(dossier_lives())
@settings(max_examples=200, deadline=None)
def test_a_sweep_counts_once_and_a_later_resolution_moves_that_count(events: list[Event]) -> None:
    """Open dossiers swept as their appointment passes, the events read live: the net
    counts are those of the events judged at the end, whatever the sweeps did between."""
    dossier: Dossier | None = None
    net: dict[str, int] = {}
    for fact, epoch in events:
        if dossier is not None:
            swept, ticks = sweep([dossier], epoch - 1)
            dossier = swept[0] if swept else dossier
            for t in ticks:
                net[t.outcome] = net.get(t.outcome, 0) + t.delta
        dossier, ticks = step(dossier, fact, epoch, UNITS)
        for t in ticks:
            net[t.outcome] = net.get(t.outcome, 0) + t.delta
    end = events[-1][1] + 3600
    assert dossier is not None
    swept, ticks = sweep([dossier], end)
    for t in ticks:
        net[t.outcome] = net.get(t.outcome, 0) + t.delta
    expected, _ = counted(events, end)
    assert {k: v for k, v in net.items() if v} == expected


def test_a_rejection_while_back_with_the_applicant_is_judged_where_its_clock_stopped() -> None:
    """Returned two days before its appointment, never completed, refused a month later:
    on time by the return, counted when refused. An approval in the same place is judged
    at its own instant (the office had the dossier back), a withdrawal is left out."""
    receipt = (Fact("D", "received", due(3)), at(0))
    back = (Fact("D", "returned"), at(24))
    for ending, outcome in (("rejected", "early"), ("final", "late"), ("withdrawn", None)):
        found, dossier = counted([receipt, back, (Fact("D", ending), at(24 * 30))], at(24 * 31))
        assert found == ({outcome: 1} if outcome else {}), ending
        if outcome == "early":
            assert dossier is not None and dossier.counted is not None
            assert dossier.counted.day == date(2026, 12, 2)  # the refusal's day


def test_lateness_that_happened_stays_whatever_is_read_after() -> None:
    """Its clock ran past the appointment before the return: a later resubmission with
    a far appointment and an approval before it do not make it on time."""
    found, _ = counted(
        [
            (Fact("D", "received", due(1)), at(0)),
            (Fact("D", "returned"), at(24 * 3)),
            (Fact("D", "resubmitted", due(20)), at(24 * 4)),
            (Fact("D", "final"), at(24 * 5)),
        ],
        at(24 * 6),
    )
    assert found == {"late": 1}


def test_the_receipts_unit_chain_holds_the_count() -> None:
    """The final read first with another chain (a publisher's source of another unit):
    the receipt's chain is where the dossier was received, and holds the count."""
    dossier, ticks = step(None, Fact("D", "final"), at(48), ("01840", "19"))
    dossier, ticks = step(dossier, Fact("D", "received", due(5)), at(0), UNITS)
    assert [(t.outcome, t.units, t.delta) for t in ticks] == [("early", UNITS, 1)]
    assert dossier is not None and dossier.units == UNITS


def test_a_dossier_keeps_so_many_cycles_and_still_ends() -> None:
    """A publisher's loop returning one dossier again and again: past the limit its
    returns and resubmissions are not applied (``apply`` hands them back for the store
    to log), and its ending still is: it is counted."""
    dossier, _ = step(None, Fact("D", "received", due(400)), at(0), UNITS)
    for i in range(1, HISTORY_LIMIT + 1):
        kind = "returned" if i % 2 else "resubmitted"
        dossier, _ = step(dossier, Fact("D", kind, due(400)), at(i), UNITS)
    assert dossier is not None and dossier.status is Status.OPEN
    loop = Fact("D", "returned")
    assert over_limit(dossier, loop) and not over_limit(dossier, Fact("D", "final"))
    after, ticks = step(dossier, loop, at(HISTORY_LIMIT + 1), UNITS)
    assert after is dossier and ticks == []
    refused: list[Fact] = []
    known = {"D": dossier}
    changed, ticks = apply(
        known, [(loop, at(HISTORY_LIMIT + 1), UNITS), (Fact("D", "final"), at(100), UNITS)],
        refused=refused,
    )  # fmt: skip
    assert refused == [loop]
    assert [(t.outcome, t.delta) for t in ticks] == [("early", 1)]
    assert changed["D"].status is Status.DONE


def test_two_resubmissions_of_one_instant_agree_whatever_order_they_are_read_in() -> None:
    """Stamped alike (a correction of the appointment at the counter): the later
    appointment stands in either reading order."""
    receipt = (Fact("D", "received", due(2)), at(0))
    back = (Fact("D", "returned"), at(10))
    first, second = (
        (Fact("D", "resubmitted", due(days)), at(20)) for days in (3, 9)
    )  # fmt: skip
    for order in ([first, second], [second, first]):
        _, dossier = counted([receipt, back, *order], at(20))
        assert dossier is not None and dossier.due == due(9)
