"""Delivers the PostgreSQL outbox to the webhook and Kafka, in order, with backoff.

Each sink's round holds that sink's claim (an advisory lock, services/alerts/store.py
``claim_sink``), so two deliverers never send the same item. An item is marked
delivered only after the sink acknowledged it; a failure leaves it
(and every later item of that sink) for the next round, after a backoff that doubles
up to five minutes. Consumers deduplicate on the transition id (webhook-id header,
``transition_id`` in the Kafka value): delivery is at least once. Each round also
deletes items delivered more than ``EGOV_ALERT_OUTBOX_KEEP_DAYS`` ago: the outbox is a
queue, the history is ``alert_transitions``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import asyncpg

from services.alerts import store
from services.alerts.settings import OUTBOX_KEEP_DAYS
from services.alerts.telemetry import AlertsMetrics
from services.common.db import Connection

log = logging.getLogger(__name__)

Deliver = Callable[[str, dict[str, Any]], Awaitable[None]]
"""(transition id, payload) -> delivered, or raises."""

MAX_BACKOFF_S = 300.0


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2.0**attempts, MAX_BACKOFF_S))


async def deliver_due(
    pool: asyncpg.Pool,
    sinks: Mapping[str, Deliver],
    metrics: AlertsMetrics | None = None,
    kept: timedelta = timedelta(days=OUTBOX_KEEP_DAYS),
) -> int:
    """One round over every sink, then delete what was delivered more than ``kept`` ago;
    returns how many items were delivered."""
    sent = 0
    for sink, deliver in sinks.items():
        # One connection per sink for the whole round, holding the sink's claim: the
        # items read are marked on it before another deliverer may read them (review 90).
        async with pool.acquire() as conn:
            if not await store.claim_sink(conn, sink):
                log.warning("%s outbox: another deliverer holds it; skipped this round", sink)
                continue
            try:
                sent += await _deliver_sink(conn, sink, deliver, metrics)
            finally:
                await store.release_sink(conn, sink)
    async with pool.acquire() as conn:
        await store.prune_delivered(conn, kept)
    return sent


async def _deliver_sink(
    conn: Connection, sink: str, deliver: Deliver, metrics: AlertsMetrics | None
) -> int:
    sent = 0
    for item in await store.due(conn, sink):
        try:
            await deliver(item.transition_id, item.payload)
        except Exception as exc:
            log.warning("%s delivery of %s failed: %r", sink, item.transition_id, exc)
            if metrics is not None:
                metrics.notifications.labels(sink, "failed").inc()
            await store.failed(conn, item.id, repr(exc), backoff(item.attempts))
            break  # keep this sink's order: nothing later goes before this one
        await store.delivered(conn, item.id)
        if metrics is not None:
            metrics.notifications.labels(sink, "sent").inc()
        sent += 1
    return sent
