"""Per-unit rate profiles: who publishes, how often, and how well. Pure: no I/O, no clock.

A :class:`SimulationPlan` is built once from the units of a few provinces and a seeded
``random.Random``: every unit gets rates drawn near the published figures (DOMAIN.md),
a few units are clearly below target on one KPI, and one commune is silent.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol


class UnitLike(Protocol):
    """What a profile needs of a unit (``services.common.units.Unit`` satisfies it)."""

    @property
    def code(self) -> str: ...

    @property
    def level(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def parent(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Rates:
    """Probabilities that drive one unit's events; KPI fields are named after the KPIs.

    ``document_classified`` and ``dossier_full_share`` are not KPIs: they shape the
    denominators (secret documents, procedures offered fully online).
    """

    document_signing: float
    document_electronic: float
    document_classified: float
    dossier_online: float
    dossier_full_share: float
    dossier_online_payment: float
    dossier_on_time: float
    dossier_electronic_result: float
    dossier_digitised: float
    dossier_population_data: float
    dossier_satisfaction: float
    meeting_online: float
    meeting_paperless: float


@dataclass(frozen=True, slots=True)
class UnitProfile:
    """One publishing unit: its code, province, relative volume and rates."""

    code: str
    province: str
    level: str
    name: str
    weight: float
    rates: Rates
    below_target: str | None = None  # the KPI this unit is clearly failing, if any


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    """Who publishes (``profiles``) and who is deliberately silent."""

    profiles: tuple[UnitProfile, ...]
    silent: UnitProfile | None

    def profile(self, code: str) -> UnitProfile:
        for p in self.profiles:
            if p.code == code:
                return p
        raise KeyError(code)

    @property
    def below_target(self) -> tuple[UnitProfile, ...]:
        return tuple(p for p in self.profiles if p.below_target is not None)


# Rates of a unit doing what the published reports describe (uniform ranges).
NORMAL_RANGES: Mapping[str, tuple[float, float]] = {
    "document_signing": (0.99, 1.0),
    "document_electronic": (0.92, 0.98),
    "document_classified": (0.01, 0.02),
    "dossier_online": (0.85, 0.99),
    "dossier_full_share": (0.55, 0.70),
    "dossier_online_payment": (0.02, 0.11),  # Sông Cầu 10.7 %, Quang Thuận 8.3 % (DOMAIN.md)
    "dossier_on_time": (0.93, 0.97),
    # Decision 766's digitisation and satisfaction rates (data/scorecard-766.json): no
    # published unit figure was found; ranges around the 766 thresholds (80 %, 90 %).
    "dossier_electronic_result": (0.60, 0.90),
    "dossier_digitised": (0.75, 0.95),
    "dossier_population_data": (0.50, 0.80),
    "dossier_satisfaction": (0.90, 0.99),
    "meeting_online": (0.86, 0.96),
    "meeting_paperless": (0.74, 0.86),
}

# What "clearly below target" looks like, one KPI per failing unit (cycled in order).
BELOW_TARGET: Mapping[str, float] = {
    "document_signing": 0.80,
    "dossier_online": 0.60,
    "dossier_on_time": 0.70,
    "meeting_online": 0.60,
}

# A provincial People's Committee and its departments publish more than a commune.
LEVEL_WEIGHT: Mapping[str, float] = {
    "province": 4.0,
    "department": 2.0,
    "district": 2.0,
    "commune": 1.0,
}


def group_by_province(
    units: Iterable[UnitLike], provinces: Iterable[str]
) -> dict[str, list[UnitLike]]:
    """The units of each province, the province itself and its departments included."""
    wanted = set(provinces)
    by_code = {unit.code: unit for unit in units}
    grouped: dict[str, list[UnitLike]] = {code: [] for code in sorted(wanted)}
    for unit in by_code.values():
        province = _province_of(unit, by_code)
        if province in wanted:
            grouped[province].append(unit)
    return grouped


def _province_of(unit: UnitLike, by_code: Mapping[str, UnitLike]) -> str | None:
    seen: set[str] = set()
    current: UnitLike | None = unit
    while current is not None and current.code not in seen:
        if current.level == "province":
            return current.code
        seen.add(current.code)
        current = by_code.get(current.parent) if current.parent else None
    return None


def draw_rates(rng: random.Random) -> Rates:
    values = {name: round(rng.uniform(lo, hi), 4) for name, (lo, hi) in NORMAL_RANGES.items()}
    return Rates(**values)


def build_plan(
    units_by_province: Mapping[str, Sequence[UnitLike]],
    rng: random.Random,
    *,
    silent_unit: str | None = None,
    below_target_count: int = 4,
) -> SimulationPlan:
    """Profiles for every unit; ``silent_unit`` None picks one commune with ``rng``.

    Provinces and units are visited in sorted code order so the plan depends only on
    the seed, never on the order the registry yields units in.
    """
    profiles = [
        UnitProfile(
            code=unit.code,
            province=province,
            level=unit.level,
            name=unit.name,
            weight=LEVEL_WEIGHT.get(unit.level, 1.0),
            rates=draw_rates(rng),
        )
        for province in sorted(units_by_province)
        for unit in sorted(units_by_province[province], key=lambda u: u.code)
    ]
    silent = _pick_silent(profiles, rng, silent_unit)
    active = [p for p in profiles if p is not silent]
    return SimulationPlan(tuple(_degrade(active, rng, below_target_count)), silent)


def _pick_silent(
    profiles: Sequence[UnitProfile], rng: random.Random, code: str | None
) -> UnitProfile | None:
    if code is not None:
        return next((p for p in profiles if p.code == code), None)
    communes = [p for p in profiles if p.level == "commune"]
    return rng.choice(communes) if communes else None


def _degrade(profiles: list[UnitProfile], rng: random.Random, count: int) -> list[UnitProfile]:
    """Put ``count`` communes (or any units, if too few) clearly below one target each."""
    candidates = [p for p in profiles if p.level == "commune"]
    if len(candidates) < count:
        candidates = profiles
    chosen = rng.sample(candidates, min(count, len(candidates)))
    kpis = list(BELOW_TARGET)
    degraded: dict[str, UnitProfile] = {}
    for i, p in enumerate(chosen):
        kpi = kpis[i % len(kpis)]
        rates = replace(p.rates, **{kpi: BELOW_TARGET[kpi]})
        degraded[p.code] = replace(p, rates=rates, below_target=kpi)
    return [degraded.get(p.code, p) for p in profiles]
