"""The peer comparison's KPIs, computed plainly: the figures both engines must reproduce.

Each KPI (``document_signing``, ``dossier_online``) per unit and rolled up the hierarchy,
for today's calendar day in Asia/Ho_Chi_Minh, each event counted once. Pure and
engine-free, so the Quix app (in its own virtualenv) and the checker (in ours) share
exactly this arithmetic; the definitions themselves come from data/kpis.json.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Final

from services.common.dossierfacts import event_identity
from services.common.events import CloudEvent
from services.common.kpis import Kpi, KpiCatalogue
from services.common.units import VN_TZ, UnitError, UnitRegistry

KPI_ID: Final = "document_signing"
DOSSIER_KPI_ID: Final = "dossier_online"
KPI_IDS: Final = (KPI_ID, DOSSIER_KPI_ID)
Figures = dict[str, list[int]]  # unit code -> [numerator, denominator]


class DayKpi:
    """One catalogue KPI for one day; counts one event at a time and remembers nothing
    itself (the caller keeps state)."""

    def __init__(self, kpi_id: str, day: date, registry: UnitRegistry | None = None) -> None:
        self.day = day
        self.registry = registry or UnitRegistry.from_dir()
        self.kpi: Kpi = KpiCatalogue.load().get(kpi_id)

    @property
    def id(self) -> str:
        return self.kpi.id

    def contributions(self, envelope: Mapping[str, Any]) -> list[tuple[str, int, int]]:
        """(unit, numerator, denominator) for the event's unit and each ancestor; [] if
        the event is of another type, another day, or an unknown unit."""
        if envelope.get("type") != self.kpi.event_type:
            return []
        event = CloudEvent.from_dict(envelope)
        if event.time.astimezone(VN_TZ).date() != self.day:
            return []
        num, den = self.kpi.count(event)
        if den == 0:
            return []
        try:
            chain = self.registry.resolve(event.unit, event.time).chain
        except UnitError:
            return []
        return [(unit.code, num, den) for unit in chain]


class SigningKpi(DayKpi):
    """``document_signing`` for one day: the first KPI of the comparison."""

    def __init__(self, day: date, registry: UnitRegistry | None = None) -> None:
        super().__init__(KPI_ID, day, registry)


def dedup_key(envelope: Mapping[str, Any]) -> str:
    """What makes an event a repeat: its source and identity, the event id or, for a
    dossier's receipt, payment or outcome, the dossier (the contract's rule, one home)."""
    identity = event_identity(envelope["type"], envelope["id"], envelope.get("data") or {})
    return f"{envelope['source']}\0{identity}"


def reference_figures(events: Iterable[Mapping[str, Any]], kpi: DayKpi) -> Figures:
    """The straightforward computation over a list of events: a set and a dict."""
    seen: set[str] = set()
    figures: Figures = {}
    for envelope in events:
        key = dedup_key(envelope)
        if key in seen:
            continue
        seen.add(key)
        for unit, num, den in kpi.contributions(envelope):
            pair = figures.setdefault(unit, [0, 0])
            pair[0] += num
            pair[1] += den
    return figures


def differences(expected: Figures, actual: Figures) -> list[str]:
    """Where two sets of figures disagree, one line per unit (empty when equal)."""
    found = []
    for unit in sorted(set(expected) | set(actual)):
        want, got = expected.get(unit, [0, 0]), actual.get(unit, [0, 0])
        if list(want) != list(got):
            found.append(f"{unit}: expected {want[0]}/{want[1]}, got {got[0]}/{got[1]}")
    return found
