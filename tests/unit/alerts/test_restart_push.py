"""What the alerts service pushes to Alertmanager just after a start (``_may_push``).

Restored alerts carry the figures they were stored with; until each firing one is judged
again, a cycle pushes only news: a transition, or an acknowledgement's silence (review
57; an acknowledgement made in the first minute waited for the resend interval).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.alerts.directory import UnitDirectory
from services.alerts.model import Alert, AlertKey, State
from services.alerts.service import AlertsService
from services.alerts.settings import AlertsSettings
from services.common.calendar import WorkingCalendar
from services.common.unit_info import UnitInfo

T0 = datetime(2026, 12, 7, 2, tzinfo=UTC)


def restarted() -> AlertsService:
    service = AlertsService(
        AlertsSettings(alertmanager_url="http://am.invalid", alert_resend_s=60),
        directory=UnitDirectory([UnitInfo("c1", "Xã 1", "Commune 1", "commune", "19")]),
        calendar=WorkingCalendar(always=True),
        families={},
    )
    key = AlertKey("KpiBelowTarget", "document_signing", "c1", "day")
    stored = T0 - timedelta(hours=3)  # last judged before the restart
    service.state.book.open[key] = Alert(
        "a1", key, State.FIRING, "critical", "19", {}, {}, {}, stored, stored, fired_at=stored
    )
    service._connected_at = T0
    service.clock = lambda: T0 + timedelta(seconds=10)
    return service


def test_restored_alerts_wait_to_be_judged_again_unless_there_is_news() -> None:
    service = restarted()
    assert not service._may_push([])
    service.delivery.request_push(acknowledgement=True)
    assert service._may_push([])  # an acknowledgement's silence goes out at once


def test_the_resend_interval_since_start_ends_the_wait() -> None:
    service = restarted()
    service.clock = lambda: T0 + timedelta(seconds=60)
    assert service._may_push([])
