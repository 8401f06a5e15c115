"""KpiBudgetBurn's keep_firing_for: a firing burn alert resolves only after its pair has
stopped burning for EGOV_ALERT_BURN_KEEP_FIRING_S without a break (docs/alerts.md).

Driven through the real evaluator and lifecycle with an injected time, one slow cycle
(the burn windows read) every EGOV_ALERT_BURN_INTERVAL_S (30 s).
"""

from dataclasses import replace
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

from services.alerts import conditions as c
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.lifecycle import AlertBook
from services.alerts.model import AlertKey, State, Transition
from services.alerts.settings import AlertsSettings
from services.alerts.spool import Spool, encode
from services.alerts.state import keep_holds
from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.figures import Figure
from services.common.rates import to_bp

T0 = datetime(2026, 11, 23, 10, tzinfo=VN_TZ)
KEY = AlertKey(c.BURN, "meeting_online", "c1", "6h")  # at 90 % only the slow rule can fire
BURNING = (400, 1000)  # 60 % missed: 6x a 10 % budget is 60 %, so it burns, exactly
SLOWING = (500, 1000)  # 50 % missed: 5x, under the factor


def evaluator(**settings: Any) -> Evaluator:
    values: dict[str, Any] = {
        "alert_burn_for_s": 120,
        "alert_burn_keep_firing_s": 600,
        "alert_burn_interval_s": 30,
    } | settings
    return Evaluator(AlertsSettings(**values), WorkingCalendar(always=True), UnitDirectory([]))


def burn(counts: tuple[int, int], target: float = 0.90) -> list[Figure]:
    num, den = counts
    return [
        Figure("meeting_online", "c1", w, num, den, to_bp(target), 5, "Xã Một", province="19")
        for w in c.BURN_WINDOWS
    ]


def cycle(ev: Evaluator, book: AlertBook, figures: list[Figure], at: datetime) -> list[Transition]:
    plan = ev.plan(book.open, at)
    assert plan.slow  # every call here reads the burn windows
    verdicts = ev.verdicts(Observation(plan, figures, True), book.open, {}, at)
    return book.observe(verdicts, at)


def new_book() -> AlertBook:
    ids = count()
    return AlertBook(new_id=lambda: f"id{next(ids)}")


def firing(ev: Evaluator) -> tuple[AlertBook, list[Transition], datetime]:
    """A firing slow-burn alert; returns the book, its transitions, and the next cycle."""
    book = new_book()
    history = cycle(ev, book, burn(BURNING), T0)
    history += cycle(ev, book, burn(BURNING), T0 + timedelta(seconds=120))
    assert [t.to_state for t in history] == [State.PENDING, State.FIRING]
    return book, history, T0 + timedelta(seconds=150)


def test_a_firing_burn_alert_stays_firing_until_the_pair_has_not_burned_for_the_hold() -> None:
    ev = evaluator()
    book, _, t1 = firing(ev)
    assert cycle(ev, book, burn(SLOWING), t1) == []
    held = book.open[KEY]
    assert held.state is State.FIRING and held.clear_since == t1
    # Its figures and wording are the current ones, as Alertmanager is sent them.
    assert held.values["numerator"] == 500 and "is 5 times" in held.annotations["summary_en"]
    for s in range(30, 600, 30):
        assert cycle(ev, book, burn(SLOWING), t1 + timedelta(seconds=s)) == [], s
    (resolved,) = cycle(ev, book, burn(SLOWING), t1 + timedelta(seconds=600))
    assert (resolved.from_state, resolved.to_state) == (State.FIRING, State.RESOLVED)
    assert KEY not in book.open


def test_a_held_alert_says_it_stopped_burning_and_when_it_ends() -> None:
    """Its figures alone (5 times, alert at 6) under "is falling fast" misled the reader."""
    ev = evaluator()
    book, _, t1 = firing(ev)  # t1 = 10:02:30 in Vietnam, 23 Nov 2026
    cycle(ev, book, burn(SLOWING), t1)
    summary = book.open[KEY].annotations
    assert summary["summary_en"].endswith(
        " No longer falling fast since 23 Nov 2026 10:02; resolves at 23 Nov 2026 10:12"
        " unless it falls fast again."
    )
    assert "Đã ngừng giảm nhanh từ 23/11/2026 10:02" in summary["summary_vi"]
    assert summary["summary"] == summary["summary_en"]
    assert summary["description"] == f"{summary['summary_vi']}\n{summary['summary_en']}"
    # Once per summary, however many evaluations the hold lasts; gone when it burns again.
    cycle(ev, book, burn((0, 0)), t1 + timedelta(seconds=30))  # HOLD
    cycle(ev, book, burn(SLOWING), t1 + timedelta(seconds=60))
    assert book.open[KEY].annotations["summary_en"].count("No longer falling fast") == 1
    cycle(ev, book, burn(BURNING), t1 + timedelta(seconds=90))
    assert "No longer" not in book.open[KEY].annotations["summary_en"]


def test_burning_again_inside_the_hold_keeps_it_firing_and_starts_the_hold_again() -> None:
    ev = evaluator()
    book, history, t1 = firing(ev)
    fired = book.open[KEY]
    history += cycle(ev, book, burn(SLOWING), t1)
    history += cycle(ev, book, burn(BURNING), t1 + timedelta(seconds=300))  # burns again
    assert book.open[KEY] is fired and fired.state is State.FIRING and fired.clear_since is None
    t2 = t1 + timedelta(seconds=330)
    history += cycle(ev, book, burn(SLOWING), t2)
    # Past the first hold's end (t1 + 600 s), but the hold started again at t2.
    for s in range(30, 600, 30):
        history += cycle(ev, book, burn(SLOWING), t2 + timedelta(seconds=s))
    assert [t.to_state for t in history] == [State.PENDING, State.FIRING]  # no new page
    assert book.open[KEY].clear_since == t2
    (resolved,) = cycle(ev, book, burn(SLOWING), t2 + timedelta(seconds=600))
    assert resolved.alert.id == fired.id and resolved.to_state is State.RESOLVED


def test_too_little_volume_inside_the_hold_neither_ends_nor_restarts_it() -> None:
    ev = evaluator()
    book, _, t1 = firing(ev)
    cycle(ev, book, burn(SLOWING), t1)
    assert cycle(ev, book, burn((0, 0)), t1 + timedelta(seconds=300)) == []  # HOLD
    assert book.open[KEY].clear_since == t1
    (resolved,) = cycle(ev, book, burn(SLOWING), t1 + timedelta(seconds=600))
    assert resolved.to_state is State.RESOLVED


def test_a_hold_of_zero_resolves_at_once_as_before() -> None:
    ev = evaluator(alert_burn_keep_firing_s=0)
    book, _, t1 = firing(ev)
    (resolved,) = cycle(ev, book, burn(SLOWING), t1)
    assert (resolved.from_state, resolved.to_state) == (State.FIRING, State.RESOLVED)


def test_a_target_that_no_longer_lets_the_rule_fire_resolves_at_once() -> None:
    ev = evaluator()
    book, _, t1 = firing(ev)
    cycle(ev, book, burn(SLOWING), t1)  # held
    # 6x of a 20 % budget is beyond 100 % missed: the slow rule cannot fire at 80 %.
    (resolved,) = cycle(ev, book, burn(BURNING, target=0.80), t1 + timedelta(seconds=30))
    assert (resolved.from_state, resolved.to_state) == (State.FIRING, State.RESOLVED)
    # Even with no hold begun (the pair still burning at the old target's figures).
    ev = evaluator()
    book, _, t1 = firing(ev)
    (resolved,) = cycle(ev, book, burn(BURNING, target=0.80), t1)
    assert resolved.to_state is State.RESOLVED


def test_a_pending_burn_alert_that_stops_burning_is_still_cancelled_at_once() -> None:
    ev = evaluator()
    book = new_book()
    (opened,) = cycle(ev, book, burn(BURNING), T0)
    assert opened.to_state is State.PENDING
    (cancelled,) = cycle(ev, book, burn(SLOWING), T0 + timedelta(seconds=30))
    assert (cancelled.from_state, cancelled.to_state) == (State.PENDING, State.CANCELLED)
    assert KEY not in book.open


def test_a_restart_keeps_the_hold_through_the_state_file(tmp_path: Path) -> None:
    ev = evaluator()
    book, _, t1 = firing(ev)
    cycle(ev, book, burn(SLOWING), t1)
    assert book.holds_changed  # the service saves the file after this cycle
    spool = Spool(tmp_path / "state.json")
    spool.write(encode(list(book.open.values()), [], t1))
    spooled = spool.read()
    assert spooled is not None and spooled.open[0].clear_since == t1
    # PostgreSQL's row (written at the firing) has no hold: it takes the file's.
    row = replace(book.open[KEY], clear_since=None)
    keep_holds(spooled.open, [row])
    assert row.clear_since == t1
    restarted = AlertBook([row])
    assert cycle(evaluator(), restarted, burn(SLOWING), t1 + timedelta(seconds=570)) == []
    (resolved,) = cycle(evaluator(), restarted, burn(SLOWING), t1 + timedelta(seconds=600))
    assert resolved.to_state is State.RESOLVED
