"""What one event adds to which figures, and a batch of those summed into deltas. Pure.

An event counts for its unit and every ancestor (commune, district, province), so a
district's rate is computed from its own events, never averaged from its communes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from services.common.events import CloudEvent
from services.common.kpis import KpiCatalogue, KpiCount
from services.common.summaries import DIGEST_SIZE, Summary
from services.common.summaries import dedup_digest as dedup_digest
from services.common.units import Resolution
from services.metrics import dossiers
from services.metrics.periods import BUCKET_S, bucket_of, local_day_of_epoch


@dataclass(slots=True)
class Contribution:
    """Everything the figures need from one valid event (the event itself is not kept).

    Treat it as immutable. Not declared frozen because one is built per event: a
    frozen dataclass costs ~2 µs to construct here, a plain one ~0.3 µs.
    """

    digest: bytes
    type: str
    family: str
    epoch: float
    day: date
    units: tuple[str, ...]
    counts: tuple[KpiCount, ...]
    crosswalked: bool
    backfill: bool = False
    """Published by ``egov-pulse backfill``: counted however old, its dedup key kept for good."""
    dossier: dossiers.Fact | None = None
    """What a dossier event says about its dossier, for the on-time ledger."""

    @property
    def bucket(self) -> int:
        return bucket_of(self.epoch)


def contribution_of(
    event: CloudEvent,
    resolution: Resolution,
    family: str,
    catalogue: KpiCatalogue,
    units: tuple[str, ...] | None = None,
    backfill: bool = False,
    publisher: str = "",
) -> Contribution:
    """The KPI counts of one event, for every unit of its chain at the event's time.

    ``units`` are the codes of ``resolution.chain`` when the caller has them already
    (the decoder keeps them per resolved code); ``backfill``: the record carried the
    backfill header; ``publisher``: its ``egov_publisher`` header ("" without one), the
    first part of the event's dedup identity.
    """
    epoch = event.time.timestamp()
    return Contribution(
        # A dossier event's identity is its dossier's (one per dossier and type).
        dedup_digest(
            event.source, dossiers.event_identity(event.type, event.id, event.data), publisher
        ),
        event.type,
        family,
        epoch,
        local_day_of_epoch(epoch),
        units if units is not None else tuple(unit.code for unit in resolution.chain),
        catalogue.counts(event),
        resolution.via_crosswalk,
        backfill,
        dossiers.fact_of(event.type, event.data),
    )


class GroupTally(NamedTuple):
    """What one group of a packed record adds to the per-type counters."""

    type: str
    events: int
    day: date
    crosswalked: bool


@dataclass(slots=True)
class Packed:
    """The events of one record that ingest summarised: counted by group, not one by one.

    Groups stay the summary's lists (services/common/summaries.py): a group is often one
    event, so an object per group would cost what an object per event did. ``position``
    is where its events sit among the batch's contributions (offset order), for
    :meth:`contributions`, which a flush needs only to decide event by event (a duplicate).
    """

    summary: Summary
    families: list[str]
    """Family of each of the summary's types."""
    backfill: bool
    position: int = 0

    @classmethod
    def of(
        cls, summary: Summary, families: Mapping[str, str], backfill: bool, position: int
    ) -> Packed:
        """Raises KeyError for an event type the worker's contract does not know."""
        return cls(summary, [families[t] for t in summary.types], backfill, position)

    @property
    def events(self) -> int:
        return len(self.summary.index)

    @property
    def epochs(self) -> list[float]:
        return self.summary.times

    def groups(self) -> Iterator[GroupTally]:
        """What each group adds to the per-type counters."""
        s = self.summary
        days: dict[int, date] = {}
        for t, bucket, n, crosswalked in zip(
            s.group_type, s.group_bucket, s.group_events, s.group_crosswalked, strict=True
        ):
            day = days.get(bucket)
            if day is None:
                day = days[bucket] = local_day_of_epoch(bucket)  # a bucket is in one day
            yield GroupTally(s.types[t], n, day, bool(crosswalked))

    def contributions(self) -> list[Contribution]:
        """The events one by one, as the per-event path would have made them."""
        s, families, backfill = self.summary, self.families, self.backfill
        types, buckets = s.group_type, s.group_bucket
        out = []
        for i, (g, epoch) in enumerate(zip(s.index, s.times, strict=True)):
            t = types[g]
            out.append(
                Contribution(
                    s.digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE],
                    s.types[t],
                    families[t],
                    float(epoch),
                    local_day_of_epoch(buckets[g]),
                    s.chains[s.group_chain[g]],
                    s.counts[s.group_counts[g]],
                    bool(s.group_crosswalked[g]),
                    backfill,
                )
            )
        return out

    def keys_by_day(self) -> dict[date, bytes]:
        """The dedup digests per event day (the store prunes live keys by day)."""
        s = self.summary
        buckets = s.group_bucket
        first, last = local_day_of_epoch(min(buckets)), local_day_of_epoch(max(buckets))
        if first == last:  # the usual case: the blob as it came
            return {first: s.digests}
        blocks: dict[date, list[bytes]] = {}
        for i, g in enumerate(s.index):
            digest = s.digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE]
            blocks.setdefault(local_day_of_epoch(buckets[g]), []).append(digest)
        return {day: b"".join(keys) for day, keys in blocks.items()}


GroupKey = tuple[tuple[str, ...], date, int]
"""(unit chain, event day, 5-minute bucket) of events summed together."""


@dataclass(slots=True)
class Sums:
    """Running sums of contributions and packed records per (unit chain, day, bucket):
    added to as records are decoded, turned into per-unit :class:`Deltas` once, at flush.

    Events of one unit in one 5-minute bucket share a group, so the per-unit rows are
    touched once per group instead of once per event and ancestor; a packed record's
    groups are such groups already.
    """

    groups: dict[GroupKey, dict[str, list[int]]] = field(default_factory=dict)
    latest: dict[tuple[tuple[str, ...], str], float] = field(default_factory=dict)
    events: int = 0
    _days: dict[int, date] = field(default_factory=dict)

    def add(self, contributions: Iterable[Contribution], packed: Iterable[Packed] = ()) -> None:
        groups, latest = self.groups, self.latest
        events = 0
        for c in contributions:
            events += 1
            units, epoch = c.units, c.epoch
            chain = (units, c.family)
            if latest.get(chain, 0.0) < epoch:
                latest[chain] = epoch
            if not c.counts:
                continue
            key = (units, c.day, int(epoch // BUCKET_S) * BUCKET_S)
            sums = groups.get(key)
            if sums is None:
                sums = groups[key] = {}
            for kpi, num, den in c.counts:
                row = sums.get(kpi)
                if row is None:
                    sums[kpi] = [num, den]
                else:
                    row[0] += num
                    row[1] += den
        days = self._days
        for p in packed:
            summary, families = p.summary, p.families
            chains, kpi_counts = summary.chains, summary.counts
            events += len(summary.index)
            for t, chain_i, bucket, counts_i, n, last in zip(
                summary.group_type,
                summary.group_chain,
                summary.group_bucket,
                summary.group_counts,
                summary.group_events,
                summary.group_latest,
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
        self.events += events

    def deltas(self) -> Deltas:
        """The sums per unit (each of a chain's units), KPI and day or bucket."""
        deltas = Deltas(events=self.events)
        daily, buckets, activity = deltas.daily, deltas.buckets, deltas.activity
        for (units, day, bucket), sums in self.groups.items():
            for unit in units:
                for kpi, (num, den) in sums.items():
                    row = daily.get((unit, kpi, day))
                    if row is None:
                        daily[(unit, kpi, day)] = [num, den]
                    else:
                        row[0] += num
                        row[1] += den
                    brow = buckets.get((unit, kpi, bucket))
                    if brow is None:
                        buckets[(unit, kpi, bucket)] = [num, den]
                    else:
                        brow[0] += num
                        brow[1] += den
        for (units, family), epoch in self.latest.items():
            for unit in units:
                if activity.get((unit, family), 0.0) < epoch:
                    activity[(unit, family)] = epoch
        return deltas


@dataclass(slots=True)
class Deltas:
    """Sums of a batch of contributions, keyed as the store and the figures keep them."""

    daily: dict[tuple[str, str, date], list[int]] = field(default_factory=dict)
    buckets: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)
    activity: dict[tuple[str, str], float] = field(default_factory=dict)
    events: int = 0

    @classmethod
    def of(cls, contributions: Iterable[Contribution], packed: Iterable[Packed] = ()) -> Deltas:
        """Sum ``contributions`` and ``packed`` records (see :class:`Sums`)."""
        sums = Sums()
        sums.add(contributions, packed)
        return sums.deltas()

    def __bool__(self) -> bool:
        return self.events > 0
