"""Decides, for each raw record, whether it is an event to count or one to dead-letter.

Records published straight to Kafka by integrators get exactly the checks that
ingest applies, so the two paths count the same. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from services.common.contract import Contract
from services.common.events import CloudEvent
from services.common.units import AmbiguousUnit, Resolution, UnitError, UnitRegistry


@dataclass(frozen=True, slots=True)
class Counted:
    """A valid event and the units it counts for."""

    event: CloudEvent
    resolution: Resolution


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that goes to the dead-letter topic, and why."""

    reason: str  # stable, low-cardinality: used as a metric label
    detail: str


class RecordDecoder:
    """Parses, validates and resolves one record value."""

    def __init__(self, contract: Contract, registry: UnitRegistry) -> None:
        self._contract = contract
        self._registry = registry

    def decode(self, value: bytes | None) -> Counted | Rejected:
        if not value:
            return Rejected("empty", "the record has no value")
        try:
            raw = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return Rejected("malformed-json", f"not valid JSON: {exc}")
        violations = self._contract.validate(raw)
        if violations:
            detail = "; ".join(f"{v.pointer or '/'}: {v.reason}" for v in violations)
            return Rejected("schema-violation", detail)
        event = CloudEvent.from_dict(raw)
        try:
            resolution = self._registry.resolve(event.unit, event.time)
        except AmbiguousUnit as exc:
            return Rejected("unit-ambiguous", str(exc))
        except UnitError as exc:
            return Rejected("unit-unknown", str(exc))
        return Counted(event, resolution)
