"""Makes CloudEvents from a plan, a seeded ``random.Random`` and an explicit clock. Pure.

The same plan, seed and sequence of ``now`` values always give the same events. Most
events happen in the moments before ``now``; a few are late uploads (up to
:data:`MAX_LATENESS` in the past) and a few are re-sends of earlier events, unchanged
(same source and id), as an integrating system's retry would produce.

Traffic follows the office calendar (services/simulator/daily.py): meetings are held in
office hours, and in the evening of a working day most events are communes uploading
that day's work, timed when it happened (counted in ``late_total``).

Dossiers have a life (docs/dossiers.md): a receipt carries its appointment (``due_at``,
a date alone or a time); most are resolved before it, a few after it, and a few never
while the simulation runs, so that they show as open overdue once their appointment
(minutes after the receipt) passes; some are returned for completion and resubmitted
with a new appointment, and some are withdrawn. No event of a dossier is timed before
its receipt (or its return, for a resubmission), a dossier is paid at most once, and
resolutions and withdrawals keep up with receipts and resubmissions, so each unit's
on-time rate stays near its profile however long the simulation runs. Most receipts
say whether the dossier was digitised and used population data, and most approvals
whether the result was electronic (:data:`FLAGS_RECORDED`: the rest come from systems
that do not record them); citizens rate some resolved dossiers.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from services.common.calendar import WorkingCalendar
from services.common.units import VN_TZ
from services.simulator.daily import EVENING_UPLOADS, evening_upload_time, in_evening_uploads
from services.simulator.profiles import SimulationPlan, UnitProfile

Event = dict[str, Any]

DOCUMENT_ISSUED: Final = "vn.egov.document.issued"
DOSSIER_RECEIVED: Final = "vn.egov.dossier.received"
DOSSIER_PAID: Final = "vn.egov.dossier.paid"
DOSSIER_RESOLVED: Final = "vn.egov.dossier.resolved"
DOSSIER_RESUBMITTED: Final = "vn.egov.dossier.resubmitted"
MEETING_HELD: Final = "vn.egov.meeting.held"
RATING_SUBMITTED: Final = "vn.egov.rating.submitted"
EVENT_TYPES: Final = (
    DOCUMENT_ISSUED,
    DOSSIER_RECEIVED,
    DOSSIER_PAID,
    DOSSIER_RESOLVED,
    DOSSIER_RESUBMITTED,
    MEETING_HELD,
    RATING_SUBMITTED,
)

# Share of each type in the traffic: documents dominate, meetings are rare. Dossiers
# leave as fast as they come: resolutions other than "returned" (94 %, OUTCOME_WEIGHTS)
# outnumber receipts a little, and resubmissions match the returns (6 % of resolutions),
# so open dossiers do not pile up and the on-time rate holds day after day.
TYPE_WEIGHTS: Final[Mapping[str, float]] = {
    DOCUMENT_ISSUED: 0.55,
    DOSSIER_RECEIVED: 0.15,
    DOSSIER_PAID: 0.06,  # about two dossiers in five carry a fee
    DOSSIER_RESOLVED: 0.165,
    DOSSIER_RESUBMITTED: 0.01,  # a receipt instead when no dossier of the unit is returned
    MEETING_HELD: 0.02,
    RATING_SUBMITTED: 0.045,  # about a third of the resolved dossiers get rated
}

# The integrating system behind each type, one instance per province.
SOURCE_SYSTEM: Final[Mapping[str, str]] = {
    DOCUMENT_ISSUED: "tdoffice",
    DOSSIER_RECEIVED: "dvc",
    DOSSIER_PAID: "dvc",
    DOSSIER_RESOLVED: "dvc",
    DOSSIER_RESUBMITTED: "dvc",
    MEETING_HELD: "hntt",
    RATING_SUBMITTED: "dvc",
}

MIN_LATENESS: Final = timedelta(hours=1)
MAX_LATENESS: Final = timedelta(days=3)  # well inside the 7-day grace of the metrics
DUPLICATE_POOL: Final = 5000  # how far back a re-send may reach, in events

# National procedure codes (Cơ sở dữ liệu quốc gia về thủ tục hành chính) of commune-level
# procedures that are commonly offered online: birth, marriage, residence, certification.
PROCEDURE_CODES: Final = (
    "1.001193",
    "1.000894",
    "1.004227",
    "2.000908",
    "2.000815",
    "1.001022",
    "1.003583",
    "2.001023",
)
OUTCOMES: Final = ("approved", "rejected", "withdrawn", "returned")
OUTCOME_WEIGHTS: Final = (0.88, 0.04, 0.02, 0.06)
SHORT_APPOINTMENT_S: Final = (120.0, 900.0)
"""A dossier that will run late gets an appointment this many seconds after its receipt:
within a `make up` session it passes, and what is still open shows as open overdue."""
POOL: Final = 64
"""Open (or returned) dossiers a unit keeps at most: with this many, its next receipt is
a resolution (resubmission) instead, so none is forgotten while still open."""
FLAGS_RECORDED: Final = 0.9
"""Share of receipts and approvals that carry the optional flags (digitised,
population_data, electronic_result): the rest leave those rates, as an older one-stop
system's would (schemas/CONTRACT.md)."""


@dataclass(slots=True)
class _Dossier:
    dossier_id: str
    due: datetime
    due_at: str
    """As sent: a local date (``2026-12-07``) or a time with its offset."""
    since: datetime
    """Its receipt, return or resubmission: its next event may not be timed before it."""
    paid: bool = False


FEES_VND: Final = (5_000, 10_000, 15_000, 20_000, 30_000, 50_000, 100_000, 200_000)


def rfc3339(at: datetime, timespec: str = "milliseconds") -> str:
    """``at`` in Vietnam time with its +07:00 offset, as every publisher sends it."""
    return at.astimezone(VN_TZ).isoformat(timespec=timespec)


class EventGenerator:
    """Draws events unit by unit, type by type, from a :class:`SimulationPlan`.

    ``dataschemas`` maps each event type to its ``dataschema`` URI (from the contract).
    Counters ``events_total``, ``late_total`` and ``duplicates_total`` say what was made.
    """

    def __init__(
        self,
        plan: SimulationPlan,
        rng: random.Random,
        dataschemas: Mapping[str, str],
        *,
        late_fraction: float = 0.02,
        duplicate_fraction: float = 0.01,
        calendar: WorkingCalendar | None = WorkingCalendar(),  # noqa: B008 - frozen
    ) -> None:
        """``calendar`` (weekends; holidays when loaded from data/holidays-vn.json) keeps
        meetings in office hours and makes the evening uploads; None makes traffic
        indifferent to the time of day."""
        if not plan.profiles:
            raise ValueError("the plan has no publishing unit")
        self._plan = plan
        self._rng = rng
        self._dataschemas = dict(dataschemas)
        self._late_fraction = late_fraction
        self._duplicate_fraction = duplicate_fraction
        self._calendar = calendar
        self._units = list(plan.profiles)
        self._unit_weights = [p.weight for p in self._units]
        self._communes = [p for p in self._units if p.level == "commune"] or self._units
        self._commune_weights = [p.weight for p in self._communes]
        self._types = list(TYPE_WEIGHTS)
        self._type_weights = list(TYPE_WEIGHTS.values())
        self._sent: deque[Event] = deque(maxlen=DUPLICATE_POOL)
        # Per unit: open dossiers (each resolved before or after its appointment), and
        # those returned for completion (waiting to be resubmitted); at most about POOL.
        self._open: dict[str, list[_Dossier]] = {}
        self._returned: dict[str, list[_Dossier]] = {}
        # Dossiers a citizen may rate, with the time they were resolved.
        self._resolved: dict[str, deque[tuple[str, datetime]]] = {}
        self._builders: Mapping[str, Callable[[UnitProfile, datetime], dict[str, Any]]] = {
            DOCUMENT_ISSUED: self._document_issued,
            DOSSIER_RECEIVED: self._dossier_received,
            DOSSIER_PAID: self._dossier_paid,
            DOSSIER_RESOLVED: self._dossier_resolved,
            DOSSIER_RESUBMITTED: self._dossier_resubmitted,
            MEETING_HELD: self._meeting_held,
            RATING_SUBMITTED: self._rating_submitted,
        }
        self.events_total = 0
        self.late_total = 0
        self.duplicates_total = 0

    def generate(
        self, now: datetime, count: int, window: timedelta = timedelta(seconds=1)
    ) -> list[Event]:
        """``count`` events, most timed within ``window`` before ``now`` (tz-aware)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        fresh: list[Event] = []
        batch = [self._next(now, window, fresh) for _ in range(count)]
        # Only events of earlier batches are re-sent: a retry comes later than the original.
        self._sent.extend(fresh)
        return batch

    def _next(self, now: datetime, window: timedelta, fresh: list[Event]) -> Event:
        self.events_total += 1
        if self._sent and self._rng.random() < self._duplicate_fraction:
            self.duplicates_total += 1
            return self._rng.choice(self._sent)
        event = self._fresh(now, window)
        fresh.append(event)
        return event

    def _fresh(self, now: datetime, window: timedelta) -> Event:
        rng = self._rng
        calendar = self._calendar
        if (
            calendar is not None
            and in_evening_uploads(now, calendar)
            and rng.random() < EVENING_UPLOADS
        ):
            # A commune uploading what it did in office hours today.
            self.late_total += 1
            at = min(evening_upload_time(now, rng.random()), now)
            unit = rng.choices(self._communes, weights=self._commune_weights)[0]
        else:
            if rng.random() < self._late_fraction:
                self.late_total += 1
                lateness = rng.uniform(MIN_LATENESS.total_seconds(), MAX_LATENESS.total_seconds())
            else:
                lateness = rng.uniform(0.0, window.total_seconds())
            at = now - timedelta(seconds=lateness)
            unit = rng.choices(self._units, weights=self._unit_weights)[0]
        event_type = self._event_type(unit, at)
        return {
            "specversion": "1.0",
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "source": f"urn:egov:{SOURCE_SYSTEM[event_type]}:{unit.province}",
            "type": event_type,
            "time": rfc3339(at),
            "unit": unit.code,
            "dataschema": self._dataschemas[event_type],
            "datacontenttype": "application/json",
            "data": self._builders[event_type](unit, at),
        }

    def _event_type(self, unit: UnitProfile, at: datetime) -> str:
        """A type drawn by TYPE_WEIGHTS, made possible at ``at`` for ``unit``."""
        event_type = self._rng.choices(self._types, weights=self._type_weights)[0]
        if event_type == MEETING_HELD:
            # Meetings are held in office hours: outside them the office sends documents.
            calendar = self._calendar
            return DOCUMENT_ISSUED if calendar and not calendar.is_working(at) else event_type
        if event_type not in (DOSSIER_RECEIVED, DOSSIER_RESUBMITTED):
            return event_type
        returned = len(self._ready(self._returned, unit, at))
        if event_type == DOSSIER_RESUBMITTED or returned >= POOL:
            # A full returned pool is worked off rather than forgotten.
            event_type = DOSSIER_RESUBMITTED if returned else DOSSIER_RECEIVED
        if len(self._open.get(unit.code, ())) >= POOL:
            # A unit with POOL open dossiers resolves one before taking more.
            return DOSSIER_RESOLVED
        return event_type

    @staticmethod
    def _ready(pools: dict[str, list[_Dossier]], unit: UnitProfile, at: datetime) -> list[int]:
        """Indexes of the unit's dossiers whose last event is not after ``at``."""
        return [i for i, d in enumerate(pools.get(unit.code, ())) if d.since <= at]

    def _reference(self, prefix: str, unit: UnitProfile, at: datetime) -> str:
        """A receipt-style reference: type, unit, local date, random suffix."""
        day = at.astimezone(VN_TZ).strftime("%y%m%d")
        return f"{prefix}-{unit.code}-{day}-{self._rng.getrandbits(40):010x}"

    def _document_issued(self, unit: UnitProfile, at: datetime) -> dict[str, Any]:
        rng, rates = self._rng, unit.rates
        classified = rng.random() < rates.document_classified
        # Secret documents travel on paper, outside the document-management system.
        electronic = not classified and rng.random() < rates.document_electronic
        signed = electronic and rng.random() < rates.document_signing
        data: dict[str, Any] = {
            "document_id": self._reference("VB", unit, at),
            "electronic": electronic,
            "signed": signed,
            "classified": classified,
        }
        if signed:
            data["signature"] = rng.choices(
                ("organization", "both", "personal"), weights=(0.5, 0.4, 0.1)
            )[0]
        return data

    def _dossier_received(self, unit: UnitProfile, at: datetime) -> dict[str, Any]:
        rng, rates = self._rng, unit.rates
        if rng.random() < rates.dossier_full_share:
            level, online = "full", rng.random() < rates.dossier_online
        elif rng.random() < 0.75:
            level, online = "partial", rng.random() < 0.4
        else:
            level, online = "offline", False
        channel = "online" if online else rng.choices(("counter", "postal"), (0.9, 0.1))[0]
        dossier = self._appointment(self._reference("HS", unit, at), unit, at)
        data: dict[str, Any] = {
            "dossier_id": dossier.dossier_id,
            "procedure_code": rng.choice(PROCEDURE_CODES),
            "service_level": level,
            "channel": channel,
            "due_at": dossier.due_at,
        }
        if rng.random() < FLAGS_RECORDED:
            data["digitised"] = rng.random() < rates.dossier_digitised
            data["population_data"] = rng.random() < rates.dossier_population_data
        return data

    def _appointment(self, dossier_id: str, unit: UnitProfile, at: datetime) -> _Dossier:
        """An appointment for a dossier received (or resubmitted) at ``at``: days ahead
        (half of them a date alone) for most, minutes ahead for those that will run late;
        the dossier joins its unit's pool."""
        rng = self._rng
        if rng.random() < unit.rates.dossier_on_time:
            local = at.astimezone(VN_TZ) + timedelta(days=rng.randint(1, 5))
            if rng.random() < 0.5:
                end = local.replace(hour=23, minute=59, second=59, microsecond=0)
                dossier = _Dossier(dossier_id, end, local.date().isoformat(), at)
            else:
                due = local.replace(hour=17, minute=0, second=0, microsecond=0)
                dossier = _Dossier(dossier_id, due, rfc3339(due, "seconds"), at)
        else:
            due = (at + timedelta(seconds=rng.uniform(*SHORT_APPOINTMENT_S))).replace(microsecond=0)
            dossier = _Dossier(dossier_id, due, rfc3339(due, "seconds"), at)
        self._open.setdefault(unit.code, []).append(dossier)
        return dossier

    def _payable(self, unit: UnitProfile, at: datetime) -> str:
        """An open dossier of the unit received by ``at`` and not yet paid, marked paid;
        else a new reference (a dossier received before the simulation started)."""
        open_ = self._open.get(unit.code, [])
        fits = [d for d in open_ if d.since <= at and not d.paid]
        if not fits:
            return self._reference("HS", unit, at)
        dossier = fits[self._rng.randrange(len(fits))]
        dossier.paid = True  # fees are paid once per dossier (docs/dossiers.md)
        return dossier.dossier_id

    def _take(self, unit: UnitProfile, at: datetime, late: bool) -> _Dossier | None:
        """An open dossier of the unit, received by ``at``, whose appointment is ahead of
        ``at`` (or, ``late``, behind it), taken out of the pool; None when there is none."""
        pool = self._open.get(unit.code, [])
        fits = [i for i in self._ready(self._open, unit, at) if (pool[i].due < at) == late]
        if not fits:
            return None
        return pool.pop(fits[self._rng.randrange(len(fits))])

    def _dossier_paid(self, unit: UnitProfile, at: datetime) -> dict[str, Any]:
        online = self._rng.random() < unit.rates.dossier_online_payment
        return {
            "dossier_id": self._payable(unit, at),
            "amount_vnd": self._rng.choice(FEES_VND),
            "method": "online" if online else "counter",
        }

    def _dossier_resolved(self, unit: UnitProfile, at: datetime) -> dict[str, Any]:
        """A dossier of the unit's, resolved before its appointment with the unit's on-time
        rate, else after it; one the simulation does not know (received before it
        started) carries its own appointment."""
        rng = self._rng
        late = rng.random() >= unit.rates.dossier_on_time
        dossier = self._take(unit, at, late)
        if dossier is None:
            # At least a minute ahead: due_at is sent to the second, the time to the ms.
            if late:
                due = at - timedelta(seconds=rng.uniform(3_600, 10 * 86_400))
            else:
                due = at + timedelta(seconds=rng.uniform(60, 5 * 86_400))
            dossier = _Dossier(self._reference("HS", unit, at), due, rfc3339(due, "seconds"), at)
        outcome = rng.choices(OUTCOMES, OUTCOME_WEIGHTS)[0]
        if outcome == "returned":
            dossier.since = at
            self._returned.setdefault(unit.code, []).append(dossier)
        elif outcome != "withdrawn":
            # Only the latest resolved are kept for ratings: an unrated one is no loss.
            resolved = self._resolved.setdefault(unit.code, deque(maxlen=POOL))
            resolved.append((dossier.dossier_id, at))
        data: dict[str, Any] = {
            "dossier_id": dossier.dossier_id,
            "due_at": dossier.due_at,
            "outcome": outcome,
        }
        if outcome == "approved" and rng.random() < FLAGS_RECORDED:
            data["electronic_result"] = rng.random() < unit.rates.dossier_electronic_result
        return data

    def _dossier_resubmitted(self, unit: UnitProfile, at: datetime) -> dict[str, Any]:
        """A returned dossier back complete, with a new appointment (``_fresh`` sends a
        receipt instead when the unit has none returned)."""
        ready = self._ready(self._returned, unit, at)
        dossier = self._returned[unit.code].pop(ready[0])  # the longest waiting
        renewed = self._appointment(dossier.dossier_id, unit, at)
        renewed.paid = dossier.paid
        return {"dossier_id": dossier.dossier_id, "due_at": renewed.due_at}

    def _rating_submitted(self, unit: UnitProfile, at: datetime) -> dict[str, Any]:
        """A citizen's rating of a dossier the unit resolved (one resolved before the
        simulation started when it has none yet)."""
        resolved = self._resolved.get(unit.code, deque())
        ready = [i for i, (_, when) in enumerate(resolved) if when <= at]
        if ready:
            dossier_id = resolved[ready[0]][0]
            del resolved[ready[0]]
        else:
            dossier_id = self._reference("HS", unit, at)
        satisfied = self._rng.random() < unit.rates.dossier_satisfaction
        return {
            "subject": "dossier",
            "subject_id": dossier_id,
            "rating": "satisfied" if satisfied else "not_satisfied",
        }

    def _meeting_held(self, unit: UnitProfile, at: datetime) -> dict[str, Any]:
        rng, rates = self._rng, unit.rates
        if rng.random() < rates.meeting_online:
            mode = "online" if rng.random() < 0.7 else "hybrid"
            sites = rng.randint(2, 40) if mode == "online" else rng.randint(2, 12)
        else:
            mode, sites = "in_person", 1
        return {
            "meeting_id": self._reference("HN", unit, at),
            "mode": mode,
            "paperless": rng.random() < rates.meeting_paperless,
            "sites": sites,
            "duration_minutes": rng.choice((30, 45, 60, 90, 120, 180, 240)),
        }
