"""A flush's tally without a database: the first delivery of a repeated key, the key
blocks, and the sums a flush adds with and without duplicates."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from services.metrics.contributions import Contribution, Deltas
from services.metrics.periods import local_day_of_epoch
from services.metrics.tally import (
    PartitionBatch,
    counted_deltas,
    first_deliveries,
    key_blocks,
)

BASE = datetime(2026, 11, 23, 16, 50, tzinfo=UTC).timestamp()  # 23:50 in Vietnam


def contribution(key: int, minute: int, backfill: bool = False) -> Contribution:
    epoch = BASE + 60 * minute
    counts = (("a", minute % 2, 1),)
    return Contribution(
        bytes([key]) * 16,
        "document_signing",
        "documents",
        epoch,
        local_day_of_epoch(epoch),
        ("01843", "19"),
        counts,
        False,
        backfill,
    )


_events = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 30), st.booleans()), max_size=25)


@given(_events, _events)
@settings(max_examples=100, deadline=None)
def test_the_first_delivery_of_each_key_is_kept_and_the_rest_are_duplicates(
    one: list[tuple[int, int, bool]], two: list[tuple[int, int, bool]]
) -> None:
    batches = [
        PartitionBatch(("egov.documents", p), 0, [contribution(*e) for e in events])
        for p, events in enumerate((one, two))
    ]
    first, repeated = first_deliveries(batches)
    seen: dict[bytes, Contribution] = {}
    expected_repeats = []
    for c in (c for b in batches for c in b.contributions):
        if c.digest in seen:
            expected_repeats.append(c)
        else:
            seen[c.digest] = c
    assert {k: id(c) for k, c in first.items()} == {k: id(c) for k, c in seen.items()}
    assert [id(c) for c in repeated] == [id(c) for c in expected_repeats]
    blocks = key_blocks(first.values())
    assert sorted(k for keys in blocks.values() for k in keys) == sorted(first)
    assert all((c.day, c.backfill) in blocks for c in first.values())


def test_a_flush_without_duplicates_adds_the_sums_made_ahead() -> None:
    cs = [contribution(i, i) for i in range(10)]
    batch = PartitionBatch(("egov.documents", 0), 10, list(cs))
    batch.sum_ahead()
    assert counted_deltas(batch, None) == Deltas.of(cs)
    kept = {id(c) for c in cs[::2]}
    assert counted_deltas(batch, kept) == Deltas.of(cs[::2])
