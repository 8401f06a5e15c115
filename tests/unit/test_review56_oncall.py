"""Review 56: what an on-call person or a province operations center would hit (pure unit).

Findings, each a strict xfail below (it fails today for the reason given, and passes
once the defect is fixed):

1. ``test_an_info_alert_that_collapses_reaches_someone`` — severity is fixed when an
   alert fires (services/alerts/lifecycle.py ``_move``/``_refresh``), and ``info`` is
   routed to the "null" receiver (deploy/alertmanager/alertmanager.yml). A day alert
   that fired as ``info`` in the morning (a few points under on a thin volume) stays
   ``info`` all day however far the unit falls: 25 % on 20x the minimum volume notifies
   nobody, and the day window (the only one that can page on today's collapse) is muted.
2. ``test_a_warning_that_collapses_pages_on_call`` — the same fixed severity: a ticket
   (warning, 12 h repeat, team receiver) never becomes a page when the rate collapses
   to 10 % on a large volume; an acknowledged warning stays silenced for 24 h too.
3. ``test_runbook_annotation_is_a_link_on_call_can_open`` — every alert's ``runbook``
   annotation is the repository path ``docs/runbooks.md#kpibelowtarget``
   (services/alerts/alertmanager.py ``runbook``; same in egov-health.yml): not a URL,
   so the link in a notification (or Alertmanager's UI, which resolves it against its
   own host) leads nowhere.

The integration file tests/integration/alerts/test_review56_oncall.py holds the
restart and IngestRejectionsHigh-routing findings (real PostgreSQL).
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


@pytest.mark.xfail(
    strict=True,
    reason="the runbook annotation is a repository path (docs/runbooks.md#...), not a URL "
    "a notification or Alertmanager's UI can open",
)
def test_runbook_annotation_is_a_link_on_call_can_open() -> None:
    alert = Alert(
        id="a1", key=c.AlertKey(c.BELOW, "document_signing", "05911", "day"),
        state=State.FIRING, severity="critical", province="38", labels={}, annotations={},
        values={}, pending_since=T0, updated_at=T0, fired_at=T0,
    )  # fmt: skip
    link = payload(alert, T0, timedelta(minutes=4), "http://alerts.example")["annotations"][
        "runbook"
    ]
    assert link.startswith(("http://", "https://")), link
