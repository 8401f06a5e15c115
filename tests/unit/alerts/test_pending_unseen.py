"""A pending alert fires only on a breach seen to last ``EGOV_ALERT_FOR_S`` without a
break: one whose figures are missing from a cycle that read its window (its worker did
not answer) is cancelled, and the next breach seen opens it again. Until 2026-12-05 a
worker back from an outage longer than the duration fired every pending alert it owned at
its first answer, on figures nobody had watched. Real evaluator and lifecycle, injected
time."""

from datetime import datetime, timedelta
from itertools import count
from typing import Any

from services.alerts import conditions as c
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.lifecycle import AlertBook
from services.alerts.model import AlertKey, State, Transition
from services.alerts.settings import AlertsSettings
from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.figures import Figure
from services.common.rates import to_bp

T0 = datetime(2026, 11, 23, 10, tzinfo=VN_TZ)
DAY = AlertKey(c.BELOW, "document_signing", "01843", "day")
MONTH = AlertKey(c.BELOW, "document_signing", "01843", "month")
SLOW_BURN = AlertKey(c.BURN, "meeting_online", "01843", "6h")


def evaluator(**settings: Any) -> Evaluator:
    values: dict[str, Any] = {
        "alert_for_s": 300,
        "alert_burn_for_s": 120,
        "alert_burn_interval_s": 30,
        "alert_interval_s": 2,
    } | settings
    return Evaluator(AlertsSettings(**values), WorkingCalendar(always=True), UnitDirectory([]))


def below(window: str, num: int = 90, den: int = 100) -> Figure:
    """Phường Bắc Kạn's signing rate at 90 % against the 100 % target: a breach."""
    return Figure("document_signing", DAY.unit, window, num, den, to_bp(1.0), 5, province="19")


def burning() -> list[Figure]:
    """60 % of meetings not online against a 90 % target: 6x the budget, the slow rule."""
    return [
        Figure("meeting_online", SLOW_BURN.unit, w, 400, 1000, to_bp(0.90), 5, province="19")
        for w in c.BURN_WINDOWS
    ]


def book() -> AlertBook:
    ids = count()
    return AlertBook(new_id=lambda: f"id{next(ids)}")


def cycle(
    ev: Evaluator, alerts: AlertBook, figures: list[Figure], at: datetime, complete: bool = True
) -> list[Transition]:
    plan = ev.plan(alerts.open, at)
    seen = Observation(plan, [f for f in figures if f.window in plan.windows], complete)
    return alerts.observe(ev.verdicts(seen, alerts.open, {}, at), at)


def test_a_pending_alert_unseen_through_an_outage_does_not_fire_on_the_return() -> None:
    ev, alerts = evaluator(), book()
    assert [t.to_state for t in cycle(ev, alerts, [below("day")], T0)] == [State.PENDING]
    # The worker owning the unit stops answering for ten minutes (twice the duration).
    (cancelled,) = cycle(ev, alerts, [], T0 + timedelta(seconds=2), complete=False)
    assert (cancelled.from_state, cancelled.to_state) == (State.PENDING, State.CANCELLED)
    assert cancelled.values["unseen"] is True and cancelled.values["numerator"] == 90
    for s in range(4, 600, 60):
        assert cycle(ev, alerts, [], T0 + timedelta(seconds=s), complete=False) == []
    # Back, still breaching: pending again from now, not fired.
    back = T0 + timedelta(seconds=600)
    (opened,) = cycle(ev, alerts, [below("day")], back)
    assert opened.to_state is State.PENDING and alerts.open[DAY].pending_since == back
    assert cycle(ev, alerts, [below("day")], back + timedelta(seconds=298)) == []
    (fired,) = cycle(ev, alerts, [below("day")], back + timedelta(seconds=300))
    assert fired.to_state is State.FIRING


def test_a_pending_alert_whose_window_was_not_read_stays_pending() -> None:
    """Month and year are read on slow cycles only: a fast cycle knows nothing of them."""
    ev, alerts = evaluator(), book()
    transitions = cycle(ev, alerts, [below("day"), below("month")], T0)  # a slow cycle
    assert {t.alert.key for t in transitions} == {DAY, MONTH}
    at = T0 + timedelta(seconds=2)
    assert not ev.plan(alerts.open, at).slow
    assert cycle(ev, alerts, [below("day")], at) == []
    assert alerts.open[MONTH].state is State.PENDING and alerts.open[MONTH].pending_since == T0


def test_a_firing_alert_unseen_stays_firing() -> None:
    ev, alerts = evaluator(alert_for_s=0), book()
    cycle(ev, alerts, [below("day")], T0)
    assert alerts.open[DAY].state is State.FIRING
    assert cycle(ev, alerts, [], T0 + timedelta(seconds=2), complete=False) == []
    assert alerts.open[DAY].state is State.FIRING


def test_a_pending_burn_alert_unseen_on_a_burn_read_is_cancelled_not_on_a_fast_cycle() -> None:
    ev, alerts = evaluator(), book()
    assert [t.to_state for t in cycle(ev, alerts, burning(), T0)] == [State.PENDING]
    fast = T0 + timedelta(seconds=2)
    assert not ev.plan(alerts.open, fast).slow
    assert cycle(ev, alerts, [], fast, complete=False) == []  # burn windows not read
    (cancelled,) = cycle(ev, alerts, [], T0 + timedelta(seconds=30), complete=False)
    assert cancelled.alert.key == SLOW_BURN and cancelled.to_state is State.CANCELLED
