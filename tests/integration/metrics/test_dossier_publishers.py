"""The on-time ledger keys each dossier within its publisher, as dedup does (review 43):
one key's dossier ids never move, withdraw or resolve another publisher's dossiers, and a
dossier stored unbound (before publishers were bound, or dated before the cut-over) is
continued by its publisher's later events at its own unit only.

The worker's own pieces (the harness of test_dossier_ledger.py) on a real, migrated
PostgreSQL; records of a publisher carry ingest's ``egov_publisher`` header, as a
validated record straight from ingest would.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson
import pytest

from services.common.dossierfacts import PUBLISHER_MARK, ledger_id
from services.common.headers import publisher_header
from services.metrics.periods import Periods
from services.metrics.pipeline import Record
from tests.integration.metrics.test_dossier_ledger import PROVINCE, TP, UNIT, Worker, vn
from tests.integration.metrics.test_review21_on_time import outcome, received

pytestmark = pytest.mark.integration

NEIGHBOUR = "01840"  # phường Đức Xuân, Thái Nguyên: another commune of the partition


class PublishingWorker(Worker):
    async def count_from(self, publisher: str, events: list[dict[str, Any]], now: datetime) -> None:
        """``events`` in records of ``publisher`` (its header), validated in full."""
        records = []
        for event in events:
            headers = (publisher_header(publisher),)
            value = orjson.dumps(event)
            records.append(Record(*TP, self.offset, PROVINCE.encode(), value, headers))
            self.offset += 1
        prepared = self.preparer.prepare(records, now)
        assert prepared.dead_letters == []
        await self.state.flush(list(prepared.batches.values()), Periods.at(now))


def at(event: dict[str, Any], unit: str) -> dict[str, Any]:
    return {**event, "unit": unit}


async def rows(pool: asyncpg.Pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        found = await conn.fetch("SELECT dossier_id, publisher, status FROM dossier_state")
    # Keys as the ledger makes them (publisher, mark, id), so the tests read the same.
    return {ledger_id(r["dossier_id"], r["publisher"]): r["status"] for r in found}


async def test_another_publishers_ids_start_dossiers_of_their_own(pool: asyncpg.Pool) -> None:
    """The review's case: a neighbour's key sends the commune's dossier ids first (a
    withdrawal of one, a receipt of the other), then the commune's system publishes its
    receipts and approvals: all three on time for the commune, nothing moved to the
    neighbour but the neighbour's own receipt."""
    worker = PublishingWorker(pool, "w1")
    morning = vn("2026-11-20 10:00")
    await worker.start(morning)
    await worker.count_from(
        "hostile-19",
        [
            at(outcome("0401", "2026-11-20 08:00", "withdrawn"), NEIGHBOUR),
            at(received("0402", "2026-11-20 08:00", "2026-11-23"), NEIGHBOUR),
        ],
        morning,
    )
    await worker.count_from(
        "motcua-19",
        [received(n, "2026-11-20 09:00", "2026-11-23") for n in ("0401", "0402", "0403")],
        morning,
    )
    noon = vn("2026-11-21 12:00")
    await worker.count_from(
        "motcua-19", [outcome(n, "2026-11-21 10:00") for n in ("0401", "0402", "0403")], noon
    )
    assert worker.on_time(noon) == (3, 3)
    assert worker.outcomes(noon, NEIGHBOUR) == {}  # its own receipt is still open
    stored = await rows(pool)
    mark = PUBLISHER_MARK
    assert stored[f"motcua-19{mark}H19.01843-26110402"] == "done"
    assert stored[f"hostile-19{mark}H19.01843-26110402"] == "open"


async def test_a_bound_publisher_continues_its_unbound_dossier_at_its_unit(
    pool: asyncpg.Pool,
) -> None:
    """Received unbound (stored before the upgrade, or dated before the cut-over), approved
    by the publisher's bound record: one dossier, counted once, on time; its row moves to
    the publisher's key, so no second publisher can take it after."""
    worker = PublishingWorker(pool, "w1")
    morning = vn("2026-11-20 10:00")
    await worker.start(morning)
    await worker.count([received("0501", "2026-11-20 09:00", "2026-11-23")], morning)
    assert await rows(pool) == {"H19.01843-26110501": "open"}
    noon = vn("2026-11-21 12:00")
    await worker.count_from("motcua-19", [outcome("0501", "2026-11-21 10:00")], noon)
    assert worker.on_time(noon) == (1, 1)
    assert worker.outcomes(noon) == {"early": 1}
    assert await rows(pool) == {f"motcua-19{PUBLISHER_MARK}H19.01843-26110501": "done"}
    # The sweep past its appointment finds nothing open: not counted overdue as well.
    later = vn("2026-11-25 12:00")
    await worker.state.sweep_dossiers(later)
    assert worker.outcomes(later) == {"early": 1}


async def test_an_unbound_dossier_is_not_taken_by_a_publisher_of_another_unit(
    pool: asyncpg.Pool,
) -> None:
    """A neighbour's key sends an approval of a dossier the commune received unbound: the
    neighbour's key may not publish for the commune, so it cannot reach that dossier."""
    worker = PublishingWorker(pool, "w1")
    morning = vn("2026-11-20 10:00")
    await worker.start(morning)
    await worker.count([received("0601", "2026-11-20 09:00", "2026-11-23")], morning)
    noon = vn("2026-11-21 12:00")
    await worker.count_from(
        "hostile-19", [at(outcome("0601", "2026-11-21 10:00"), NEIGHBOUR)], noon
    )
    assert worker.outcomes(noon) == {}  # the commune's dossier is still open
    stored = await rows(pool)
    assert stored["H19.01843-26110601"] == "open"
    assert UNIT not in {k.partition(PUBLISHER_MARK)[0] for k in stored}
