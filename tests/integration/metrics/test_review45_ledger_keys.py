"""Review 45 (fixed 2026-12-05): the on-time ledger's keys within their publisher
(services/common/dossierfacts.py ``ledger_id``; the publisher column of migration
0019_dossier_publishers; ``dossiers.continued``).

Each test was a defect found by the review, on the worker's own pieces (the harness of
test_dossier_ledger.py / test_dossier_publishers.py) on a real, migrated PostgreSQL.
Unbound records (no header: dated before the publishers' cut-over, straight to Kafka,
``backfill --unbound``) and the publisher's bound records of one dossier, at the
dossier's own unit, are what an upgrade produces (docs/dossiers.md, "One count per
dossier"): such a dossier must be counted once, whatever the records' batching or order.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import pytest

from services.common.dossierfacts import PUBLISHER_MARK, ledger_id
from services.common.headers import publisher_header
from services.common.summaries import SummaryReader
from services.metrics import sanity
from services.metrics.periods import Periods
from services.metrics.pipeline import Record
from tests.integration.metrics.test_dossier_ledger import PROVINCE, TP, Worker, vn
from tests.integration.metrics.test_review3_nul_bytes import received as live_received
from tests.integration.metrics.test_review4_refusals import counting_on, offsets_of, where
from tests.integration.metrics.test_review5_refusals import resolution
from tests.integration.metrics.test_review7_canaries import REFUSE_UPDATES
from tests.integration.metrics.test_review21_on_time import (
    outcome,
    received,
    resubmitted,
)
from tests.integration.metrics.test_store_refusals import TOPIC, Sent, execute, fetch
from tests.unit.metrics.test_sanity import BOUNDS
from tests.unit.metrics.test_summaries import dossier_events, ingest_records

pytestmark = pytest.mark.integration

PUBLISHER = "motcua-19"
UNBOUND = ""


class MixedWorker(Worker):
    async def count_mixed(self, events: list[tuple[str, dict[str, Any]]], now: datetime) -> None:
        """``events`` (publisher, event), one record each, all in ONE flush: a record of
        publisher "" is unbound (no header), the others carry ingest's publisher header."""
        records = []
        for publisher, ev in events:
            headers = (publisher_header(publisher),) if publisher else ()
            records.append(Record(*TP, self.offset, PROVINCE.encode(), orjson.dumps(ev), headers))
            self.offset += 1
        prepared = self.preparer.prepare(records, now)
        assert prepared.dead_letters == []
        await self.state.flush(list(prepared.batches.values()), Periods.at(now))


async def ledger_rows(pool: asyncpg.Pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        found = await conn.fetch("SELECT dossier_id, publisher, status FROM dossier_state")
    # Keys as the ledger makes them (publisher, mark, id), so the tests read the same.
    return {ledger_id(r["dossier_id"], r["publisher"]): r["status"] for r in found}


async def test_unbound_receipt_and_bound_approval_in_one_flush_count_once(
    pool: asyncpg.Pool,
) -> None:
    """The receipt dated before the cut-over (unbound), its approval after it (bound):
    read in one flush (a worker catching up, the first flush after the upgrade), not in
    two. In two flushes the approval adopts the receipt's row (test_dossier_publishers.py)
    and the dossier counts once, early; in one it is two dossiers: the bare receipt stays
    open and is counted open overdue by the sweep, beside (or instead of) the approval."""
    worker = MixedWorker(pool, "w1")
    noon = vn("2026-11-21 12:00")
    await worker.start(noon)
    await worker.count_mixed(
        [
            (UNBOUND, received("0701", "2026-11-20 09:00", "2026-11-23")),
            (PUBLISHER, outcome("0701", "2026-11-21 10:00")),
        ],
        noon,
    )
    later = vn("2026-11-25 12:00")
    await worker.state.sweep_dossiers(later)
    assert worker.outcomes(later) == {"early": 1}
    assert worker.on_time(later) == (1, 1)
    assert await ledger_rows(pool) == {f"{PUBLISHER}{PUBLISHER_MARK}H19.01843-26110701": "done"}


async def test_unbound_receipt_read_after_its_bound_approval_counts_once(
    pool: asyncpg.Pool,
) -> None:
    """A final outcome read before its receipt is judged when the receipt brings the
    appointment (docs/dossiers.md). Across the cut-over: the approval (dated after it,
    bound) is published first, the receipt (dated before it, so unbound) comes in the
    commune's evening upload. The approval waits under the publisher's key, the receipt
    starts a bare dossier that the sweep counts open overdue: the approved dossier counts
    as overdue, never as early."""
    worker = MixedWorker(pool, "w1")
    noon = vn("2026-11-21 12:00")
    await worker.start(noon)
    await worker.count_mixed([(PUBLISHER, outcome("0801", "2026-11-21 10:00"))], noon)
    evening = vn("2026-11-21 19:00")
    await worker.count_mixed(
        [(UNBOUND, received("0801", "2026-11-20 09:00", "2026-11-23"))], evening
    )
    later = vn("2026-11-25 12:00")
    await worker.state.sweep_dossiers(later)
    assert worker.outcomes(later) == {"early": 1}
    assert worker.on_time(later) == (1, 1)


async def test_adopted_row_changed_by_an_unbound_event_of_the_same_flush_counts_once(
    pool: asyncpg.Pool,
) -> None:
    """Received and returned unbound (stored); then one flush holds its resubmission,
    dated before the cut-over (unbound), and its approval after it (bound). The approval
    adopts a copy of the bare row; the resubmission still updates the bare row, which is
    deleted as retired and written back by the upsert: it stays open with the new
    appointment and the sweep counts it open overdue beside the early approval."""
    worker = MixedWorker(pool, "w1")
    morning = vn("2026-11-20 16:00")
    await worker.start(morning)
    await worker.count_mixed(
        [
            (UNBOUND, received("0901", "2026-11-20 09:00", "2026-11-23")),
            (UNBOUND, outcome("0901", "2026-11-20 15:00", "returned")),
        ],
        morning,
    )
    noon = vn("2026-11-21 12:00")
    await worker.count_mixed(
        [
            (UNBOUND, resubmitted("0901", "2026-11-21 08:00", "2026-11-24")),
            (PUBLISHER, outcome("0901", "2026-11-21 10:00")),
        ],
        noon,
    )
    later = vn("2026-11-26 12:00")
    await worker.state.sweep_dossiers(later)
    assert worker.outcomes(later) == {"early": 1}
    assert worker.on_time(later) == (1, 1)
    assert list(await ledger_rows(pool)) == [f"{PUBLISHER}{PUBLISHER_MARK}H19.01843-26110901"]


def bound(record: Record, publisher: str = PUBLISHER) -> Record:
    return dataclasses.replace(record, headers=(publisher_header(publisher),))


async def test_a_database_refusing_every_update_of_bound_dossiers_dead_letters_nothing(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """test_review7_canaries.py's case with records of a publisher: the canary must take
    the refused event's ledger transition (an update of its stored row), so that a
    database refusing every update refuses the canary too and the records are held, not
    dead-lettered as their own fault."""
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    n = 3
    receipts = [
        bound(Record(TOPIC, 0, i, b"19", orjson.dumps(live_received(f"ev-H-{i}", f"H-{i}"))))
        for i in range(n)
    ]
    await work.step(receipts, sent)
    await work.drain()
    rows = await fetch(database_url, "SELECT dossier_id, publisher FROM dossier_state ORDER BY 1")
    assert [tuple(r) for r in rows] == [(f"H-{i}", PUBLISHER) for i in range(n)]
    await execute(database_url, REFUSE_UPDATES)
    resolutions = [
        bound(Record(TOPIC, 0, n + i, b"19", resolution(f"H-{i}", f"res-H-{i}"))) for i in range(n)
    ]
    await work.step(resolutions, sent)
    await work.drain()
    assert sent.letters == [], where(sent)
    assert await offsets_of(database_url, TOPIC) == {0: n}


def test_a_summary_fact_without_its_dossier_is_named_for_a_bound_record() -> None:
    """test_sanity.py's check (a fact with an empty dossier id is nonsense) holds for
    unbound summaries only: every record from ingest since the cut-over is bound, and
    its summaries are read with their publisher."""
    (record,) = ingest_records(dossier_events())
    summary = orjson.loads(dict(record.headers)["egov_summary"])
    size = len(record.value or b"")
    summary["f"]["d"][0] = ""
    unbound = SummaryReader().read(orjson.dumps(summary))
    assert sanity.problem(unbound, size, BOUNDS) is not None  # the check as it stands
    read = SummaryReader().read(orjson.dumps(summary), publisher=PUBLISHER)
    found = sanity.problem(read, size, BOUNDS)
    assert found is not None and "dossier" in found
