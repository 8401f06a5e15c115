"""The KPI catalogue: loads data/kpis.json and compiles its conditions into fast predicates.

A condition is a small JSON tree (see the file's ``$comment``), compiled once into a
closure over a :class:`CloudEvent`, so that the stream processors pay a few function
calls per event and nobody writes a KPI in Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from services.common.events import CloudEvent, parse_time
from services.common.paths import KPI_CATALOGUE

Predicate = Callable[[CloudEvent], bool]
LEVELS = ("province", "district", "commune", "department")


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the KPI and the problem."""


@dataclass(frozen=True, slots=True)
class Kpi:
    """One rate: which events it reads, what counts above and below the line, its targets."""

    id: str
    name_vi: str
    name_en: str
    description_en: str
    event_type: str
    denominator: Predicate
    numerator: Predicate
    targets: Mapping[str, float]
    min_volume: int

    def count(self, event: CloudEvent) -> tuple[int, int]:
        """(numerator, denominator) contribution of one event of this KPI's type."""
        if not self.denominator(event):
            return 0, 0
        return (1 if self.numerator(event) else 0), 1

    def target_for(self, level: str) -> float:
        return self.targets[level]


class KpiCatalogue:
    """All KPIs, indexed by id and by the event type they read."""

    def __init__(self, kpis: list[Kpi]) -> None:
        self.kpis = tuple(kpis)
        self._by_id = {k.id: k for k in kpis}
        by_type: dict[str, list[Kpi]] = {}
        for kpi in kpis:
            by_type.setdefault(kpi.event_type, []).append(kpi)
        self._by_type = {t: tuple(ks) for t, ks in by_type.items()}

    @classmethod
    def load(
        cls, path: Path = KPI_CATALOGUE, event_types: frozenset[str] | None = None
    ) -> KpiCatalogue:
        """Read and compile the catalogue; ``event_types`` (from the contract) are checked."""
        raw = json.loads(path.read_text("utf-8"))
        kpis = [_kpi(entry) for entry in raw["kpis"]]
        seen: set[str] = set()
        for kpi in kpis:
            if kpi.id in seen:
                raise CatalogueError(f"KPI {kpi.id!r} is defined twice")
            seen.add(kpi.id)
            if event_types is not None and kpi.event_type not in event_types:
                raise CatalogueError(f"KPI {kpi.id!r} reads unknown event type {kpi.event_type!r}")
        return cls(kpis)

    def get(self, kpi_id: str) -> Kpi:
        return self._by_id[kpi_id]

    def for_type(self, event_type: str) -> tuple[Kpi, ...]:
        return self._by_type.get(event_type, ())

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k.id for k in self.kpis)


def _kpi(entry: Mapping[str, Any]) -> Kpi:
    kpi_id = entry.get("id", "?")
    try:
        targets = {level: float(entry["targets"][level]) for level in LEVELS}
        if any(not 0.0 <= t <= 1.0 for t in targets.values()):
            raise CatalogueError(f"KPI {kpi_id!r}: targets are ratios between 0 and 1")
        return Kpi(
            id=entry["id"],
            name_vi=entry["name_vi"],
            name_en=entry["name_en"],
            description_en=entry.get("description_en", ""),
            event_type=entry["event_type"],
            denominator=compile_condition(entry["denominator"]),
            numerator=compile_condition(entry["numerator"]),
            targets=targets,
            min_volume=int(entry["min_volume"]),
        )
    except KeyError as exc:
        raise CatalogueError(f"KPI {kpi_id!r}: missing {exc.args[0]!r}") from None


def _getter(path: str) -> Callable[[CloudEvent], Any]:
    if path.startswith("data."):
        name = path.removeprefix("data.")
        return lambda event: event.data.get(name)
    if path in ("time", "type", "source", "unit", "id"):
        return lambda event: getattr(event, path)
    raise CatalogueError(f"unknown field path {path!r}")


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            return None
    return None


def _compare(get: Callable[[CloudEvent], Any], op: str, operand: Any) -> Predicate:
    if op == "eq":
        return lambda e: bool(get(e) == operand)
    if op == "ne":
        return lambda e: bool(get(e) != operand)
    if op == "in":
        allowed = frozenset(operand)
        return lambda e: get(e) in allowed
    if op == "not_in":
        refused = frozenset(operand)
        return lambda e: get(e) not in refused
    if op == "lte_field":
        other = _getter(operand)

        def lte(event: CloudEvent) -> bool:
            left, right = _as_time(get(event)), _as_time(other(event))
            return left is not None and right is not None and left <= right

        return lte
    raise CatalogueError(f"unknown operator {op!r}")


def compile_condition(node: Mapping[str, Any]) -> Predicate:
    """Compile one condition tree into a predicate over a CloudEvent."""
    if "all" in node:
        parts = [compile_condition(n) for n in node["all"]]
        return lambda e: all(p(e) for p in parts)
    if "any" in node:
        parts = [compile_condition(n) for n in node["any"]]
        return lambda e: any(p(e) for p in parts)
    if "not" in node:
        inner = compile_condition(node["not"])
        return lambda e: not inner(e)
    if "field" in node:
        ops = [k for k in node if k != "field"]
        if len(ops) != 1:
            raise CatalogueError(f"a field condition needs exactly one operator: {dict(node)}")
        return _compare(_getter(node["field"]), ops[0], node[ops[0]])
    raise CatalogueError(f"not a condition: {dict(node)}")
