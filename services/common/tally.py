"""The tally of a step: one columnar batch from decode to store, and its arithmetic. Pure.

Every way a worker reads events produces a :class:`TallyBatch`: ingest's summary of a
packed record (services/common/summaries.py, the batch serialised), a record ingest
signed (read event by event without the schema check) and a record validated in full.
Ingest builds the same type to summarise what it packs. The store (services/metrics/
store.py) inserts its dedup keys and writes its :class:`Deltas`; it sums nothing itself.

A batch holds its events grouped by what they add: a group is one distinct (event type,
unit chain at the event's time, via crosswalk, KPI counts of one event, 5-minute bucket
and so Vietnam day). Groups, tables and events are columns (lists, and the 16-byte dedup
digests as one bytes blob), never an object per event: a replay reads ~100,000 events
a second. Dossier events also carry their :class:`~services.common.dossierfacts.Fact`
(a sparse column: event index -> fact), for the on-time ledger.

An event counts for its unit and every ancestor (commune, district, province), so a
district's rate is computed from its own events, never averaged from its communes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, NamedTuple, TypeVar

from services.common.dossierfacts import DOSSIER_TYPES, Fact, canonical_id, event_identity
from services.common.kpis import KpiCount
from services.common.timekeys import EPOCH_ORDINAL, VN_OFFSET_S, bucket_of, local_day_of_epoch

DIGEST_SIZE: Final = 16

UNBOUND: Final = ""
"""The publisher of a record without the ``egov_publisher`` header (headers.py): written
straight to Kafka (``egov-pulse backfill``, an integrator with topic access) or before
publishers were bound. Its events keep the identity every event had then, (source, id),
so they still meet the dedup keys stored before the upgrade."""


def dedup_digest(source: str, event_id: str, publisher: str = UNBOUND) -> bytes:
    """16 bytes identifying (publisher, source, id): the same triple counts once however
    often it arrives, and one publisher's ids never suppress another's events.

    ``publisher`` is the stable name of the integrating system (its API key's name, kept
    across rotations), never the key id. ``UNBOUND`` gives the digest of (source, id)
    that every dedup key stored before publishers were bound holds. The id is compared
    in Unicode NFC (``canonical_id``): a retry decomposed is the same event, and an NFC
    id's digest is what it always was. (``source`` is a URI reference, ASCII.)
    """
    # Length-prefixed, so no choice of characters in the parts can make them collide; a
    # bound identity starts with "p", an unbound one with a digit: the two never meet.
    text = f"{len(source)}:{source}{canonical_id(event_id)}"
    if publisher:
        text = f"p{len(publisher)}:{publisher}{text}"
    return hashlib.blake2b(text.encode(), digest_size=DIGEST_SIZE).digest()


def event_digest(
    source: str, event_type: str, event_id: str, data: Mapping[str, Any], publisher: str
) -> bytes:
    """The dedup digest of one valid event: a dossier event's identity is its dossier's
    (``event_identity``), every other event's its id."""
    return dedup_digest(source, event_identity(event_type, event_id, data), publisher)


GroupKey = tuple[str, tuple[str, ...], bool, tuple[KpiCount, ...], int]
"""(event type, unit chain codes, via crosswalk, KPI counts of one event, bucket start)."""


def group_key(
    event_type: str,
    chain: tuple[str, ...],
    crosswalked: bool,
    counts: tuple[KpiCount, ...],
    epoch: float,
) -> GroupKey:
    """The group of an event at ``epoch``: what it adds, and to which bucket (and day)."""
    return (event_type, chain, crosswalked, counts, bucket_of(epoch))


class GroupTally(NamedTuple):
    """What one group adds to the per-type counters."""

    type: str
    events: int
    day: date
    crosswalked: bool


class TypeCounts(NamedTuple):
    """A batch's events per type, as the per-type counters of a flush add them."""

    processed: dict[str, int]
    late: dict[str, int]
    crosswalked: dict[str, int]


@dataclass(frozen=True, slots=True)
class TallyEvent:
    """One event of a batch, as a per-event decision sees it (a view, made on demand)."""

    digest: bytes
    type: str
    family: str
    epoch: float
    day: date
    units: tuple[str, ...]
    counts: tuple[KpiCount, ...]
    crosswalked: bool
    backfill: bool = False
    dossier: Fact | None = None

    @property
    def bucket(self) -> int:
        return bucket_of(self.epoch)

    @property
    def key(self) -> GroupKey:
        return group_key(self.type, self.units, self.crosswalked, self.counts, self.epoch)


@dataclass(slots=True, eq=False)
class TallyBatch:
    """Events of one partition (or one record), grouped by what they add, as columns.

    The group of an event is its position in the group columns; ``type``, ``chain`` and
    ``counts`` of a group index the tables ``types``, ``chains`` and ``counts``.
    ``backfill`` is the records' ``egov_backfill`` header (counted however old, their
    dedup keys kept for good); ``families`` the family of each of ``types``, filled by
    the worker (the wire does not carry it).
    """

    types: list[str]
    chains: list[tuple[str, ...]]
    counts: list[tuple[KpiCount, ...]]
    group_type: Sequence[int]
    group_chain: Sequence[int]
    group_crosswalked: Sequence[bool]
    group_bucket: Sequence[int]
    """Start (epoch seconds) of the group's 5-minute bucket, and so of its local day."""
    group_counts: Sequence[int]
    group_events: Sequence[int]
    group_latest: Sequence[float]
    """Epoch seconds of the group's latest event."""
    index: Sequence[int]
    """The group of each event, in record (offset) order."""
    epochs: Sequence[float]
    digests: bytes
    facts: dict[int, Fact] = field(default_factory=dict)
    """The fact of each dossier event (payments aside), by event index, in event order."""
    backfill: bool = False
    families: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return len(self.index)

    def digest(self, i: int) -> bytes:
        return self.digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE]

    def groups(self) -> Iterator[GroupTally]:
        """What each group adds to the per-type counters."""
        days: dict[int, date] = {}
        for t, bucket, n, crosswalked in zip(
            self.group_type, self.group_bucket, self.group_events, self.group_crosswalked,
            strict=True,
        ):  # fmt: skip
            day = days.get(bucket)
            if day is None:
                day = days[bucket] = local_day_of_epoch(bucket)  # a bucket is in one day
            yield GroupTally(self.types[t], n, day, bool(crosswalked))

    def type_counts(self, today: date) -> TypeCounts:
        """Events per type: all, those of a day before ``today`` (late), and those whose
        unit was crosswalked; by bucket, without a date per group."""
        processed: dict[str, int] = {}
        late: dict[str, int] = {}
        crosswalked: dict[str, int] = {}
        today_starts = (today.toordinal() - EPOCH_ORDINAL) * 86400 - VN_OFFSET_S
        types = self.types
        for t, bucket, n, via in zip(
            self.group_type, self.group_bucket, self.group_events, self.group_crosswalked,
            strict=True,
        ):  # fmt: skip
            name = types[t]
            processed[name] = processed.get(name, 0) + n
            if bucket < today_starts:
                late[name] = late.get(name, 0) + n
            if via:
                crosswalked[name] = crosswalked.get(name, 0) + n
        return TypeCounts(processed, late, crosswalked)

    def event(self, i: int) -> TallyEvent:
        g = self.index[i]
        t = self.group_type[g]
        return TallyEvent(
            self.digest(i),
            self.types[t],
            self.families[t] if self.families else "",
            float(self.epochs[i]),
            local_day_of_epoch(self.group_bucket[g]),
            self.chains[self.group_chain[g]],
            self.counts[self.group_counts[g]],
            bool(self.group_crosswalked[g]),
            self.backfill,
            self.facts.get(i),
        )

    def event_views(self) -> list[TallyEvent]:
        """The events one by one (for per-event decisions and tests)."""
        return [self.event(i) for i in range(self.events)]

    def key_blocks(self) -> dict[tuple[date, bool], bytes]:
        """The dedup digests by (event day, kept for good). The store prunes live keys by
        day; a backfilled event's key is kept, and so is a dossier event's: a dossier's
        receipt, payment and final outcome are one per dossier whatever their ids, so a
        second one is a duplicate however much later it comes (the ledger's rows are kept
        for good too; services/metrics/store.py ``prune``)."""
        buckets = self.group_bucket
        if not buckets:
            return {}
        first, last = local_day_of_epoch(min(buckets)), local_day_of_epoch(max(buckets))
        kept = [self.backfill or t in DOSSIER_TYPES for t in self.types]
        if first == last and (all(kept) or not any(kept)):  # the usual case: as it came
            return {(first, kept[0] if kept else self.backfill): self.digests}
        blocks: dict[tuple[date, bool], list[bytes]] = {}
        group_type = self.group_type
        for i, g in enumerate(self.index):
            block = (local_day_of_epoch(buckets[g]), kept[group_type[g]])
            blocks.setdefault(block, []).append(self.digest(i))
        return {block: b"".join(keys) for block, keys in blocks.items()}

    def select(self, chosen: Iterable[int]) -> TallyBatch:
        """The events at the indices ``chosen`` (ascending), their groups recounted."""
        index, epochs, facts = self.index, self.epochs, self.facts
        remap: dict[int, int] = {}
        old_groups: list[int] = []
        new_index: list[int] = []
        new_epochs: list[float] = []
        digests: list[bytes] = []
        new_facts: dict[int, Fact] = {}
        for i in chosen:
            g = index[i]
            ng = remap.get(g)
            if ng is None:
                ng = remap[g] = len(old_groups)
                old_groups.append(g)
            fact = facts.get(i)
            if fact is not None:
                new_facts[len(new_index)] = fact
            new_index.append(ng)
            new_epochs.append(epochs[i])
            digests.append(self.digest(i))
        events, latest = _recount(len(old_groups), new_index, new_epochs)
        return TallyBatch(
            self.types,
            self.chains,
            self.counts,
            [self.group_type[g] for g in old_groups],
            [self.group_chain[g] for g in old_groups],
            [self.group_crosswalked[g] for g in old_groups],
            [self.group_bucket[g] for g in old_groups],
            [self.group_counts[g] for g in old_groups],
            events,
            latest,
            new_index,
            new_epochs,
            b"".join(digests),
            new_facts,
            self.backfill,
            self.families,
        )


def _recount(
    groups: int, index: Sequence[int], epochs: Sequence[float]
) -> tuple[list[int], list[float]]:
    """Events and latest epoch of each group."""
    events, latest = [0] * groups, [0.0] * groups
    for g, epoch in zip(index, epochs, strict=True):
        events[g] += 1
        if epoch > latest[g]:
            latest[g] = epoch
    return events, latest


class TallyBuilder:
    """Builds a :class:`TallyBatch` one event at a time (ingest's summariser, the worker's
    per-event paths), or from batches decoded already (``merge``)."""

    COLUMNS: Final = (
        "types",
        "chains",
        "counts",
        "group_type",
        "group_chain",
        "group_crosswalked",
        "group_bucket",
        "group_counts",
        "group_events",
        "group_latest",
        "index",
        "epochs",
    )
    """The list columns of the batches it builds (all of them but ``digests``, ``facts``)."""

    __slots__ = (
        "_digests",
        "_epochs",
        "_events",
        "_facts",
        "_groups",
        "_index",
        "_keys",
        "_latest",
        "backfill",
    )

    def __init__(self, backfill: bool = False) -> None:
        self.backfill = backfill
        self._groups: dict[GroupKey, int] = {}
        self._keys: list[GroupKey] = []
        self._events: list[int] = []
        self._latest: list[float] = []
        self._index: list[int] = []
        self._epochs: list[float] = []
        self._digests: list[bytes] = []
        self._facts: dict[int, Fact] = {}

    def __len__(self) -> int:
        return len(self._index)

    def add(self, key: GroupKey, epoch: float, digest: bytes, fact: Fact | None = None) -> None:
        """One event: its group, its epoch seconds, its dedup digest and, for a dossier
        event, its fact."""
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = len(self._keys)
            self._keys.append(key)
            self._events.append(0)
            self._latest.append(0.0)
        if fact is not None:
            self._facts[len(self._index)] = fact
        self._index.append(g)
        self._epochs.append(epoch)
        self._digests.append(digest)
        self._events[g] += 1
        if epoch > self._latest[g]:
            self._latest[g] = epoch

    def add_event(self, event: TallyEvent) -> None:
        self.add(event.key, event.epoch, event.digest, event.dossier)

    def merge(self, batch: TallyBatch) -> None:
        """Add the events of a decoded batch, in order."""
        for i in range(batch.events):
            self.add_event(batch.event(i))

    def take_back(self, events: int) -> None:
        """Forget every event after the first ``events`` (a record that failed midway)."""
        if events >= len(self._index):
            return
        del self._index[events:], self._epochs[events:], self._digests[events:]
        self._facts = {i: f for i, f in self._facts.items() if i < events}
        self._events, self._latest = _recount(len(self._keys), self._index, self._epochs)

    def build(self, families: Mapping[str, str] | None = None) -> TallyBatch:
        """The batch of the events added so far (groups without events left out)."""
        keys, index = self._keys, self._index
        events, latest = list(self._events), list(self._latest)
        if 0 in events:  # events were taken back: renumber the groups left
            kept = [g for g, n in enumerate(events) if n]
            renumber = {g: new for new, g in enumerate(kept)}
            keys = [keys[g] for g in kept]
            index = [renumber[g] for g in index]
            events, latest = _recount(len(keys), index, self._epochs)
        types: dict[str, int] = {}
        chains: dict[tuple[str, ...], int] = {}
        counts: dict[tuple[KpiCount, ...], int] = {}
        group_type = [types.setdefault(key[0], len(types)) for key in keys]
        group_chain = [chains.setdefault(key[1], len(chains)) for key in keys]
        group_counts = [counts.setdefault(key[3], len(counts)) for key in keys]
        return TallyBatch(
            list(types),
            list(chains),
            list(counts),
            group_type,
            group_chain,
            [key[2] for key in keys],
            [key[4] for key in keys],
            group_counts,
            events,
            latest,
            list(index),
            list(self._epochs),
            b"".join(self._digests),
            dict(self._facts),
            self.backfill,
            [families[t] for t in types] if families is not None else [],
        )


def tally_of(events: Iterable[TallyEvent], families: Mapping[str, str] | None = None) -> TallyBatch:
    """The batch of these events (one backfill flag: the first event's)."""
    builder: TallyBuilder | None = None
    found: dict[str, str] = dict(families or {})
    for e in events:
        if builder is None:
            builder = TallyBuilder(e.backfill)
        builder.add_event(e)
        found.setdefault(e.type, e.family)
    return (builder or TallyBuilder()).build(found)


K = TypeVar("K")

SumKey = tuple[tuple[str, ...], date, int]
"""(unit chain, event day, 5-minute bucket) of events summed together."""


@dataclass(slots=True)
class Sums:
    """Running sums of batches per (unit chain, day, bucket): added to as records are
    decoded, turned into per-unit :class:`Deltas` once, at flush.

    Events of one unit in one 5-minute bucket share a group, so the per-unit rows are
    touched once per group instead of once per event and ancestor.
    """

    groups: dict[SumKey, dict[str, list[int]]] = field(default_factory=dict)
    latest: dict[tuple[tuple[str, ...], str], float] = field(default_factory=dict)
    events: int = 0
    _days: dict[int, date] = field(default_factory=dict)

    def add(self, batch: TallyBatch) -> None:
        groups, latest, days = self.groups, self.latest, self._days
        chains, kpi_counts, families = batch.chains, batch.counts, batch.families
        self.events += batch.events
        for t, chain_i, bucket, counts_i, n, last in zip(
            batch.group_type,
            batch.group_chain,
            batch.group_bucket,
            batch.group_counts,
            batch.group_events,
            batch.group_latest,
            strict=True,
        ):
            units = chains[chain_i]
            chain = (units, families[t])
            if latest.get(chain, 0.0) < last:
                latest[chain] = last
            counts = kpi_counts[counts_i]
            if not counts:
                continue
            day = days.get(bucket)
            if day is None:
                day = days[bucket] = local_day_of_epoch(bucket)
            key = (units, day, bucket)
            sums = groups.get(key)
            if sums is None:
                sums = groups[key] = {}
            for kpi, num, den in counts:
                row = sums.get(kpi)
                if row is None:
                    sums[kpi] = [num * n, den * n]
                else:
                    row[0] += num * n
                    row[1] += den * n

    def deltas(self) -> Deltas:
        """The sums per unit (each of a chain's units), KPI and day or bucket."""
        deltas = Deltas(events=self.events)
        daily, buckets, activity = deltas.daily, deltas.buckets, deltas.activity
        for (units, day, bucket), sums in self.groups.items():
            for unit in units:
                for kpi, (num, den) in sums.items():  # inline: the flush's hottest loop
                    row = daily.get((unit, kpi, day))
                    if row is None:
                        daily[(unit, kpi, day)] = [num, den]
                    else:
                        row[0] += num
                        row[1] += den
                    row = buckets.get((unit, kpi, bucket))
                    if row is None:
                        buckets[(unit, kpi, bucket)] = [num, den]
                    else:
                        row[0] += num
                        row[1] += den
        for (units, family), epoch in self.latest.items():
            for unit in units:
                if activity.get((unit, family), 0.0) < epoch:
                    activity[(unit, family)] = epoch
        return deltas


def add_row(table: dict[K, list[int]], key: K, num: int, den: int) -> None:
    """Add (``num``, ``den``) to the row ``key`` of a figures table."""
    row = table.get(key)
    if row is None:
        table[key] = [num, den]
    else:
        row[0] += num
        row[1] += den


@dataclass(slots=True)
class Deltas:
    """Sums of a batch, keyed as the store and the figures keep them."""

    daily: dict[tuple[str, str, date], list[int]] = field(default_factory=dict)
    buckets: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)
    activity: dict[tuple[str, str], float] = field(default_factory=dict)
    events: int = 0

    @classmethod
    def of_batches(cls, batches: Iterable[TallyBatch]) -> Deltas:
        """Sum ``batches`` (see :class:`Sums`)."""
        sums = Sums()
        for batch in batches:
            sums.add(batch)
        return sums.deltas()

    @classmethod
    def of(cls, events: Iterable[TallyEvent]) -> Deltas:
        """Sum events given one by one (as one batch)."""
        return cls.of_batches([tally_of(events)])

    of_events = of  # the same, by the name some tests use

    def merge(self, more: Deltas) -> None:
        """Add ``more``'s figure rows (not its events: they are counted once, elsewhere)."""
        for day_key, (num, den) in more.daily.items():
            add_row(self.daily, day_key, num, den)
        for bucket_key, (num, den) in more.buckets.items():
            add_row(self.buckets, bucket_key, num, den)

    def __bool__(self) -> bool:
        return self.events > 0
