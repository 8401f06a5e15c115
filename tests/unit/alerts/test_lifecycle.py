"""The alert state machine: pending, firing after the duration, hysteresis, one open."""

from datetime import UTC, datetime, timedelta
from itertools import count

from services.alerts.lifecycle import AlertBook
from services.alerts.model import AlertKey, State, Status, Verdict

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
KEY = AlertKey("KpiBelowTarget", "document_signing", "u1", "day")


def verdict(status: Status, severity: str = "warning", hold: float = 300) -> Verdict:
    return Verdict(KEY, status, severity, "19", {"ratio": 0.5}, "vi", "en", hold)  # type: ignore[arg-type]


def book() -> AlertBook:
    ids = count()
    return AlertBook(new_id=lambda: f"id{next(ids)}")


def states(ts: list) -> list[State]:  # type: ignore[type-arg]
    return [t.to_state for t in ts]


def test_fires_only_after_the_duration_of_continuous_breach() -> None:
    b = book()
    assert states(b.observe([verdict(Status.BREACH)], T0)) == [State.PENDING]
    assert b.observe([verdict(Status.BREACH)], T0 + timedelta(seconds=299)) == []
    assert states(b.observe([verdict(Status.BREACH)], T0 + timedelta(seconds=300))) == [
        State.FIRING
    ]


def test_a_break_before_the_duration_cancels_without_firing() -> None:
    b = book()
    b.observe([verdict(Status.BREACH)], T0)
    assert states(b.observe([verdict(Status.HOLD)], T0 + timedelta(seconds=10))) == [
        State.CANCELLED
    ]
    assert KEY not in b.open


def test_firing_survives_hold_and_unknown_and_resolves_on_clear() -> None:
    b = book()
    b.observe([verdict(Status.BREACH, hold=0)], T0)
    assert b.open[KEY].state is State.FIRING
    assert b.observe([verdict(Status.HOLD)], T0 + timedelta(minutes=1)) == []
    assert b.observe([], T0 + timedelta(minutes=2)) == []  # no figure: unknown
    (t,) = b.observe([verdict(Status.CLEAR)], T0 + timedelta(minutes=3))
    assert t.to_state is State.RESOLVED and t.from_state is State.FIRING
    assert KEY not in b.open


def test_severity_is_fixed_when_the_alert_fires() -> None:
    b = book()
    b.observe([verdict(Status.BREACH, "warning", hold=0)], T0)
    b.observe([verdict(Status.BREACH, "critical")], T0 + timedelta(minutes=1))
    assert b.open[KEY].labels["severity"] == "warning"


def test_a_new_breach_after_resolution_is_a_new_alert() -> None:
    b = book()
    first = b.observe([verdict(Status.BREACH, hold=0)], T0)[0].alert.id
    b.observe([verdict(Status.CLEAR)], T0 + timedelta(minutes=1))
    again = b.observe([verdict(Status.BREACH, hold=0)], T0 + timedelta(minutes=2))[0].alert.id
    assert again != first


def test_loaded_open_alerts_continue_rather_than_reopen() -> None:
    b = book()
    b.observe([verdict(Status.BREACH, hold=0)], T0)
    restarted = AlertBook(b.open.values())
    assert restarted.observe([verdict(Status.BREACH)], T0 + timedelta(minutes=5)) == []
