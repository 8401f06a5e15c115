"""The outbox is a queue: delivered notifications go after EGOV_ALERT_OUTBOX_KEEP_DAYS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.alerts import store
from services.alerts.lifecycle import AlertBook
from services.alerts.model import AlertKey, Status, Transition, Verdict
from services.alerts.outbox import deliver_due

pytestmark = pytest.mark.integration

KEY = AlertKey("KpiBelowTarget", "document_signing", "c1", "day")
KEPT = timedelta(days=7)


def verdict(status: Status) -> Verdict:
    return Verdict(KEY, status, "warning", "19", {"ratio": 0.8}, "vi", "en", 0)


async def ok(_transition_id: str, _payload: dict[str, Any]) -> None:
    return None


async def down(_transition_id: str, _payload: dict[str, Any]) -> None:
    raise ConnectionError("kafka away")


async def written(pool: asyncpg.Pool) -> list[Transition]:
    book = AlertBook()
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    transitions = [
        *book.observe([verdict(Status.BREACH)], t0),
        *book.observe([verdict(Status.CLEAR)], t0 + timedelta(minutes=5)),
    ]
    async with pool.acquire() as conn:
        for t in transitions:
            await store.write_transition(conn, t, [("webhook", {"n": 1}), ("kafka", {"n": 1})])
    return transitions


async def outbox(conn: asyncpg.Connection) -> list[tuple[str, str, bool]]:
    rows = await conn.fetch(
        "SELECT transition_id::text, sink, delivered_at IS NOT NULL AS delivered "
        "FROM alert_outbox ORDER BY id"
    )
    return [(r["transition_id"], r["sink"], r["delivered"]) for r in rows]


async def test_only_items_delivered_longer_ago_than_kept_are_deleted(
    alerts_pool: asyncpg.Pool,
) -> None:
    pending, firing, resolved = await written(alerts_pool)
    # Kafka is down: its items stay undelivered, however old, in order for when it returns.
    await deliver_due(alerts_pool, {"webhook": ok, "kafka": down}, kept=KEPT)
    async with alerts_pool.acquire() as conn:
        for t, age in ((pending, KEPT + timedelta(hours=1)), (firing, KEPT - timedelta(hours=1))):
            await conn.execute(
                "UPDATE alert_outbox SET delivered_at = now() - $2::interval "
                "WHERE transition_id = $1 AND sink = 'webhook'",
                t.id,
                age,
            )
        await conn.execute("UPDATE alert_outbox SET next_attempt_at = now() + interval '1 h'")
    assert await deliver_due(alerts_pool, {"webhook": ok, "kafka": down}, kept=KEPT) == 0
    async with alerts_pool.acquire() as conn:
        assert await outbox(conn) == [
            (pending.id, "kafka", False),
            (firing.id, "webhook", True),
            (firing.id, "kafka", False),
            (resolved.id, "webhook", True),
            (resolved.id, "kafka", False),
        ]
        # A transition replayed after its notification went (the state file) is still
        # known by alert_transitions: it is not notified again.
        await store.write_transition(conn, pending, [("webhook", {"n": 1})])
        assert (pending.id, "webhook", True) not in await outbox(conn)
        assert len(await outbox(conn)) == 5


async def test_kept_zero_deletes_at_the_next_round(alerts_pool: asyncpg.Pool) -> None:
    await written(alerts_pool)
    sinks = {"webhook": ok, "kafka": ok}
    assert await deliver_due(alerts_pool, sinks, kept=timedelta(0)) == 6
    await deliver_due(alerts_pool, sinks, kept=timedelta(0))
    async with alerts_pool.acquire() as conn:
        assert await outbox(conn) == []
