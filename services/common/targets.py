"""Effective KPI targets: operator overrides over the dated catalogue defaults. Pure.

An override always names its KPI and one scope: a unit, a province and a level (every
commune of province X), or a province (every unit in it). For a unit, a KPI and a
Vietnam calendar day the effective target is, first found wins:

1. an override of that unit,
2. an override of the unit's province and level,
3. an override of the unit's province,
4. the catalogue default valid that day (data/targets.json).

Overrides carry validity dates too (None: open); among overrides of one scope valid
that day, the latest ``valid_from`` wins. The metrics workers serve this target on
/v1/kpis and /metrics, and the alerts API shows the same answer: one judgement, here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal

from services.common.figures import TargetBasis
from services.common.kpis import Kpi
from services.common.targetdata import BP_MAX, LEVELS, DatedTarget
from services.common.units import Unit, UnitRegistry

ScopeKind = Literal["unit", "province_level", "province"]
Origin = Literal["unit", "province_level", "province", "default"]
ORDER: Final[tuple[ScopeKind, ...]] = ("unit", "province_level", "province")
"""Resolution order of the override scopes, most specific first."""


class InvalidScope(ValueError):
    """A scope that is not exactly one of unit, province+level, province."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Where an override applies: a unit, or a province (optionally one level of it)."""

    unit: str | None = None
    province: str | None = None
    level: str | None = None

    def __post_init__(self) -> None:
        if self.unit is not None and (self.province is not None or self.level is not None):
            raise InvalidScope("an override is for a unit, or for a province (and level)")
        if self.unit is None and self.province is None:
            raise InvalidScope("an override names a unit or a province")
        if self.level is not None and self.level not in LEVELS:
            raise InvalidScope(f"unknown level {self.level!r}; one of {', '.join(LEVELS)}")

    @property
    def kind(self) -> ScopeKind:
        if self.unit is not None:
            return "unit"
        return "province_level" if self.level is not None else "province"

    def __str__(self) -> str:
        if self.unit is not None:
            return f"unit {self.unit}"
        if self.level is not None:
            return f"every {self.level} of province {self.province}"
        return f"province {self.province}"


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's target for one KPI in one scope, for the days it is valid."""

    scope: Scope
    kpi: str
    target_bp: int
    valid_from: date | None = None
    valid_until: date | None = None
    changed_by: str = ""
    changed_at: datetime | None = None
    reason: str = ""

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )

    @property
    def basis(self) -> TargetBasis:
        """What it rests on: its scope, days and reason (cited by services/common/citations.py)."""
        return TargetBasis(self.scope.kind, None, self.valid_from, self.valid_until, self.reason)


@dataclass(frozen=True, slots=True)
class Placement:
    """What the resolution needs of a unit: its code, level and province."""

    code: str
    level: str
    province: str

    def scopes(self) -> tuple[Scope, Scope, Scope]:
        """Its scopes in resolution order (see ``ORDER``)."""
        return (
            Scope(unit=self.code),
            Scope(province=self.province, level=self.level),
            Scope(province=self.province),
        )


@dataclass(frozen=True, slots=True)
class Effective:
    """The target that applies, and where it comes from."""

    target_bp: int
    origin: Origin
    override: Override | None = None
    default: DatedTarget | None = None

    @property
    def ratio(self) -> float:
        return self.target_bp / BP_MAX

    @property
    def basis(self) -> TargetBasis:
        """Where it comes from, as a /v1/kpis item carries it."""
        if self.override is not None:
            return self.override.basis
        d = self.default
        if d is None:
            return TargetBasis(self.origin)
        return TargetBasis(self.origin, d.source.id, d.valid_from, d.valid_until)


class OverrideIndex:
    """Overrides by (KPI, scope), the latest start first: a few dictionary reads per answer."""

    def __init__(self, overrides: Iterable[Override] = ()) -> None:
        found: dict[tuple[str, Scope], list[Override]] = {}
        for o in overrides:
            found.setdefault((o.kpi, o.scope), []).append(o)
        self._by_key = {
            key: tuple(sorted(os, key=lambda o: o.valid_from or date.min, reverse=True))
            for key, os in found.items()
        }

        self.by_province = any(scope.unit is None for _, scope in self._by_key)
        """Whether any override is for a province: only then is a unit's province needed."""
        self.kpis = frozenset(kpi for kpi, _ in self._by_key)
        """The KPIs some override names: the others take their default without a lookup."""
        self._defaults: dict[tuple[str, str, date], tuple[Kpi, Effective | None]] = {}

    def __eq__(self, other: object) -> bool:
        """Same overrides, whatever order they were read in (the worker re-reads them into
        a new index every few seconds; its /v1/kpis snapshot rebuilds only on a change)."""
        return isinstance(other, OverrideIndex) and self._by_key == other._by_key

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return sum(len(os) for os in self._by_key.values())

    def in_force(self, day: date) -> list[Override]:
        """The override each (KPI, scope) applies on ``day``, where one does."""
        return [o for kpi, scope in self._by_key if (o := self.find(kpi, scope, day)) is not None]

    def find(self, kpi: str, scope: Scope, day: date) -> Override | None:
        for o in self._by_key.get((kpi, scope), ()):
            if o.valid_on(day):
                return o
        return None

    def default(self, kpi: Kpi, level: str, day: date) -> Effective | None:
        """The catalogue's default for a level on a day, made once per index: a worker's
        /v1/kpis snapshot asks it for every unit and KPI (70,000 items a window)."""
        key = (kpi.id, level, day)
        found = self._defaults.get(key)
        if found is not None and found[0] is kpi:
            return found[1]
        dated = kpi.default_on(day)
        made = None
        if dated is not None:
            made = Effective(dated.target_bp[level], "default", default=dated)
        self._defaults[key] = (kpi, made)
        return made


def effective_target(
    kpi: Kpi, where: Placement, day: date, overrides: OverrideIndex
) -> Effective | None:
    """The target of ``kpi`` for the unit ``where`` on the Vietnam day ``day``.

    None only when no override applies and the catalogue has no default for that day.
    """
    if kpi.id in overrides.kpis:
        for kind, scope in zip(ORDER, where.scopes(), strict=True):
            found = overrides.find(kpi.id, scope, day)
            if found is not None:
                return Effective(found.target_bp, kind, override=found)
    return overrides.default(kpi, where.level, day)


def placement(registry: UnitRegistry, unit: Unit) -> Placement:
    """A unit's placement; its province is its top ancestor in its own era."""
    top = unit
    for _ in range(4):  # province > district > commune: never deeper
        if top.parent is None:
            break
        top = registry.get(top.parent, top.era)
    return Placement(unit.code, unit.level, top.code)
