"""The province overview of a wall screen, as pure data: what fits one 1920×1080 screen.

This month's 766 scorecard of the province, its dossier tiles, its worst units (each
unit once, at its worst indicator, with the counts beside the rate), its open alerts and
its own KPIs. Lists are cut to what fits (:data:`WORST_LIMIT`, :data:`ALERT_LIMIT`,
:data:`KPI_STRIP_LIMIT`) and say how many more there are; the rankings and unit pages
hold the rest (docs/wall.md, "Screens").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from services.common.figures import Figure, Standing
from services.common.scorecard import Period, Score, Scorecard, score
from services.common.unit_info import UnitInfo
from services.common.units import VN_TZ
from services.wall.model import Alert, worst_first_key
from services.wall.snapshot import Snapshot

WORST_LIMIT: Final = 6
"""Rows of worst units on the overview (what fits above the alerts and the KPI strip, a
kiosk's footer included, with room for a row of three lines);
the count of the others is shown."""
ALERT_LIMIT: Final = 5
"""Open alerts on the overview; the count of the others is shown."""
KPI_COLUMNS: Final = 4
"""Cells a row of the KPI strip (the full width under the two columns)."""
KPI_ROWS: Final = 3
"""Rows of the KPI strip: the height the two columns above leave it."""
KPI_STRIP_LIMIT: Final = KPI_COLUMNS * KPI_ROWS
"""KPIs the strip holds. With more, the most urgent are kept (below target first, as the
worst units are ordered) and the last cell counts the others (:func:`strip`)."""

ON_TIME: Final = "dossier_on_time"
RECEIVED: Final = "dossier_online"
"""Its denominator is the dossiers received for procedures offered as full-process online
services (its ``service_level`` "full"): the tile says so, not "offered online", which
would take in partly online procedures too."""


@dataclass(frozen=True, slots=True)
class DossierTiles:
    """The province's dossiers in one window, as its figures carry them.

    ``received`` is the online-dossier rate's denominator; early / on time / late / open
    overdue are the on-time rate's four counts. The figures carry no count of dossiers
    still open within their appointment, so "in progress" is not shown (docs/wall.md).
    """

    received: int | None
    early: int | None
    on_time: int | None
    late: int | None
    open_overdue: int | None

    @property
    def resolved(self) -> int | None:
        if self.early is None or self.on_time is None or self.late is None:
            return None
        return self.early + self.on_time + self.late


@dataclass(frozen=True, slots=True)
class WorstUnit:
    """A unit below target, at its worst indicator, and how many of its others are too."""

    unit: UnitInfo
    worst: Figure
    below_count: int


@dataclass(frozen=True, slots=True)
class Board:
    """Everything the province overview shows, already cut to fit."""

    province: UnitInfo
    period: Period
    score: Score
    tiles: DossierTiles
    worst: tuple[WorstUnit, ...]
    worst_total: int
    alerts: tuple[Alert, ...] | None
    """``None``: the alerts service could not be read (not the same as none open)."""
    alerts_total: int
    kpis: tuple[Figure, ...]
    """The province's own month figures shown in the strip, one per KPI, by KPI id."""
    kpis_total: int
    """The province's month figures in all: more than ``len(kpis)`` when the strip is cut."""
    data_time: datetime | None
    stale: bool
    alerts_configured: bool = True
    """False without an alerts source (``EGOV_ALERTS_URL`` empty): no alerts panel."""


def this_month(now: datetime) -> Period:
    """The month of ``now`` in Vietnam time."""
    local = now.astimezone(VN_TZ)
    return Period("month", local.year, local.month)


def provinces_of(figures: Sequence[Figure]) -> list[UnitInfo]:
    found: dict[str, UnitInfo] = {}
    for f in figures:
        if f.level == "province" and f.unit not in found:
            found[f.unit] = UnitInfo(f.unit, f.unit_name, f.unit_name_en, f.level, f.province)
    return [found[c] for c in sorted(found)]


def build_board(card: Scorecard, snapshot: Snapshot, province: str, now: datetime) -> Board | None:
    """The overview of ``province`` for the month of ``now``; None when it has no figures."""
    info = next((p for p in provinces_of(snapshot.figures) if p.code == province), None)
    if info is None:
        return None
    period = this_month(now)
    month = [f for f in snapshot.figures if f.province == province and period.covers(f)]
    own = [f for f in month if f.unit == province]
    worst = worst_units(month, province)
    alerts = open_alerts(snapshot.alerts, province, {f.unit for f in month})
    return Board(
        province=info,
        period=period,
        score=score(card, own, province, period),
        tiles=tiles(own),
        worst=tuple(worst[:WORST_LIMIT]),
        worst_total=len(worst),
        alerts=None if alerts is None else tuple(alerts[:ALERT_LIMIT]),
        alerts_total=0 if alerts is None else len(alerts),
        kpis=strip(own),
        kpis_total=len(own),
        data_time=snapshot.data_time,
        stale=snapshot.stale,
        alerts_configured=snapshot.alerts_configured,
    )


def strip(own: Sequence[Figure], limit: int = KPI_STRIP_LIMIT) -> tuple[Figure, ...]:
    """The KPIs of the strip, by id: all of them when they fit, else the ``limit - 1``
    most urgent (below target, largest gap first, then too few to judge, no data, meeting
    target), the last cell being left to say how many more there are."""
    if len(own) > limit:
        own = sorted(own, key=worst_first_key)[: limit - 1]
    return tuple(sorted(own, key=lambda f: f.kpi))


def tiles(own: Sequence[Figure]) -> DossierTiles:
    """The dossier tiles from a unit's figures of one window."""
    by_kpi = {f.kpi: f for f in own}
    received = by_kpi.get(RECEIVED)
    counts = by_kpi[ON_TIME].dossiers if ON_TIME in by_kpi else None
    return DossierTiles(
        received=received.denominator if received is not None else None,
        early=counts.early if counts else None,
        on_time=counts.on_time if counts else None,
        late=counts.late if counts else None,
        open_overdue=counts.open_overdue if counts else None,
    )


def worst_units(figures: Sequence[Figure], province: str) -> list[WorstUnit]:
    """Units under the province below target, worst first, each at its worst indicator.

    Only judged rates count (``Standing.BELOW``: enough volume, under the target), so a
    unit at 1 of 2 is never listed as the province's worst.
    """
    below: dict[str, list[Figure]] = defaultdict(list)
    for f in figures:
        if f.unit != province and f.status is Standing.BELOW:
            below[f.unit].append(f)
    rows = []
    for figs in below.values():
        worst = min(figs, key=worst_first_key)
        unit = UnitInfo(worst.unit, worst.unit_name, worst.unit_name_en, worst.level,
                        worst.province, worst.parent)  # fmt: skip
        rows.append(WorstUnit(unit, worst, len(figs)))
    return sorted(rows, key=lambda r: worst_first_key(r.worst))


def open_alerts(
    alerts: tuple[Alert, ...] | None, province: str, units: set[str]
) -> list[Alert] | None:
    """The province's open alerts (its own, or of its ``units``): unacknowledged first,
    then critical first."""
    if alerts is None:
        return None
    severity = {"critical": 0, "warning": 1}
    return sorted(
        (a for a in alerts if a.is_open and (a.province == province or a.unit in units)),
        key=lambda a: (a.acknowledged_by is not None or a.acknowledged_at is not None,
                       severity.get(a.severity, 2), a.unit, a.id),
    )  # fmt: skip
