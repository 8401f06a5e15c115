"""A flush's tally per partition: the decoded batches, summed as they come, and their keys.

Pure: the store (services/metrics/store.py) writes what this hands it and decides
nothing about sums. A :class:`PartitionBatch` holds one partition's
:class:`~services.common.tally.TallyBatch` es in offset order (ingest's summaries as they
were decoded, and the events read one by one built into batches of their own), their
running sums and dedup keys (``sum_ahead``, called as records are decoded, so that a
flush has little left to do while PostgreSQL waits), and the offset after its last
record. The functions below are the flush's per-event decisions that need no database:
which delivery of a key repeated within the flush is the first, and the batches a
flush that found duplicates counts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from services.common.dossierfacts import DOSSIER_TYPES
from services.common.tally import (
    DIGEST_SIZE,
    Deltas,
    Sums,
    TallyBatch,
    TallyBuilder,
    TallyEvent,
)
from services.metrics.figures import TopicPartition
from services.metrics.logcheck import fingerprint

KeyBlocks = dict[tuple[date, bool], list[bytes]]
"""Dedup digests (16 bytes each) by (event day, backfill)."""

Position = tuple[int, int, int]
"""Where an event of a flush is: (partition batch, tally batch, event) indices."""


class Mark(NamedTuple):
    """How much a partition batch held before one record: what to take back if it fails.
    A named tuple: one is made per record, and a frozen dataclass costs ~0.45 µs to make."""

    tallies: int
    builder: TallyBuilder | None
    events: int


@dataclass(slots=True)
class PartitionBatch:
    """The valid events of one partition in a flush, and the offset after its last record."""

    tp: TopicPartition
    next_offset: int
    tallies: list[TallyBatch] = field(default_factory=list)
    """The batches decoded so far, in offset order (``seal`` closes the open one)."""
    summarised: bool = False
    """Whether a batch came whole from ingest's summary (a flush then expects no duplicate)."""
    sums: Sums = field(default_factory=Sums)
    """The running sums of what ``sum_ahead`` has seen so far."""
    keys: KeyBlocks = field(default_factory=dict)
    """The dedup digests of what ``sum_ahead`` has seen so far."""
    summed: int = 0
    """How many of ``tallies`` ``sums`` and ``keys`` hold."""
    reading: int = -1
    """The reading of its partition its records belong to (``PartitionState.readings``;
    -1: not stamped): records of an earlier reading are handed over again, so a batch of
    one is dropped, never flushed (it would store an offset from before the last claim)."""
    _last_record: bytes | None = None
    _last_source: tuple[bytes | None, bytes | None, int] | None = None
    _open: TallyBuilder | None = None
    _families: Mapping[str, str] | None = None

    @property
    def last_record(self) -> bytes | None:
        """Fingerprint of the record before ``next_offset``, stored with it (logcheck.py).

        Made when first read (by the flush that stores it), not when the record is
        decoded: a step marks the last record of each piece it decodes, and most are
        followed by another before a flush takes the batch. Hashing every one of them
        was ~2.5 % of the in-process counting's time (a 29 KB record takes ~36 µs)."""
        source = self._last_source
        if source is not None:
            self._last_record, self._last_source = fingerprint(*source), None
        return self._last_record

    def ends_with(self, key: bytes | None, value: bytes | None, timestamp_ms: int) -> None:
        """The record before ``next_offset`` is this one (its fingerprint is made later)."""
        self._last_source = (key, value, timestamp_ms)

    def builder(self, backfill: bool, families: Mapping[str, str]) -> TallyBuilder:
        """The open batch for events read one by one (one per backfill flag in a row)."""
        open_ = self._open
        if open_ is None or open_.backfill != backfill:
            self.seal()
            open_ = self._open = TallyBuilder(backfill)
            self._families = families
        return open_

    def append(self, batch: TallyBatch, summarised: bool = False) -> None:
        """A batch decoded whole (a summary), after what was read before it."""
        self.seal()
        self.tallies.append(batch)
        self.summarised |= summarised

    def seal(self) -> None:
        """Close the open batch: built, it joins ``tallies``."""
        open_, self._open = self._open, None
        if open_ is not None and len(open_):
            self.tallies.append(open_.build(self._families))

    def mark(self) -> Mark:
        open_ = self._open
        return Mark(len(self.tallies), open_, len(open_) if open_ is not None else 0)

    def take_back(self, mark: Mark) -> None:
        """Forget what was added since ``mark`` (the record failed midway)."""
        del self.tallies[mark.tallies :]
        self._open = mark.builder
        if mark.builder is not None:
            mark.builder.take_back(mark.events)

    @property
    def events(self) -> int:
        self.seal()
        return sum(t.events for t in self.tallies)

    def event_views(self) -> list[TallyEvent]:
        """Every event, one by one, in offset order (tests and per-event decisions)."""
        self.seal()
        return [e for t in self.tallies for e in t.event_views()]

    def sum_ahead(self) -> None:
        """Add what was decoded since the last call to ``sums`` and ``keys``: called as
        records are decoded, so that the flush (PostgreSQL waiting) has little left to do."""
        self.seal()
        keys = self.keys
        for t in self.tallies[self.summed :]:
            self.sums.add(t)
            for kept, blob in t.key_blocks().items():
                block = keys.setdefault(kept, [])
                block += [blob[i : i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE)]
        self.summed = len(self.tallies)

    def deltas(self) -> Deltas:
        """Everything in the batch, summed (what the flush adds when every event is new)."""
        self.sum_ahead()
        return self.sums.deltas()


def all_keys(batches: Sequence[PartitionBatch]) -> tuple[KeyBlocks, int]:
    """Every dedup key of ``batches`` by (event day, kept for good), and how many."""
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
) -> tuple[dict[bytes, Position], list[Position]]:
    """The first delivery of each key in ``batches`` (offset order within a partition),
    and the later deliveries of a key the flush holds more than once: duplicates
    whatever the database says."""
    first: dict[bytes, Position] = {}
    repeated: list[Position] = []
    for b, batch in enumerate(batches):
        batch.seal()
        for t, tally in enumerate(batch.tallies):
            blob = tally.digests
            for i in range(tally.events):
                digest = blob[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE]
                if digest in first:
                    repeated.append((b, t, i))
                else:
                    first[digest] = (b, t, i)
    return first, repeated


def key_blocks(batches: Sequence[PartitionBatch], positions: Iterable[Position]) -> KeyBlocks:
    """The digests of the events at ``positions`` by (event day, kept for good: backfilled
    or a dossier's, as ``TallyBatch.key_blocks``)."""
    blocks: KeyBlocks = {}
    for e in views(batches, positions):
        blocks.setdefault((e.day, e.backfill or e.type in DOSSIER_TYPES), []).append(e.digest)
    return blocks


def views(batches: Sequence[PartitionBatch], positions: Iterable[Position]) -> list[TallyEvent]:
    """The events at ``positions``, one by one."""
    return [batches[b].tallies[t].event(i) for b, t, i in positions]


def selected(
    batches: Sequence[PartitionBatch], positions: Collection[Position]
) -> list[list[TallyBatch]]:
    """Per batch, its tally batches narrowed to the events at ``positions`` (in order)."""
    chosen: dict[tuple[int, int], list[int]] = {}
    for b, t, i in sorted(positions):
        chosen.setdefault((b, t), []).append(i)
    out: list[list[TallyBatch]] = [[] for _ in batches]
    for (b, t), events in sorted(chosen.items()):
        tally = batches[b].tallies[t]
        out[b].append(tally if len(events) == tally.events else tally.select(events))
    return out
