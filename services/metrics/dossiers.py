"""On-time resolution the way Vietnamese one-stop statistics count it: one dossier, one count. Pure.

A dossier's clock starts with its appointment (``due_at`` of ``dossier.received``, or of
``dossier.resolved`` when the receipt did not say), pauses while it is returned for
completion, and resumes with ``dossier.resubmitted``'s new appointment. It ends once:

- resolved (approved or rejected) **early** (before the local appointment date), **on
  time** (on it, and not after an appointment time) or **late**, counted in the period
  of the resolution;
- still open when its appointment passes: **open overdue** ("trễ hạn đang xử lý"),
  counted in the period of the appointment; its later resolution does not count it
  again but moves that one count from open overdue to late, in the same period (the
  statistics' "open overdue" is what is still open; the rate does not change);
- **withdrawn**: out of the rate, never counted.

Everything is judged at the events' own times: a resolution, return or withdrawal that
happened before the appointment but reached the worker after the sweep had counted the
dossier open overdue takes that count back (-1 where it was added) and counts as it
happened. The on-time rate is (early + on time) / (early + on time + late + open overdue).

Times are inputs (epoch seconds): the ledger never reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from typing import Final, NamedTuple

from services.common.dossierfacts import DOSSIER_TYPES as DOSSIER_TYPES
from services.common.dossierfacts import FINAL_OUTCOMES as FINAL_OUTCOMES
from services.common.dossierfacts import PAID as PAID
from services.common.dossierfacts import RECEIVED as RECEIVED
from services.common.dossierfacts import RESOLVED as RESOLVED
from services.common.dossierfacts import RESUBMITTED as RESUBMITTED
from services.common.dossierfacts import Due as Due
from services.common.dossierfacts import Fact as Fact
from services.common.dossierfacts import event_identity as event_identity
from services.common.dossierfacts import fact_of as fact_of
from services.common.tally import Deltas, add_row
from services.metrics.periods import bucket_of, local_day_of_epoch

KPI: Final = "dossier_on_time"
OUTCOMES: Final = ("early", "on_time", "late", "open_overdue")
OUTCOME_SERIES: Final = {outcome: f"{KPI}:{outcome}" for outcome in OUTCOMES}
"""The stored series of each count (kpi_daily rows, denominator = the count, numerator 0):
rolled up and windowed like every figure, exported as ``egov_dossiers``."""
_SERIES_OUTCOME: Final = {series: outcome for outcome, series in OUTCOME_SERIES.items()}

SWEEP_EVERY_S: Final = 30.0
"""How often a worker looks for open dossiers whose appointment has passed (wall clock,
like the windows' roll-over): an overdue dossier is counted within this long."""


def outcome_of_series(kpi: str) -> str | None:
    """The outcome a stored series counts (``dossier_on_time:late`` -> ``late``), else None."""
    return _SERIES_OUTCOME.get(kpi)


class Status(StrEnum):
    OPEN = "open"
    PAUSED = "paused"
    OVERDUE = "overdue"
    """Counted open overdue; a later resolution moves that count to late (or, if it
    happened in time, takes it back and counts as it happened)."""
    DONE = "done"
    WITHDRAWN = "withdrawn"
    RESOLVED = "resolved"
    """Resolved (final) before its receipt was read, with no appointment known: judged
    when the receipt brings one, at the resolution's instant (``resolved_at``)."""


class Dossier(NamedTuple):
    """Where one dossier stands, as stored between events (services/metrics/dossierstore.py).

    Immutable; a named tuple, not a frozen dataclass: one is made per dossier event of a
    flush, and a frozen dataclass's ``__init__`` costs ~0.6 µs against ~0.25."""

    dossier_id: str
    status: Status
    due: Due | None
    units: tuple[str, ...]
    """The unit chain of its receipt (its latest event's when it was not received): an
    open overdue count goes to these units."""
    resolved_at: float | None = None
    """When it was resolved, while ``RESOLVED`` (waiting for its appointment)."""

    def moved(self, status: Status, due: Due | None = None) -> Dossier:
        """This dossier in ``status``, with ``due`` when given (``dataclasses.replace``
        cost ~5 µs: the ledger steps once per dossier event)."""
        return Dossier(
            self.dossier_id, status, self.due if due is None else due, self.units,
            self.resolved_at,
        )  # fmt: skip


class Tick(NamedTuple):
    """One count (or, ``delta`` -1, one count taken back) of one outcome (a named tuple,
    like ``Dossier``: up to one per dossier event)."""

    outcome: str
    units: tuple[str, ...]
    day: date
    epoch: float
    delta: int = 1


def step(
    dossier: Dossier | None, fact: Fact, epoch: float, units: tuple[str, ...]
) -> tuple[Dossier | None, list[Tick]]:
    """Apply one event (``fact`` at ``epoch``, for the unit chain ``units``)."""
    if dossier is None:
        dossier = Dossier(fact.dossier_id, Status.OPEN, None, units)
    if fact.kind in ("received", "resubmitted"):
        return _opened(dossier, fact)
    if fact.kind == "returned":
        return _returned(dossier, fact, epoch)
    if fact.kind == "withdrawn":
        return _withdrawn(dossier, epoch)
    return _resolved(dossier, fact, epoch, units)


def _opened(dossier: Dossier, fact: Fact) -> tuple[Dossier, list[Tick]]:
    if dossier.status is Status.PAUSED:  # back complete: the clock resumes
        return dossier.moved(Status.OPEN, fact.due or dossier.due), []
    if dossier.status is Status.OPEN and dossier.due is None:
        return dossier.moved(dossier.status, fact.due), []
    if dossier.status is Status.RESOLVED and fact.due is not None:
        # The receipt of a dossier resolved first: judged now, at its resolution.
        resolved = dossier.resolved_at
        assert resolved is not None  # noqa: S101 -- set whenever the status is RESOLVED
        tick = _judged(fact.due, resolved, dossier.units)
        done = Dossier(dossier.dossier_id, Status.DONE, fact.due, dossier.units)
        return done, [tick]
    return dossier, []


def _judged(due: Due, at: float, units: tuple[str, ...]) -> Tick:
    """The count of a dossier resolved at ``at``: early or on time in the period of the
    resolution; late in the appointment's, where a sweep counts a dossier still open then
    and its resolution moves that count. So a late dossier lands in one period whether a
    sweep saw it first or the worker read it only after its resolution (a commune's
    upload after an outage): event time, not arrival time."""
    day = local_day_of_epoch(at)
    outcome = due.judge(at, day)
    if outcome == "late":
        return Tick("late", units, due.day, due.last_on_time)
    return Tick(outcome, units, day, at)


def _taken_back(dossier: Dossier, epoch: float) -> list[Tick]:
    """An overdue count to take back: the event that ends or pauses the dossier happened
    in time, and reached the worker after the sweep."""
    if dossier.status is Status.OVERDUE and dossier.due is not None and not dossier.due.late(epoch):
        return [_overdue_tick(dossier, -1)]
    return []


def _returned(dossier: Dossier, fact: Fact, epoch: float) -> tuple[Dossier, list[Tick]]:
    if dossier.status is Status.OPEN:
        return dossier.moved(Status.PAUSED, dossier.due or fact.due), []
    back = _taken_back(dossier, epoch)
    if back:
        return dossier.moved(Status.PAUSED), back
    return dossier, []


def _withdrawn(dossier: Dossier, epoch: float) -> tuple[Dossier, list[Tick]]:
    if dossier.status in (Status.OPEN, Status.PAUSED):
        return dossier.moved(Status.WITHDRAWN), []
    back = _taken_back(dossier, epoch)
    if back:
        return dossier.moved(Status.WITHDRAWN), back
    return dossier, []  # counted already (late, or resolved): it stays counted


def _resolved(
    dossier: Dossier, fact: Fact, epoch: float, units: tuple[str, ...]
) -> tuple[Dossier, list[Tick]]:
    due = dossier.due or fact.due
    if dossier.status in (Status.DONE, Status.WITHDRAWN, Status.RESOLVED):
        return dossier, []
    if due is None and dossier.status in (Status.OPEN, Status.PAUSED):
        # No appointment known yet (its receipt not read: a publisher's order, a
        # backfill's; or read without one): a later receipt or resubmission may bring
        # the appointment it is judged by, at this instant.
        return Dossier(dossier.dossier_id, Status.RESOLVED, None, units, epoch), []
    back = _taken_back(dossier, epoch)
    if dossier.status is Status.OVERDUE and not back:
        # Counted once already, in the appointment's period: it stays there, no longer
        # open but late (the on-time rate is unchanged: both are below the line).
        moved = [_overdue_tick(dossier, -1), _overdue_tick(dossier, 1)._replace(outcome="late")]
        return dossier.moved(Status.DONE), moved
    done = dossier.moved(Status.DONE, due)
    if due is None:  # no appointment known: nothing to judge it by
        return done, back
    return done, [*back, _judged(due, epoch, units)]


def apply(
    known: dict[str, Dossier], events: Iterable[tuple[Fact, float, tuple[str, ...]]]
) -> tuple[dict[str, Dossier], list[Tick]]:
    """Apply events (fact, epoch seconds, unit chain) in order to the dossiers ``known``
    (updated in place): the dossiers they changed, and what to count."""
    changed: dict[str, Dossier] = {}
    ticks: list[Tick] = []
    for fact, epoch, units in events:
        before = known.get(fact.dossier_id)
        after, new = step(before, fact, epoch, units)
        ticks += new
        if after is not None and after != before:
            known[after.dossier_id] = changed[after.dossier_id] = after
    return changed, ticks


def overdue(dossier: Dossier, now: float) -> bool:
    """Whether the sweep at ``now`` counts ``dossier`` open overdue."""
    return dossier.status is Status.OPEN and dossier.due is not None and dossier.due.late(now)


def sweep(dossiers: Iterable[Dossier], now: float) -> tuple[list[Dossier], list[Tick]]:
    """The open dossiers whose appointment has passed at ``now``: marked overdue, counted
    in the period of their appointment."""
    marked, ticks = [], []
    for dossier in dossiers:
        if overdue(dossier, now):
            marked.append(dossier.moved(Status.OVERDUE))
            ticks.append(_overdue_tick(dossier, 1))
    return marked, ticks


def _overdue_tick(dossier: Dossier, delta: int) -> Tick:
    assert dossier.due is not None  # noqa: S101 -- only dossiers with an appointment get here
    return Tick("open_overdue", dossier.units, dossier.due.day, dossier.due.last_on_time, delta)


def deltas_of(ticks: Iterable[Tick]) -> Deltas:
    """The figures the ticks change: the on-time KPI (early and on time above the line,
    all four below) and each outcome's own series, for every unit of the chain."""
    # Ticks of one outcome, chain, day and bucket add up first (a step resolves many
    # dossiers of a unit): the rows are touched once per such group, not per tick.
    grouped: dict[tuple[str, tuple[str, ...], date, int], int] = {}
    for tick in ticks:
        key = (tick.outcome, tick.units, tick.day, bucket_of(tick.epoch))
        grouped[key] = grouped.get(key, 0) + tick.delta
    deltas = Deltas()
    for (outcome, units, day, bucket), n in grouped.items():
        rows = (
            (KPI, n if outcome in ("early", "on_time") else 0, n),
            (OUTCOME_SERIES[outcome], 0, n),
        )
        for unit in units:
            for kpi, num, den in rows:
                add_row(deltas.daily, (unit, kpi, day), num, den)
                add_row(deltas.buckets, (unit, kpi, bucket), num, den)
    return deltas
