"""Arranges one snapshot for one page: a unit's rates, its units worst first, silence, alerts.

Pure: the hierarchy is read from the figures themselves (each carries its level and
parent), so 2024-era districts appear exactly when a worker reports them, and
today's province → commune hierarchy needs no special case. The focused province's units
of today's directory that have no figure (never heard from) are added from the unit
registry (:class:`services.wall.directory.TodayUnits`), silent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction

from services.common.calendar import WorkingCalendar
from services.common.figures import Figure, Standing
from services.common.unit_info import UnitInfo
from services.wall.directory import TodayUnits, shipped_units
from services.wall.model import OFFICE_HOURS, Alert, is_silent, worst_first_key
from services.wall.snapshot import Snapshot, SourceState

BELOW_LIMIT = 15
"""Rows of the below-target list; the rest are counted, and the unit table has them all."""

WEEKLY_FAMILIES = frozenset({"meetings"})
"""Families a unit publishes a few times a week at most (the pager's, services/alerts/
cadence.py): their silence is counted over a working week, not the wall's minutes."""

WEEK_MINUTES = 5 * 9.5 * 60
"""One working week (5 days of 07:30-17:00), the pager's floor for a weekly family
(``EGOV_ALERT_SILENT_WEEKLY_AFTER_S``)."""


@dataclass(frozen=True, slots=True)
class KpiLine:
    """One KPI of the focused unit: today and this month."""

    kpi: str
    name_vi: str
    name_en: str
    day: Figure | None
    month: Figure | None


@dataclass(frozen=True, slots=True)
class UnitRow:
    """One unit under the focused one, with today's figure for each KPI."""

    unit: UnitInfo
    figures: dict[str, Figure]
    last_event: datetime | None
    silent: bool
    has_children: bool

    @property
    def worst(self) -> Figure | None:
        return min(self.figures.values(), key=worst_first_key, default=None)

    @property
    def status(self) -> Standing:
        worst = self.worst
        return worst.status if worst is not None else Standing.NO_DATA


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything one page shows; ``focus`` is ``None`` when no figures exist yet."""

    provinces: list[UnitInfo]
    focus: UnitInfo | None
    path: list[UnitInfo]
    kpis: list[KpiLine]
    rows: list[UnitRow]
    below: list[Figure]
    below_total: int
    silent: list[UnitRow]
    alerts: list[Alert] | None
    """``None``: the alerts service could not be read, or there is none
    (``alerts_configured``); ``[]``: read, and none open."""
    sources: tuple[SourceState, ...]
    data_time: datetime | None
    stale: bool
    kpi_names: dict[str, tuple[str, str]] = field(default_factory=dict)
    unit_names: dict[str, tuple[str, str]] = field(default_factory=dict)
    alerts_configured: bool = True
    """False without an alerts source (``EGOV_ALERTS_URL`` empty): no alerts panel."""


def row_key(row: UnitRow) -> tuple[int, Fraction, int, int, str]:
    """Below target first (worst first, as the below-target list orders them: the exact
    shortfall, then the larger volume), then silent units, then the rest.

    Until 2026-12-05 the float ``Figure.gap`` ordered the table, so two units exactly 10
    points under their targets stood in one order here and the other in the list beside
    it (review 55)."""
    worst = row.worst
    status = row.status
    if worst is not None and status is Standing.BELOW:
        return (0, -worst.shortfall, -worst.denominator, 0 if row.silent else 1, row.unit.code)
    rank = 1 if row.silent else 2 + status.rank
    return (rank, Fraction(0), 0, 0 if row.silent else 1, row.unit.code)


def _units(figures: tuple[Figure, ...]) -> dict[str, UnitInfo]:
    units: dict[str, UnitInfo] = {}
    for f in figures:
        units.setdefault(
            f.unit, UnitInfo(f.unit, f.unit_name, f.unit_name_en, f.level, f.province, f.parent)
        )
    return units


PEER_SHARE = 0.5
"""The pager's default ``EGOV_ALERT_SILENT_PEER_SHARE`` (the wall's, ``EGOV_WALL_SILENT_
PEER_SHARE``, follows it): once this share of a province's units of one level send, the
others of that level are expected to (and page UnitSilent)."""


def _never_heard(
    units: dict[str, UnitInfo],
    today: TodayUnits,
    province: str,
    alerts: tuple[Alert, ...] | None,
    peer_share: float = PEER_SHARE,
) -> dict[str, UnitInfo]:
    """Today's units of ``province`` without any figure, that the pager expects to hear
    from: a metrics worker serves figures only for series it has counted, so a commune
    that never sent anything (new after the reform, a new key) was on no list while its
    UnitSilent fired (review 65).

    Expected as the pager's peer rule expects them: every unit of a level once
    ``peer_share`` of that level's units send (a province being brought on, a few of
    its communes first, is not a page of "silent" rows), and any unit with an open
    UnitSilent. None when the province's figures are of the 2024 hierarchy (a district
    under it): today's directory does not describe that page."""
    if any(u.level == "district" and u.parent == province for u in units.values()):
        return {}
    ours = today.under(province)
    by_level: dict[str, list[UnitInfo]] = defaultdict(list)
    for u in ours:
        by_level[u.level].append(u)
    levels = {
        level
        for level, peers in by_level.items()
        if sum(u.code in units for u in peers) >= peer_share * len(peers)
    }
    paged = {a.unit for a in alerts or () if a.is_open and a.alertname == "UnitSilent"}
    return {
        u.code: u for u in ours if u.code not in units and (u.level in levels or u.code in paged)
    }


def _path(units: dict[str, UnitInfo], code: str) -> list[UnitInfo]:
    path: list[UnitInfo] = []
    seen: set[str] = set()
    current: str | None = code
    while current is not None and current in units and current not in seen:
        seen.add(current)
        path.append(units[current])
        current = units[current].parent
    return list(reversed(path))


@dataclass(frozen=True, slots=True)
class Silence:
    """When a unit counts as not sending (the wall's ``EGOV_WALL_SILENCE_MINUTES`` in the
    working time of its calendar): one rule for the overview, the rankings and the files.

    ``families`` (KPI id -> event family) lets a KPI's ranking and a file's rows judge the
    family the KPI counts, as the pager's UnitSilent does: a commune whose one-stop system
    stopped while its documents still arrive is not sending dossiers. A family is judged
    from the snapshot's activity of that family alone; a unit with no activity in it was
    never heard from in it, and is silent (:func:`is_silent`)."""

    minutes: float
    calendar: WorkingCalendar = OFFICE_HOURS
    families: Mapping[str, str] = field(default_factory=dict)
    weekly_minutes: float = WEEK_MINUTES

    def units(self, snapshot: Snapshot, now: datetime, kpi: str | None = None) -> frozenset[str]:
        """The units of ``snapshot``'s figures silent at ``now``: in the family of ``kpi``
        when it is known, else in every family (the overview's rule)."""
        family = self.families.get(kpi) if kpi is not None else None
        last = _last_events(snapshot, family)
        minutes = self.minutes_of(family)
        return frozenset(
            code
            for code in {f.unit for f in snapshot.figures}
            if is_silent(last.get(code), now, minutes, self.calendar)
        )

    def minutes_of(self, family: str | None) -> float:
        """The silence of ``family``: a family published a few times a week (meetings) is
        judged over ``weekly_minutes``, as the pager's UnitSilent judges it weekly;
        without that, every commune's meeting rows read "not sending" within the hour."""
        return self.weekly_minutes if family in WEEKLY_FAMILIES else self.minutes

    def rows(self, snapshot: Snapshot, now: datetime) -> Callable[[Figure], bool]:
        """For a file: whether a figure's unit stopped sending its KPI's family."""
        found: dict[str | None, frozenset[str]] = {}

        def silent(figure: Figure) -> bool:
            family = self.families.get(figure.kpi)
            if family not in found:
                found[family] = self.units(snapshot, now, figure.kpi)
            return figure.unit in found[family]

        return silent


def _last_events(snapshot: Snapshot, family: str | None = None) -> dict[str, datetime]:
    """Each unit's last event: of ``family`` only, when given, else of any family.

    A family's comes from the snapshot's activity (/v1/activity) alone: an item's
    ``last_event_time`` is the unit's latest event in ANY family (docs/metrics-api.md), so
    reading it for a family let a commune's arriving documents hide its stopped dossiers.
    Any family also reads the items' time (a worker's figures without activity)."""
    last: dict[str, datetime] = {}

    def seen(unit: str, when: datetime | None) -> None:
        if when is not None and (unit not in last or when > last[unit]):
            last[unit] = when

    for act in snapshot.activity:
        if family is None or act.family == family:
            seen(act.unit, act.last_event_time)
    if family is None:
        for f in snapshot.figures:
            seen(f.unit, f.last_event_time)
    return last


def _descendants(children: dict[str, list[str]], code: str) -> list[str]:
    found: list[str] = []
    stack = list(children.get(code, ()))
    while stack:
        unit = stack.pop()
        found.append(unit)
        stack.extend(children.get(unit, ()))
    return found


def _is_root(unit: UnitInfo) -> bool:
    return unit.level == "province" or unit.parent is None


def _alerts_of(alerts: tuple[Alert, ...] | None, focus: UnitInfo, scope: set[str]) -> list[Alert]:
    """The open alerts of ``focus``'s page: a province's page has every alert of the
    province (also of a unit without figures yet); any other page, those of ``scope``.

    Until 2026-12-05 every page kept the province's alerts, so a commune's drill-down
    listed its neighbours' critical alerts as its own (review 55)."""
    if alerts is None:
        return []
    if _is_root(focus):
        chosen = [
            a for a in alerts if a.is_open and (a.province == focus.province or a.unit in scope)
        ]
    else:
        chosen = [a for a in alerts if a.is_open and a.unit in scope]
    severity = {"critical": 0, "warning": 1}
    return sorted(
        chosen,
        # acknowledged_at: the API shows the wall (no token) when, never who (review 48).
        key=lambda a: (
            a.acknowledged_at is not None or a.acknowledged_by is not None,
            severity.get(a.severity, 2),
            a.unit,
            a.id,
        ),
    )


def build_overview(
    snapshot: Snapshot,
    province: str | None,
    unit: str | None,
    now: datetime,
    silence_minutes: float,
    calendar: WorkingCalendar = OFFICE_HOURS,
    today: TodayUnits | None = None,
    peer_share: float = PEER_SHARE,
) -> Overview:
    """The page for ``unit`` (default: the province) of ``province`` (default: the first).

    Silence is counted in the working time of ``calendar`` (see :func:`is_silent`). The
    province's units of ``today``'s directory (default: the data shipped with the
    repository) without a figure are on it too, silent (:func:`_never_heard`); the other
    provinces' are not read (the province list names provinces with figures only).
    """
    units = _units(snapshot.figures)
    provinces = sorted(
        (u for u in units.values() if _is_root(u)),
        key=lambda u: u.code,
    )
    if province not in {p.code for p in provinces}:
        province = provinces[0].code if provinces else None
    if province is not None:
        directory = today or shipped_units()
        units |= _never_heard(units, directory, province, snapshot.alerts, peer_share)
    focus_code = unit if unit in units and units[unit].province == province else province
    focus = units.get(focus_code) if focus_code else None
    kpi_names = {f.kpi: (f.kpi_name_vi, f.kpi_name_en) for f in snapshot.figures}
    unit_names = {u.code: (u.name, u.name_en) for u in units.values()}
    if focus is None:
        return Overview(
            provinces=provinces,
            focus=None,
            path=[],
            kpis=[],
            rows=[],
            below=[],
            below_total=0,
            silent=[],
            alerts=None if snapshot.alerts is None else [],
            sources=snapshot.sources,
            data_time=snapshot.data_time,
            stale=snapshot.stale,
            kpi_names=kpi_names,
            unit_names=unit_names,
            alerts_configured=snapshot.alerts_configured,
        )

    by_unit: dict[str, dict[tuple[str, str], Figure]] = defaultdict(dict)
    children: dict[str, list[str]] = defaultdict(list)
    for f in snapshot.figures:
        by_unit[f.unit][(f.kpi, f.window)] = f
    for u in units.values():
        if u.parent is not None:
            children[u.parent].append(u.code)
    last = _last_events(snapshot)

    own = by_unit[focus.code]
    kpis = [
        KpiLine(k, names[0], names[1], own.get((k, "day")), own.get((k, "month")))
        for k, names in sorted(kpi_names.items())
        if (k, "day") in own or (k, "month") in own
    ]

    def row(code: str) -> UnitRow:
        figs = {k: f for (k, w), f in by_unit[code].items() if w == "day"}
        when = last.get(code)
        return UnitRow(
            units[code],
            figs,
            when,
            is_silent(when, now, silence_minutes, calendar),
            bool(children.get(code)),
        )

    rows = sorted((row(c) for c in children.get(focus.code, ())), key=row_key)
    # The lists narrow as one drills down but keep the focused unit itself: a district
    # below target is listed on the province's page and on its own. Until 2026-12-05 a
    # commune's own page left it out and read "every unit is sending" under its own
    # silence (review 55). The province is the root: its lists name its units.
    scope = _descendants(children, focus.code)
    if not _is_root(focus):
        scope.append(focus.code)
    below_all = sorted(
        (
            f
            for c in scope
            for (k, w), f in by_unit[c].items()
            if w == "day" and f.status is Standing.BELOW
        ),
        key=worst_first_key,
    )
    silent = sorted(
        (r for r in (row(c) for c in scope) if r.silent),
        key=lambda r: (r.last_event is not None, r.last_event or now, r.unit.code),
    )
    alerts = (
        None
        if snapshot.alerts is None
        else _alerts_of(snapshot.alerts, focus, {focus.code, *scope})
    )
    return Overview(
        provinces=provinces,
        focus=focus,
        path=_path(units, focus.code),
        kpis=kpis,
        rows=rows,
        below=below_all[:BELOW_LIMIT],
        below_total=len(below_all),
        silent=silent,
        alerts=alerts,
        sources=snapshot.sources,
        data_time=snapshot.data_time,
        stale=snapshot.stale,
        kpi_names=kpi_names,
        unit_names=unit_names,
        alerts_configured=snapshot.alerts_configured,
    )
