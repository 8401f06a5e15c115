"""Ingest away or refusing everyone is the pipeline's outage, not the units' (review 77).

Until 2026-12-06 only a metrics worker not answering made the alerts service blind: three
hours without ingest paged UnitSilent for every province and commune, and dossiers
resolved on time whose events waited at the publisher, counted open overdue by the
workers' sweep, paged "on-time resolution falling fast". Real evaluator and lifecycle,
injected time (services/alerts/pipeline.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from typing import Any

import pytest
import yaml

from services.alerts import conditions as c
from services.alerts import pipeline
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.lifecycle import AlertBook
from services.alerts.model import AlertKey, State, Transition
from services.alerts.settings import AlertsSettings
from services.alerts.silence_memory import SilenceMemory
from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.figures import Figure
from services.common.rates import to_bp
from services.common.unit_info import UnitInfo

T0 = datetime(2026, 12, 7, 9, tzinfo=VN_TZ)
PROVINCES = ("19", "38")
UNITS = [UnitInfo(p, f"Tỉnh {p}", f"Province {p}", "province", p) for p in PROVINCES] + [
    UnitInfo(f"{p}{i:03d}", f"Xã {p}{i:03d}", f"Commune {p}{i:03d}", "commune", p, p)
    for p in PROVINCES
    for i in range(3)
]
ON_TIME = AlertKey(c.BELOW, "dossier_on_time", "19000", "day")
SIGNING = AlertKey(c.BELOW, "document_signing", "19000", "day")
FAST_BURN = AlertKey(c.BURN, "dossier_on_time", "19000", "1h")


def evaluator(**settings: Any) -> Evaluator:
    values: dict[str, Any] = {
        "alert_windows": ["day"],
        "alert_for_s": 0,
        "alert_burn_for_s": 0,
        "alert_silent_after_s": 3600,
        "alert_silent_lookback_days": 5,
    } | settings
    ev = Evaluator(AlertsSettings(**values), WorkingCalendar(always=True), UnitDirectory(UNITS))
    ev.start_watching(T0 - timedelta(hours=1))
    return ev


def book() -> AlertBook:
    ids = count()
    return AlertBook(new_id=lambda: f"id{next(ids)}")


def figure(kpi: str, window: str, num: int, den: int, target: float) -> Figure:
    return Figure(kpi, "19000", window, num, den, to_bp(target), 10, province="19")


def overdue() -> list[Figure]:
    """Twenty dossiers open overdue at 19000 (0 of 20 on time), in every window."""
    return [figure("dossier_on_time", w, 0, 20, 0.95) for w in ("day", *c.BURN_WINDOWS)]


def unsigned() -> list[Figure]:
    return [figure("document_signing", "day", 80, 100, 1.0)]


def scrape(accepted: float, unavailable: float) -> c.IngestScrape:
    return c.IngestScrape({"k1": {"accepted": accepted, "unavailable": unavailable}})


def cycle(
    ev: Evaluator,
    alerts: AlertBook,
    at: datetime,
    figures: list[Figure] = (),  # type: ignore[assignment]
    last_seen: dict[tuple[str, str], datetime] | None = None,
    *,
    down: bool = False,
    ingest: c.IngestScrape | None = None,
) -> list[Transition]:
    plan = ev.plan(alerts.open, at)
    seen = Observation(plan, [f for f in figures if f.window in plan.windows], True, ingest, down)
    return alerts.observe(ev.verdicts(seen, alerts.open, last_seen or {}, at), at)


def fired(transitions: list[Transition]) -> list[AlertKey]:
    return [t.alert.key for t in transitions if t.to_state is State.FIRING]


# --- the signal ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counted", "expected"),
    [
        ({"k1": {"unavailable": 20.0}, "k2": {"unavailable": 3.0}}, True),
        ({"k1": {"unavailable": 20.0}, "k2": {"accepted": 1.0}}, False),
        ({"k1": {"accepted": 0.0, "unavailable": 0.0, "rejected": 4.0}}, None),
        ({}, None),
    ],
)
def test_refused_everyone_needs_503s_and_no_acceptance(
    counted: c.Counters, expected: bool | None
) -> None:
    assert pipeline.refused_everyone(counted) is expected


def test_the_watch_is_blind_once_ingest_refuses_everyone_for_a_minute() -> None:
    watch, at = pipeline.IngestWatch(), T0
    assert watch.blind(False, scrape(10, 0), at) is False  # the baseline
    # Only 503s since: a step of it is no outage (one publisher's batch timed out).
    assert watch.blind(False, scrape(10, 5), at + timedelta(seconds=2)) is False
    # Nobody publishes (they back off): still refusing; a minute of it is an outage.
    assert watch.blind(False, scrape(10, 5), at + timedelta(seconds=40)) is False
    assert watch.blind(False, scrape(10, 9), at + timedelta(seconds=62)) is True
    # Then ingest stops answering altogether: blind (it has been away a while already).
    assert watch.blind(True, None, at + timedelta(seconds=64)) is False
    assert watch.blind(True, None, at + timedelta(seconds=94)) is True
    # One event accepted: back at once.
    assert watch.blind(False, scrape(11, 9), at + timedelta(seconds=96)) is False


def test_ingest_away_is_blind_after_a_restart_s_length_or_at_once_if_never_seen() -> None:
    never = pipeline.IngestWatch()
    assert never.blind(True, None, T0) is True  # nothing says anything can arrive
    watch = pipeline.IngestWatch()
    assert watch.blind(False, scrape(10, 0), T0) is False
    # A deploy restarts it: a few seconds away blind nothing (review 80).
    assert watch.blind(True, None, T0 + timedelta(seconds=2)) is False
    assert watch.blind(True, None, T0 + timedelta(seconds=10)) is False
    assert watch.blind(False, scrape(12, 0), T0 + timedelta(seconds=12)) is False
    # Away for good: blind from DOWN_AFTER_S on.
    assert watch.blind(True, None, T0 + timedelta(seconds=20)) is False
    assert watch.blind(True, None, T0 + timedelta(seconds=50)) is True


def test_a_watch_not_watching_ingest_is_never_blind() -> None:
    watch = pipeline.IngestWatch()
    assert watch.blind(False, None, T0) is False


# --- silence ------------------------------------------------------------------------


def test_three_hours_without_ingest_page_no_unit_silent_then_or_after() -> None:
    ev, alerts = evaluator(), book()
    last = {(u.code, "documents"): T0 for u in UNITS}
    seen: list[Transition] = []
    for minutes in range(0, 181, 10):
        seen += cycle(ev, alerts, T0 + timedelta(minutes=minutes), [], last, down=True)
    assert seen == [] and ev.pipeline_blind
    # Back: the three hours were nobody's silence; an hour later neither.
    back = T0 + timedelta(minutes=190)
    assert cycle(ev, alerts, back, [], last, ingest=scrape(0, 0)) == []
    assert not ev.pipeline_blind
    assert cycle(ev, alerts, back + timedelta(minutes=50), [], last, ingest=scrape(0, 0)) == []
    # A unit still silent an hour past the outage pages, on its own silence only.
    late = cycle(ev, alerts, back + timedelta(minutes=61), [], last, ingest=scrape(0, 0))
    assert {k.unit for k in fired(late)} == {u.code for u in UNITS}
    (one,) = [t for t in late if t.alert.key.unit == "19000" and t.to_state is State.FIRING]
    assert 3600 <= one.values["silent_working_s"] < 3700


def test_ingest_refusing_everyone_is_as_blind_as_ingest_away() -> None:
    ev, alerts = evaluator(), book()
    last = {(u.code, "documents"): T0 for u in UNITS}
    assert cycle(ev, alerts, T0, [], last, ingest=scrape(100, 0)) == []
    refused = 0.0
    for minutes in range(10, 181, 10):
        refused += 7
        at = T0 + timedelta(minutes=minutes)
        assert cycle(ev, alerts, at, [], last, ingest=scrape(100, refused)) == []
    assert ev.pipeline_blind


def test_the_blind_span_outlives_a_restart_of_the_alerts_service() -> None:
    ev, alerts = evaluator(), book()
    last = {("19000", "documents"): T0}
    for minutes in range(0, 181, 10):
        cycle(ev, alerts, T0 + timedelta(minutes=minutes), [], last, down=True)
    back = T0 + timedelta(minutes=190)
    cycle(ev, alerts, back, [], last, ingest=scrape(0, 0))
    (span,) = ev.memory().blind
    assert span.seen == frozenset() and span.province == "" and span.family == ""
    fresh = evaluator()
    fresh.recall(SilenceMemory.decode(ev.memory().encode()))
    restarted = AlertBook(list(alerts.open.values()))
    assert cycle(fresh, restarted, back + timedelta(minutes=30), [], last) == []


def test_a_unit_silent_before_ingest_went_down_stays_firing_through_the_outage() -> None:
    ev, alerts = evaluator(), book()
    last = {("19000", "documents"): T0 - timedelta(hours=2)}
    (_, firing) = cycle(ev, alerts, T0, [], last, ingest=scrape(5, 0))
    assert firing.to_state is State.FIRING
    for minutes in range(10, 121, 10):  # unknown while blind: neither resolved nor re-paged
        assert cycle(ev, alerts, T0 + timedelta(minutes=minutes), [], last, down=True) == []
    assert [a.state for a in alerts.open.values()] == [State.FIRING]


# --- KPIs whose figures move without events ---------------------------------------------


def test_ingest_away_raises_no_on_time_breach_but_still_judges_event_counted_kpis() -> None:
    ev, alerts = evaluator(), book()
    seen = cycle(ev, alerts, T0, overdue() + unsigned(), down=True)
    assert fired(seen) == [SIGNING]  # the signing rate is what the events said


def test_ingest_refusing_everyone_raises_no_on_time_breach() -> None:
    ev, alerts = evaluator(), book()
    assert cycle(ev, alerts, T0, [], ingest=scrape(10, 0)) == []
    assert cycle(ev, alerts, T0 + timedelta(seconds=30), [], ingest=scrape(10, 40)) == []
    # A minute and more of nothing but 503s: the sweep's overdue counts are unknown.
    assert cycle(ev, alerts, T0 + timedelta(seconds=95), overdue(), ingest=scrape(10, 60)) == []
    assert ev.pipeline_blind


def test_a_firing_on_time_alert_is_neither_resolved_nor_paged_again_while_blind() -> None:
    ev, alerts = evaluator(), book()
    assert set(fired(cycle(ev, alerts, T0, overdue()))) == {ON_TIME, FAST_BURN} | {
        AlertKey(c.BURN, "dossier_on_time", "19000", "6h")
    }
    recovered = [figure("dossier_on_time", w, 20, 20, 0.95) for w in ("day", *c.BURN_WINDOWS)]
    for s in range(30, 600, 30):  # the figures look fine, or worse: nobody can tell
        figures = recovered if s % 60 else overdue()
        assert cycle(ev, alerts, T0 + timedelta(seconds=s), figures, down=True) == []
    assert all(a.state is State.FIRING for a in alerts.open.values())


def test_a_pending_on_time_alert_is_cancelled_as_unseen_and_opens_again_after() -> None:
    ev, alerts = evaluator(alert_for_s=300, alert_burn_enabled=False), book()
    (opened,) = cycle(ev, alerts, T0, overdue())
    assert opened.to_state is State.PENDING
    (cancelled,) = cycle(ev, alerts, T0 + timedelta(seconds=2), overdue(), down=True)
    assert cancelled.to_state is State.CANCELLED
    assert cancelled.values["unseen"] is True and cancelled.values["ingest_blind"] is True
    for s in range(4, 900, 60):  # longer than the duration: no page
        assert cycle(ev, alerts, T0 + timedelta(seconds=s), overdue(), down=True) == []
    back = T0 + timedelta(seconds=900)
    (again,) = cycle(ev, alerts, back, overdue(), ingest=scrape(0, 0))
    assert again.to_state is State.PENDING and alerts.open[ON_TIME].pending_since == back


# --- Alertmanager: the pipeline's health alerts mute UnitSilent ---------------------------


def _inhibited(target: dict[str, str], sources: list[dict[str, str]]) -> bool:
    """Whether deploy/alertmanager/alertmanager.yml's inhibit rules mute ``target``."""
    from tests.unit.alerts.test_review65_silence import ALERTMANAGER_YML, _matches

    config = yaml.safe_load(ALERTMANAGER_YML.read_text("utf-8"))
    return any(
        _matches(rule.get("target_matchers", []), target)
        and _matches(rule.get("source_matchers", []), source)
        and all(source.get(e, "") == target.get(e, "") for e in rule.get("equal", []))
        for rule in config.get("inhibit_rules", [])
        for source in sources
    )


SILENT = {
    "alertname": "UnitSilent", "kpi": "documents", "unit": "19000", "window": "working-hours",
    "severity": "warning", "province": "19", "family": "documents", "level": "commune",
}  # fmt: skip


@pytest.mark.parametrize(
    ("source", "mutes"),
    [
        # Ingest away is the alerts service's to judge: it pages a unit publishing
        # straight to Kafka, and a trickle of 503s fires EgovIngestUnavailable (review 80).
        ({"alertname": "EgovServiceDown", "service": "ingest", "severity": "critical"}, False),
        (
            {"alertname": "EgovIngestUnavailable", "service": "ingest", "severity": "critical"},
            False,
        ),
        (
            {"alertname": "EgovAcceptedNotCounted", "service": "pipeline", "severity": "critical"},
            True,
        ),
        # A worker down is the alerts service's to handle (blind for its units only), and
        # the others are no reason to think a unit could not publish.
        ({"alertname": "EgovServiceDown", "service": "metrics", "severity": "critical"}, False),
        ({"alertname": "EgovServiceDown", "service": "alerts", "severity": "critical"}, False),
        ({"alertname": "Watchdog", "service": "pipeline", "severity": "none"}, False),
        ({"alertname": "EgovCountingBehind", "service": "metrics", "severity": "warning"}, False),
    ],
)
def test_the_pipelines_outage_mutes_unit_silent_everywhere(
    source: dict[str, str], mutes: bool
) -> None:
    assert _inhibited(SILENT, [source]) is mutes
    other = SILENT | {"unit": "38002", "province": "38", "family": "dossiers"}
    assert _inhibited(other, [source]) is mutes
    signing = SILENT | {"alertname": "KpiBelowTarget", "kpi": "document_signing"}
    assert not _inhibited(signing, [source])  # KPI alerts are the service's to hold
