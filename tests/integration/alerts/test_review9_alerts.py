"""Adversarial review (round 9) of the alerts service: what the on-call person is told.

Eight defects were found; all eight were strict xfails here until fixed (six on
2026-12-04: a second incident within the resolved-resend window was masked in
Alertmanager by the first one's resolution; a worker back from an outage made every unit
it owns page UnitSilent; a unit silent past the lookback kept its alert's days-old
figures; an acknowledgement did not reach the webhook and Kafka events; GET /v1/alerts
kept the figures of the firing moment; after midnight two workers' figures merged to
yesterday's; two on 2026-12-05, with the local state file of services/alerts/spool.py:
a restart during a PostgreSQL outage lost the in-memory journal, and Alertmanager
expired the firing alerts while the restarted service waited). The others check claims
that hold. The integration tests
use the fixtures of this folder (a fake metrics worker, a real Alertmanager routing to
a receiver, a fresh PostgreSQL database); the unit-level ones call the pure modules.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from services.alerts import conditions, operators
from services.alerts.app import create_app
from services.alerts.cadence import Cadence
from services.alerts.directory import UnitDirectory
from services.alerts.model import Alert, AlertKey, State, Status
from services.alerts.service import AlertsService
from services.common.calendar import HOLIDAYS_FILE, VN_TZ, load_calendar
from services.common.figures import Figure
from services.common.unit_info import UnitInfo
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import (
    QUIET,
    Alertmanager,
    FakeMetrics,
    Receiver,
    TcpProxy,
    statuses,
    wait_until,
)

pytestmark = pytest.mark.integration


async def active_in_alertmanager(am: Alertmanager) -> list[dict[str, Any]]:
    """What Alertmanager itself holds as active (firing, not resolved)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{am.url}/api/v2/alerts", params={"active": "true"})
    response.raise_for_status()
    return [a for a in response.json() if a["status"]["state"] == "active"]


async def stored(svc: AlertsService) -> list[tuple[str, str, str]]:
    """(unit, condition, state) of every alert row, oldest first."""
    assert svc.pool is not None
    async with svc.pool.acquire() as conn:
        rows = await conn.fetch("SELECT unit, condition, state FROM alerts ORDER BY pending_since")
    return [(r["unit"], r["condition"], r["state"]) for r in rows]


# --- 1. a re-fire inside the resolved-resend window is masked in Alertmanager ---------


async def test_refire_within_the_resolved_resend_window_pages_again(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager,
) -> None:  # fmt: skip
    svc = make_service(alertmanager_url=alertmanager.url)
    await svc.connect()
    try:
        now = datetime.now(UTC) - timedelta(seconds=120)  # offsets stay in the past
        fake_metrics.set("c1", 80, 100)
        await svc.evaluate_once(now)
        await svc.evaluate_once(now + timedelta(seconds=2))
        assert await svc.push_alertmanager(now + timedelta(seconds=2), force=True)
        await wait_until(lambda: statuses(receiver) == ["firing"], 15, "first firing")
        fake_metrics.set("c1", 99, 100)  # recovers past the margin: resolves
        (resolved,) = await svc.evaluate_once(now + timedelta(seconds=10))
        assert resolved.to_state is State.RESOLVED
        assert await svc.push_alertmanager(now + timedelta(seconds=10))
        await wait_until(lambda: statuses(receiver) == ["firing", "resolved"], 15, "resolved")
        fake_metrics.set("c1", 70, 100)  # breaks again, long enough to fire again
        await svc.evaluate_once(now + timedelta(seconds=20))
        (refired,) = await svc.evaluate_once(now + timedelta(seconds=22))
        assert refired.to_state is State.FIRING and refired.alert.id != resolved.alert.id
        await svc.flush()
        # Stored: two incidents, the second one firing.
        assert await stored(svc) == [
            ("c1", "KpiBelowTarget", "resolved"),
            ("c1", "KpiBelowTarget", "firing"),
        ]
        for i in range(3):  # re-sent as the loop would, every cycle
            await svc.push_alertmanager(now + timedelta(seconds=23 + i), force=True)
        # The on-call person must be paged again, and Alertmanager must hold it as active.
        await wait_until(
            lambda: statuses(receiver) == ["firing", "resolved", "firing"], 15, "second page"
        )
        assert [a["labels"]["unit"] for a in await active_in_alertmanager(alertmanager)] == ["c1"]
    finally:
        await svc.close()


# --- 2. transitions journalled while PostgreSQL is away are lost by a restart ---------


async def test_restart_during_postgres_outage_keeps_the_resolution(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager, database_url: str,
) -> None:  # fmt: skip
    proxy = TcpProxy()
    await proxy.up()
    via_proxy = proxy.dsn(database_url)
    first = make_service(database_url=via_proxy, alertmanager_url=alertmanager.url)
    await first.connect()
    now = datetime.now(UTC) - timedelta(seconds=120)
    try:
        fake_metrics.set("c1", 80, 100)
        await first.evaluate_once(now)
        await first.evaluate_once(now + timedelta(seconds=2))
        await first.flush()  # firing is stored
        assert await first.push_alertmanager(now + timedelta(seconds=2), force=True)
        await wait_until(lambda: statuses(receiver) == ["firing"], 15, "firing")
        await proxy.down()  # PostgreSQL goes away
        fake_metrics.set("c1", 99, 100)
        (resolved,) = await first.evaluate_once(now + timedelta(seconds=10))
        assert resolved.to_state is State.RESOLVED
        assert await first.push_alertmanager(now + timedelta(seconds=10))
        await wait_until(lambda: statuses(receiver) == ["firing", "resolved"], 15, "resolved")
        assert len(first.state.journal) == 1  # kept in memory only
    finally:
        # The service is restarted (deploy, crash, OOM) before PostgreSQL returns. The
        # proxy comes back first only so that closing the pool cannot hang; close() does
        # not flush (the flush loop would have been cancelled the same way).
        await proxy.up()
        await first.close()

    second = make_service(database_url=via_proxy, alertmanager_url=alertmanager.url)
    await second.connect()
    try:
        fake_metrics.set("c1", 96, 100)  # inside the margin (clears at 97 %): HOLD
        await second.evaluate_once(now + timedelta(seconds=20))
        await second.push_alertmanager(now + timedelta(seconds=20), force=True)
        await asyncio.sleep(QUIET)
        # Stored: the alert is resolved, as Alertmanager and the on-call person were told.
        assert [a.state for a in second.state.open.values()] == []
        await second.flush()
        assert await stored(second) == [("c1", "KpiBelowTarget", "resolved")]
        assert statuses(receiver) == ["firing", "resolved"]  # no second page
    finally:
        await second.close()
        await proxy.down()


# --- 3. a metrics worker back from an outage makes its units look silent --------------


class FlakyMetrics(FakeMetrics):
    """The fake worker, which answers 503 while ``down``."""

    def __init__(self) -> None:
        self.down = False
        super().__init__()

    async def _kpis(self, request: Request) -> Response:
        if self.down:
            return Response(status_code=503)
        return await super()._kpis(request)

    async def _activity(self, request: Request) -> Response:
        if self.down:
            return Response(status_code=503)
        return await super()._activity(request)


async def test_worker_back_from_an_outage_does_not_page_its_units_silent(
    make_service: ServiceFactory,
) -> None:
    async with FlakyMetrics() as worker:
        svc = make_service(metrics_urls=[worker.url], alert_silent_peer_share=1.01)
        start = datetime.now(UTC) - timedelta(hours=4)
        svc.clock = lambda: start
        for unit in ("c0", "c1", "c2", "c3"):
            worker.activity[(unit, "documents")] = start
        await svc.connect()
        try:
            assert await svc.evaluate_once(start + timedelta(minutes=1)) == []
            worker.down = True  # the worker stops answering; units keep publishing
            for minutes in (60, 120, 170):
                assert await svc.evaluate_once(start + timedelta(minutes=minutes)) == []
            worker.down = False  # back, still counting the backlog of the last 3 hours
            back = start + timedelta(hours=3)
            first = await svc.evaluate_once(back)
            for unit in ("c0", "c1", "c2", "c3"):  # the backlog is counted seconds later
                worker.activity[(unit, "documents")] = back - timedelta(minutes=1)
            later = await svc.evaluate_once(back + timedelta(seconds=5))
            await svc.flush()
            paged = [(t.alert.key.unit, t.to_state) for t in first + later
                     if t.to_state in (State.FIRING, State.RESOLVED)]  # fmt: skip
            # The units were silent for one observed minute: nobody is paged...
            assert paged == []
            # ... and nothing is stored as an incident.
            assert await stored(svc) == []
        finally:
            await svc.close()


# --- 4. Alertmanager resolves a firing alert on its own while the service restarts ----


async def test_restart_waiting_for_postgres_does_not_resolve_in_alertmanager(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    alertmanager: Alertmanager, database_url: str,
) -> None:  # fmt: skip
    proxy = TcpProxy()
    await proxy.up()
    via_proxy = proxy.dsn(database_url)
    # resend 1 s: endsAt 4 s ahead (production: 60 s and 4 min; the outage scales with it)
    settings = {"database_url": via_proxy, "alertmanager_url": alertmanager.url,
                "alert_resend_s": 1.0}  # fmt: skip
    first = make_service(**settings)
    await first.connect()
    try:
        fake_metrics.set("c1", 80, 100)
        real = datetime.now(UTC)
        await first.evaluate_once(real - timedelta(seconds=4))
        await first.evaluate_once(real - timedelta(seconds=2))
        await first.flush()
        assert await first.push_alertmanager(datetime.now(UTC), force=True)
        await wait_until(lambda: statuses(receiver) == ["firing"], 15, "firing")
    finally:
        await first.close()
    await proxy.down()  # the restarted service finds PostgreSQL away and waits for it
    second = make_service(**settings)
    connecting = asyncio.create_task(second.connect())
    try:
        await asyncio.sleep(8)  # two endsAt periods: c1 is still 80 % all along
        assert statuses(receiver) == ["firing"]  # no "resolved" for a unit still failing
        await proxy.up()
        await asyncio.wait_for(connecting, 60)
        await second.evaluate_once(datetime.now(UTC))
        await second.push_alertmanager(datetime.now(UTC), force=True)
        await asyncio.sleep(QUIET)
        assert statuses(receiver) == ["firing"]
        assert await stored(second) == [("c1", "KpiBelowTarget", "firing")]
    finally:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        await proxy.up()
        await second.close()
        await proxy.down()


# --- 5. a UnitSilent alert whose unit left the lookback keeps a frozen text -----------


async def test_silent_alert_text_keeps_up_after_the_lookback(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    svc = make_service(alert_silent_peer_share=1.01, alert_silent_lookback_days=3)
    start = datetime.now(UTC) - timedelta(days=6)
    svc.clock = lambda: start
    fake_metrics.activity[("c0", "documents")] = start
    await svc.connect()
    try:
        fired = await svc.evaluate_once(start + timedelta(hours=2))
        assert [t.to_state for t in fired] == [State.PENDING, State.FIRING]
        assert await svc.evaluate_once(start + timedelta(days=5)) == []
        (alert,) = svc.state.open.values()
        assert alert.state is State.FIRING  # still silent: still firing, rightly
        # What Alertmanager keeps receiving must say how long it is now, not 2 h.
        assert alert.values["silent_working_s"] >= 4 * 86_400
        assert "2 h of working time" not in alert.annotations["summary_en"]
    finally:
        await svc.close()


# --- 6. what Kafka and the webhook say of an acknowledged alert -----------------------


async def test_resolution_event_carries_the_acknowledgement(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    secret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4"
    svc = make_service(alert_webhook_url="http://127.0.0.1:9/hook", alert_webhook_secret=secret)
    await svc.connect()
    try:
        assert svc.pool is not None
        async with svc.pool.acquire() as conn:
            token = await operators.create(conn, "trực ban 19", ["19"])
        fake_metrics.set("c1", 80, 100)
        now = datetime.now(UTC) - timedelta(seconds=60)
        await svc.evaluate_once(now)
        await svc.evaluate_once(now + timedelta(seconds=2))
        await svc.flush()
        (alert,) = svc.state.open.values()
        transport = httpx.ASGITransport(app=create_app(svc, run_loops=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            acked = await client.post(f"/v1/alerts/{alert.id}/ack",
                                      headers={"authorization": f"Bearer {token}"},
                                      json={"comment": "đang xử lý"})  # fmt: skip
        assert acked.status_code == 200 and acked.json()["acked_by"] == "trực ban 19"
        fake_metrics.set("c1", 99, 100)
        await svc.evaluate_once(now + timedelta(seconds=10))
        await svc.flush()
        async with svc.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT payload FROM alert_outbox WHERE sink = 'webhook' ORDER BY id"
            )
            row = await conn.fetchrow("SELECT acked_by FROM alerts WHERE id = $1", alert.id)
        assert row is not None and row["acked_by"] == "trực ban 19"  # stored: kept
        kinds = [r["payload"]["type"] for r in rows]
        assert kinds == ["alert.firing", "alert.resolved"]
        # What the webhook receiver is told with the resolution:
        assert rows[1]["payload"]["data"]["alert"]["acked_by"] == "trực ban 19"
    finally:
        await svc.close()


# --- 7. the API (and the wall reading it) shows the figures of the last transition -----


async def test_api_shows_the_same_figures_as_alertmanager(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    svc = make_service()
    await svc.connect()
    try:
        fake_metrics.set("c1", 80, 100)
        now = datetime.now(UTC) - timedelta(seconds=60)
        await svc.evaluate_once(now)
        await svc.evaluate_once(now + timedelta(seconds=2))
        fake_metrics.set("c1", 120, 200)  # 60 %: worse, still firing, no transition
        assert await svc.evaluate_once(now + timedelta(seconds=30)) == []
        await svc.flush()
        (sent,) = svc.delivery.alertmanager_batch(svc.state.firing(), now + timedelta(seconds=30))
        assert "60,00 % (120 / 200)" in sent["annotations"]["summary_vi"]  # on the pager
        transport = httpx.ASGITransport(app=create_app(svc, run_loops=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            (listed,) = (await client.get("/v1/alerts", params={"unit": "c1"})).json()["items"]
        assert listed["state"] == "firing"
        # What the API (the wall's alert list) shows of the same alert:
        assert (listed["values"]["numerator"], listed["values"]["denominator"]) == (120, 200)
        assert listed["annotations"]["summary_vi"] == sent["annotations"]["summary_vi"]
    finally:
        await svc.close()


# --- 8. two workers answering for one unit across midnight ---------------------------


def test_merge_prefers_the_current_period_over_larger_counts_of_the_previous_one() -> None:
    from services.common.figures import merge_figures

    yesterday = datetime(2026, 12, 3, tzinfo=VN_TZ)
    today = yesterday + timedelta(days=1)
    stale = _fig("day", 80, 100, yesterday)  # a worker whose snapshot predates midnight
    fresh = _fig("day", 0, 0, today)  # the worker that owns the unit now
    (merged,) = merge_figures([[stale], [fresh]])
    assert merged.period_start == today


def test_items_without_a_target_are_never_judged() -> None:
    from services.common.figures import parse_figures

    body = (
        b'{"items": [{"version": 2, "kpi": "document_signing", "unit": "06", '
        b'"window": "day", "numerator": 0, "denominator": 100, "target": null, '
        b'"target_bp": null, "min_volume": null, "retired": false}]}'
    )
    assert parse_figures(body) == []


# --- claims that hold --------------------------------------------------------------------


async def test_operator_outside_its_provinces_cannot_ack(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    svc = make_service()
    await svc.connect()
    try:
        assert svc.pool is not None
        async with svc.pool.acquire() as conn:
            other = await operators.create(conn, "trực ban Thanh Hóa", ["38"])
        fake_metrics.set("c1", 80, 100)  # province 19
        now = datetime.now(UTC) - timedelta(seconds=60)
        await svc.evaluate_once(now)
        await svc.evaluate_once(now + timedelta(seconds=2))
        await svc.flush()
        (alert,) = svc.state.open.values()
        transport = httpx.ASGITransport(app=create_app(svc, run_loops=False))
        auth = {"authorization": f"Bearer {other}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            ack = await client.post(f"/v1/alerts/{alert.id}/ack", headers=auth, json={})
            comment = await client.post(f"/v1/alerts/{alert.id}/comments", headers=auth,
                                        json={"comment": "x"})  # fmt: skip
            shown = (await client.get(f"/v1/alerts/{alert.id}", headers=auth)).json()
        assert (ack.status_code, comment.status_code) == (403, 403)
        assert "19" in ack.text  # the refusal names the alert's province
        assert shown["notes"] is None and shown["acked_by"] is None
        async with svc.pool.acquire() as conn:
            notes = await conn.fetchval("SELECT count(*) FROM alert_notes")
            acked = await conn.fetchval("SELECT acked_at FROM alerts WHERE id = $1", alert.id)
        assert notes == 0 and acked is None
    finally:
        await svc.close()


async def test_day_alert_ends_at_local_midnight_not_utc_midnight(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    day = datetime.now(VN_TZ).date() - timedelta(days=2)
    start = datetime(day.year, day.month, day.day, tzinfo=VN_TZ)

    def figure(n: int, d: int, period: datetime) -> None:
        fake_metrics.set("c1", n, d)
        fake_metrics.items[("document_signing", "c1", "day")]["period_start"] = period.isoformat()

    svc = make_service()
    await svc.connect()
    try:
        figure(80, 100, start)
        morning = start + timedelta(hours=6, minutes=59)  # 23:59 UTC of the day before
        fired = await svc.evaluate_once(morning)
        fired += await svc.evaluate_once(morning + timedelta(seconds=2))
        assert [t.to_state for t in fired] == [State.PENDING, State.FIRING]
        # 00:00 UTC is 07:00 in Vietnam: the same local day, nothing ends.
        assert await svc.evaluate_once(morning + timedelta(minutes=1, seconds=5)) == []
        late = start + timedelta(hours=23, minutes=59)
        assert await svc.evaluate_once(late) == []
        figure(0, 0, start + timedelta(days=1))  # 00:00 +07:00: a new day, no data
        (ended,) = await svc.evaluate_once(start + timedelta(days=1, seconds=5))
        assert ended.to_state is State.RESOLVED and ended.values["ended"] == "day"
        assert "80,00 %" in ended.alert.annotations["summary_vi"]  # that day's text
        await svc.flush()
        assert await stored(svc) == [("c1", "KpiBelowTarget", "resolved")]
    finally:
        await svc.close()


def _fig(window: str, n: int, d: int, period: datetime) -> Figure:
    return Figure("document_signing", "c1", window, n, d, 9500, 20, province="19",
                  period_start=period)  # fmt: skip


def _open(window: str, period: str, at: datetime) -> Alert:
    key = AlertKey(conditions.BELOW, "document_signing", "c1", window)
    return Alert("a1", key, State.FIRING, "warning", "19", {}, {"summary_vi": "x"},
                 {"period": period}, at, at, fired_at=at)  # fmt: skip


def test_month_alert_ends_on_the_first_in_vietnam_time() -> None:
    nov = datetime(2026, 11, 1, tzinfo=VN_TZ)
    dec = datetime(2026, 12, 1, tzinfo=VN_TZ)
    alert = _open("month", "2026-11-01", dec - timedelta(minutes=1))
    opened = {alert.key: alert}
    # 30 Nov 17:00 UTC is 1 Dec 00:00 +07:00: the worker's December figure, 3 of 3.
    now = dec + timedelta(seconds=30)
    verdicts = list(conditions.kpi_below_target([_fig("month", 3, 3, dec)], ["month"], 200,
                                                300, opened))  # fmt: skip
    (out,) = conditions.period_ended(verdicts, opened, now, ["month"], True)
    assert out.status is Status.CLEAR and out.values["ended"] == "month"
    # Still November by the worker's period: a HOLD keeps it firing.
    verdicts = list(conditions.kpi_below_target([_fig("month", 96, 100, nov)], ["month"], 200,
                                                300, opened))  # fmt: skip
    (out,) = conditions.period_ended(verdicts, opened, now, ["month"], True)
    assert out.status is Status.HOLD and "ended" not in out.values
    # Not read this cycle (a fast cycle): unknown, nothing ends.
    assert conditions.period_ended([], opened, now, ["day"], True) == []


def test_no_unit_is_silent_over_tet_2027_nor_just_after() -> None:
    calendar = load_calendar(HOLIDAYS_FILE)
    directory = UnitDirectory([UnitInfo("c0", "Xã 0", "Commune 0", "commune", "19")])
    last = datetime(2027, 2, 3, 16, 0, tzinfo=VN_TZ)  # Wednesday before Tết
    rule = conditions.SilenceRule(Cadence(7200.0, 5 * 9.5 * 3600, 5.0, 9 * 9.5 * 3600), 10, 1.01)
    seen = {("c0", "documents"): last}

    def verdict(at: datetime) -> Status:
        (v,) = conditions.unit_silent(seen, at, last, calendar, directory, rule)
        return v.status

    assert calendar.is_working_day(date(2027, 2, 4)) is False
    for at in (datetime(2027, 2, 8, 10, tzinfo=VN_TZ), datetime(2027, 2, 11, 8, tzinfo=VN_TZ)):
        assert verdict(at) is Status.CLEAR  # 1 h, then 1 h 30 of working time
    # Thursday 11 Feb at 09:01: 2 h 31 working minutes since Wednesday 16:00: silent.
    assert verdict(datetime(2027, 2, 11, 9, 1, tzinfo=VN_TZ)) is Status.BREACH
    # Saturday: silent, but nobody works: held, not paged.
    assert verdict(datetime(2027, 2, 13, 10, tzinfo=VN_TZ)) is Status.HOLD
