"""The counting says when it has caught up (every record it read is committed), so the
/v1/kpis snapshot need not wait for its interval (services/metrics/snapshot.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from faust.exceptions import ConsumerNotStarted

from services.metrics.agents import Counting, _reading_behind
from services.metrics.fetched import FetchedBatchConsumer
from tests.unit.metrics.test_future_and_failures import GatedState, never_sent, preparer, signing

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


async def test_caught_up_once_the_last_flush_commits_with_nothing_pending() -> None:
    state = GatedState()
    counting = Counting(preparer(), state, lambda: NOW)  # type: ignore[arg-type]
    calls: list[int] = []
    counting.on_caught_up = lambda: calls.append(len(state.flushed))
    await counting.step([signing(0, NOW)], never_sent)  # in flight
    await counting.step([signing(1, NOW)], never_sent)  # pending behind it
    assert calls == []
    state.gate.set()
    await counting.drain()
    assert len(state.flushed) == 2
    assert calls == [2]  # not after the first flush: the second was waiting


async def test_a_failed_flush_is_not_caught_up() -> None:
    class Failing(GatedState):
        async def flush(self, batches, periods):  # type: ignore[no-untyped-def]
            raise RuntimeError("a bug")

    counting = Counting(preparer(), Failing(), lambda: NOW)  # type: ignore[arg-type]
    calls: list[str] = []
    counting.on_caught_up = lambda: calls.append("caught up")
    with pytest.raises(RuntimeError, match="a bug"):
        await counting.step([signing(0, NOW)], never_sent)  # the flush failed at once
        await counting.drain()
    assert calls == []


async def test_not_caught_up_while_the_consumer_knows_of_more_records() -> None:
    """Between two fetches of a backlog nothing decoded waits, yet the broker holds more:
    that is not caught up (the snapshot would interrupt the backlog for nothing)."""
    state = GatedState()
    counting = Counting(preparer(), state, lambda: NOW)  # type: ignore[arg-type]
    behind = [True]
    counting.reading_behind = lambda: behind[0]
    calls: list[int] = []
    counting.on_caught_up = lambda: calls.append(len(state.flushed))
    state.gate.set()
    await counting.step([signing(0, NOW)], never_sent)
    await counting.drain()
    assert calls == []
    behind[0] = False  # the last fetch handed over everything the broker had
    await counting.step([signing(1, NOW)], never_sent)
    await counting.drain()
    assert calls == [2]


def test_a_consumer_that_cannot_tell_is_not_behind() -> None:
    """Stopping, Faust's consumer thread raises when asked: a flush ending then is caught
    up, it does not crash the worker (the answer only decides when a snapshot comes)."""

    class Stopped(FetchedBatchConsumer):
        def __init__(self) -> None:  # no Faust app behind it
            pass

        def reading_behind(self) -> bool:
            raise ConsumerNotStarted("Consumer thread not yet started")

    app = SimpleNamespace(consumer=Stopped())
    assert _reading_behind(app) is False  # type: ignore[arg-type]
