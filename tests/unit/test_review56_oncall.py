"""Review 56 (fixed 2026-12-05): what an on-call person or a province operations center
would hit (pure unit).

1. Severity was fixed when an alert fired (services/alerts/lifecycle.py), and ``info`` is
   routed to the "null" receiver: a day alert that fired as ``info`` in the morning (a few
   points under on a thin volume) stayed ``info`` all day however far the unit fell. A
   graver breach now escalates: the milder alert resolves, saying so, and one of the
   graver severity fires at once.
2. The same: a ticket (warning) never became a page when the rate collapsed, and an
   acknowledged warning stayed silenced.
3. Every alert's ``runbook`` annotation was the repository path ``docs/runbooks.md#...``,
   which no notification can open: it is now the alerts service's ``/runbooks`` page
   (services/alerts/runbooks.py), or ``EGOV_ALERT_RUNBOOK_URL``.

The integration file tests/integration/alerts/test_review56_oncall.py holds the restart
and IngestRejectionsHigh-routing findings (real PostgreSQL).
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest

from services.alerts import conditions as c
from services.alerts.alertmanager import payload
from services.alerts.lifecycle import AlertBook
from services.alerts.model import Alert, State
from services.alerts.settings import AlertsSettings
from services.common.figures import Figure
from services.common.rates import to_bp

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Monday 08:00 in Vietnam


def fig(num: int, den: int, *, target: float = 0.95, window: str = "day") -> Figure:
    return Figure(
        "document_signing", "05911", window, num, den, to_bp(target), 20,
        unit_name="Xã Thăng Long", province="38",
    )  # fmt: skip


def book() -> AlertBook:
    ids = count()
    return AlertBook(new_id=lambda: f"id{next(ids)}")


def observe(b: AlertBook, f: Figure, at: datetime) -> None:
    b.observe(c.kpi_below_target([f], [f.window], 200, 0.0, tracked=set(b.open)), at)


def firing_severities(b: AlertBook) -> set[str]:
    return {
        a.labels["severity"]
        for a in b.open.values()
        if a.state is State.FIRING and a.key.unit == "05911" and a.key.kpi == "document_signing"
    }


def route(*labels: str) -> str:
    """The receiver the production routes send an alert of ``labels`` to (amtool)."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed")
    out = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


# --- 1, 2: severity fixed at firing -------------------------------------------------


def test_premise_the_morning_breach_is_info_and_info_goes_nowhere() -> None:
    assert c.below_target_severity(fig(19, 21)) == "info"
    assert c.below_target_severity(fig(100, 400)) == "critical"
    assert route("alertname=KpiBelowTarget", "severity=info", "province=38") == "null"


def test_an_info_alert_that_collapses_reaches_someone() -> None:
    b = book()
    observe(b, fig(19, 21), T0)  # 08:00: 90.48 % of 21, info, fires (duration 0 here)
    assert firing_severities(b) == {"info"}
    observe(b, fig(100, 400), T0 + timedelta(hours=7))  # 15:00: 25 % of 400
    assert firing_severities(b) - {"info"}, "no firing alert on this unit reaches anyone"


def test_a_warning_that_collapses_pages_on_call() -> None:
    b = book()
    observe(b, fig(88, 100), T0)  # 7 points under on 5x the minimum volume: a ticket
    assert firing_severities(b) == {"warning"}
    observe(b, fig(100, 1000), T0 + timedelta(hours=6))
    assert "critical" in firing_severities(b)


# --- 4: runbook links -----------------------------------------------------------------


def test_runbook_annotation_is_a_link_on_call_can_open() -> None:
    alert = Alert(
        id="a1", key=c.AlertKey(c.BELOW, "document_signing", "05911", "day"),
        state=State.FIRING, severity="critical", province="38", labels={}, annotations={},
        values={}, pending_since=T0, updated_at=T0, fired_at=T0,
    )  # fmt: skip
    settings = AlertsSettings(alerts_public_url="http://alerts.example")
    sent = payload(alert, T0, timedelta(minutes=4), "http://alerts.example", settings.runbooks_url)
    link = sent["annotations"]["runbook"]
    assert link == "http://alerts.example/runbooks#kpibelowtarget", link
    site = AlertsSettings(alert_runbook_url="https://ioc.example.vn/runbooks.html")
    assert site.runbooks_url == "https://ioc.example.vn/runbooks.html"
