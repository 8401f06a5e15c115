"""Review 91: a claim of partitions that PostgreSQL holds is a stall of the counting (no
record reaches it before the claim), as a flush that commits nothing is. Time is an
input: a monotonic clock the test moves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.metrics.exposition import PipelineMetrics
from services.metrics.figures import Figures, TopicPartition
from services.metrics.periods import Periods
from services.metrics.pipeline import PartitionState
from services.metrics.stallwatch import StallWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_held_step_waits_from_its_start_and_clears_when_done() -> None:
    clock = Clock()
    watch = StallWatch(60.0, clock)
    with watch.held():
        clock.now += 61
        assert watch.stalled_s() == 61
        stall = watch.stall(0)
        assert stall is not None and stall.waiting_records == 0
    assert watch.stalled_s() == 0 and watch.stall(0) is None


def test_records_waiting_when_a_step_ends_keep_their_own_wait() -> None:
    clock = Clock()
    watch = StallWatch(60.0, clock)
    with watch.held():
        clock.now += 30
        watch.waiting()  # records handed over meanwhile (another partition's)
        clock.now += 40
        assert watch.stalled_s() == 70  # the earliest wait
    assert watch.stalled_s() == 40
    watch.committed(still_waiting=False)
    assert watch.stalled_s() == 0


def test_a_fast_claim_never_states_a_stall() -> None:
    watch = StallWatch(60.0, Clock())
    with watch.held():
        assert watch.stall(0) is None  # no time passed: far below the threshold
    assert watch.stalled_s() == 0


def _state(watch: StallWatch) -> PartitionState:
    async def no_pool() -> asyncpg.Pool:
        raise AssertionError("not used")

    metrics = PipelineMetrics(CollectorRegistry(), ["vn.egov.document.issued"])
    return PartitionState(no_pool, "g", "w", Figures(), metrics, watch)


async def test_a_claim_retried_through_a_lock_is_stated_until_it_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    watch = StallWatch(2.0, clock)
    state = _state(watch)
    seen: list[float] = []
    attempts = iter([True, True, False])

    async def claim(tps: Sequence[TopicPartition], periods: Periods) -> dict[TopicPartition, int]:
        seen.append(watch.stalled_s())
        clock.now += 10  # lock_timeout
        if next(attempts):
            raise asyncpg.LockNotAvailableError("canceling statement due to lock timeout")
        return dict.fromkeys(tps, 0)

    async def no_sleep(_: float) -> None:
        return None

    monkeypatch.setattr(state, "_assign", claim)
    monkeypatch.setattr("services.metrics.pipeline.asyncio.sleep", no_sleep)
    periods = Periods.at(datetime(2026, 12, 6, tzinfo=UTC))
    assert await state.assign([("egov.documents", 0)], periods) == {("egov.documents", 0): 0}
    assert seen == [0, 10, 20]  # stated from the claim's start, through its retries
    assert watch.stalled_s() == 0  # claimed: nothing waits
