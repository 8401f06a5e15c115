"""The alerts service's parts on their own: alert state in memory, delivery's outbox rows."""

import json
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from services.alerts.delivery import Delivery
from services.alerts.lifecycle import AlertBook
from services.alerts.model import AlertKey, State, Status, Transition, Verdict
from services.alerts.settings import AlertsSettings
from services.alerts.state import AlertState
from services.alerts.telemetry import AlertsMetrics

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
KEY = AlertKey("KpiBelowTarget", "document_signing", "c1", "day")


def verdict(status: Status) -> Verdict:
    return Verdict(KEY, status, "warning", "19", {"numerator": 80}, "vi", "en", 0.0)


def state() -> AlertState:
    ids = count()
    s = AlertState(lambda t: [])
    s.book = AlertBook(new_id=lambda: f"id{next(ids)}")
    return s


def test_state_journals_every_transition_in_order_without_a_database() -> None:
    s = state()
    s.apply([verdict(Status.BREACH)], T0)
    s.apply([verdict(Status.CLEAR)], T0 + timedelta(minutes=1))
    assert len(s.journal) == 3 and s.open == {}
    assert [a.state for a in s.firing()] == []


def test_state_remembers_only_newer_last_events() -> None:
    s = state()
    s.remember({("c1", "documents"): T0})
    s.remember({("c1", "documents"): T0 - timedelta(hours=1)})
    assert s.last_seen == {("c1", "documents"): T0}


ALERTMANAGER = "http://127.0.0.1:9"


def delivery(http: httpx.AsyncClient | None = None, **settings: Any) -> Delivery:
    hook = "http://127.0.0.1:9/hook"
    values: dict[str, Any] = {"alert_kafka_enabled": True, "alert_webhook_url": hook} | settings
    metrics = AlertsMetrics(CollectorRegistry(), list)
    client = http or httpx.AsyncClient()
    return Delivery(AlertsSettings(**values), client, metrics, lambda: T0)


def transitions() -> list[Transition]:
    s = state()
    return [*s.apply([verdict(Status.BREACH)], T0),
            *s.apply([verdict(Status.CLEAR)], T0 + timedelta(minutes=1))]  # fmt: skip


def test_every_transition_goes_to_kafka_and_only_firing_and_resolution_to_the_webhook() -> None:
    d = delivery()
    rows = [[sink for sink, _ in d.outbox_rows(t)] for t in transitions()]
    assert rows == [["kafka"], ["kafka", "webhook"], ["kafka", "webhook"]]
    firing = d.outbox_rows(transitions()[1])[1][1]
    assert firing["type"] == "alert.firing" and firing["data"]["to"] == "firing"


def test_a_resolution_is_pushed_again_until_delivered() -> None:
    d = delivery(alertmanager_url=ALERTMANAGER)
    pending, firing, resolved = transitions()
    d.note([pending, firing, resolved])
    assert [a.state for a in d.resolved] == [State.RESOLVED]
    assert d.alertmanager_batch([], T0)[0]["endsAt"] == resolved.alert.resolved_at.isoformat()  # type: ignore[union-attr]


async def test_without_alertmanager_no_resolution_is_kept() -> None:
    d = delivery(alertmanager_url="")
    pending, firing, resolved = transitions()
    d.note([pending, firing, resolved])
    d.recall([resolved.alert])
    assert await d.push([], T0 + timedelta(minutes=1))
    assert list(d.resolved) == []


async def test_resolutions_held_through_an_outage_go_once_delivered_and_the_window_passed() -> None:
    # Held for as long as Alertmanager is away (the outage bounds the set), then kept
    # only EGOV_ALERT_RESOLVED_RESEND_S after the first push that succeeds.
    up = False
    posted: list[list[dict[str, Any]]] = []

    def alertmanager(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200 if up else 503)

    http = httpx.AsyncClient(transport=httpx.MockTransport(alertmanager))
    d = delivery(http, alertmanager_url=ALERTMANAGER, alert_resolved_resend_s=900)
    pending, firing, resolved = transitions()
    d.note([pending, firing, resolved])
    later = T0 + timedelta(days=3)
    assert not await d.push([], later, silences=False)
    assert [a.id for a in d.resolved] == [resolved.alert.id]
    up = True
    assert await d.push([], later + timedelta(seconds=1), silences=False)
    assert [p["annotations"]["alert_id"] for p in posted[-1]] == [resolved.alert.id]
    assert list(d.resolved) == []
