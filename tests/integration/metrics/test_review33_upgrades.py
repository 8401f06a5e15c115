"""Review 33: upgrades and mixed versions (summaries of older versions, key rotation,
migrations over rows of an older release). Each confirmed defect is a strict xfail that
passes once fixed; the worker's own pieces run against a real PostgreSQL of their own."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from services.common.db import migrate
from services.common.tally import dedup_digest
from services.metrics import store
from services.metrics.periods import Periods
from tests.integration.metrics.test_dossier_ledger import UNIT, Worker, dossier_event, vn
from tests.integration.metrics.test_review13_exactly_once import GRACE, electronic_results

pytestmark = pytest.mark.integration

LAST_MIGRATION_BEFORE = "0016_dossier_history"
"""The schema of the release before 2026-12-05's upgrade fixes: migrations after it are
applied by the upgrade."""


async def upgrade(conn: asyncpg.Connection) -> None:
    """``egov-pulse migrate`` of the release under test over a database an older one
    wrote: the migrations after ``LAST_MIGRATION_BEFORE`` run now."""
    await conn.execute("DELETE FROM schema_migrations WHERE version > $1", LAST_MIGRATION_BEFORE)
    await migrate(conn)


async def test_a_dossier_key_stored_before_the_upgrade_still_stops_a_second_final(
    pool: asyncpg.Pool,
) -> None:
    """Dossier keys stored as live keys by the release before 2026-12-05 are kept by the
    upgrade (migration 0017): pruned, a re-sent final outcome a month later counted again
    in dossier_electronic_result (review 33)."""
    first = vn("2026-10-05 12:00")
    worker = Worker(pool, "w1")
    await worker.start(first)
    await worker.count(
        [
            dossier_event("received", "U-1", "2026-10-01 09:00", due_at="2026-10-10"),
            dossier_event(
                "resolved", "U-1", "2026-10-05 10:00", outcome="approved", electronic_result=True
            ),
        ],
        first,
    )
    later = first + timedelta(days=35)
    async with pool.acquire() as conn:
        # What the release before 2026-12-05 stored: a dossier's keys as live keys.
        await conn.execute("UPDATE metrics_seen_events SET backfill = false")
        await upgrade(conn)
        await store.prune(conn, Periods.at(later), GRACE)
    resent = dossier_event(
        "resolved", "U-1", (later - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M"),
        outcome="approved", electronic_result=True,
    )  # fmt: skip
    await worker.count([resent], later)
    assert await electronic_results(pool) == 1


@pytest.mark.xfail(
    strict=True,
    reason="a documented upgrade limit (docs/metrics.md, 'Upgrades of the dedup keys'): a "
    "dossier receipt counted before dossier identities (its key the per-event digest of "
    "(source, id), as version-1 summaries and the workers of their time stored it) counts "
    "again when the publisher retries it after the upgrade: the retry's key is the "
    "dossier's, no cut-over keeps the old identity for events counted before",
)
async def test_a_receipt_counted_before_dossier_identities_counts_once_when_retried(
    pool: asyncpg.Pool,
) -> None:
    now = vn("2026-11-20 12:00")
    worker = Worker(pool, "w1")
    await worker.start(now)
    receipt = dossier_event("received", "R-1", "2026-11-20 09:00", due_at="2026-11-30")
    await worker.count([receipt], now)
    async with pool.acquire() as conn:
        # What the release before dossier identities stored for it: its event's digest.
        await conn.execute(
            "UPDATE metrics_seen_events SET digest = $1",
            dedup_digest(receipt["source"], receipt["id"]),
        )
        await upgrade(conn)
    # The one-stop system timed out on its 202 and retries the same event, same id.
    retry_at = now + timedelta(hours=1)
    await worker.count([receipt], retry_at)
    assert await online_receipts(pool) == 1


async def online_receipts(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT coalesce(sum(denominator), 0) FROM kpi_daily"
                " WHERE unit = $1 AND kpi = 'dossier_online'",
                UNIT,
            )
        )


async def test_a_receipt_counted_by_this_release_counts_once_when_retried(
    pool: asyncpg.Pool,
) -> None:
    """The control of the xfail above: the same retry against the key this release stored."""
    now = vn("2026-11-20 12:00")
    worker = Worker(pool, "w1")
    await worker.start(now)
    receipt = dossier_event("received", "R-2", "2026-11-20 09:00", due_at="2026-11-30")
    await worker.count([receipt], now)
    async with pool.acquire() as conn:
        await upgrade(conn)
    await worker.count([receipt], now + timedelta(hours=1))
    assert await online_receipts(pool) == 1
