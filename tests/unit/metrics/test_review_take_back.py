"""Review of taking back a record that failed halfway (services/metrics/tally.py ``Mark``):
across a change of the backfill flag, and with the builder sealed by a summary meanwhile,
what remains is exactly the events before the mark, then those after it, with the keys,
sums and backfill flags of those events only."""

from __future__ import annotations

from services.common.tally import Deltas, tally_of
from services.metrics.tally import PartitionBatch
from tests.unit.metrics.test_tally import FAMILIES, contribution


def test_a_backfilled_record_that_failed_leaves_the_live_batch_open() -> None:
    batch = PartitionBatch(("egov.documents", 0), 0)
    live = [contribution(1, 1), contribution(3, 2)]
    for c in live:
        batch.builder(False, FAMILIES).add_event(c)
    mark = batch.mark()
    # A backfilled record: its builder seals the live one; then a summary; then it fails.
    batch.builder(True, FAMILIES).add_event(contribution(2, 3, backfill=True))
    batch.append(tally_of([contribution(4, 4)]), summarised=True)
    batch.builder(True, FAMILIES).add_event(contribution(6, 5, backfill=True))
    batch.take_back(mark)
    after = contribution(9, 6)
    batch.builder(False, FAMILIES).add_event(after)
    batch.sum_ahead()
    assert batch.event_views() == [*live, after]
    assert len(batch.tallies) == 1 and not batch.tallies[0].backfill
    assert sorted(batch.keys) == [(live[0].day, False)]
    assert sorted(batch.keys[(live[0].day, False)]) == sorted(c.digest for c in [*live, after])
    assert batch.deltas() == Deltas.of([*live, after])
    facts = batch.tallies[0].facts
    assert list(facts) == sorted(facts)
    assert [f.dossier_id for f in facts.values()] == ["H3", "H9"]


def test_a_record_that_failed_after_a_flush_was_summed_ahead_forgets_only_itself() -> None:
    """sum_ahead between records (agents.Counting.step) seals the open batch: the next
    record's mark starts a new one, and its take-back leaves the summed sums alone."""
    batch = PartitionBatch(("egov.documents", 0), 0)
    first = [contribution(1, 1), contribution(2, 2)]
    for c in first:
        batch.builder(False, FAMILIES).add_event(c)
    batch.sum_ahead()
    mark = batch.mark()
    batch.builder(False, FAMILIES).add_event(contribution(3, 3))
    batch.take_back(mark)
    batch.sum_ahead()
    assert batch.event_views() == first
    assert batch.deltas() == Deltas.of(first)
    assert sum(len(k) for k in batch.keys.values()) == 2
