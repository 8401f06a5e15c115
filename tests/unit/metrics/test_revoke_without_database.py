"""A rebalance never waits for PostgreSQL: revoking partitions does not take the flush lock."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from services.metrics.exposition import PipelineMetrics
from services.metrics.figures import Figures, PartitionFigures
from services.metrics.pipeline import PartitionState
from services.metrics.store import Claim


async def no_pool() -> object:
    raise AssertionError("revoking must not touch the database")


async def test_revoke_completes_while_a_flush_holds_the_lock() -> None:
    figures = Figures()
    tp = ("egov.documents", 0)
    figures.assign(tp, PartitionFigures())
    state = PartitionState(no_pool, "g", "w", figures, PipelineMetrics(CollectorRegistry()))  # type: ignore[arg-type]
    state.claims[tp] = Claim(tp, next_offset=10, epoch=1)
    async with state._lock:  # a flush retrying through a database outage
        await asyncio.wait_for(state.revoke([tp]), timeout=1)
    assert tp not in state.claims and tp not in figures.partitions
