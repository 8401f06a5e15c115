"""Review 74b: today's changes outside the metrics counting path.

The silence memory kept in PostgreSQL (b2dbeb1), the settings checks (229a887), the
alerts service's PostgreSQL outages (d0ade32), Grafana's judged figures and the
basis-point targets (1f5bfe5), compose's log rotation (937b416) and the partitions
warning (543cb45). Each test but the guards was a strict xfail for a defect found here;
all fixed 2026-12-06: a recalled quiet province is blind only up to the last cycle before
the stop, the alerts' pool is replaced after a read-only refusal as the workers' is, and a
URL whose port is not a port is refused at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

import asyncpg
import pytest
from pydantic import ValidationError

from services.alerts import loops
from services.alerts import store as alerts_store
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.http import Unprocessable, ratio_bp
from services.alerts.lifecycle import AlertBook
from services.alerts.settings import AlertsSettings
from services.alerts.silence_memory import SilenceMemory
from services.alerts.state import AlertState
from services.common.variables import check_http_url
from services.wall.settings import WallSettings
from tests.servers import admin_dsn
from tests.unit.alerts.test_silence_memory import (
    COMMUNES,
    PROVINCE,
    _evaluator,
    _firing_units,
    _restarted,
    _vn,
)

pytestmark = pytest.mark.integration

FAMILY = "dossiers"


def _cycle(
    ev: Evaluator, book: AlertBook, seen: dict[tuple[str, str], datetime], now: datetime
) -> None:
    plan = ev.plan(book.open, now)
    book.observe(ev.verdicts(Observation(plan, [], True), book.open, seen, now), now)


def _dead_commune_after(restart_at: datetime | None) -> set[str]:
    """The one-stop system goes down on Friday 4 December at 16:00; every unit's
    UnitSilent fires on Monday morning with the province's. The alerts service runs
    Monday 08:00-09:30, then (``restart_at``) is away until Wednesday 09:00 (None: it
    never stops). The province and every commune but one come back on Monday at 10:00
    and keep sending; commune 19000 never does (a real failure, silent since Friday).
    Returns the units firing on Wednesday at 09:30."""
    ev = _evaluator()
    seen = {(u.code, FAMILY): _vn(4, 16) for u in [PROVINCE, *COMMUNES]}
    ids = iter(range(10**6))
    book = AlertBook(new_id=lambda: f"id{next(ids)}")
    alive = [PROVINCE, *COMMUNES[1:]]
    now = _vn(7, 8)
    while now <= _vn(9, 9, 30):
        if restart_at is not None and _vn(7, 9, 30) < now < restart_at:
            now = restart_at  # the service is away; the units send meanwhile
            ev, book = _restarted(ev, book)
        if now >= _vn(7, 10):
            for unit in alive:  # their latest event: a minute ago
                seen[(unit.code, FAMILY)] = now - timedelta(minutes=1)
        _cycle(ev, book, seen, now)
        now += timedelta(minutes=1)
        if restart_at is None and _vn(7, 17, 30) < now < _vn(9, 7):
            now = _vn(9, 7)  # outside working time nothing changes: skip it
    return _firing_units(book)


def test_guard_without_a_restart_the_dead_commune_stays_firing() -> None:
    # The reference for the xfail below: a service that never stopped keeps paging the
    # commune silent since Friday (its silence counts from the province's return).
    assert COMMUNES[0].code in _dead_commune_after(None)


def test_a_restart_days_later_keeps_the_dead_commune_firing() -> None:
    # b2dbeb1: QuietSpans.recall restores the province's last judged state (quiet, last
    # event Friday 16:00). At the first cycle after the restart the province's last event
    # is Wednesday 08:59, so recovered() records a blind span Friday 16:00 -> Wednesday
    # 08:59 for all its units: two working days the service never watched (the province
    # was back on Monday at 10:00) are taken off the dead commune's silence, its
    # UnitSilent resolves with the province, and it pages again only hours later. The
    # module's own rule ("the time it was away must not turn into a span that hides a
    # real silence for days") is broken for quiet spans.
    assert COMMUNES[0].code in _dead_commune_after(_vn(9, 9))


async def test_the_alerts_writes_reach_the_new_primary_after_a_failover(
    database_url: str,
) -> None:
    # d0ade32 made 25006 (read-only) an outage the alerts service waits out, as the metrics
    # worker does; but only the metrics worker expires its pool's connections on it
    # (services/metrics/pipeline.py expire_if_read_only). A pooled session opened on the
    # server that was demoted stays there: the alerts' write loop retries on it forever.
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_dsn())
    state = AlertState(lambda transition: [])
    writer: asyncio.Task[None] | None = None
    try:
        # The sessions the pool holds were opened on the old primary, now a standby.
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        state.pool = await alerts_store.create_pool(database_url, max_size=2)
        # The new primary (reached by any new connection) takes writes.
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        state.remember_silence(SilenceMemory())
        wake = asyncio.Event()
        wake.set()
        logging.getLogger("services.alerts.loops").setLevel(logging.ERROR)
        writer = asyncio.create_task(loops.write(state.flush, wake, lambda: 0))
        written = None
        for _ in range(40):  # 8 s: the write loop's backoff tries 4-5 times meanwhile
            await asyncio.sleep(0.2)
            check = await asyncpg.connect(database_url)
            try:
                written = await check.fetchval("SELECT count(*) FROM alert_silence_memory")
            finally:
                await check.close()
            if written:
                break
        assert written == 1, "the silence memory never reached the server taking writes"
    finally:
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        if state.pool is not None:
            await state.pool.close()
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await admin.close()


@pytest.mark.parametrize("url", ["http://metrics-1:8o81", "http://metrics-1:80810"])
def test_a_url_with_an_impossible_port_is_refused_at_start(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 229a887: check_http_url (services/common/variables.py) tests the scheme and the
    # host only; urlsplit raises on a bad port only when .port is read, which it never
    # is. httpx refuses "8o81" (InvalidURL) on every request; 80810 cannot be connected.
    with pytest.raises(ValueError):
        check_http_url(url, "EGOV_METRICS_URLS")
    monkeypatch.setenv("EGOV_METRICS_URLS", url)
    with pytest.raises(ValidationError):
        WallSettings()
    with pytest.raises(ValidationError):
        AlertsSettings()


def test_guard_legitimate_values_still_pass() -> None:
    # What must keep passing: "" meaning off, 0 meaning never, targets at whole basis
    # points however they are written.
    settings = AlertsSettings(
        alertmanager_url="",
        ingest_url="",
        alert_webhook_url="",
        alert_ack_silence_s=0,
        alert_resolved_resend_s=0,
        alert_outbox_keep_days=0,
        metrics_urls="http://metrics-1:8081/,https://metrics-2",  # type: ignore[arg-type]
    )
    assert settings.metrics_urls == ["http://metrics-1:8081", "https://metrics-2"]
    assert settings.alert_ack_silence_s == 0
    assert [ratio_bp(v) for v in (0.95, 9.5e-1, 0.9999, 1, 0, 1.0, 0.0001)] == [
        9500, 9500, 9999, 10000, 0, 10000, 1,
    ]  # fmt: skip
    for refused in (0.1 + 0.2, 0.99995, 1.0001, -0.0001, float("nan")):
        with pytest.raises(Unprocessable):
            ratio_bp(refused)
