"""On-time resolution the way Vietnamese one-stop statistics count it: one dossier, one count. Pure.

A dossier's clock starts with its appointment (``due_at`` of ``dossier.received``, or of
``dossier.resolved`` when the receipt did not say), pauses while it is returned for
completion, and resumes with ``dossier.resubmitted``'s new appointment. It ends once:

- resolved (approved or rejected) **early** (before the local appointment date) or **on
  time** (on it, and not after an appointment time), counted in the period of the
  resolution; **late**, counted in the period of the appointment;
- still open when its appointment passes: **open overdue** ("trễ hạn đang xử lý"),
  counted in the period of the appointment; its later resolution does not count it
  again but moves that one count from open overdue to late, in the same period (the
  statistics' "open overdue" is what is still open; the rate does not change);
- **withdrawn**: out of the rate, never counted (unless it had run over already).

A dossier is judged from all its events taken in their own order, whatever order they
are read in: each event is added to the dossier's history (kept with its row) and the
dossier judged again, and what changed is counted as a count taken back (-1 where it was
added) and a new one. So a return, resubmission or resolution that happened before the
appointment but reached the worker after the sweep counted the dossier open overdue
(a commune uploading its day in the evening) counts as it happened. The on-time rate is
(early + on time) / (early + on time + late + open overdue).

Times are inputs (epoch seconds): the ledger never reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from typing import Final, NamedTuple

from services.common.dossierfacts import DOSSIER_TYPES as DOSSIER_TYPES
from services.common.dossierfacts import FINAL_OUTCOMES as FINAL_OUTCOMES
from services.common.dossierfacts import PAID as PAID
from services.common.dossierfacts import PUBLISHER_MARK, bare_id
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

_ONE_US: Final = 1e-6

SWEEP_EVERY_S: Final = 30.0
"""How often a worker looks for open dossiers whose appointment has passed (wall clock,
like the windows' roll-over): an overdue dossier is counted within this long."""


def outcome_of_series(kpi: str) -> str | None:
    """The outcome a stored series counts (``dossier_on_time:late`` -> ``late``), else None."""
    return _SERIES_OUTCOME.get(kpi)


class Status(StrEnum):
    """Where a dossier stands after its events, taken in their own order (stored; the
    sweep selects ``open`` dossiers whose appointment has passed)."""

    OPEN = "open"
    PAUSED = "paused"
    OVERDUE = "overdue"
    """Counted open overdue: its clock ran past the appointment and nothing ended it."""
    DONE = "done"
    WITHDRAWN = "withdrawn"
    RESOLVED = "resolved"
    """Resolved (final) with no appointment known: judged when a receipt or resubmission
    brings one, at the resolution's instant (``resolved_at``)."""


class Entry(NamedTuple):
    """One event of a dossier as its history keeps it: its own time, its kind
    (``Fact.kind``) and the appointment it carries."""

    epoch: float
    kind: str
    due: Due | None = None


class Verdict(NamedTuple):
    """What a dossier is counted as: one outcome, in one period (its Vietnam day, and the
    instant whose 5-minute bucket holds it)."""

    outcome: str
    day: date
    epoch: float


_ENDS: Final = frozenset({"final", "rejected", "withdrawn"})
_CYCLES: Final = frozenset({"returned", "resubmitted"})
_RANK: Final = {"returned": 0, "resubmitted": 1, "final": 2, "rejected": 2, "withdrawn": 2}
"""Events of one instant in the order of a dossier's life (one-stop systems stamp to the
minute or the second: a resubmission and the approval given on the spot share a time)."""
HISTORY_LIMIT: Final = 64
"""Returns and resubmissions kept per dossier (a few in practice). One past it is not
applied (:func:`over_limit`) and the store logs it with its dossier; a receipt and an
ending always are, so a dossier in a publisher's loop still ends and is counted."""


class Dossier(NamedTuple):
    """Where one dossier stands, as stored between events (services/metrics/dossierstore.py).

    Immutable; a named tuple, not a frozen dataclass: one is made per dossier event of a
    flush, and a frozen dataclass's ``__init__`` costs ~0.6 µs against ~0.25."""

    dossier_id: str
    status: Status
    due: Due | None
    """The appointment in force (what the sweep compares with its clock)."""
    units: tuple[str, ...]
    """The unit chain of its receipt (its latest event's when it was not received): its
    count goes to these units."""
    resolved_at: float | None = None
    """When it was resolved, while ``RESOLVED`` (waiting for an appointment)."""
    history: tuple[Entry, ...] | None = None
    """Its events in the order they were read. None for a row written before histories
    were kept (migration 0016), read as :func:`_assumed` says."""
    counted: Verdict | None = None
    """What it is counted as (None: nothing)."""


class Tick(NamedTuple):
    """One count (or, ``delta`` -1, one count taken back) of one outcome (a named tuple,
    like ``Dossier``: up to two per dossier event)."""

    outcome: str
    units: tuple[str, ...]
    day: date
    epoch: float
    delta: int = 1


def step(
    dossier: Dossier | None,
    fact: Fact,
    epoch: float,
    units: tuple[str, ...],
    now: float | None = None,
) -> tuple[Dossier | None, list[Tick]]:
    """Apply one event (``fact`` at ``epoch``, for the unit chain ``units``).

    The dossier is judged again from all its events taken in their own order, whatever
    the order they were read in (a return pushed live, the receipt and the resubmission
    in the commune's evening upload): the ticks take back what it was counted as and
    count what it is now, when the two differ. ``now`` is the clock an open dossier is
    judged overdue by; by default the event's own time, so that on the wall clock only
    the sweep counts a dossier open overdue."""
    if dossier is None:
        # A dossier's first event (most of a flush's): nothing to sort, nothing counted.
        first: tuple[Entry, ...] = (Entry(epoch, fact.kind, fact.due),)
        new = Dossier(fact.dossier_id, Status.OPEN, None, units, history=())
        return judged(new, first, units, epoch if now is None else now)
    history = dossier.history
    if history is None:
        if dossier.status in (Status.DONE, Status.WITHDRAWN):
            return dossier, []  # ended before histories were kept: its count stands
        history = _assumed(dossier)
    elif fact.kind in _CYCLES and _cycles(history) >= HISTORY_LIMIT:
        return dossier, []
    kind = fact.kind
    kinds = [e.kind for e in history]
    received = "received" in kinds
    if (kind == "received" and received) or (kind in _ENDS and not _ENDS.isdisjoint(kinds)):
        # One receipt and one ending per dossier (their dedup identity is the dossier's):
        # the first read stands.
        return dossier, []
    chain = dossier.units if received else units
    history = (*history, Entry(epoch, kind, fact.due))
    return judged(dossier, history, chain, epoch if now is None else now)


def over_limit(dossier: Dossier | None, fact: Fact) -> bool:
    """Whether :func:`step` leaves ``fact`` out: a return or resubmission of a dossier
    that keeps :data:`HISTORY_LIMIT` of them already."""
    if dossier is None or fact.kind not in _CYCLES:
        return False
    history = dossier.history
    if history is None:
        if dossier.status in (Status.DONE, Status.WITHDRAWN):
            return False  # ended before histories were kept: ignored, not refused
        history = _assumed(dossier)
    return _cycles(history) >= HISTORY_LIMIT


def _cycles(history: tuple[Entry, ...]) -> int:
    return sum(1 for e in history if e.kind in _CYCLES)


def _assumed(dossier: Dossier) -> tuple[Entry, ...]:
    """The events that a row written before histories were kept (migration 0016) stands
    for: its appointment as its receipt's, its pause or its waiting resolution as an
    event. The pause's instant was not kept: it sorts before every event read since, and
    a rejection during it is judged at its own instant, as it was then."""
    # No appointment, no receipt: the one the dossier waits for is still to be read.
    receipt = () if dossier.due is None else (Entry(-math.inf, "received", dossier.due),)
    if dossier.status is Status.PAUSED:
        return *receipt, Entry(-math.inf, "returned")
    if dossier.status is Status.RESOLVED and dossier.resolved_at is not None:
        return *receipt, Entry(dossier.resolved_at, "final")
    return receipt


def judged(
    dossier: Dossier, history: tuple[Entry, ...], units: tuple[str, ...], now: float
) -> tuple[Dossier, list[Tick]]:
    """``dossier`` with ``history`` and ``units``, judged at ``now``; the ticks that move
    its count from what it was to what it is."""
    before = dossier.counted
    if dossier.history is None and dossier.status is Status.OVERDUE and dossier.due is not None:
        before = _overdue(dossier.due)  # a row from before histories: the sweep counted it
    if before is not None and before.outcome == "open_overdue":
        # The sweep that counted it had seen the clock pass that appointment.
        now = max(now, before.epoch + _ONE_US)
    status, due, verdict, resolved_at = _walk(history, now)
    after = Dossier(dossier.dossier_id, status, due, units, resolved_at, history, verdict)
    if before is None and verdict is None:
        return after, []
    if before == verdict and units == dossier.units:
        return after, []
    ticks = []
    if before is not None:
        ticks.append(Tick(before.outcome, dossier.units, before.day, before.epoch, -1))
    if verdict is not None:
        ticks.append(Tick(verdict.outcome, units, verdict.day, verdict.epoch))
    return after, ticks


def _walk(
    history: tuple[Entry, ...], now: float
) -> tuple[Status, Due | None, Verdict | None, float | None]:
    """A dossier's status, appointment in force, verdict and (while ``RESOLVED``) instant
    of resolution, from its events taken in their own order.

    The receipt starts the dossier whatever its time says (its appointment is the first
    in force; a receipt stamped after the resolution is a publisher's clock, not a
    receipt after the fact). The others go by their times, those of one instant in the
    order of a dossier's life (a return, a resubmission, an ending): a return pauses a
    running clock, a resubmission resumes it with its appointment, the first final
    outcome or withdrawal ends the dossier, and anything after the end changes nothing.
    The clock running past the appointment in force makes it overdue for good (a later
    pause or appointment does not undo lateness that happened)."""
    if len(history) == 1 and history[0].kind == "received":  # a receipt alone: most rows
        due = history[0].due
        if due is not None and due.late(now):
            return Status.OVERDUE, due, _overdue(due), None
        return Status.OPEN, due, None, None
    due = None
    for entry in history:
        if entry.kind == "received":
            due = entry.due
            break
    running = True
    paused_at: float | None = None
    overdue: Due | None = None
    end: Entry | None = None
    rest = [e for e in history if e.kind != "received"]
    if len(rest) > 1:
        rest.sort(key=_by_time)
    for entry in rest:
        if running and overdue is None and due is not None and due.late(entry.epoch):
            overdue = due
        kind = entry.kind
        if kind == "returned":
            if running:
                running, paused_at = False, entry.epoch
            due = due or entry.due
        elif kind == "resubmitted":
            running, paused_at = True, None
            due = entry.due or due
        else:
            end = entry
            due = due or entry.due
            break
    if end is None:
        if running and overdue is None and due is not None and due.late(now):
            overdue = due
        if overdue is not None:
            return Status.OVERDUE, due, _overdue(overdue), None
        return (Status.OPEN if running else Status.PAUSED), due, None, None
    if end.kind == "withdrawn":
        # Out of the rate, unless it had run over: then it stays counted open overdue.
        return Status.WITHDRAWN, due, (None if overdue is None else _overdue(overdue)), None
    if overdue is not None:
        return Status.DONE, due, _late(overdue), None
    if due is None:  # no appointment known yet: judged when one comes
        return Status.RESOLVED, None, None, end.epoch
    judged_at = end.epoch
    if end.kind == "rejected" and paused_at is not None and paused_at > -math.inf:
        # Refused while back with the applicant (never completed): its clock stopped at
        # the return, so it is judged there (review 21), counted when it was resolved.
        judged_at = paused_at
    day = local_day_of_epoch(end.epoch)
    outcome = due.judge(judged_at, day if judged_at == end.epoch else None)
    if outcome == "late":
        return Status.DONE, due, _late(due), None
    return Status.DONE, due, Verdict(outcome, day, end.epoch), None


def _by_time(entry: Entry) -> tuple[float, int, float]:
    """Own time first, then the place of its kind in a dossier's life (a return before
    a resubmission before an ending), then the later appointment last (two resubmissions
    of one instant: the later one stands, in whatever order they are read)."""
    due = entry.due
    return entry.epoch, _RANK[entry.kind], -math.inf if due is None else due.last_on_time


def _overdue(due: Due) -> Verdict:
    """Open overdue, in the period of its appointment."""
    return Verdict("open_overdue", due.day, due.last_on_time)


def _late(due: Due) -> Verdict:
    """Late, in the period of its appointment, where a sweep counts it open overdue
    first, so a late dossier lands in one period whether a sweep saw it or the worker
    read it only after its resolution (a commune's upload after an outage): event time,
    not arrival time."""
    return Verdict("late", due.day, due.last_on_time)


def apply(
    known: dict[str, Dossier],
    events: Iterable[tuple[Fact, float, tuple[str, ...]]],
    now: float | None = None,
    refused: list[Fact] | None = None,
    retired: list[str] | None = None,
) -> tuple[dict[str, Dossier], list[Tick]]:
    """Apply events (fact, epoch seconds, unit chain) in order to the dossiers ``known``
    (by ledger key, every publisher's of each dossier; updated in place): the dossiers
    they changed, and what to count. The facts left out past :data:`HISTORY_LIMIT` are
    appended to ``refused``, for the caller to log; the unbound dossiers a publisher's
    event took over (``_Owners.continued``) to ``retired``, for the caller to delete."""
    changed: dict[str, Dossier] = {}
    ticks: list[Tick] = []
    owners = _Owners(known)
    for fact, epoch, units in events:
        key = fact.dossier_id
        before = known.get(key)
        taken = owners.continued(key, units) if before is None else None
        if taken is not None:
            before = known[taken]
        if refused is not None and fact.kind in _CYCLES and over_limit(before, fact):
            refused.append(fact)
            continue
        moved = taken is not None and taken != key and PUBLISHER_MARK in key
        if moved:
            # A publisher's event takes its unbound row over: its key's from now on.
            assert taken is not None and before is not None  # noqa: S101 -- for mypy
            del known[taken]
            changed.pop(taken, None)
            owners.unbound.discard(taken)
            if retired is not None:
                retired.append(taken)
            before = before._replace(dossier_id=key)
        after, new = step(before, fact, epoch, units, now)
        ticks += new
        if after is not None and (moved or after != before):
            if after.dossier_id not in known:
                owners.added(after.dossier_id)
            known[after.dossier_id] = changed[after.dossier_id] = after
    return changed, ticks


class _Owners:
    """Which rows of each dossier ``apply`` holds, for :meth:`continued`.

    Unbound events (straight to Kafka, ``backfill --unbound``, and ingest's events dated
    before the publishers' cut-over, docs/ingest.md) key a dossier by its bare id, and
    every row stored before publishers were bound has one. Kept cheap for the flushes of
    bound records only (most): the unbound keys are a set, the publishers' keys of each
    dossier are indexed only once an unbound event needs them."""

    def __init__(self, known: dict[str, Dossier]) -> None:
        self.known = known
        self.unbound = {key for key in known if PUBLISHER_MARK not in key}
        self._bound: dict[str, list[str]] | None = None

    def added(self, key: str) -> None:
        if PUBLISHER_MARK not in key:
            self.unbound.add(key)
        elif self._bound is not None:
            self._bound.setdefault(bare_id(key), []).append(key)

    def continued(self, key: str, units: tuple[str, ...]) -> str | None:
        """The key of the dossier an event of ``key`` (no row of its own) continues, if any.

        A publisher's event continues its dossier's unbound row, and an unbound event a
        publisher's row, when that dossier is at the event's own unit (a key publishes
        only for the units of its scope, so another publisher's dossier elsewhere stays
        out of its reach) and only one such row is there. Two publishers never share a
        dossier: that is the attack of review 43."""
        unit = units[:1]
        if PUBLISHER_MARK in key:
            if not self.unbound:
                return None
            bare = bare_id(key)
            if bare not in self.unbound:
                return None
            return bare if self.known[bare].units[:1] == unit else None
        if self._bound is None:
            self._bound = {}
            for k in self.known:
                if PUBLISHER_MARK in k:
                    self._bound.setdefault(bare_id(k), []).append(k)
        found = [
            k
            for k in self._bound.get(key, ())
            if k in self.known and self.known[k].units[:1] == unit
        ]
        return found[0] if len(found) == 1 else None


def overdue(dossier: Dossier, now: float) -> bool:
    """Whether the sweep at ``now`` counts ``dossier`` open overdue."""
    return dossier.status is Status.OPEN and dossier.due is not None and dossier.due.late(now)


def sweep(dossiers: Iterable[Dossier], now: float) -> tuple[list[Dossier], list[Tick]]:
    """The open dossiers whose appointment has passed at ``now``: judged again at ``now``
    (open overdue, in the period of their appointment)."""
    marked, ticks = [], []
    for dossier in dossiers:
        if overdue(dossier, now):
            history = dossier.history if dossier.history is not None else _assumed(dossier)
            after, new = judged(dossier, history, dossier.units, now)
            marked.append(after)
            ticks += new
    return marked, ticks


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
