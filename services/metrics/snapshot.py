"""The /v1/kpis (and /v1/activity) items as the counting loop last published them:
requests read, never build.

Building every item costs about 0.45 s a window on the event loop that counts (26,000
series today, three times that at 10,000 units); built per request, a burst of requests
stalled counting for seconds. Instead the loop publishes a :class:`KpiSnapshot` at most
every ``metrics_snapshot_interval_s``, and only when something changed: a committed step
(the figures' version), a window's period (a 5-minute bucket or midnight), or the target
overrides. When the counting has caught up (its last flush committed and nothing waits
for the next), the next snapshot does not wait for the interval: it is published as soon
as the last build's cost allows (``CAUGHT_UP_COST_SHARE``), so a worker that keeps up
answers within a fraction of a second, and one that is behind builds at the interval,
counted from when it fell behind (``reading_behind``: its consumer knows of records not
handed over yet): a burst of records is not interrupted by a build at its start, nor by
one owed from before it, which waits for the burst's end or the interval (a build of
the ~300 units a burst touches took 0.25-0.4 s, a 40,000-event burst ~1 s).
Between two snapshots only the units a step touched are built again, in every window; a
full build (a partition came or went, a period rolled) goes a few thousand units at a
time, the loop free between them. A request selects from the latest snapshot
through its indexes (unit, province, level), in time proportional to its answer.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.units import UnitRegistry
from services.metrics import api
from services.metrics.figures import Figures
from services.metrics.heap import HeapTrimmer
from services.metrics.periods import ALL_WINDOWS, Periods
from services.metrics.targets import Targets

Item = dict[str, Any]
"""One /v1/kpis item as ``api.kpi_items`` writes it (docs/metrics-api.md)."""

BUILD_PIECE = 2000
"""Units built at once in a full build; the loop counts between pieces."""

CAUGHT_UP_COST_SHARE = 0.1
"""Snapshots published because the counting caught up take at most about this share of
the loop: the next waits until the last one is ``build time / share`` old."""

CAUGHT_UP_MIN_AGE_S = 0.1
"""Nor is one published more often than this, however cheap."""


@dataclass(frozen=True, slots=True)
class UnitItems:
    """One unit's items in one window: their JSON (``orjson``) joined by commas and
    compressed together, with each item's KPI and where it ends.

    Encoded once at build time: a request joins bytes, and the ~150,000 items a
    snapshot holds are no objects for the garbage collector to go through on every full
    collection (as dicts they cost seconds per collection here). Compressed because
    they were most of a worker's memory: ~630 bytes an item as one ``bytes`` each (92 MiB
    at 3,355 units, ~290 MiB at 10,000), ~4.6 times less as one zlib blob a unit and
    window; a unit's items decompress in microseconds, a whole window in ~30 ms."""

    province: str
    level: str
    kpis: tuple[str, ...]
    ends: bytes
    """Where each item ends in the joined JSON (``array('I')``; a comma follows each)."""
    packed: bytes

    @classmethod
    def of(cls, items: Sequence[Item]) -> UnitItems:
        first = items[0]
        encoded = [orjson.dumps(item) for item in items]
        ends, end = array("I"), -1
        for one in encoded:
            end += 1 + len(one)
            ends.append(end)
        kpis = tuple(item["kpi"] for item in items)
        kpis = _KPI_LISTS.setdefault(kpis, kpis)  # the same few lists for every unit
        return cls(
            first.get("province") or "",
            first.get("level") or "",
            kpis,
            ends.tobytes(),
            zlib.compress(b",".join(encoded), 1),
        )

    @property
    def joined(self) -> bytes:
        """Every item, as a comma-separated run of JSON objects."""
        return zlib.decompress(self.packed)

    @property
    def size(self) -> int:
        """Bytes of :attr:`joined`."""
        return memoryview(self.ends).cast("I")[-1] if self.ends else 0

    @property
    def items(self) -> tuple[tuple[str, bytes], ...]:
        """Each item's KPI and JSON."""
        joined, start, found = self.joined, 0, []
        for kpi, end in zip(self.kpis, memoryview(self.ends).cast("I"), strict=True):
            found.append((kpi, joined[start:end]))
            start = end + 1
        return tuple(found)


_KPI_LISTS: dict[tuple[str, ...], tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class WindowItems:
    """Every item of one window, by unit, with the indexes requests select through."""

    start: datetime
    """The window's period start when built: another start means build it all again."""
    by_unit: Mapping[str, UnitItems]
    by_province: Mapping[str, Sequence[str]] = field(default_factory=dict)
    by_level: Mapping[str, Sequence[str]] = field(default_factory=dict)
    _everything: list[bytes] = field(default_factory=list, compare=False, repr=False)
    """Every item joined, made by the first request that asks for them all (the alerts
    read whole windows), then reused until the next snapshot."""

    @classmethod
    def of(cls, start: datetime, by_unit: Mapping[str, UnitItems]) -> WindowItems:
        ordered = {code: by_unit[code] for code in sorted(by_unit)}
        provinces: dict[str, list[str]] = {}
        levels: dict[str, list[str]] = {}
        for code, unit in ordered.items():
            provinces.setdefault(unit.province, []).append(code)
            levels.setdefault(unit.level, []).append(code)
        return cls(start, ordered, provinces, levels)

    def updated(self, rebuilt: Mapping[str, UnitItems], units: Iterable[str]) -> WindowItems:
        """These items with ``units`` replaced by ``rebuilt`` (a unit with none leaves)."""
        by_unit = dict(self.by_unit)
        for code in units:
            by_unit.pop(code, None)
        by_unit.update(rebuilt)
        return WindowItems.of(self.start, by_unit)

    def select(self, query: api.KpiQuery) -> list[bytes]:
        """The items ``query`` asks for (as JSON), unit by unit in code order, as
        ``kpi_items`` writes them."""
        if not (query.units or query.provinces or query.levels or query.kpis):
            return self._all()
        candidates: Iterable[str]
        if query.units:
            candidates = sorted(query.units)
        elif query.provinces:
            candidates = sorted(c for p in query.provinces for c in self.by_province.get(p, ()))
        elif query.levels:
            candidates = sorted(c for lv in query.levels for c in self.by_level.get(lv, ()))
        else:
            candidates = self.by_unit
        selected: list[bytes] = []
        for code in candidates:
            unit = self.by_unit.get(code)
            if unit is None:
                continue
            if (query.levels and unit.level not in query.levels) or (
                query.provinces and unit.province not in query.provinces
            ):
                continue
            if query.kpis:
                selected += [item for kpi, item in unit.items if kpi in query.kpis]
            else:
                selected.append(unit.joined)
        return selected

    def _all(self) -> list[bytes]:
        if not self._everything and self.by_unit:
            joined = b",".join(unit.joined for unit in self.by_unit.values())
            self._everything.append(joined)
        return self._everything


@dataclass(frozen=True, slots=True)
class KpiSnapshot:
    """Every item of every window at one instant, and what it was built from."""

    periods: Periods
    taken_s: float
    """When it was published, by the publisher's monotonic clock (its age in answers)."""
    version: int
    """The figures' version it holds (``Figures.version``)."""
    overrides: object
    """The target overrides it was built with (see :func:`_overrides_key`)."""
    partitions: tuple[str, ...]
    windows: Mapping[str, WindowItems]
    activity: bytes = b"[]"
    """/v1/activity's items as one JSON array: each unit's last event per family."""

    def select(self, query: api.KpiQuery) -> list[bytes]:
        """The items ``query`` asks for, window by window, each as its JSON. A window asked
        for twice is answered once: ``window=day`` a thousand times is not a thousand
        copies of every item."""
        items: list[bytes] = []
        for window in dict.fromkeys(query.windows):
            found = self.windows.get(window)
            if found is not None:
                items += found.select(query)
        return items


class KpiSnapshots:
    """Publishes snapshots from the figures; ``latest`` is what requests answer from.

    ``builds`` counts item builds (one per window and piece), so tests can tell a
    request that read from one that computed.
    """

    def __init__(
        self,
        figures: Figures,
        registry: UnitRegistry,
        targets: Targets,
        clock: Callable[[], datetime],
        *,
        interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        piece: int = BUILD_PIECE,
    ) -> None:
        self._figures = figures
        self._registry = registry
        self._targets = targets
        self._clock = clock
        self._monotonic = monotonic
        self.interval_s = interval_s
        self._piece = piece
        self.builds = 0
        self.published = 0
        self._publishing = False
        self._scheduled: asyncio.Task[None] | None = None
        self._sleeping = False
        """The scheduled refresh is still waiting (not building): it may be brought forward."""
        self._caught_up_again = False
        self._build_s = 0.0
        """How long the last publication took, by the monotonic clock."""
        self._behind_since: float | None = None
        """When the figures first changed while the consumer read behind (monotonic), since
        it last caught up."""
        self.reading_behind: Callable[[], bool] = _never_behind
        """Whether the consumer knows of records it has not handed over yet (the worker
        wires it to ``Counting.reading_behind``)."""
        self._heap = HeapTrimmer()
        """A build's garbage (items as dicts, the snapshot it replaces) stays in glibc's
        heap, ~80 MiB at 3,355 units, unless trimmed: trimmed after every
        ``TRIM_AFTER_BYTES`` of items built (a full build, or many small ones)."""
        # Until the first build, an answer with nothing in it: no unit is known yet (as
        # before this worker claims partitions), never a unit at 0.
        self.latest = KpiSnapshot(
            Periods.at(clock()), monotonic(), -1, _overrides_key(targets.overrides), (), {}
        )

    def age_s(self, snapshot: KpiSnapshot) -> float:
        return max(0.0, self._monotonic() - snapshot.taken_s)

    def due(self, min_age_s: float | None = None) -> bool:
        """Whether a snapshot should be published now: none yet, or something changed and
        the last one is at least ``min_age_s`` (by default ``interval_s``) old."""
        latest = self.latest
        if latest.version < 0:
            return True
        min_age = self.interval_s if min_age_s is None else min_age_s
        now = self._monotonic()
        if now - latest.taken_s < min_age or self._waits_while_behind(now):
            return False
        periods = Periods.at(self._clock())
        return (
            latest.version != self._figures.version
            or _overrides_key(self._targets.overrides) != latest.overrides
            or any(periods.start(w) != items.start for w, items in latest.windows.items())
        )

    async def refresh(self, min_age_s: float | None = None) -> bool:
        """Publish a new snapshot if :meth:`due` and none is being built; True if one was.
        What changes during a build is taken by the next one."""
        if self._publishing or not self.due(min_age_s):
            return False
        self._publishing = True
        try:
            await self.publish()
        finally:
            self._publishing = False
        return True

    def poke(self) -> None:
        """The figures changed (a committed step): refresh as soon as the interval allows,
        not at the timer's next tick. Wired to ``Figures.on_change`` on a running loop."""
        now = self._monotonic()
        since = self.latest.taken_s
        if self.reading_behind():
            if self._behind_since is None:
                self._behind_since = now
            since = max(since, self._behind_since)
        if self._scheduled is not None and not self._scheduled.done():
            return
        self._schedule(max(0.0, self.interval_s - (now - since)), None)

    def _waits_while_behind(self, now: float) -> bool:
        """Whether the consumer reads behind, and fell behind less than the interval ago.

        Behind with no figure changed yet (a burst whose first flush has not committed)
        is falling behind now: a build owed from before it (a caught-up one waiting for
        its cost share) then waits for the burst's end or the interval too, instead of
        taking the loop for 0.25-0.4 s as the burst begins. That was the slow mode of the
        metrics benchmark's one-per-message row (42-47k against 65-70k events/s on
        tansu, 2026-12-04): the worker, stopped while the burst was published, woke with
        such a build due."""
        if not self.reading_behind():
            return False
        since = self._behind_since
        if since is None:
            since = self._behind_since = now
        return now - since < self.interval_s

    def caught_up(self) -> None:
        """The counting has committed everything it read: publish as soon as the last
        build's cost allows, not after the interval. Wired to ``Counting.on_caught_up``.

        A worker that is behind never calls this (its flushes always find more waiting),
        so under load snapshots keep to the interval; one that keeps up answers within
        ``CAUGHT_UP_MIN_AGE_S`` or ``build time / CAUGHT_UP_COST_SHARE``."""
        self._behind_since = None
        min_age = max(CAUGHT_UP_MIN_AGE_S, self._build_s / CAUGHT_UP_COST_SHARE)
        wait = max(0.0, min_age - (self._monotonic() - self.latest.taken_s))
        scheduled = self._scheduled
        if scheduled is not None and not scheduled.done():
            if not self._sleeping:  # building now: what it missed goes right after
                self._caught_up_again = True
                return
            scheduled.cancel()  # waiting for the interval: brought forward
        self._schedule(wait, min_age)

    def _schedule(self, wait_s: float, min_age_s: float | None) -> None:
        self._sleeping = True
        loop = asyncio.get_running_loop()
        self._scheduled = loop.create_task(self._refresh_after(wait_s, min_age_s))

    async def _refresh_after(self, wait_s: float, min_age_s: float | None) -> None:
        try:
            await asyncio.sleep(wait_s)
        finally:
            if self._scheduled is asyncio.current_task():  # not one cancelled and replaced
                self._sleeping = False
        await self.refresh(min_age_s)
        if self._caught_up_again:
            self._caught_up_again = False
            asyncio.get_running_loop().call_soon(self.caught_up)

    async def publish(self) -> KpiSnapshot:
        """Build from the figures as they are now (what changed since the last one)."""
        started = self._monotonic()
        figures, latest = self._figures, self.latest
        periods = Periods.at(self._clock())
        version = figures.version
        touched = figures.take_touched()
        overrides = _overrides_key(self._targets.overrides)
        if overrides != latest.overrides or periods.day != latest.periods.day:
            touched = None  # targets are chosen by day: every item again
        windows: dict[str, WindowItems] = {}
        view = figures.only(touched) if touched else None
        for window in ALL_WINDOWS:
            start = periods.start(window)
            before = latest.windows.get(window)
            if before is None or touched is None or before.start != start:
                windows[window] = WindowItems.of(start, await self._build_all(window, periods))
            elif view is not None and touched:
                rebuilt = self._build(view, window, periods)
                windows[window] = before.updated(rebuilt, touched)
            else:
                windows[window] = before
        partitions = tuple(f"{t}[{p}]" for t, p in sorted(figures.partitions))
        activity = bytes(memoryview(orjson.dumps(api.activity_items(figures))))
        self.published += 1
        taken = self._monotonic()
        self._build_s = taken - started
        self.latest = KpiSnapshot(periods, taken, version, overrides, partitions, windows, activity)
        # The previous snapshot is let go only once nothing here holds it either: trimmed
        # before, its pages stayed in the heap until the next build's trim (24-28 MiB of a
        # worker at rest, measured on 2026-12-04).
        del latest, before, view
        self._heap.maybe_trim()
        return self.latest

    async def _build_all(self, window: str, periods: Periods) -> dict[str, UnitItems]:
        units = sorted({code for code, _ in self._figures.series()})
        built: dict[str, UnitItems] = {}
        for first in range(0, len(units), self._piece):
            piece = set(units[first : first + self._piece])
            built.update(self._build(self._figures.only(piece), window, periods))
            await asyncio.sleep(0)  # counting goes on between pieces
        return built

    def _build(self, figures: Figures, window: str, periods: Periods) -> dict[str, UnitItems]:
        self.builds += 1
        query = api.KpiQuery(frozenset(), frozenset(), frozenset(), frozenset(), (window,))
        by_unit: dict[str, list[Item]] = {}
        for item in api.kpi_items(query, figures, self._registry, self._targets, periods):
            by_unit.setdefault(item["unit"], []).append(item)
        built = {code: UnitItems.of(items) for code, items in by_unit.items()}
        self._heap.processed(sum(unit.size for unit in built.values()))
        return built


def _never_behind() -> bool:
    return False


def _overrides_key(overrides: object) -> object:
    """The target overrides, compared by value: the worker reads them every few seconds
    into a new index, and an index with the same overrides must not rebuild every item.
    ``OverrideIndex`` (services/common/targets.py) keeps them, frozen, in ``_by_key``;
    anything else is compared as it is."""
    return getattr(overrides, "_by_key", overrides)


class SnapshotCollector(Collector):
    """The snapshots' own figures, read at scrape time: how many were published, how many
    item builds they took (a burst of requests adds none), and the latest one's age."""

    def __init__(self, snapshots: KpiSnapshots) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterable[Metric]:
        snapshots = self._snapshots
        yield CounterMetricFamily(
            "egov_metrics_snapshots",
            "Snapshots of the /v1/kpis items published by the counting loop.",
            value=snapshots.published,
        )
        yield CounterMetricFamily(
            "egov_metrics_snapshot_builds",
            "Item builds (a window, or a piece of one) done to publish them.",
            value=snapshots.builds,
        )
        yield GaugeMetricFamily(
            "egov_metrics_snapshot_age_seconds",
            "Age of the snapshot /v1/kpis and /v1/activity answer from.",
            value=snapshots.age_s(snapshots.latest),
        )
