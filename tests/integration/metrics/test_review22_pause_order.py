"""Review 22: judging a dossier's pauses in the events' own order, whatever order they are
read in.

Review 21's fix for this (b83df92: one pause and one resumption instant per dossier,
migration 0016_dossier_clock) was reviewed here and withdrawn the same day: two return
cycles, a final outcome read before the resubmission that preceded it, a return read after
a final, and rows from before the migration were each judged by the order of reading. The
sequences were strict xfails until the ledger judged a dossier from its events sorted by
their own times (2026-12-05, migration 0016_dossier_history); they pass now. The expected
counts are what the events say in their own order (a dossier rejected while back with the
applicant judged when its clock stopped, review 21's rule).

The worker's own pieces on a real, migrated PostgreSQL (the harness of
test_dossier_ledger.py and test_review21_on_time.py), the clock moved by the test. The
unit is phường Bắc Kạn (01843, Thái Nguyên 19). The other tests check claims that hold.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.integration.metrics.test_dossier_ledger import PROVINCE, UNIT, Worker, vn
from tests.integration.metrics.test_review21_on_time import (
    outcome,
    received,
    resubmitted,
    stored,
    windows,
)

pytestmark = pytest.mark.integration

H = "H19.01843-2611"
CHAIN = (PROVINCE, UNIT)


def returned(dossier: str, at: str) -> dict[str, Any]:
    return outcome(dossier, at, "returned")


async def read(worker: Worker, steps: list[tuple[str, list[dict[str, Any]]]]) -> None:
    """Each step's events read at its time (Vietnam time), then a sweep at that time."""
    await worker.start(vn(steps[0][0]))
    for at, events in steps:
        now = vn(at)
        await worker.count(events, now)
        await worker.state.sweep_dossiers(now)


# --- defects -------------------------------------------------------------------------

# One dossier, two return cycles: received on the 20th (appointment the 23rd), returned on
# the 21st, back complete on the 22nd (new appointment the 27th), returned again on the
# 26th (a day before it), never completed: rejected on 5 December. In their own order:
# its clock stopped on the 26th, before the 27th, so it is early (review 21's rule).


async def test_two_returns_read_before_the_resubmission_between_them_keep_the_second_pause(
    pool: asyncpg.Pool,
) -> None:
    """Both returns pushed live; the resubmission taken at the counter on the 22nd
    reaches the worker in the commune's upload after an outage, the evening of the 26th."""
    worker = Worker(pool, "w1")
    await read(
        worker,
        [
            ("2026-11-20 10:00", [received("0101", "2026-11-20 09:00", "2026-11-23")]),
            ("2026-11-21 11:00", [returned("0101", "2026-11-21 10:00")]),
            ("2026-11-26 11:00", [returned("0101", "2026-11-26 10:00")]),
            ("2026-11-26 20:00", [resubmitted("0101", "2026-11-22 10:00", "2026-11-27")]),
            ("2026-11-28 09:00", []),
        ],
    )
    assert worker.outcomes(vn("2026-11-28 09:00")) == {}  # paused since the 26th
    end = vn("2026-12-05 12:00")
    await worker.count([outcome("0101", "2026-12-05 10:00", "rejected")], end)
    assert windows(worker, end)["year"] == {"early": 1}


async def test_a_resubmission_read_after_a_later_return_brings_its_appointment(
    pool: asyncpg.Pool,
) -> None:
    """The second return pushed live on the 26th; the first cycle (return of the 21st,
    resubmission of the 22nd) in the evening upload."""
    worker = Worker(pool, "w1")
    await read(
        worker,
        [
            ("2026-11-20 10:00", [received("0102", "2026-11-20 09:00", "2026-11-23")]),
            ("2026-11-26 11:00", [returned("0102", "2026-11-26 10:00")]),
            (
                "2026-11-26 20:00",
                [
                    returned("0102", "2026-11-21 10:00"),
                    resubmitted("0102", "2026-11-22 10:00", "2026-11-27"),
                ],
            ),
        ],
    )
    end = vn("2026-12-05 12:00")
    await worker.count([outcome("0102", "2026-12-05 10:00", "rejected")], end)
    assert windows(worker, end)["year"] == {"early": 1}


@pytest.mark.parametrize("upload", ["receipt first", "return first"])
async def test_a_return_read_after_the_final_of_a_dossier_resolved_first_stops_its_clock(
    pool: asyncpg.Pool, upload: str
) -> None:
    """Review 13's order (the final pushed live, the commune's day in the evening upload)
    with review 21's rule: returned on the 21st, never completed, rejected on 2 December."""
    worker = Worker(pool, "w1")
    evening = [
        received("0103", "2026-11-20 09:00", "2026-11-23"),
        returned("0103", "2026-11-21 10:00"),
    ]
    if upload == "return first":
        evening.reverse()
    await read(
        worker,
        [
            ("2026-12-02 11:00", [outcome("0103", "2026-12-02 10:00", "rejected")]),
            ("2026-12-02 20:00", evening),
        ],
    )
    assert windows(worker, vn("2026-12-02 20:00"))["year"] == {"early": 1}


@pytest.mark.parametrize("receipt", ["read live", "in the upload"])
async def test_an_approval_read_before_the_resubmission_it_followed_is_not_early(
    pool: asyncpg.Pool, receipt: str
) -> None:
    """Received on the 20th (the 23rd), returned on the 21st, back complete on the 25th
    with the 28th, approved on 2 December: late, in its own order and in this read order
    (the withdrawn b83df92 counted it early). The return and the approval are pushed live; the
    resubmission (and, in one case, the receipt) come in an upload on 2 December
    (within the 14-day grace)."""
    worker = Worker(pool, "w1")
    receipt_event = received("0104", "2026-11-20 09:00", "2026-11-23")
    live = [receipt_event] if receipt == "read live" else []
    upload = [] if receipt == "read live" else [receipt_event]
    await read(
        worker,
        [
            ("2026-11-20 10:00", live),
            ("2026-11-21 11:00", [returned("0104", "2026-11-21 10:00")]),
            ("2026-12-02 11:00", [outcome("0104", "2026-12-02 10:00", "approved")]),
            ("2026-12-02 20:00", [*upload, resubmitted("0104", "2026-11-25 10:00", "2026-11-28")]),
        ],
    )
    assert windows(worker, vn("2026-12-02 20:00"))["year"] == {"late": 1}


# --- claims that hold ----------------------------------------------------------------


async def test_a_late_dossier_read_only_after_its_resolution_counts_in_last_months_windows(
    pool: asyncpg.Pool,
) -> None:
    """No sweep saw it (read after an outage): its late count is on its appointment's
    day, 30 November; on 2 December the day and month windows never show it, the year
    does, and a new worker rebuilt from the stored rows shows the same."""
    worker = Worker(pool, "w1")
    upload = vn("2026-12-02 20:00")
    await worker.start(upload)
    await worker.count(
        [
            received("0106", "2026-11-25 09:00", "2026-11-30"),
            outcome("0106", "2026-12-02 10:00"),
        ],
        upload,
    )
    expected = {"day": {}, "month": {}, "year": {"late": 1}}
    assert windows(worker, upload) == expected
    assert windows(worker, vn("2026-11-30 12:00"))["month"] == {"late": 1}
    assert await stored(pool, "dossier_on_time:late") == {
        ("dossier_on_time:late", vn("2026-11-30 12:00").date()): 1
    }
    again = Worker(pool, "w2")
    await again.start(upload)
    assert windows(again, upload) == expected
