"""The events the dashboard test publishes through ingest, and what they must add up to.

Pure: the clock is an argument. Every figure a panel is checked against is computed here
from the events themselves (the KPI catalogue, the Vietnam calendar, the grace period),
never typed in by hand.
"""

from __future__ import annotations

import copy
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.common.contract import Contract
from services.common.events import CloudEvent, parse_time
from services.common.kpis import KpiCatalogue
from services.common.settings import CommonSettings
from services.metrics import dossiers

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
DOCUMENT = "vn.egov.document.issued"
OTHER_TYPES = (
    "vn.egov.dossier.received",
    "vn.egov.dossier.resolved",
    "vn.egov.dossier.paid",
    "vn.egov.meeting.held",
    "vn.egov.rating.submitted",
)

# Phường Bắc Kạn (01843) of Thái Nguyên (19) in today's two-level hierarchy; Phường Đức
# Xuân (01840), also of 19, sent one event 90 minutes ago and nothing since. Phường Sông
# Cầu (01837) was merged into 01843 on 2025-07-01 (data/units/crosswalk-2025.csv, one
# "merged" row): its systems still send the old code, which counts for 01843.
UNIT, PROVINCE, SILENT_UNIT, RETIRED_UNIT = "01843", "19", "01840", "01837"
UNKNOWN_UNIT = "99999"

# (electronic, signed, classified) of the known documents: 6 count for the signing rate
# (electronic, not classified), 4 of them signed; 9 count for the electronic rate.
DOCUMENTS = [
    (True, True, False),
    (True, True, False),
    (True, True, False),
    (True, True, False),
    (True, False, False),
    (True, False, False),
    (False, False, False),
    (False, False, False),
    (False, False, False),
    (True, True, True),
]
# Enough unsigned documents to take UNIT's signing rate above the KPI's min_volume (20)
# and below its target, so that the alerts service fires KpiBelowTarget.
UNSIGNED_FOR_ALERT = 20

# Dossiers of UNIT received and approved today, a day before their appointment (early):
# with the contract's two examples (moved to today, long past their appointments: late),
# UNIT's on-time rate is 8 of 10, dossier_on_time's min_volume, so that UNIT is ranked
# by it and by its 766 score; indicator 2.1 earns 20 × 8 / 10 = 16 points. Each is
# digitised, uses population data, gets an electronic result and a satisfied rating:
# with the contract's examples, 10 of each flag's dossiers (its KPI's min_volume), so
# that the indicators those measure (4.1, 4.2, 4.5b, 5.4) keep UNIT ranked too. SILENT_UNIT
# resolved one dossier early 90 minutes ago: 1 of 1, below min_volume, listed apart.
EARLY_DOSSIERS = 8

GRACE = timedelta(days=CommonSettings.model_fields["counting_grace_days"].default)
# Beyond the counting grace: ingest would refuse it (one horizon, issue 14), so it is
# published straight to Kafka, as an integrator's late backlog would be, and the worker
# dead-letters it (its record's Kafka timestamp is now).
TOO_LATE_AGE = GRACE + timedelta(days=1)

Event = dict[str, object]


def document(unit: str, flags: tuple[bool, bool, bool], when: datetime) -> Event:
    electronic, signed, classified = flags
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "https://vpdt.thainguyen.gov.vn/test-dashboards",
        "type": DOCUMENT,
        "time": when.isoformat(),
        "unit": unit,
        "datacontenttype": "application/json",
        "data": {
            "document_id": uuid.uuid4().hex[:12],
            "electronic": electronic,
            "signed": signed,
            "classified": classified,
        },
    }


def early_dossier(n: int, when: datetime, unit: str = UNIT) -> list[Event]:
    """A dossier of ``unit`` received 10 seconds before ``when`` and approved at ``when``,
    its appointment the next Vietnam day, digitised, with population data and an
    electronic result, rated satisfied at ``when``."""
    dossier_id = f"H19.{unit}-test-{n}-{uuid.uuid4().hex[:8]}"
    due = (when.astimezone(VIETNAM).date() + timedelta(days=1)).isoformat()
    base = {
        "specversion": "1.0",
        "source": "https://dichvucong.thainguyen.gov.vn/test-dashboards",
        "unit": unit,
        "datacontenttype": "application/json",
    }
    received = {
        **base,
        "id": f"rec-{dossier_id}",
        "type": "vn.egov.dossier.received",
        "time": (when - timedelta(seconds=10)).isoformat(),
        "data": {
            "dossier_id": dossier_id,
            "procedure_code": "1.001612",
            "service_level": "full",
            "channel": "online",
            "due_at": due,
            "digitised": True,
            "population_data": True,
        },
    }
    resolved = {
        **base,
        "id": f"res-{dossier_id}",
        "type": "vn.egov.dossier.resolved",
        "time": when.isoformat(),
        "data": {
            "dossier_id": dossier_id,
            "due_at": due,
            "outcome": "approved",
            "electronic_result": True,
        },
    }
    rated = {
        **base,
        "id": f"rat-{dossier_id}",
        "type": "vn.egov.rating.submitted",
        "time": when.isoformat(),
        "data": {"subject": "dossier", "subject_id": dossier_id, "rating": "satisfied"},
    }
    return [received, resolved, rated]


def contract_examples(when: datetime) -> list[Event]:
    """The contract's valid examples of the other families, moved to UNIT and ``when``;
    their appointments moved to earlier today. The two that carry one are resolved at
    ``when``, after it, so they are late, and a late dossier counts on its appointment's
    day: today, with the rest (2024's appointments would put them on 2024's days)."""
    contract = Contract.load()
    local = when.astimezone(VIETNAM)
    since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    due = (local - min(timedelta(seconds=60), since_midnight / 2)).isoformat()
    events = []
    for event_type in OTHER_TYPES:
        for _, example in contract.examples(event_type, "valid"):
            event = copy.deepcopy(example)
            event.update(id=str(uuid.uuid4()), unit=UNIT, time=when.isoformat())
            data = event.get("data")
            if isinstance(data, dict) and "due_at" in data:
                data["due_at"] = due
            events.append(event)
    return events


def figures(events: list[Event]) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) per KPI, as the worker counts ``events``: the catalogue's
    conditions, one count per dossier (services/metrics/dossiers.py's identity), and the
    on-time rate from the dossier ledger (its counts of the day these figures are read
    for: no dossier is open past its appointment, so resolutions only)."""
    catalogue = KpiCatalogue.load()
    out: dict[str, tuple[int, int]] = {}
    seen: set[tuple[str, str]] = set()
    ledger: dict[str, dossiers.Dossier | None] = {}

    def add(kpi: str, num: int, den: int) -> None:
        old = out.get(kpi, (0, 0))
        out[kpi] = (old[0] + num, old[1] + den)

    for raw in events:
        event = CloudEvent.from_dict(raw)
        identity = (event.source, dossiers.event_identity(event.type, event.id, event.data))
        if identity in seen:
            continue
        seen.add(identity)
        for kpi in catalogue.for_type(event.type):
            if kpi.id != dossiers.KPI:
                add(kpi.id, *kpi.count(event))
        fact = dossiers.fact_of(event.type, event.data)
        if fact is not None:
            held = ledger.get(fact.dossier_id)
            epoch = event.time.timestamp()
            ledger[fact.dossier_id], ticks = dossiers.step(held, fact, epoch, (event.unit,))
            for tick in ticks:
                on_time = tick.outcome in ("early", "on_time")
                add(dossiers.KPI, tick.delta if on_time else 0, tick.delta)
    return out


def local_day(event: Event) -> date:
    return parse_time(str(event["time"])).astimezone(VIETNAM).date()


@dataclass
class KnownEvents:
    """What goes through ingest, in three requests, and the duplicate sent as a retry."""

    now: datetime
    unit_today: list[Event] = field(default_factory=list)  # UNIT's own, dated today
    crosswalked: Event = field(default_factory=dict)  # RETIRED_UNIT, dated now
    silent: Event = field(default_factory=dict)  # SILENT_UNIT, 90 minutes ago
    silent_dossier: list[Event] = field(default_factory=list)  # SILENT_UNIT's, 90 min ago
    late: Event = field(default_factory=dict)  # UNIT, yesterday: within the grace
    too_late: Event = field(default_factory=dict)  # UNIT, beyond the grace: straight to Kafka
    refused: list[Event] = field(default_factory=list)  # one unknown unit, one future

    @classmethod
    def at(cls, now: datetime) -> KnownEvents:
        flags = [*DOCUMENTS, *[(True, False, False)] * UNSIGNED_FOR_ALERT]
        unit_today = [document(UNIT, f, now - timedelta(seconds=i)) for i, f in enumerate(flags)]
        unit_today += contract_examples(now)
        for n in range(EARLY_DOSSIERS):
            unit_today += early_dossier(n, now)
        return cls(
            now=now,
            unit_today=unit_today,
            crosswalked=document(RETIRED_UNIT, (True, True, False), now),
            silent=document(SILENT_UNIT, (True, True, False), now - timedelta(minutes=90)),
            silent_dossier=early_dossier(0, now - timedelta(minutes=90), SILENT_UNIT),
            late=document(UNIT, (True, True, False), now - timedelta(days=1)),
            too_late=document(UNIT, (True, True, False), now - TOO_LATE_AGE),
            refused=[
                document(UNKNOWN_UNIT, (True, True, False), now),
                document(UNIT, (True, True, False), now + timedelta(hours=1)),
            ],
        )

    @property
    def accepted_batch(self) -> list[Event]:
        return [*self.unit_today, self.crosswalked, self.silent, *self.silent_dossier, self.late]

    @property
    def duplicate(self) -> Event:
        """The publisher's retry of an event already accepted: same source and id."""
        return self.unit_today[0]

    @property
    def counted(self) -> list[Event]:
        """Events the worker counts: everything ingest accepted (not the too-late one)."""
        return self.accepted_batch

    def today(self, events: list[Event]) -> list[Event]:
        today = self.now.astimezone(VIETNAM).date()
        return [e for e in events if local_day(e) == today]

    def unit_day(self) -> dict[str, tuple[int, int]]:
        """UNIT's figures today: its own events and the retired code's, not 01840's."""
        return figures(self.today([*self.unit_today, self.crosswalked]))

    def province_day(self) -> dict[str, tuple[int, int]]:
        return figures(self.today(self.counted))

    def late_by_type(self) -> Counter[str]:
        """Counted after their Vietnam day ended (the silent one too, just after midnight)."""
        today = self.now.astimezone(VIETNAM).date()
        return Counter(str(e["type"]) for e in self.counted if local_day(e) < today)

    def processed_by_type(self) -> Counter[str]:
        return Counter(str(e["type"]) for e in self.counted)

    def accepted_by_type(self) -> Counter[str]:
        """Ingest's accepted events: the batch and the retry (ingest does not deduplicate)."""
        return Counter(str(e["type"]) for e in [*self.accepted_batch, self.duplicate])
