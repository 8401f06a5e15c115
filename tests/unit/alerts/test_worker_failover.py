"""A metrics worker down for good: the units that failed over are judged again (review 85).

Until review 85, while any worker did not answer only the units in *every* answer since
the last complete cycle were judged: the units a SIGKILLed worker's partitions handed to
a survivor were missing during the rebalance, so their silence went unjudged for as long
as the dead worker stayed down, and its whole outage became their blind span when it came
back. Now a unit a live worker has answered for in every cycle for ``REJOIN_AFTER_S`` is
judged again, blind only for the time nobody answered for it
(services/alerts/workers.py). Real evaluator and lifecycle, injected time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from itertools import count
from typing import Any

from services.alerts import conditions as c
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.lifecycle import AlertBook
from services.alerts.model import State, Transition
from services.alerts.settings import AlertsSettings
from services.alerts.silence_memory import SilenceMemory
from services.alerts.workers import REJOIN_AFTER_S, WorkerWatch
from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.figures import Figure
from services.common.rates import to_bp
from services.common.unit_info import UnitInfo

T0 = datetime(2026, 12, 7, 9, tzinfo=VN_TZ)
"""Worker B (province 38) is SIGKILLed; worker A (province 19) survives."""
PROVINCES = ("19", "38")
UNITS = [UnitInfo(p, f"Tỉnh {p}", f"Province {p}", "province", p) for p in PROVINCES] + [
    UnitInfo(f"{p}{i:03d}", f"Xã {p}{i:03d}", f"Commune {p}{i:03d}", "commune", p, p)
    for p in PROVINCES
    for i in range(4)
]
A_UNITS = [u.code for u in UNITS if u.province == "19"]
B_UNITS = [u.code for u in UNITS if u.province == "38"]
MOVED = B_UNITS[:3]
"""B's units whose partitions A takes over; the others stay unassigned (not answered)."""
LEFT = B_UNITS[3:]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- the watch on its own ---------------------------------------------------------------


def test_units_in_every_answer_are_judged_and_units_in_none_are_not() -> None:
    watch = WorkerWatch()
    assert watch.observe(True, (), at(0)) == []
    assert watch.judgeable() is None  # every worker answered: every unit
    assert watch.observe(False, A_UNITS, at(1)) == []
    assert watch.observe(False, A_UNITS, at(2)) == []
    assert watch.judgeable() == frozenset(A_UNITS)


def test_a_unit_answered_for_again_is_trusted_after_a_while_blind_only_for_its_gap() -> None:
    watch = WorkerWatch()
    watch.observe(True, (), at(0))
    watch.observe(False, A_UNITS, at(0.1))  # the rebalance: B's units in nobody's answer
    back = at(0.2)
    assert watch.observe(False, [*A_UNITS, *MOVED], back) == []
    assert watch.judgeable() == frozenset(A_UNITS)  # one answer is not enough
    just_before = back + timedelta(seconds=REJOIN_AFTER_S - 1)
    assert watch.observe(False, [*A_UNITS, *MOVED], just_before) == []
    trusted = back + timedelta(seconds=REJOIN_AFTER_S)
    (gap,) = watch.observe(False, [*A_UNITS, *MOVED], trusted)
    # Blind from the last complete cycle to the first answer again, for them alone.
    assert (gap.start, gap.end, gap.units) == (at(0), back, frozenset(MOVED))
    assert gap.covers(MOVED[0], "documents", "38")
    assert not gap.covers(LEFT[0], "documents", "38")
    assert not gap.covers(A_UNITS[0], "documents", "19")
    assert watch.judgeable() == frozenset([*A_UNITS, *MOVED])


def test_a_run_broken_before_it_is_trusted_starts_again_and_its_gap_goes_on() -> None:
    watch = WorkerWatch()
    watch.observe(True, (), at(0))
    watch.observe(False, A_UNITS, at(0.1))
    watch.observe(False, [*A_UNITS, *MOVED], at(0.2))  # handed to A...
    watch.observe(False, A_UNITS, at(0.3))  # ...and taken away again
    for seconds in range(0, int(REJOIN_AFTER_S), 2):
        moved = at(0.4) + timedelta(seconds=seconds)
        assert watch.observe(False, [*A_UNITS, *MOVED], moved) == []
    (gap,) = watch.observe(False, [*A_UNITS, *MOVED], at(0.4) + timedelta(seconds=30))
    assert (gap.start, gap.end) == (at(0), at(0.4))


def test_a_trusted_unit_missing_again_is_unknown_from_its_last_answer_only() -> None:
    watch = WorkerWatch()
    watch.observe(True, (), at(0))
    watch.observe(False, A_UNITS, at(1))
    watch.observe(False, A_UNITS, at(2))
    # A second rebalance takes 19000 from A for a while; nobody answers for it.
    others = [u for u in A_UNITS if u != "19000"]
    watch.observe(False, others, at(3))
    assert "19000" not in (watch.judgeable() or ())
    watch.observe(False, others, at(4))
    ended = watch.observe(True, (), at(5))  # B answers again: the outage is over
    main, own = ended
    # Its time judged before (to 2) does not become blind afterwards.
    assert (own.start, own.end, own.units) == (at(2), at(5), frozenset({"19000"}))
    assert (main.start, main.end) == (at(0), at(5))
    assert not main.covers("19000", "documents", "19")
    assert not main.covers("19001", "documents", "19")
    assert main.covers(LEFT[0], "documents", "38")
    assert watch.judgeable() is None


def test_the_outage_over_covers_the_units_nobody_answered_for_since_it_began() -> None:
    watch = WorkerWatch()
    watch.observe(True, (), at(0))
    watch.observe(False, A_UNITS, at(1))
    watch.observe(False, [*A_UNITS, *MOVED], at(2))  # not trusted yet when B is back
    (main,) = watch.observe(True, (), at(2.2))
    assert (main.start, main.end) == (at(0), at(2.2))
    assert all(main.covers(u, "documents", "38") for u in B_UNITS)
    assert watch.observe(True, (), at(3)) == []  # nothing since: no span


# --- the evaluator: on-call's view ----------------------------------------------------------


def evaluator() -> Evaluator:
    values: dict[str, Any] = {
        "alert_windows": ["day"],
        "alert_burn_enabled": False,
        "alert_silent_after_s": 3600,
        "alert_silent_lookback_days": 5,
    }
    ev = Evaluator(AlertsSettings(**values), WorkingCalendar(always=True), UnitDirectory(UNITS))
    ev.start_watching(T0 - timedelta(days=1))
    return ev


def book() -> AlertBook:
    ids = count()
    return AlertBook(new_id=lambda: f"id{next(ids)}")


def figure(unit: str) -> Figure:
    return Figure("document_signing", unit, "day", 99, 100, to_bp(0.9), 5, province=unit[:2])


def cycle(
    ev: Evaluator,
    alerts: AlertBook,
    now: datetime,
    answered: Iterable[str],
    last_seen: dict[tuple[str, str], datetime],
    complete: bool = False,
) -> list[Transition]:
    seen = Observation(ev.plan(alerts.open, now), [figure(u) for u in answered], complete)
    return alerts.observe(ev.verdicts(seen, alerts.open, last_seen, now), now)


def fired(transitions: Iterable[Transition]) -> list[str]:
    return [t.alert.key.unit for t in transitions if t.to_state is State.FIRING]


def resolved(transitions: Iterable[Transition]) -> list[str]:
    return [t.alert.key.unit for t in transitions if t.to_state is State.RESOLVED]


def publishing(now: datetime, *, but: Iterable[str] = ()) -> dict[tuple[str, str], datetime]:
    """Every unit sent a document at ``now``, but those of ``but``."""
    return {(u.code, "documents"): now for u in UNITS if u.code not in set(but)}


def test_a_moved_commune_silent_pages_one_threshold_after_its_last_event() -> None:
    ev, alerts = evaluator(), book()
    heard = publishing(T0)
    seen = cycle(ev, alerts, T0, [], heard, complete=True)
    for seconds in (2, 4, 6):  # B killed; the rebalance: B's units in nobody's answer
        seen += cycle(ev, alerts, T0 + timedelta(seconds=seconds), A_UNITS, heard)
    by_minute: dict[str, float] = {}
    for minutes in range(1, 181):  # A answers for the moved units from its next snapshot
        heard |= publishing(at(minutes), but=[MOVED[0], *LEFT])
        transitions = cycle(ev, alerts, at(minutes), [*A_UNITS, *MOVED], heard)
        by_minute |= {u: minutes for u in fired(transitions)}
        seen += transitions
    # Only the time nobody answered for it (6 s to 1 min) is left out of its silence.
    assert by_minute == {MOVED[0]: 61}
    # B's units nobody answers for are unknown: no page, whatever their last event.
    assert not set(fired(seen)) & set(LEFT)


def test_the_gap_of_a_moved_unit_is_not_its_silence() -> None:
    ev, alerts = evaluator(), book()
    heard = publishing(T0)
    cycle(ev, alerts, T0, [], heard, complete=True)
    seen: list[Transition] = []
    # A long rebalance: nobody answers for B's units for two hours (A is behind).
    for minutes in range(1, 121):
        heard |= publishing(at(minutes), but=B_UNITS)
        seen += cycle(ev, alerts, at(minutes), A_UNITS, heard)
    # A answers for the moved units; their backlog is still being counted, so the last
    # events it reports are still T0's: two hours, but no page from the gap.
    for seconds in range(0, 600, 2):
        now = at(121) + timedelta(seconds=seconds)
        heard |= publishing(now, but=B_UNITS)
        seen += cycle(ev, alerts, now, [*A_UNITS, *MOVED], heard)
    assert fired(seen) == []
    # Judged all the same: still not heard from an hour after A first answered for them,
    # they page, on a silence of their own.
    assert cycle(ev, alerts, at(180.9), [*A_UNITS, *MOVED], heard) == []
    assert fired(cycle(ev, alerts, at(181), [*A_UNITS, *MOVED], heard)) == MOVED


def test_the_gap_of_a_moved_unit_outlives_a_restart_of_the_alerts_service() -> None:
    ev, alerts = evaluator(), book()
    heard = publishing(T0) | {(MOVED[0], "documents"): at(-40)}
    cycle(ev, alerts, T0, [], heard, complete=True)
    for minutes in range(1, 30):  # the moved units in nobody's answer until 30
        cycle(ev, alerts, at(minutes), A_UNITS, heard)
    for minutes in range(30, 36):  # A answers for them: trusted, gap 0-30 kept
        assert cycle(ev, alerts, at(minutes), [*A_UNITS, *MOVED], heard) == []
    assert any(b.units == frozenset(MOVED) for b in ev.memory().blind)
    # The alerts service restarts at 40 (a deploy); B is still down.
    fresh = evaluator()
    fresh.recall(SilenceMemory.decode(ev.memory().encode()))
    alerts = AlertBook(list(alerts.open.values()))
    # 80 min since its last event, 30 of them nobody's: 50 min of silence, no page...
    assert cycle(fresh, alerts, at(40), [*A_UNITS, *MOVED], heard) == []
    assert cycle(fresh, alerts, at(49), [*A_UNITS, *MOVED], heard) == []
    # ...until its own silence reaches the threshold.
    assert fired(cycle(fresh, alerts, at(50), [*A_UNITS, *MOVED], heard)) == [MOVED[0]]


def test_a_firing_unit_missing_again_for_a_while_is_neither_resolved_nor_paged_again() -> None:
    ev, alerts = evaluator(), book()
    quiet = "19001"  # A's commune, silent since before the outage
    heard = publishing(T0, but=[quiet]) | {(quiet, "documents"): at(-10)}
    seen = cycle(ev, alerts, T0, [], heard, complete=True)
    for minutes in range(1, 181, 5):
        heard |= publishing(at(minutes), but=[quiet])
        # A second rebalance takes the quiet commune's partition away for ten minutes.
        answered = [u for u in A_UNITS if not (91 <= minutes <= 101 and u == quiet)]
        seen += cycle(ev, alerts, at(minutes), answered, heard)
    heard |= publishing(at(181), but=[quiet])
    seen += cycle(ev, alerts, at(181), [], heard, complete=True)  # B back
    seen += cycle(ev, alerts, at(186), [], heard, complete=True)
    assert fired(seen) == [quiet]
    assert resolved(seen) == [], "resolved with nothing received"
    assert not set(fired(seen)) & set(B_UNITS)


def test_an_open_alert_of_a_unit_nobody_answers_for_stays_as_it_is() -> None:
    ev, alerts = evaluator(), book()
    silent = LEFT[0]
    heard = publishing(T0, but=[silent]) | {(silent, "documents"): at(-120)}
    assert fired(cycle(ev, alerts, T0, [], heard, complete=True)) == [silent]
    for minutes in range(1, 181, 5):  # its partition is assigned to nobody
        heard |= publishing(at(minutes), but=LEFT)
        heard[(silent, "documents")] = at(minutes)  # judged, this would resolve it
        assert cycle(ev, alerts, at(minutes), [*A_UNITS, *MOVED], heard) == []
    assert [a.state for a in alerts.open.values()] == [State.FIRING]


def test_a_worker_span_and_the_memory_row_read_back_with_their_units() -> None:
    span = c.Blind(at(0), at(1), units=frozenset(MOVED))
    memory = SilenceMemory((span, c.Blind(at(0), at(2), frozenset(A_UNITS))), heard={})
    assert SilenceMemory.decode(memory.encode()) == memory
    # A row written before spans of some units alone covered every unit but ``seen``.
    old = (
        b'{"version": 1, "until": null, "heard": [], "quiet": [], "blind": [{"start": '
        b'"2026-12-07T09:00:00+07:00", "end": "2026-12-07T10:00:00+07:00", "seen": ["19"],'
        b' "province": "", "family": ""}]}'
    )
    (recalled,) = SilenceMemory.decode(old).blind
    assert recalled.units == frozenset()
    assert recalled.covers("38000", "documents", "38")
    assert not recalled.covers("19", "documents", "19")
