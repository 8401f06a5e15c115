"""Review 35: defects left by today's fixes, both fixed (each was a strict xfail). The
Alertmanager check uses review 34's harness (tests/integration/test_review34_deploy.py):
the production deploy/alertmanager/alertmanager.yml, unchanged."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.alerts.conditions import BELOW, SILENT
from services.alerts.model import State, Transition
from services.common.calendar import VN_TZ
from tests.integration.test_review34_deploy import (  # noqa: F401 (the fixture)
    ProductionAlertmanager,
    alertmanager,
    labels,
)
from tests.unit.alerts.test_review31_alerts import evaluator, new_book, rejections_cycle

T0 = datetime(2026, 11, 23, 10, tzinfo=VN_TZ)


def test_a_rejections_alert_does_not_resolve_just_because_ingest_restarted() -> None:
    ev, book = evaluator(), new_book()
    history: list[Transition] = []
    # k1 has 80 % of its events rejected, 50 a minute, for ten minutes: firing.
    for minute in range(10):
        counters = {"k1": {"accepted": 10.0 * (minute + 1), "rejected": 40.0 * (minute + 1)}}
        history += rejections_cycle(ev, book, counters, T0 + timedelta(minutes=minute))
    assert [a.state for a in book.open.values()] == [State.FIRING]
    # Ingest restarts at 10:10: its first scrape holds no counter of k1 yet (k1's next
    # events, still 80 % rejected, arrive a few seconds later).
    after = rejections_cycle(ev, book, {"k2": {"accepted": 3.0}}, T0 + timedelta(minutes=10))
    after += rejections_cycle(
        ev, book, {"k1": {"accepted": 10.0, "rejected": 40.0}, "k2": {"accepted": 6.0}},
        T0 + timedelta(minutes=11),
    )  # fmt: skip
    # Up to the restart k1 was rejected, and is again after it: not one window passed
    # without its events, so its alert neither resolves nor pages a second time.
    assert [(t.to_state, t.alert.annotations["summary_en"]) for t in after] == []


def fired_before_the_upgrade(label_set: dict[str, str]) -> dict[str, str]:
    """An alert's labels as a release before 2026-12-05 fired it: no ``family``. Labels are
    fixed at firing and stored (services/alerts/lifecycle.py ``_move``, the ``alerts``
    table), so the new release keeps posting them so until the alert resolves."""
    return {k: v for k, v in label_set.items() if k != "family"}


def test_a_meetings_silence_fired_before_the_upgrade_does_not_mute_document_pages(
    alertmanager: ProductionAlertmanager,  # noqa: F811
) -> None:
    silent_meetings = fired_before_the_upgrade(
        labels(SILENT, "meetings", "working-hours", "warning")
    )
    signing_low = fired_before_the_upgrade(labels(BELOW, "document_signing", "day", "critical"))
    alertmanager.post(silent_meetings, signing_low)
    # The commune signs its documents; its signing page must reach on-call.
    assert not alertmanager.inhibited(signing_low)
