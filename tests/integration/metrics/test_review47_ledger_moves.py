"""Review 47 (fixed 2026-12-05): the on-time ledger's keys within their publisher
(services/common/dossierfacts.py ``ledger_id`` / ``split_key``; migration
0019_dossier_publishers; ``dossierstore.apply`` / ``sweep``), on the worker's own pieces
(the harness of test_dossier_ledger.py) on a real, migrated PostgreSQL.

The review also found that migration 0019 leaves rows keyed as 20e7dbe keyed them
(``publisher + U+001F + id`` in dossier_id) unreadable: that commit was never released
(it and 4bbb672 landed together), so no database outside this session's holds such
rows, and 0019 does not guess which stored ids are of that form.
"""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.metrics.test_dossier_ledger import Worker, vn
from tests.integration.metrics.test_review21_on_time import H, received, stored

pytestmark = pytest.mark.integration


async def test_a_legacy_row_whose_id_holds_the_mark_is_swept_once(pool: asyncpg.Pool) -> None:
    """A row stored before the contract refused control characters in dossier ids
    (2026-12-04) and before migration 0019 (publisher ''): its id holds U+001F, the
    ledger's publisher mark. It is open, due the 23rd; the sweeps after the 23rd must
    count it open overdue once, however many run."""
    worker = Worker(pool, "w1")
    day = vn("2026-11-20 10:00")
    await worker.start(day)
    await worker.count([received("1001", "2026-11-20 09:00", "2026-11-23")], day)
    async with pool.acquire() as conn:
        # The id as a publisher sent it before the correction (a unit separator in it).
        await conn.execute(
            "UPDATE dossier_state SET dossier_id = 'MC' || chr(31) || dossier_id"
            " WHERE dossier_id = $1",
            H + "1001",
        )
    for minute in ("09:00", "09:01", "09:02"):
        await worker.state.sweep_dossiers(vn(f"2026-11-24 {minute}"))
    later = vn("2026-11-24 09:03")
    assert worker.outcomes(later) == {"open_overdue": 1}
    rows = await stored(pool, "dossier_on_time:open_overdue")
    assert sum(rows.values()) == 1
