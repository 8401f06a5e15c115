"""Review 42: what the ingest-rejections alert counts as refused (fixed 2026-12-05).

Pure: injected clocks, ingest's real Prometheus exposition (``IngestMetrics`` rendered by
``generate_latest`` and read back by the alerts service's parser), no server.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from services.alerts import conditions as c
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.lifecycle import AlertBook
from services.alerts.model import State
from services.alerts.settings import AlertsSettings
from services.alerts.sources import parse_ingest_counters
from services.common.calendar import VN_TZ, WorkingCalendar
from services.ingest.telemetry import IngestMetrics

T0 = datetime(2026, 11, 23, 10, tzinfo=VN_TZ)


def _evaluator(**settings: Any) -> Evaluator:
    values: dict[str, Any] = {"alert_for_s": 0, "alert_burn_enabled": False} | settings
    return Evaluator(AlertsSettings(**values), WorkingCalendar(always=True), UnitDirectory([]))


def _book() -> AlertBook:
    ids = count()
    return AlertBook([], new_id=lambda: f"id{next(ids)}")


def _scrape(ev: Evaluator, book: AlertBook, metrics: CollectorRegistry, now: datetime) -> None:
    scrape = parse_ingest_counters(generate_latest(metrics).decode())
    plan = ev.plan(book.open, now)
    verdicts = ev.verdicts(Observation(plan, [], False, scrape), book.open, {}, now)
    book.observe(verdicts, now)


def test_review42_key_refused_out_of_scope_raises_ingest_rejections_high() -> None:
    """A pre-2025 district key publishing post-reform events, or a key bound to the wrong
    sources: every event gets a 403 (outcome ``out_of_scope``), none is counted. The
    runbook says IngestRejectionsHigh means "more than the share of its events refused
    ... Refused events are not counted: its units' figures are short"."""
    registry = CollectorRegistry()
    ingest = IngestMetrics(registry)
    ingest.prime(["vn.gov.document.issued"])
    ev, book = _evaluator(alert_rejection_window_s=600.0), _book()
    ingest.key("k1", "accepted").inc(0)
    _scrape(ev, book, registry, T0)
    for minute in range(1, 12):
        ingest.key("k1", "out_of_scope").inc(30)  # 30 events a minute, all refused (403)
        _scrape(ev, book, registry, T0 + timedelta(minutes=minute))
    firing = [
        a for a in book.open.values() if a.key.condition == c.REJECTIONS and a.state is State.FIRING
    ]
    assert [a.key.unit for a in firing] == ["k1"]


def test_review42_retries_after_429_do_not_dilute_the_refused_share() -> None:
    """A publisher whose batches are rate limited sends each again: every retry counts the
    batch under ``rate_limited`` once more. Those events are neither refused nor counted
    yet, so they stay out of the share: 40 of 60 events refused is 67 %, whatever the
    hundreds of retries around them."""
    registry = CollectorRegistry()
    ingest = IngestMetrics(registry)
    ingest.prime(["vn.gov.document.issued"])
    ev, book = _evaluator(alert_rejection_window_s=600.0), _book()
    ingest.key("k1", "accepted").inc(0)
    _scrape(ev, book, registry, T0)
    for minute in range(1, 12):
        ingest.key("k1", "accepted").inc(2)
        ingest.key("k1", "rejected").inc(4)
        ingest.key("k1", "rate_limited").inc(200)
        ingest.key("k1", "unavailable").inc(50)
        _scrape(ev, book, registry, T0 + timedelta(minutes=minute))
    (alert,) = [a for a in book.open.values() if a.key.condition == c.REJECTIONS]
    assert alert.state is State.FIRING
    assert alert.severity == "critical"  # 67 % refused: at or over half
    assert "66,67" in alert.annotations["summary_vi"]
