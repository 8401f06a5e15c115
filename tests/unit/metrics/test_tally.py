"""A flush's tally without a database: the first delivery of a repeated key, the key
blocks, the sums a flush adds with and without duplicates, and the batch's own
operations (build, select, take back) against the same events summed one by one."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.dossierfacts import Fact
from services.common.tally import Deltas, TallyBuilder, TallyEvent, tally_of
from services.metrics.periods import local_day_of_epoch
from services.metrics.tally import (
    PartitionBatch,
    first_deliveries,
    key_blocks,
    selected,
    views,
)

BASE = datetime(2026, 11, 23, 16, 50, tzinfo=UTC).timestamp()  # 23:50 in Vietnam
FAMILIES = {"document_signing": "documents"}


def contribution(key: int, minute: int, backfill: bool = False) -> TallyEvent:
    epoch = BASE + 60 * minute
    counts = (("a", minute % 2, 1),)
    return TallyEvent(
        bytes([key]) * 16,
        "document_signing",
        "documents",
        epoch,
        local_day_of_epoch(epoch),
        ("01843", "19"),
        counts,
        False,
        backfill,
        Fact(f"H{key}", "received") if key % 3 == 0 else None,
    )


def batch_of(tp: int, events: list[TallyEvent]) -> PartitionBatch:
    """A partition batch holding ``events`` as the per-event paths build it (a run of
    one backfill flag per batch)."""
    batch = PartitionBatch(("egov.documents", tp), 0)
    for e in events:
        batch.builder(e.backfill, FAMILIES).add_event(e)
    batch.seal()
    return batch


_events = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 30), st.booleans()), max_size=25)


@given(_events, _events)
@settings(max_examples=100, deadline=None)
def test_the_first_delivery_of_each_key_is_kept_and_the_rest_are_duplicates(
    one: list[tuple[int, int, bool]], two: list[tuple[int, int, bool]]
) -> None:
    events = [[contribution(*e) for e in part] for part in (one, two)]
    batches = [batch_of(p, part) for p, part in enumerate(events)]
    assert [b.event_views() for b in batches] == events
    first, repeated = first_deliveries(batches)
    seen: dict[bytes, TallyEvent] = {}
    expected_repeats = []
    for c in (c for part in events for c in part):
        if c.digest in seen:
            expected_repeats.append(c)
        else:
            seen[c.digest] = c
    assert {k: e for k, e in zip(first, views(batches, first.values()), strict=True)} == seen
    assert views(batches, repeated) == expected_repeats
    blocks = key_blocks(batches, first.values())
    assert sorted(k for keys in blocks.values() for k in keys) == sorted(first)
    assert all((c.day, c.backfill) in blocks for c in seen.values())
    # What a flush counts is the first deliveries, in offset order, facts and all.
    kept = selected(batches, list(first.values()))
    for part, tallies in zip(events, kept, strict=True):
        firsts = [c for c in part if seen[c.digest] is c]
        assert [e for t in tallies for e in t.event_views()] == firsts
        assert all(list(t.facts) == sorted(t.facts) for t in tallies)  # the ledger's order
        assert Deltas.of_batches(tallies) == Deltas.of(firsts)


def test_a_flush_without_duplicates_adds_the_sums_made_ahead() -> None:
    cs = [contribution(i, i) for i in range(10)]
    batch = batch_of(0, cs)
    batch.sum_ahead()
    assert batch.deltas() == Deltas.of(cs)
    assert sum(len(keys) for keys in batch.keys.values()) == 10


@given(_events, st.integers(0, 25))
@settings(max_examples=100, deadline=None)
def test_taking_back_forgets_exactly_the_events_after_the_mark(
    events: list[tuple[int, int, bool]], keep: int
) -> None:
    cs = [contribution(k, m) for k, m, _ in events]
    builder = TallyBuilder()
    for c in cs[:keep]:
        builder.add_event(c)
    mark = len(builder)
    for c in cs[keep:]:
        builder.add_event(c)
    builder.take_back(mark)
    built = builder.build(FAMILIES)
    assert built.event_views() == cs[:keep]
    assert built == built and Deltas.of_batches([built]) == Deltas.of(cs[:keep])
    assert 0 not in built.group_events
    assert list(built.facts) == sorted(built.facts)


def test_a_partition_batch_takes_back_a_record_that_failed_midway() -> None:
    batch = PartitionBatch(("egov.documents", 0), 0)
    batch.builder(False, FAMILIES).add_event(contribution(1, 1))
    mark = batch.mark()
    batch.builder(False, FAMILIES).add_event(contribution(2, 2))
    batch.append(tally_of([contribution(4, 4)]), summarised=True)
    batch.take_back(mark)
    assert batch.event_views() == [contribution(1, 1)]


@given(_events, st.integers(-2, 2))
@settings(max_examples=100, deadline=None)
def test_type_counts_are_the_groups_counted_by_type(
    events: list[tuple[int, int, bool]], days: int
) -> None:
    """What a flush adds to the per-type counters, without a date per group: the same as
    counting the groups (services/metrics/agents.py) or the events one by one."""
    from collections import Counter
    from datetime import timedelta

    cs = [dataclasses.replace(contribution(k, m), crosswalked=x) for k, m, x in events]
    batch = tally_of(cs)
    today = local_day_of_epoch(BASE) + timedelta(days=days)
    counts = batch.type_counts(today)
    assert counts.processed == dict(Counter(c.type for c in cs))
    assert counts.late == dict(Counter(c.type for c in cs if c.day < today))
    assert counts.crosswalked == dict(Counter(c.type for c in cs if c.crosswalked))
    late = Counter()
    for group in batch.groups():
        if group.day < today:
            late[group.type] += group.events
    assert counts.late == dict(late)


@given(_events, _events)
@settings(max_examples=50, deadline=None)
def test_merging_a_decoded_batch_adds_its_events_after_the_others(
    one: list[tuple[int, int, bool]], two: list[tuple[int, int, bool]]
) -> None:
    first = [contribution(k, m) for k, m, _ in one]
    second = [contribution(k, m) for k, m, _ in two]
    builder = TallyBuilder()
    for c in first:
        builder.add_event(c)
    builder.merge(tally_of(second))
    merged = builder.build(FAMILIES)
    assert merged.event_views() == first + second
    assert Deltas.of_batches([merged]) == Deltas.of(first + second)
