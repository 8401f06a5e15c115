"""The peer comparison's events: what each KPI reads, generated as integrators send them.

One CloudEvent per message, keyed by province, for today's communes of Thanh Hóa and
Thái Nguyên; ~5% exact re-sends and ~4% from yesterday in every stream. Each
:class:`PeerKpi` names its catalogue KPI, the topic family its events travel on (the
metrics service reads each family from its own topic) and how its events are made.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer

from bench.peers.kpi import DOSSIER_KPI_ID, KPI_ID
from services.common.units import VN_TZ, UnitRegistry, era_at

Event = dict[str, Any]
Build = Callable[[random.Random, str, datetime, int], Event]
PROVINCES: Final = {"38": "thanhhoa", "19": "thainguyen"}  # code -> portal host name
RESENT: Final = 0.05  # an integrator's retry: the same event again
YESTERDAY: Final = 0.04
REISSUED: Final = 0.01  # a receipt exported again under a new event id
RECEIVED_SCHEMA: Final = "https://schemas.egov-pulse.vn/vn.egov.dossier.received/v1.json"
PROCEDURES: Final = ("1.001612", "1.004227", "2.000986", "1.000656", "2.001023")


def _communes(now: datetime) -> dict[str, str]:
    """Today's communes of PROVINCES, each with its province's code."""
    registry = UnitRegistry.from_dir()
    provinces = {
        u.code: registry.resolve(u.code, now).province.code
        for u in registry.units(era_at(now))
        if u.level == "commune"
    }
    return {unit: code for unit, code in provinces.items() if code in PROVINCES}


def _stream(n: int, now: datetime, seed: int, build: Build) -> list[Event]:
    """n events of today's communes, ~RESENT exact re-sends, ~YESTERDAY from yesterday."""
    rng = random.Random(seed)
    communes = list(_communes(now))
    events: list[Event] = []
    while len(events) < n:
        if events and rng.random() < RESENT:
            events.append(rng.choice(events))
            continue
        unit = rng.choice(communes)
        ago = timedelta(days=1) if rng.random() < YESTERDAY else timedelta(0)
        at = now - ago - timedelta(seconds=rng.uniform(0, 3600))
        events.append(build(rng, unit, at, len(events)))
    return events


def document_events(n: int, now: datetime, seed: int = 7) -> list[Event]:
    """Documents issued: some paper-only or classified (outside the denominator)."""

    def build(rng: random.Random, unit: str, at: datetime, index: int) -> Event:
        return {
            "specversion": "1.0",
            "id": str(uuid.UUID(int=rng.getrandbits(128))),
            "source": f"https://tdoffice.p{unit[:2]}.gov.vn/{unit}",
            "type": "vn.egov.document.issued",
            "time": at.isoformat(),
            "unit": unit,
            "datacontenttype": "application/json",
            "data": {
                "document_id": f"VB-{index}",
                "electronic": rng.random() < 0.9,
                "signed": rng.random() < 0.93,
                "classified": rng.random() < 0.02,
            },
        }

    return _stream(n, now, seed, build)


def receipt_events(n: int, now: datetime, seed: int = 11) -> list[Event]:
    """Dossiers received at one-stop shops, as services/simulator makes them: full-process
    online procedures (the denominator) received online or at the counter, partial and
    offline ones outside it, an appointment on every receipt, the 766 flags on most;
    ~REISSUED of them a receipt sent again under a new event id (one dossier, counted once).
    """
    issued: list[Event] = []
    provinces = _communes(now)

    def build(rng: random.Random, unit: str, at: datetime, index: int) -> Event:
        if issued and rng.random() < REISSUED:
            return {**rng.choice(issued), "id": str(uuid.UUID(int=rng.getrandbits(128)))}
        province = provinces[unit]
        local = at.astimezone(VN_TZ)
        dossier = f"H{province}.{unit}-{local:%y%m%d}-{index:06d}"
        event = {
            "specversion": "1.0",
            "id": f"rec-{dossier}",
            "source": f"https://dichvucong.{PROVINCES[province]}.gov.vn/motcua",
            "type": "vn.egov.dossier.received",
            "time": at.isoformat(),
            "unit": unit,
            "datacontenttype": "application/json",
            "dataschema": RECEIVED_SCHEMA,
            "data": _receipt(rng, dossier, local),
        }
        issued.append(event)
        return event

    return _stream(n, now, seed, build)


def _receipt(rng: random.Random, dossier: str, local: datetime) -> dict[str, Any]:
    if rng.random() < 0.45:
        level, online = "full", rng.random() < 0.7
    elif rng.random() < 0.75:
        level, online = "partial", rng.random() < 0.4
    else:
        level, online = "offline", False
    due = local + timedelta(days=rng.randint(1, 5))
    data: dict[str, Any] = {
        "dossier_id": dossier,
        "procedure_code": rng.choice(PROCEDURES),
        "service_level": level,
        "channel": "online" if online else rng.choices(("counter", "postal"), (0.9, 0.1))[0],
        # Half the appointments are a date alone, half a time (17:00 local).
        "due_at": due.date().isoformat()
        if rng.random() < 0.5
        else due.replace(hour=17, minute=0, second=0, microsecond=0).isoformat(),
    }
    if rng.random() < 0.9:  # some systems do not record the 766 flags
        data["digitised"] = rng.random() < 0.8
        data["population_data"] = rng.random() < 0.6
    return data


@dataclass(frozen=True)
class PeerKpi:
    """A KPI of the comparison: its catalogue id, its events' family, its events."""

    id: str
    family: str  # the metrics service's topic setting: EGOV_TOPIC_<FAMILY>
    events: Callable[[int, datetime], list[Event]]


PEER_KPIS: Final = (
    PeerKpi(KPI_ID, "documents", document_events),
    PeerKpi(DOSSIER_KPI_ID, "dossiers", receipt_events),
)


async def publish(bootstrap: str, topic: str, events: list[Event], now: datetime) -> None:
    """Every event to ``topic``, one message each, keyed by its province."""
    registry = UnitRegistry.from_dir()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = []
        for e in events:
            key = registry.resolve(e["unit"], now).province.code.encode()
            sends.append(await producer.send(topic, orjson.dumps(e), key=key))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
