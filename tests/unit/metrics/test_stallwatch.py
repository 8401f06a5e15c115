"""Review 85: a worker whose flushes cannot commit says its counting is stalled
(services/metrics/stallwatch.py, agents.py ``Counting.stalled``, web.py): /v1/kpis
answers 503 naming the stall, /v1/activity says it, /metrics shows it. Time is an input:
a monotonic clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.common.stalls import CountingStall
from services.metrics.agents import Counting
from services.metrics.periods import Periods
from services.metrics.settings import MetricsSettings
from services.metrics.stallwatch import StallCollector, StallWatch
from services.metrics.store import FlushResult
from services.metrics.tally import PartitionBatch
from services.metrics.web import activity_answer, stalled_answer
from tests.unit.metrics.test_future_and_failures import (
    FakeState,
    GatedState,
    never_sent,
    preparer,
    signing,
)
from tests.unit.metrics.test_snapshot import setup

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch(after_s: float = 60.0) -> tuple[StallWatch, Monotonic]:
    clock = Monotonic()
    return StallWatch(after_s, clock), clock


def test_nothing_waiting_is_never_a_stall_however_long_the_worker_is_idle() -> None:
    stall, clock = watch()
    clock.now += 86_400
    assert stall.stalled_s() == 0.0
    assert stall.stall(0) is None


def test_records_waiting_with_no_commit_are_a_stall_from_the_threshold_on() -> None:
    stall, clock = watch(60.0)
    stall.waiting()
    clock.now += 30
    stall.waiting()  # more records: the wait still counts from the first
    clock.now += 29.9
    assert stall.stalled_s() == pytest.approx(59.9)
    assert stall.stall(7) is None  # a slow flush, not a stall yet
    clock.now += 0.1
    assert stall.stall(7) == CountingStall(pytest.approx(60.0), 7, 60.0)  # type: ignore[arg-type]
    stall.committed(still_waiting=False)
    assert stall.stalled_s() == 0.0
    assert stall.stall(0) is None


def test_a_backlog_whose_flushes_commit_is_never_stalled() -> None:
    """Under a backlog records always wait, but each commit restarts the clock: only a
    worker that commits nothing for the threshold is stalled."""
    stall, clock = watch(60.0)
    stall.waiting()
    for _ in range(100):  # a flush every 40 s, something always waiting
        clock.now += 40
        assert stall.stall(50_000) is None
        stall.committed(still_waiting=True)
    clock.now += 60
    assert stall.stall(50_000) is not None  # then the flushes stop committing


class StuckState(FakeState):
    """Flushes that wait until the test lets them commit (PostgreSQL locked), each on its
    own gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: list[asyncio.Event] = []

    async def flush(self, batches: Sequence[PartitionBatch], periods: Periods) -> FlushResult:
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return await super().flush(batches, periods)


async def test_a_flush_that_cannot_commit_stalls_the_counting_until_it_does() -> None:
    state = GatedState()
    stall, clock = watch(60.0)
    counting = Counting(preparer(), state, lambda: NOW, stall=stall)  # type: ignore[arg-type]
    await counting.step([signing(0, NOW)], never_sent)  # in flight, held at the gate
    await counting.step([signing(1, NOW), signing(2, NOW)], never_sent)  # pending
    assert counting.waiting_records() == 3
    clock.now += 59
    assert counting.stalled() is None
    clock.now += 2
    said = counting.stalled()
    assert said is not None
    assert (said.stalled_s, said.waiting_records, said.after_s) == (61.0, 3, 60.0)
    state.gate.set()  # the lock goes
    await counting.drain()
    assert counting.stalled() is None
    assert counting.waiting_records() == 0 and stall.stalled_s() == 0.0
    assert sum(b.events for b in state.flushed) == 3  # every event counted, once


async def test_each_commit_restarts_the_wait_of_what_came_meanwhile() -> None:
    state = StuckState()
    stall, clock = watch(60.0)
    counting = Counting(preparer(), state, lambda: NOW, stall=stall)  # type: ignore[arg-type]
    await counting.step([signing(0, NOW)], never_sent)
    clock.now += 50
    await counting.step([signing(1, NOW)], never_sent)  # waits behind the first flush
    state.gates[0].set()
    for _ in range(100):  # the first commits, the second starts
        if len(state.gates) == 2:
            break
        await asyncio.sleep(0)
    assert len(state.gates) == 2  # the first committed, the second in flight
    clock.now += 50  # 100 s since the first record came, 50 since a commit
    assert counting.stalled() is None
    assert stall.stalled_s() == 50.0
    clock.now += 10
    assert counting.stalled() == CountingStall(60.0, 1, 60.0)
    state.gates[1].set()
    await counting.drain()
    assert counting.stalled() is None


async def test_counting_wired_without_a_threshold_never_says_it_is_stalled() -> None:
    state = GatedState()
    counting = Counting(preparer(), state, lambda: NOW)  # type: ignore[arg-type]
    await counting.step([signing(0, NOW)], never_sent)
    assert counting.waiting_records() == 1
    assert counting.stalled() is None
    state.gate.set()
    await counting.drain()


def test_the_stall_is_a_gauge_on_metrics() -> None:
    stall, clock = watch(60.0)
    waiting = [0]
    registry = CollectorRegistry()
    registry.register(StallCollector(stall, lambda: waiting[0]))

    def sample(name: str) -> float | None:
        return registry.get_sample_value(name)

    assert sample("egov_metrics_counting_stalled_seconds") == 0.0
    assert sample("egov_metrics_counting_waiting_records") == 0.0
    stall.waiting()
    waiting[0] = 40
    clock.now += 75
    assert sample("egov_metrics_counting_stalled_seconds") == 75.0
    assert sample("egov_metrics_counting_waiting_records") == 40.0


def test_a_stalled_kpis_answer_is_a_503_naming_the_stall() -> None:
    response = stalled_answer(CountingStall(74.26, 1240, 60.0), "egov-metrics@h:8081")
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    body = orjson.loads(response.body)  # type: ignore[arg-type]
    assert body["type"] == "https://egov-pulse.vn/problems/counting-stalled"
    assert body["counting_stalled"] == {"stalled_s": 74.3, "waiting_records": 1240, "after_s": 60.0}
    assert body["worker"] == "egov-metrics@h:8081"
    assert "74 s" in body["detail"] and "1240 records" in body["detail"]


async def test_activity_still_answers_and_says_the_counting_is_stalled() -> None:
    _, snapshots, _, _ = setup()
    await snapshots.publish()
    current = orjson.loads(activity_answer(snapshots, "w").body)  # type: ignore[arg-type]
    assert current["counting_stalled"] is None
    response = activity_answer(snapshots, "w", CountingStall(61.0, 3, 60.0))
    assert response.status == 200
    stalled = orjson.loads(response.body)  # type: ignore[arg-type]
    assert stalled["counting_stalled"] == {"stalled_s": 61.0, "waiting_records": 3, "after_s": 60.0}
    assert stalled["items"] == current["items"]


def test_the_threshold_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MetricsSettings().metrics_stall_after_s == 60.0
    monkeypatch.setenv("EGOV_METRICS_STALL_AFTER_S", "5")
    assert MetricsSettings().metrics_stall_after_s == 5.0
    for refused in ("0", "-1", "inf", "nan", "3601"):
        monkeypatch.setenv("EGOV_METRICS_STALL_AFTER_S", refused)
        with pytest.raises(ValidationError):
            MetricsSettings()
