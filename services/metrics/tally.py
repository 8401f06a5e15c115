"""A flush's tally per partition: what was decoded, summed as it comes, and its dedup keys.

Pure: the store (services/metrics/store.py) writes what this hands it and decides
nothing about sums. A :class:`PartitionBatch` holds one partition's per-event
contributions and packed records (ingest's summaries) in offset order, their running
sums and dedup keys (``sum_ahead``, called as records are decoded, so that a flush has
little left to do while PostgreSQL waits), and the offset after its last record. The
functions below are the flush's per-event decisions that need no database: which
delivery of a key repeated within the flush is the first, and which sums a flush that
found duplicates adds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date

from services.common.summaries import DIGEST_SIZE
from services.metrics.contributions import Contribution, Deltas, Packed, Sums
from services.metrics.figures import TopicPartition

KeyBlocks = dict[tuple[date, bool], list[bytes]]
"""Dedup digests (16 bytes each) by (event day, backfill)."""


@dataclass(slots=True)
class PartitionBatch:
    """The valid events of one partition in a flush, and the offset after its last record."""

    tp: TopicPartition
    next_offset: int
    contributions: list[Contribution] = field(default_factory=list)
    packed: list[Packed] = field(default_factory=list)
    """Records that ingest summarised, counted as groups (see :class:`Packed`)."""
    sums: Sums = field(default_factory=Sums)
    """The running sums of what ``sum_ahead`` has seen so far."""
    keys: KeyBlocks = field(default_factory=dict)
    """The dedup digests of what ``sum_ahead`` has seen so far."""
    summed: tuple[int, int] = (0, 0)
    """How many contributions and packed records ``sums`` and ``keys`` hold."""
    last_record: bytes | None = None
    """Fingerprint of the record before ``next_offset``, stored with it (logcheck.py)."""

    def sum_ahead(self) -> None:
        """Add what was decoded since the last call to ``sums`` and ``keys``: called as
        records are decoded, so that the flush (PostgreSQL waiting) has little left to do."""
        contributions, packed = self.contributions, self.packed
        first_c, first_p = self.summed
        if (first_c, first_p) == (len(contributions), len(packed)):
            return
        new_c, new_p = contributions[first_c:], packed[first_p:]
        self.sums.add(new_c, new_p)
        keys = self.keys
        for c in new_c:
            keys.setdefault((c.day, c.backfill), []).append(c.digest)
        for p in new_p:
            for day, blob in p.keys_by_day().items():
                block = keys.setdefault((day, p.backfill), [])
                block += [blob[i : i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE)]
        self.summed = (len(contributions), len(packed))

    def deltas(self) -> Deltas:
        """Everything in the batch, summed (what the flush adds when every event is new)."""
        self.sum_ahead()
        return self.sums.deltas()

    def unpack(self) -> None:
        """Turn packed records into contributions, in offset order: for per-event decisions.
        ``sums`` and ``keys`` hold the same events either way."""
        if not self.packed:
            return
        self.sum_ahead()
        merged: list[Contribution] = []
        start = 0
        for p in self.packed:
            merged += self.contributions[start : p.position]
            merged += p.contributions()
            start = p.position
        merged += self.contributions[start:]
        self.contributions, self.packed = merged, []
        self.summed = (len(merged), 0)


def all_keys(batches: Sequence[PartitionBatch]) -> tuple[KeyBlocks, int]:
    """Every dedup key of ``batches`` by (event day, backfill), and how many there are."""
    blocks: KeyBlocks = {}
    sent = 0
    for batch in batches:
        batch.sum_ahead()
        for block, keys in batch.keys.items():
            blocks.setdefault(block, []).extend(keys)
        sent += batch.sums.events
    return blocks, sent


def first_deliveries(
    batches: Sequence[PartitionBatch],
) -> tuple[dict[bytes, Contribution], list[Contribution]]:
    """The first delivery of each key in ``batches`` (offset order within a partition),
    and the later deliveries of a key the flush holds more than once: duplicates
    whatever the database says. Packed records must be unpacked first."""
    first: dict[bytes, Contribution] = {}
    for batch in batches:
        # Reversed, so that the first delivery of a key is the one kept.
        first.update({c.digest: c for c in reversed(batch.contributions) if c.digest not in first})
    delivered = sum(len(batch.contributions) for batch in batches)
    if len(first) == delivered:
        return first, []
    kept = {id(c) for c in first.values()}
    return first, [c for b in batches for c in b.contributions if id(c) not in kept]


def key_blocks(contributions: Collection[Contribution]) -> KeyBlocks:
    """The digests of ``contributions`` by (event day, backfill)."""
    blocks: KeyBlocks = {}
    for c in contributions:
        blocks.setdefault((c.day, c.backfill), []).append(c.digest)
    return blocks


def counted_deltas(batch: PartitionBatch, counted: Collection[int] | None) -> Deltas:
    """What ``batch`` adds to the figures: everything (``counted`` None, no duplicate in
    the flush: the sums made ahead), else the contributions whose ``id`` is in it."""
    if counted is None:
        return batch.deltas()
    return Deltas.of(c for c in batch.contributions if id(c) in counted)
