"""While the consumer reads behind, flushes start no more often than
``backlog_flush_interval_s`` (services/metrics/agents.py ``_gather_while_behind``): a
backlog is counted in fewer, larger flushes; a worker that keeps up flushes at once.
Every record is counted either way."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime

from services.metrics.agents import Counting
from tests.unit.metrics.test_future_and_failures import FakeState, never_sent, preparer, signing

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
INTERVAL_S = 0.4


class TimedState(FakeState):
    """Each flush takes 10 ms and notes when it started (monotonic) and what it took."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[tuple[float, list[int]]] = []

    async def flush(self, batches, periods):  # type: ignore[no-untyped-def]
        self.starts.append((time.monotonic(), [b.next_offset for b in batches]))
        await asyncio.sleep(0.01)
        return await super().flush(batches, periods)


async def trickle(counting: Counting, records: int, every_s: float) -> float:
    """Step one record every ``every_s``, drain, and return when the drain ended."""
    for offset in range(records):
        await counting.step([signing(offset, NOW)], never_sent)
        await asyncio.sleep(every_s)
    await counting.drain()
    return time.monotonic()


def counting_of(state: TimedState, behind: list[bool], flush_bytes: int = 16 * 2**20) -> Counting:
    counting = Counting(
        preparer(),
        state,  # type: ignore[arg-type]
        lambda: NOW,
        flush_bytes,
        backlog_flush_interval_s=INTERVAL_S,
    )
    counting.fetching_behind = lambda: behind[0]
    return counting


async def test_behind_a_backlog_flushes_start_at_most_once_an_interval() -> None:
    state = TimedState()
    began = time.monotonic()
    ended = await trickle(counting_of(state, [True]), records=20, every_s=0.03)  # ~0.6 s
    starts = [at for at, _ in state.starts]
    # At once, then no sooner than an interval after the one before (a loaded machine
    # stretches the trickle, not the rule).
    assert all(b - a >= INTERVAL_S - 0.01 for a, b in itertools.pairwise(starts))
    assert 2 <= len(starts) <= 1 + (ended - began) / INTERVAL_S, state.starts
    assert sum(len(b.event_views()) for b in state.flushed) == 20  # every record counted
    assert state.starts[-1][1] == [20]  # the offsets move with the last record


async def test_a_worker_that_keeps_up_flushes_at_once() -> None:
    state = TimedState()
    await trickle(counting_of(state, [False]), records=20, every_s=0.03)
    assert len(state.starts) >= 10, state.starts  # about one flush a step
    assert sum(len(b.event_views()) for b in state.flushed) == 20


async def test_the_wait_ends_when_the_consumer_has_handed_everything_over() -> None:
    state = TimedState()
    behind = [True]
    counting = counting_of(state, behind)
    await counting.step([signing(0, NOW)], never_sent)  # flushed at once (the first)
    await asyncio.sleep(0.05)
    await counting.step([signing(1, NOW)], never_sent)  # waits: behind, interval not over
    await asyncio.sleep(0.1)
    assert len(state.starts) == 1
    behind[0] = False  # the last fetch handed over the rest
    started = time.monotonic()
    await counting.drain()
    assert len(state.starts) == 2
    assert state.starts[1][0] - started < 0.1  # within one look (50 ms), not the interval


async def test_the_wait_ends_when_a_whole_flush_is_waiting() -> None:
    state = TimedState()
    counting = counting_of(state, [True], flush_bytes=1)  # any record fills a flush
    await counting.step([signing(0, NOW)], never_sent)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await counting.step([signing(1, NOW)], never_sent)
    await counting.drain()
    assert len(state.starts) == 2
    assert state.starts[1][0] - started < 0.1
