"""Makes CloudEvents from a plan, a seeded ``random.Random`` and an explicit clock. Pure.

The same plan, seed and sequence of ``now`` values always give the same events. Most
events happen in the moments before ``now``; a few are late uploads (up to
:data:`MAX_LATENESS` in the past) and a few are re-sends of earlier events, unchanged
(same source and id), as an integrating system's retry would produce.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from services.common.units import VN_TZ
from services.simulator.profiles import SimulationPlan, UnitProfile

Event = dict[str, Any]

DOCUMENT_ISSUED: Final = "vn.egov.document.issued"
DOSSIER_RECEIVED: Final = "vn.egov.dossier.received"
DOSSIER_PAID: Final = "vn.egov.dossier.paid"
DOSSIER_RESOLVED: Final = "vn.egov.dossier.resolved"
MEETING_HELD: Final = "vn.egov.meeting.held"
EVENT_TYPES: Final = (
    DOCUMENT_ISSUED,
    DOSSIER_RECEIVED,
    DOSSIER_PAID,
    DOSSIER_RESOLVED,
    MEETING_HELD,
)

# Share of each type in the traffic: documents dominate, meetings are rare.
TYPE_WEIGHTS: Final[Mapping[str, float]] = {
    DOCUMENT_ISSUED: 0.60,
    DOSSIER_RECEIVED: 0.18,
    DOSSIER_PAID: 0.07,
    DOSSIER_RESOLVED: 0.13,
    MEETING_HELD: 0.02,
}

# The integrating system behind each type, one instance per province.
SOURCE_SYSTEM: Final[Mapping[str, str]] = {
    DOCUMENT_ISSUED: "tdoffice",
    DOSSIER_RECEIVED: "dvc",
    DOSSIER_PAID: "dvc",
    DOSSIER_RESOLVED: "dvc",
    MEETING_HELD: "hntt",
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
    ) -> None:
        if not plan.profiles:
            raise ValueError("the plan has no publishing unit")
        self._plan = plan
        self._rng = rng
        self._dataschemas = dict(dataschemas)
        self._late_fraction = late_fraction
        self._duplicate_fraction = duplicate_fraction
        self._units = list(plan.profiles)
        self._unit_weights = [p.weight for p in self._units]
        self._types = list(TYPE_WEIGHTS)
        self._type_weights = list(TYPE_WEIGHTS.values())
        self._sent: deque[Event] = deque(maxlen=DUPLICATE_POOL)
        self._open_dossiers: dict[str, deque[str]] = {}
        self._builders: Mapping[str, Callable[[UnitProfile, datetime], dict[str, Any]]] = {
            DOCUMENT_ISSUED: self._document_issued,
            DOSSIER_RECEIVED: self._dossier_received,
            DOSSIER_PAID: self._dossier_paid,
            DOSSIER_RESOLVED: self._dossier_resolved,
            MEETING_HELD: self._meeting_held,
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
        if rng.random() < self._late_fraction:
            self.late_total += 1
            lateness = rng.uniform(MIN_LATENESS.total_seconds(), MAX_LATENESS.total_seconds())
        else:
            lateness = rng.uniform(0.0, window.total_seconds())
        at = now - timedelta(seconds=lateness)
        unit = rng.choices(self._units, weights=self._unit_weights)[0]
        event_type = rng.choices(self._types, weights=self._type_weights)[0]
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
        dossier_id = self._reference("HS", unit, at)
        self._open_dossiers.setdefault(unit.code, deque(maxlen=64)).append(dossier_id)
        return {
            "dossier_id": dossier_id,
            "procedure_code": rng.choice(PROCEDURE_CODES),
            "service_level": level,
            "channel": channel,
        }

    def _known_dossier(self, unit: UnitProfile, at: datetime, *, close: bool) -> str:
        """A dossier this unit received earlier, when there is one, else a new reference."""
        open_ = self._open_dossiers.get(unit.code)
        if not open_:
            return self._reference("HS", unit, at)
        index = self._rng.randrange(len(open_))
        dossier_id = open_[index]
        if close:
            del open_[index]
        return dossier_id

    def _dossier_paid(self, unit: UnitProfile, at: datetime) -> dict[str, Any]:
        online = self._rng.random() < unit.rates.dossier_online_payment
        return {
            "dossier_id": self._known_dossier(unit, at, close=False),
            "amount_vnd": self._rng.choice(FEES_VND),
            "method": "online" if online else "counter",
        }

    def _dossier_resolved(self, unit: UnitProfile, at: datetime) -> dict[str, Any]:
        rng = self._rng
        if rng.random() < unit.rates.dossier_on_time:
            # At least a minute ahead: due_at is sent to the second, the time to the ms.
            due_at = at + timedelta(seconds=rng.uniform(60, 5 * 86_400))
        else:
            due_at = at - timedelta(seconds=rng.uniform(3_600, 10 * 86_400))
        return {
            "dossier_id": self._known_dossier(unit, at, close=True),
            "due_at": rfc3339(due_at, "seconds"),
            "outcome": rng.choices(("approved", "rejected", "returned"), (0.9, 0.04, 0.06))[0],
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
