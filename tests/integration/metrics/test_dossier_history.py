"""Each dossier's events kept with its row (migration 0016_dossier_history): a worker that
takes a partition over judges out-of-order events with them, rows written before the
migration keep what they counted, and a dossier that keeps no more events says so.

The worker's own pieces (``Preparer``, ``PartitionState``, ``dossierstore``; the harness
of test_dossier_ledger.py) on a real, migrated PostgreSQL, the clock moved by the test.
The unit is phường Bắc Kạn (01843, Thái Nguyên 19)."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from services.metrics.dossiers import HISTORY_LIMIT
from tests.integration.metrics.test_dossier_ledger import Worker, vn
from tests.integration.metrics.test_review21_on_time import (
    outcome,
    received,
    resubmitted,
    stored,
    windows,
)
from tests.integration.metrics.test_review22_pause_order import returned

pytestmark = pytest.mark.integration

H = "H19.01843-2611"


async def test_a_new_worker_judges_events_read_late_with_the_history_it_loads(
    pool: asyncpg.Pool,
) -> None:
    """Received (due the 23rd) and returned on the 26th, read by one worker; the first
    cycle (return of the 21st, resubmission of the 22nd with the 27th) and a rejection on
    5 December reach the worker that took the partition over after a restart. Early: its
    clock stopped on the 26th, before the 27th. The rows say so too."""
    first = Worker(pool, "w1")
    await first.start(vn("2026-11-20 10:00"))
    await first.count([received("0201", "2026-11-20 09:00", "2026-11-23")], vn("2026-11-20 10:00"))
    await first.count([returned("0201", "2026-11-26 10:00")], vn("2026-11-26 11:00"))
    # Returned on the 26th, after its appointment of the 23rd with its clock running as
    # far as the first worker knows: open overdue (by the events' times, no sweep needed).
    assert first.outcomes(vn("2026-11-26 11:00")) == {"open_overdue": 1}

    second = Worker(pool, "w2")
    evening = vn("2026-11-26 20:00")
    await second.start(evening)
    await second.count(
        [
            returned("0201", "2026-11-21 10:00"),
            resubmitted("0201", "2026-11-22 10:00", "2026-11-27"),
        ],
        evening,
    )
    assert second.outcomes(evening) == {}  # paused since the 26th, before the 27th
    end = vn("2026-12-05 12:00")
    await second.count([outcome("0201", "2026-12-05 10:00", "rejected")], end)
    assert windows(second, end)["year"] == {"early": 1}
    rows = await stored(pool)
    assert sum(n for (kpi, _), n in rows.items() if kpi == "dossier_on_time:early") == 1
    assert not any(kpi.endswith(("late", "open_overdue")) for kpi, _ in rows)


async def test_rows_written_before_histories_keep_what_they_counted(pool: asyncpg.Pool) -> None:
    """Rows as the ledger wrote them before 0016 (its history column cleared after the
    first worker counted them): an open-overdue one moves to late when resolved, a paused
    one resumes with its resubmission, an ended one ignores a return read after, a
    resolution waiting for its receipt is judged by it."""
    first = Worker(pool, "w1")
    day = vn("2026-11-22 12:00")
    await first.start(day)
    await first.count(
        [
            received("0301", "2026-11-20 09:00", "2026-11-23"),
            received("0302", "2026-11-20 09:00", "2026-11-23"),
            returned("0302", "2026-11-21 10:00"),
            received("0303", "2026-11-20 09:00", "2026-11-23"),
            outcome("0303", "2026-11-21 10:00"),
            outcome("0304", "2026-11-21 10:00"),
        ],
        day,
    )
    await first.state.sweep_dossiers(vn("2026-11-24 09:00"))
    assert first.outcomes(day) == {"early": 1, "open_overdue": 1}
    async with pool.acquire() as conn:
        await conn.execute("UPDATE dossier_state SET history = NULL")
        statuses = dict(await conn.fetch("SELECT dossier_id, status FROM dossier_state"))
    assert [statuses[H + d] for d in ("0301", "0302", "0303", "0304")] == [
        "overdue", "paused", "done", "resolved",
    ]  # fmt: skip

    second = Worker(pool, "w2")
    now = vn("2026-11-28 12:00")
    await second.start(now)
    await second.count(
        [
            outcome("0301", "2026-11-27 10:00"),
            resubmitted("0302", "2026-11-27 10:00", "2026-12-10"),
            returned("0303", "2026-11-20 15:00"),
            received("0304", "2026-11-20 09:00", "2026-11-23"),
        ],
        now,
    )
    # 0301 moved from open overdue to late; 0303 and 0304 early; 0302 open again.
    assert second.outcomes(now) == {"early": 2, "late": 1}
    async with pool.acquire() as conn:
        rows = {
            r["dossier_id"][len(H) :]: (r["status"], r["history"] is None)
            for r in await conn.fetch("SELECT dossier_id, status, history FROM dossier_state")
        }
    assert rows == {
        "0301": ("done", False),
        "0302": ("open", False),
        "0303": ("done", True),
        "0304": ("done", False),
    }
    later = vn("2026-12-11 09:00")
    await second.state.sweep_dossiers(later)  # 0302 ran past the 10th
    assert second.outcomes(later) == {"open_overdue": 1}


async def test_a_dossier_past_its_limit_is_logged_and_still_ends(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """A publisher's loop returning and resubmitting one dossier: the returns and
    resubmissions past the limit are not applied, each is logged with its dossier; its
    approval still is, and counts."""
    worker = Worker(pool, "w1")
    now = vn("2026-11-21 12:00")
    await worker.start(now)
    loop = [received("0401", "2026-11-20 09:00", "2026-11-30")]
    for i in range(HISTORY_LIMIT + 2):
        minute = f"2026-11-20 {10 + i // 60}:{i % 60:02d}"
        if i % 2:
            loop.append(resubmitted("0401", minute, "2026-11-30"))
        else:
            loop.append(returned("0401", minute))
    with caplog.at_level(logging.WARNING, "services.metrics.dossierstore"):
        await worker.count([*loop, received("0402", "2026-11-20 09:00", "2026-11-22")], now)
    refused = [r for r in caplog.records if H + "0401" in r.getMessage()]
    assert len(refused) == 2
    await worker.count([outcome("0401", "2026-11-21 11:00")], now)
    later = vn("2026-11-23 09:00")
    await worker.state.sweep_dossiers(later)
    # 0401 approved early (its last applied event a resubmission: running); 0402 overdue.
    assert worker.outcomes(later) == {"early": 1, "open_overdue": 1}
