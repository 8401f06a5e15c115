"""Review of e406ab1: a worker that reads behind for good (a continuous stream, or a
partition whose high watermark stays above what it can read) still publishes its /v1/kpis
snapshot at the interval; only the caught-up shortcut waits."""

from __future__ import annotations

import itertools

from services.common.tally import Deltas
from services.metrics.periods import Periods
from tests.unit.metrics.test_figures import c
from tests.unit.metrics.test_snapshot import NOW, TP, setup


async def test_behind_for_good_a_snapshot_still_comes_every_interval() -> None:
    figures, snapshots, clocks, _ = setup()
    await snapshots.publish()
    snapshots.reading_behind = lambda: True  # never caught up
    published = []
    for _ in range(50):  # 5 s of a step every 0.1 s, each changing the figures
        clocks.advance(0.1)
        figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
        snapshots.poke()
        if await snapshots.refresh():  # the timer's tick
            published.append(round(clocks.monotonic(), 1))
    assert len(published) >= 4, published  # interval 1 s: one a second after the first
    gaps = [b - a for a, b in itertools.pairwise(published)]
    assert all(g <= 1.1 for g in gaps), published


async def test_a_step_behind_after_the_stale_partition_is_gone_resets_on_catching_up() -> None:
    """Once caught up again, the next change is published at the caught-up pace, not an
    interval after the old fall behind."""
    figures, snapshots, clocks, _ = setup()
    await snapshots.publish()
    behind = [True]
    snapshots.reading_behind = lambda: behind[0]
    clocks.advance(0.1)
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    snapshots.poke()  # falls behind
    clocks.advance(5)
    assert await snapshots.refresh()
    behind[0] = False
    snapshots.caught_up()
    clocks.advance(0.2)
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    assert snapshots.due(0.1)  # not held back by the fall behind of 5 s ago
