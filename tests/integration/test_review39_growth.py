"""Review 39: what grows without bound when the system runs for months or years.

Each test drives a component through simulated days and shows that a structure which
only grew is now bounded (each was a strict xfail, all three fixed): resolved alerts
held without an Alertmanager, delivered outbox rows, and the dedup keys' prune scan.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from services.alerts import store
from services.alerts.delivery import Delivery
from services.alerts.lifecycle import AlertBook
from services.alerts.model import AlertKey, Status, Transition, Verdict
from services.alerts.outbox import deliver_due
from services.alerts.settings import AlertsSettings
from services.alerts.telemetry import AlertsMetrics
from services.metrics import store as metrics_store
from services.metrics.periods import Periods

START = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 09:00 in Vietnam, a Monday
UNITS = 20  # communes of a province below target on a given day: a small figure
HOLD_S = 300.0  # EGOV_ALERT_FOR_S, production's value


def _verdict(unit: str, status: Status) -> Verdict:
    key = AlertKey("KpiBelowTarget", "document_signing", unit, "day")
    return Verdict(key, status, "warning", "19", {"ratio": 0.8}, "vi", "en", HOLD_S)


def _one_day(book: AlertBook, day: int) -> Iterator[tuple[datetime, list[Transition]]]:
    """A working day of the alerts service: UNITS units breach at 09:00, fire after the
    hold, and resolve at 17:00 (or at midnight, "ended: day": the same transition)."""
    morning = START + timedelta(days=day)
    units = [f"c{i}" for i in range(UNITS)]
    for offset, status in (
        (0.0, Status.BREACH),
        (HOLD_S, Status.BREACH),
        (8 * 3600.0, Status.CLEAR),
    ):
        now = morning + timedelta(seconds=offset)
        yield now, book.observe([_verdict(u, status) for u in units], now)


def _delivery_without_alertmanager() -> Delivery:
    # EGOV_ALERTMANAGER_URL empty is documented ("no Alertmanager, deliver to the
    # webhook, Kafka and the log only"): sites without Alertmanager run this way.
    settings = AlertsSettings(alertmanager_url="", alert_kafka_enabled=False)
    metrics = AlertsMetrics(CollectorRegistry(), lambda: [])
    return Delivery(settings, httpx.AsyncClient(), metrics, lambda: START)


async def test_resolved_alerts_are_not_kept_for_ever_without_alertmanager() -> None:
    delivery = _delivery_without_alertmanager()
    book = AlertBook()
    days = 30
    for day in range(days):
        for now, transitions in _one_day(book, day):
            delivery.note(transitions)
            # The evaluation loop pushes every cycle (service._cycle -> push_alertmanager).
            assert await delivery.push(book.open.values(), now)
    # A day after the last resolution nothing is within the resend window (900 s), so
    # nothing resolved needs keeping; today every resolution of the month is still held:
    # UNITS x days Alert objects, and the set grows by that much every working day.
    await delivery.push([], START + timedelta(days=days + 1))
    held = len(list(delivery.resolved))
    assert held == 0, f"{held} resolved alerts held in memory after {days} days"


def _outbox_row(t: Transition) -> list[tuple[str, dict[str, Any]]]:
    # What Delivery.outbox_rows writes with a firing or a resolution for the webhook.
    return [("webhook", {"type": f"alert.{t.to_state.value}", "data": {"id": t.id}})]


async def _write_days(pool: asyncpg.Pool, days: int) -> int:
    book = AlertBook()
    written = 0
    async with pool.acquire() as conn:
        for day in range(days):
            for _, transitions in _one_day(book, day):
                for t in transitions:
                    await store.write_transition(conn, t, _outbox_row(t))
                    written += 1
    return written


async def _deliver_all(pool: asyncpg.Pool) -> None:
    async def sink(_transition_id: str, _payload: dict[str, Any]) -> None:
        return None

    while await deliver_due(pool, {"webhook": sink}):
        pass


@pytest.mark.integration
async def test_delivered_outbox_rows_are_pruned(alerts_pool: asyncpg.Pool) -> None:
    pool = alerts_pool
    written = await _write_days(pool, days=5)
    await _deliver_all(pool)
    async with pool.acquire() as conn:
        delivered = await conn.fetchval(
            "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NOT NULL"
        )
        assert delivered > 0 and written > 0
        # Simulate the passing of a year since they were delivered.
        await conn.execute(
            "UPDATE alert_outbox SET delivered_at = delivered_at - interval '365 days'"
        )
    # The service's outbox round runs every second (services/alerts/service.py, loops.every):
    # a year on, more rounds have run; nothing is due, so only housekeeping can act.
    await _deliver_all(pool)
    async with pool.acquire() as conn:
        kept = await conn.fetchval(
            "SELECT count(*) FROM alert_outbox WHERE delivered_at < now() - interval '30 days'"
        )
    assert kept == 0, f"{kept} outbox rows delivered a year ago still stored"


KEPT_KEYS = 50_000
"""Dossier keys (receipt, payment, final: about three a dossier) kept for good since
2026-12-05 (docs/metrics.md, 'Duplicates'), plus backfills': a province's year of
dossiers is hundreds of thousands, so this is a few weeks' worth."""


@pytest.mark.integration
async def test_the_prune_reads_the_kept_keys_once_a_day_not_every_ten_minutes(
    pool: asyncpg.Pool,
) -> None:
    """Fixed: the scan of the dedup keys reads the kept ones too (an index on the day
    would cost every event's insert more: migration 0008), so a worker's ``Pruner`` runs
    it once per day of the horizon, when keys can be due, instead of every ten minutes
    (144 scans a day of a table that only grows)."""
    now = datetime(2027, 6, 1, 3, 0, tzinfo=UTC)
    grace = timedelta(days=14)
    pruner = metrics_store.Pruner(grace)
    horizon = metrics_store.keys_horizon(Periods.at(now), grace)
    async with pool.acquire() as conn:
        # Kept keys of a year of dossiers (the day does not matter: never pruned).
        await conn.execute(
            "INSERT INTO metrics_seen_events (digest, event_day, backfill) "
            "SELECT substring(decode(md5(i::text), 'hex') FROM 1 FOR 16), "
            "       DATE '2026-12-10' + (i % 170), true "
            "FROM generate_series(1, $1) AS i",
            KEPT_KEYS,
        )
        # Two live keys: one due the next day (on the horizon), one after it.
        await conn.execute(
            "INSERT INTO metrics_seen_events (digest, event_day, backfill) VALUES "
            "(decode(repeat('aa', 16), 'hex'), $1, false), "
            "(decode(repeat('bb', 16), 'hex'), $1 + 1, false)",
            horizon,
        )
        await conn.execute("ANALYZE metrics_seen_events")

        async def read_so_far() -> int:
            # This backend's reads of the table not yet flushed to the shared statistics
            # (pg_stat_xact_*: not delayed, but they may hold earlier transactions' too).
            read = await conn.fetchval(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
                "FROM pg_stat_xact_user_tables WHERE relname = 'metrics_seen_events'"
            )
            return int(read or 0)

        async def reads(at: datetime) -> tuple[int, int]:
            async with conn.transaction():
                before = await read_so_far()
                keys, _ = await pruner(conn, Periods.at(at))
                return keys, await read_so_far() - before

        first = await reads(now)
        assert first[0] == 0 and first[1] >= KEPT_KEYS  # the day's scan: nothing due yet
        for minutes in range(10, 14 * 60, 10):  # 10:00 to midnight, Vietnam time
            keys, read = await reads(now + timedelta(minutes=minutes))
            assert (keys, read) == (0, 0), f"a prune at +{minutes} min read {read} keys"
        keys, _ = await reads(now + timedelta(days=1))
        assert keys == 1  # the next day's scan forgets the key that became due
        left = await conn.fetchval("SELECT count(*) FROM metrics_seen_events WHERE NOT backfill")
        assert left == 1
