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


def test_a_graver_breach_escalates_at_once_and_a_milder_one_never_downgrades() -> None:
    b = book()
    b.observe([verdict(Status.BREACH, "warning", hold=0)], T0)
    first = b.open[KEY]
    ts = b.observe([verdict(Status.BREACH, "critical")], T0 + timedelta(minutes=1))
    # The ticket ends saying why (no all-clear) and a page fires in the same evaluation,
    # without a new hold: its breach has lasted already.
    assert [(t.alert.id, t.to_state) for t in ts] == [
        (first.id, State.RESOLVED),
        (b.open[KEY].id, State.PENDING),
        (b.open[KEY].id, State.FIRING),
    ]
    assert ts[0].alert.labels["severity"] == "warning"
    assert ts[0].alert.annotations["escalated_to"] == "critical"
    assert "Escalated to critical" in ts[0].alert.annotations["summary_en"]
    assert b.open[KEY].labels["severity"] == "critical" and b.open[KEY].id != first.id
    assert b.open[KEY].pending_since == first.pending_since == T0  # the breach's start
    assert b.open[KEY].fired_at == T0 + timedelta(minutes=1)  # the page's
    # Easing back to a warning's figures keeps the page (no page-ticket-page flapping).
    assert b.observe([verdict(Status.BREACH, "warning")], T0 + timedelta(minutes=2)) == []
    assert b.open[KEY].labels["severity"] == "critical"


def test_a_pending_alert_takes_its_severity_when_it_fires() -> None:
    b = book()
    b.observe([verdict(Status.BREACH, "warning")], T0)
    (t,) = b.observe([verdict(Status.BREACH, "critical")], T0 + timedelta(seconds=300))
    assert t.to_state is State.FIRING and t.alert.labels["severity"] == "critical"


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


def test_an_escalated_alert_is_told_resolved_with_its_successor_not_before() -> None:
    """Alertmanager's inhibition (a critical covers the warning of its unit and KPI)
    mutes a resolved warning as well as a firing one: resolved at the escalation, the
    team's ticket never heard it. It is sent as firing while the page fires (muted), and
    resolved with it (services/alerts/delivery.py, ``Delivery.held``; review 58)."""
    import httpx

    from services.alerts.delivery import Delivery
    from services.alerts.settings import AlertsSettings

    settings = AlertsSettings(alertmanager_url="http://am")
    delivery = Delivery(settings, httpx.AsyncClient(), None, lambda: T0)  # type: ignore[arg-type]
    b = book()
    delivery.note(b.observe([verdict(Status.BREACH, "warning", hold=0)], T0))
    escalated = b.observe([verdict(Status.BREACH, "critical")], T0 + timedelta(minutes=1))
    delivery.note(escalated)
    ticket = escalated[0].alert

    def sent(at: datetime) -> dict[str, tuple[str, str]]:
        batch = delivery.alertmanager_batch(b.open.values(), at)
        return {p["annotations"]["alert_id"]: (p["labels"]["severity"], p["endsAt"]) for p in batch}

    at = T0 + timedelta(minutes=30)
    during = sent(at)
    assert during[ticket.id][0] == "warning" and during[ticket.id][1] > at.isoformat()
    assert delivery.resolved.delivered(at, delivery.held(b.open.values())) == []
    # The page clears: both are told resolved, the ticket with its own end.
    done = b.observe([verdict(Status.CLEAR)], T0 + timedelta(minutes=40))
    delivery.note(done)
    later = T0 + timedelta(minutes=41)
    after = sent(later)
    assert after[ticket.id][1] == ticket.resolved_at.isoformat()  # type: ignore[union-attr]
    assert after[done[0].alert.id][1] == done[0].alert.resolved_at.isoformat()  # type: ignore[union-attr]
    assert set(delivery.resolved.delivered(later, delivery.held(b.open.values()))) == {
        ticket.id, done[0].alert.id,
    }  # fmt: skip
