"""A flush whose COMMIT reached PostgreSQL but whose answer did not reach the worker.

The retry must not take its own committed events for duplicates (the exported figures
would miss them, silently): it finds the partitions' stored positions already at the
flush's and reads their figures back (``PartitionState._committed_already``). The
end-to-end version, through a proxy that cuts the connection after the COMMIT, is
tests/integration/test_review70_postgres_outages.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.metrics import pipeline, store
from services.metrics.periods import Periods
from tests.integration.metrics.test_review13_exactly_once import (
    DOCS,
    batches_of,
    day_figure,
    doc_record,
    keys,
    signing,
    state_of,
)

pytestmark = pytest.mark.integration


def failing_once(monkeypatch: pytest.MonkeyPatch, *, after_commit: bool) -> list[int]:
    """store.flush as the pipeline sees it: its first call loses the connection, after
    the real flush committed (``after_commit``) or before it ran. Returns the calls."""
    real = store.flush
    calls: list[int] = []

    async def flush(*args: Any, **kwargs: Any) -> store.FlushResult:
        calls.append(1)
        if len(calls) == 1:
            if after_commit:
                await real(*args, **kwargs)
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        return await real(*args, **kwargs)

    monkeypatch.setattr(pipeline.store, "flush", flush)
    return calls


async def test_a_retry_after_a_lost_commit_reads_the_figures_back(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    state = state_of(pool, "a")
    await state.assign([DOCS], Periods.at(now))
    calls = failing_once(monkeypatch, after_commit=True)
    records = [doc_record(i, f"c-{i}", now - timedelta(minutes=5)) for i in range(5)]
    result = await state.flush(batches_of(records, now), Periods.at(now))
    assert calls == [1]  # the retry did not run the flush again
    assert set(result.reloaded) == {DOCS} and not result.fenced
    assert await keys(pool) == 5 and await signing(pool) == 5
    assert day_figure(state, now) == (5, 5)  # not (0, 0): nothing counted as duplicate
    # The next flush goes on from there.
    more = [doc_record(5 + i, f"d-{i}", now - timedelta(minutes=5)) for i in range(3)]
    await state.flush(batches_of(more, now), Periods.at(now))
    assert day_figure(state, now) == (8, 8) and await signing(pool) == 8


async def test_a_retry_after_a_failure_before_the_commit_flushes_again(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    state = state_of(pool, "a")
    await state.assign([DOCS], Periods.at(now))
    calls = failing_once(monkeypatch, after_commit=False)
    records = [doc_record(i, f"e-{i}", now - timedelta(minutes=5)) for i in range(4)]
    result = await state.flush(batches_of(records, now), Periods.at(now))
    assert len(calls) == 2 and result.events == 4 and not result.reloaded
    assert day_figure(state, now) == (4, 4) and await signing(pool) == 4


async def test_a_lost_commit_of_a_partition_claimed_meanwhile_is_fenced(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    state, other = state_of(pool, "a"), state_of(pool, "b")
    await state.assign([DOCS], Periods.at(now))
    real = store.flush

    async def flush(*args: Any, **kwargs: Any) -> store.FlushResult:
        monkeypatch.setattr(pipeline.store, "flush", real)
        await real(*args, **kwargs)
        await other.assign([DOCS], Periods.at(now))  # the new owner, before the retry
        raise asyncpg.ConnectionDoesNotExistError("connection was closed")

    monkeypatch.setattr(pipeline.store, "flush", flush)
    records = [doc_record(i, f"f-{i}", now - timedelta(minutes=5)) for i in range(3)]
    result = await state.flush(batches_of(records, now), Periods.at(now))
    assert result.fenced == {DOCS} and day_figure(state, now) == (0, 0)
    assert day_figure(other, now) == (3, 3)  # the new owner loaded what committed
