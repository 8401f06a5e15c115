"""What one event adds to which figures, and a batch of those summed into deltas. Pure.

An event counts for its unit and every ancestor (commune, district, province), so a
district's rate is computed from its own events, never averaged from its communes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from services.common.events import CloudEvent
from services.common.kpis import KpiCatalogue
from services.common.units import Resolution
from services.metrics.periods import bucket_of, local_day_of_epoch

KpiCount = tuple[str, int, int]
"""(kpi id, numerator, denominator) of one event, for KPIs whose denominator it enters."""


def dedup_digest(source: str, event_id: str) -> bytes:
    """16 bytes identifying (source, id): the same pair counts once however often it arrives."""
    # Length-prefixed, so no choice of characters in the two parts can make them collide.
    text = f"{len(source)}:{source}{event_id}"
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Contribution:
    """Everything the figures need from one valid event (the event itself is not kept)."""

    digest: bytes
    type: str
    family: str
    epoch: float
    day: date
    units: tuple[str, ...]
    counts: tuple[KpiCount, ...]
    crosswalked: bool

    @property
    def bucket(self) -> int:
        return bucket_of(self.epoch)


def contribution_of(
    event: CloudEvent, resolution: Resolution, family: str, catalogue: KpiCatalogue
) -> Contribution:
    """The KPI counts of one event, for every unit of its chain at the event's time."""
    counts: list[KpiCount] = []
    for kpi in catalogue.for_type(event.type):
        num, den = kpi.count(event)
        if den:
            counts.append((kpi.id, num, den))
    epoch = event.time.timestamp()
    return Contribution(
        digest=dedup_digest(event.source, event.id),
        type=event.type,
        family=family,
        epoch=epoch,
        day=local_day_of_epoch(epoch),
        units=tuple(unit.code for unit in resolution.chain),
        counts=tuple(counts),
        crosswalked=resolution.via_crosswalk,
    )


@dataclass(slots=True)
class Deltas:
    """Sums of a batch of contributions, keyed as the store and the figures keep them."""

    daily: dict[tuple[str, str, date], list[int]] = field(default_factory=dict)
    buckets: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)
    activity: dict[tuple[str, str], float] = field(default_factory=dict)
    events: int = 0

    def add(self, c: Contribution) -> None:
        self.events += 1
        daily, buckets, activity = self.daily, self.buckets, self.activity
        bucket = c.bucket
        for unit in c.units:
            key = (unit, c.family)
            if activity.get(key, 0.0) < c.epoch:
                activity[key] = c.epoch
            for kpi, num, den in c.counts:
                row = daily.get((unit, kpi, c.day))
                if row is None:
                    daily[(unit, kpi, c.day)] = [num, den]
                else:
                    row[0] += num
                    row[1] += den
                brow = buckets.get((unit, kpi, bucket))
                if brow is None:
                    buckets[(unit, kpi, bucket)] = [num, den]
                else:
                    brow[0] += num
                    brow[1] += den

    @classmethod
    def of(cls, contributions: Iterable[Contribution]) -> Deltas:
        deltas = cls()
        for c in contributions:
            deltas.add(c)
        return deltas

    def __bool__(self) -> bool:
        return self.events > 0
