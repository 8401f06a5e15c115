"""The figures a worker exports, per partition it owns, kept small enough for 10,000 units.

Each (unit, KPI) keeps one :class:`Tally` (the latest day, month and year it has seen,
and all-time sums) plus the 5-minute buckets of the last hours. Windows roll with the
wall clock: a tally whose day is not today reads as 0/0, so a scrape at 00:00:05 shows
the new day empty, not yesterday's figures. Pure: the store loads, the pipeline applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

from services.common.tally import Deltas, add_row
from services.metrics.dossiers import outcome_of_series
from services.metrics.eras import era_start
from services.metrics.periods import (
    BUCKET_RETENTION_S,
    CALENDAR_WINDOWS,
    ROLLING_WINDOWS,
    Periods,
    month_of,
)

TopicPartition = tuple[str, int]
SeriesKey = tuple[str, str]
"""(unit code, KPI id)."""


class Tally:
    """Numerator and denominator of one (unit, KPI) for its latest day, month, year and ever.

    The latest day never passes the wall clock's: an event dated after today (within the
    clock skew, just after local midnight) is counted in the all-time sums at once and
    held ``ahead`` until its day starts, so it cannot blank today's figures.
    """

    __slots__ = ("ahead", "day", "dd", "dn", "md", "mn", "month", "td", "tn", "yd", "year", "yn")

    def __init__(self, day: date) -> None:
        self.day, self.month, self.year = day.toordinal(), month_of(day), day.year
        self.dn = self.dd = self.mn = self.md = self.yn = self.yd = self.tn = self.td = 0
        self.ahead: list[tuple[date, int, int]] | None = None

    def add(self, day: date, num: int, den: int, today: date | None = None) -> None:
        """Count ``num/den`` dated ``day``; a day older than the current one is history only,
        a day after ``today`` (the wall clock's) waits until it starts."""
        self.tn += num
        self.td += den
        if today is not None and day > today:
            if self.ahead is None:
                self.ahead = []
            self.ahead.append((day, num, den))
            return
        self._count(day, num, den)

    def _count(self, day: date, num: int, den: int) -> None:
        ordinal, month, year = day.toordinal(), month_of(day), day.year
        if ordinal > self.day:
            self.day, self.dn, self.dd = ordinal, 0, 0
        if ordinal == self.day:
            self.dn += num
            self.dd += den
        if month > self.month:
            self.month, self.mn, self.md = month, 0, 0
        if month == self.month:
            self.mn += num
            self.md += den
        if year > self.year:
            self.year, self.yn, self.yd = year, 0, 0
        if year == self.year:
            self.yn += num
            self.yd += den

    def _catch_up(self, today: date) -> None:
        """Count the held events whose day has started (the wall clock passed midnight)."""
        ahead = self.ahead
        if ahead is None or min(day for day, _, _ in ahead) > today:
            return
        self.ahead = [row for row in ahead if row[0] > today] or None
        for day, num, den in sorted(row for row in ahead if row[0] <= today):
            self._count(day, num, den)

    def calendar(self, window: str, periods: Periods) -> tuple[int, int]:
        """The figure of a calendar window now; 0/0 when the period has rolled over."""
        if self.ahead is not None:
            self._catch_up(periods.day)
        if window == "day":
            return (self.dn, self.dd) if self.day == periods.day.toordinal() else (0, 0)
        if window == "month":
            return (self.mn, self.md) if self.month == periods.month else (0, 0)
        return (self.yn, self.yd) if self.year == periods.year else (0, 0)

    @property
    def total(self) -> tuple[int, int]:
        return self.tn, self.td


@dataclass(slots=True)
class PartitionFigures:
    """What one owned partition contributes to the exported figures."""

    tallies: dict[SeriesKey, Tally] = field(default_factory=dict)
    buckets: dict[SeriesKey, dict[int, list[int]]] = field(default_factory=dict)
    activity: dict[tuple[str, str], float] = field(default_factory=dict)
    outcomes: dict[SeriesKey, Tally] = field(default_factory=dict)
    """The on-time ledger's counts (services/metrics/dossiers.py): kept apart from the KPI
    series, so that nothing reads them as rates."""

    def tallies_of(self, kpi: str) -> dict[SeriesKey, Tally]:
        return self.outcomes if outcome_of_series(kpi) else self.tallies

    def apply(self, deltas: Deltas, oldest_bucket: int, today: date) -> None:
        # A day of an earlier era (backfilled history) is stored, not kept here: under a
        # code reused since the reform it would add another unit's figures to today's.
        first_day = era_start(today)
        for (unit, kpi, day), (num, den) in deltas.daily.items():
            if day < first_day:
                continue
            tallies = self.tallies_of(kpi)
            tally = tallies.get((unit, kpi))
            if tally is None:
                tally = tallies[(unit, kpi)] = Tally(min(day, today))
            tally.add(day, num, den, today)
        for (unit, kpi, bucket), (num, den) in deltas.buckets.items():
            if bucket < oldest_bucket:
                continue
            add_row(self.buckets.setdefault((unit, kpi), {}), bucket, num, den)
        for key, epoch in deltas.activity.items():
            if self.activity.get(key, 0.0) < epoch:
                self.activity[key] = epoch

    def prune(self, oldest_bucket: int) -> None:
        for key in list(self.buckets):
            series = self.buckets[key]
            for bucket in [b for b in series if b < oldest_bucket]:
                del series[bucket]
            if not series:
                del self.buckets[key]


@dataclass(frozen=True, slots=True)
class WindowFigure:
    numerator: int
    denominator: int


class Figures:
    """Figures of every partition this worker owns; a revoked partition's go at once.

    ``version`` goes up with every change, and the units a committed step changed are
    kept until :meth:`take_touched`: the published snapshot (services/metrics/snapshot.py)
    rebuilds only those, not every unit after every step.
    """

    def __init__(self) -> None:
        self.partitions: dict[TopicPartition, PartitionFigures] = {}
        self.version = 0
        self._touched: set[str] | None = None
        """Units changed since the last take; None: any may have (a partition came or went)."""
        self.on_change: Callable[[], None] | None = None
        """Called after every change (the snapshot publisher schedules itself)."""

    def assign(self, tp: TopicPartition, figures: PartitionFigures) -> None:
        self.partitions[tp] = figures
        self._changed(None)

    def revoke(self, tp: TopicPartition) -> None:
        if self.partitions.pop(tp, None) is not None:
            self._changed(None)

    def apply(self, tp: TopicPartition, deltas: Deltas, periods: Periods) -> None:
        figures = self.partitions.get(tp)
        if figures is not None:
            figures.apply(deltas, oldest_bucket(periods), periods.day)
            units = {unit for unit, _, _ in deltas.daily}
            units.update(unit for unit, _, _ in deltas.buckets)
            units.update(unit for unit, _ in deltas.activity)
            self._changed(units)

    def _changed(self, units: set[str] | None) -> None:
        self.version += 1
        if units is None:
            self._touched = None
        elif self._touched is not None:
            self._touched |= units
        if self.on_change is not None:
            self.on_change()

    def take_touched(self) -> set[str] | None:
        """The units changed since the last call (None: any may have), and start again."""
        touched, self._touched = self._touched, set()
        return touched

    def only(self, units: set[str]) -> Figures:
        """A view of ``units``' figures (the same tallies, not copies), for building their
        items without going through every series."""
        view = Figures()
        for tp, part in self.partitions.items():
            view.partitions[tp] = PartitionFigures(
                {k: t for k, t in part.tallies.items() if k[0] in units},
                {k: b for k, b in part.buckets.items() if k[0] in units},
                {k: e for k, e in part.activity.items() if k[0] in units},
                {k: t for k, t in part.outcomes.items() if k[0] in units},
            )
        return view

    def prune(self, periods: Periods) -> None:
        for figures in self.partitions.values():
            figures.prune(oldest_bucket(periods))

    def series(self) -> set[SeriesKey]:
        keys: set[SeriesKey] = set()
        for figures in self.partitions.values():
            keys.update(figures.tallies)
        return keys

    def window(self, window: str, periods: Periods) -> dict[SeriesKey, WindowFigure]:
        """Every series' figure for one window now, summed over the owned partitions."""
        return {k: WindowFigure(n, d) for k, (n, d) in self.window_sums(window, periods).items()}

    def window_sums(self, window: str, periods: Periods) -> dict[SeriesKey, list[int]]:
        """``window`` as [numerator, denominator] lists: no object per series, for a
        scrape that writes ~70,000 series per window."""
        sums: dict[SeriesKey, list[int]] = {}
        for figures in self.partitions.values():
            for key, (num, den) in _window_of(figures, window, periods):
                add_row(sums, key, num, den)
        return sums

    def totals(self) -> dict[SeriesKey, WindowFigure]:
        return {k: WindowFigure(n, d) for k, (n, d) in self.total_sums().items()}

    def total_sums(self) -> dict[SeriesKey, list[int]]:
        """All-time [numerator, denominator] of every series."""
        sums: dict[SeriesKey, list[int]] = {}
        for figures in self.partitions.values():
            for key, tally in figures.tallies.items():
                row = sums.get(key)
                if row is None:
                    sums[key] = [tally.tn, tally.td]
                else:
                    row[0] += tally.tn
                    row[1] += tally.td
        return sums

    def outcome_sums(self, window: str, periods: Periods) -> dict[tuple[str, str], int]:
        """The on-time ledger's counts in ``window``: (unit, outcome) -> dossiers."""
        counts: dict[tuple[str, str], int] = {}
        for figures in self.partitions.values():
            outcomes = PartitionFigures(figures.outcomes, figures.buckets)
            for (unit, kpi), (_, den) in _window_of(outcomes, window, periods):
                key = (unit, outcome_of_series(kpi) or kpi)
                counts[key] = counts.get(key, 0) + den
        return counts

    def activity(self) -> dict[tuple[str, str], float]:
        latest: dict[tuple[str, str], float] = {}
        for figures in self.partitions.values():
            for key, epoch in figures.activity.items():
                if latest.get(key, 0.0) < epoch:
                    latest[key] = epoch
        return latest


def oldest_bucket(periods: Periods) -> int:
    return int(periods.now.timestamp()) - BUCKET_RETENTION_S


def _window_of(
    figures: PartitionFigures, window: str, periods: Periods
) -> Iterator[tuple[SeriesKey, tuple[int, int]]]:
    if window in CALENDAR_WINDOWS:
        for key, tally in figures.tallies.items():
            yield key, tally.calendar(window, periods)
        return
    first = periods.first_bucket(window)
    for key in figures.tallies:
        yield key, _sum_buckets(figures.buckets.get(key, {}), first)


def _sum_buckets(series: Mapping[int, list[int]], first: int) -> tuple[int, int]:
    num = den = 0
    for bucket, (n, d) in series.items():
        if bucket >= first:
            num += n
            den += d
    return num, den


def partition_from_rows(
    tallies: Iterable[tuple[str, str, date, int, int]],
    buckets: Iterable[tuple[str, str, int, int, int]],
    activity: Iterable[tuple[str, str, float]],
    today: date | None = None,
) -> PartitionFigures:
    """Rebuild a partition's figures from stored daily rows, buckets and last-event times.

    ``tallies`` are (unit, kpi, day, numerator, denominator) rows, any number per series;
    rows dated after ``today`` (the wall clock's) wait until their day starts.
    """
    figures = PartitionFigures()
    for unit, kpi, day, num, den in sorted(tallies, key=lambda row: row[2]):
        kept = figures.tallies_of(kpi)
        tally = kept.get((unit, kpi))
        if tally is None:
            tally = kept[(unit, kpi)] = Tally(day if today is None else min(day, today))
        tally.add(day, num, den, today)
    for unit, kpi, bucket, num, den in buckets:
        figures.buckets.setdefault((unit, kpi), {})[bucket] = [num, den]
    for unit, family, epoch in activity:
        figures.activity[(unit, family)] = epoch
    return figures


ROLLING = tuple(ROLLING_WINDOWS)
