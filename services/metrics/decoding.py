"""Decides, for each raw record, whether it is an event to count or one to dead-letter.

Records published straight to Kafka by integrators get exactly the checks that
ingest applies, so the two paths count the same: the contract and the units here, and
the checks that depend on the clock (too late, more than the clock skew in the future)
in the Preparer (services/metrics/pipeline.py). A record is either one CloudEvent
(a JSON object, as integrators publish) or a batch (a JSON array, as ingest packs
them); each element of a batch is judged on its own. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from services.common.contract import Contract, Violation
from services.common.events import CloudEvent
from services.common.units import (
    ERAS,
    REFORM_INSTANT,
    AmbiguousUnit,
    Resolution,
    UnitError,
    UnitRegistry,
)

REFORM_EPOCH = REFORM_INSTANT.timestamp()
"""Epoch seconds of the 2025 reform: events from then on resolve in today's hierarchy."""


@dataclass(slots=True)
class Counted:
    """A valid event and the units it counts for.

    Not frozen (treat it as immutable): one is built per event, and a frozen dataclass
    costs several times more to construct.
    """

    event: CloudEvent
    resolution: Resolution
    index: int | None = None
    """Position in a batch record; None for a record that is one event."""
    element: object = None
    """The parsed batch element (to dead-letter it alone if it turns out too late)."""
    units: tuple[str, ...] | None = None
    """Codes of ``resolution.chain``, the unit first (None: not computed)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that goes to the dead-letter topic, and why."""

    reason: str  # stable, low-cardinality: used as a metric label
    detail: str
    index: int | None = None
    """Position in a batch record; None for a record that is one event (or unreadable)."""
    raw: bytes | None = None
    """The element's own bytes when it came from a batch (re-serialised JSON); None when
    it cannot be re-serialised: the whole record's bytes are dead-lettered instead."""


class RecordDecoder:
    """Parses, validates and resolves one record value."""

    def __init__(self, contract: Contract, registry: UnitRegistry) -> None:
        self._contract = contract
        self._registry = registry
        # (code, dated after the reform) -> what the registry resolved it to, and the
        # chain's codes. The registry's answer depends only on the code and the era of
        # the event time; only successes are kept, so the cache is bounded by the
        # registry's size whatever codes records carry.
        self._resolved: dict[tuple[str, bool], tuple[Resolution, tuple[str, ...]]] = {}

    def elements(self, value: bytes | None) -> tuple[Any, bool] | Rejected:
        """One record parsed: (the event, True) for an object, (the list, False) for a
        batch; Rejected when it is empty, not JSON, or an empty batch. Its events are
        judged one by one after (``decode_event``, or the Preparer's loop)."""
        if not value:
            return Rejected("empty", "the record has no value")
        try:
            raw = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return Rejected("malformed-json", f"not valid JSON: {exc}")
        if not isinstance(raw, list):
            return raw, True
        if not raw:
            return Rejected("empty", "the batch record holds no events")
        return raw, False

    def decode_record(self, value: bytes | None) -> list[Counted | Rejected]:
        """Every event of one record: one for an object, one per element for a batch.

        The Preparer makes no object per event and reads ``elements`` instead
        (pipeline.py); this is the reference its tests compare it with.
        """
        parsed = self.elements(value)
        if isinstance(parsed, Rejected):
            return [parsed]
        raw, single = parsed
        if single:
            return [self.decode_event(raw)]
        outcomes: list[Counted | Rejected] = []
        for index, element in enumerate(raw):
            outcome = self.decode_event(element, index)
            if isinstance(outcome, Rejected):
                raw_element = element_bytes(element)
                outcome = Rejected(outcome.reason, outcome.detail, index, raw_element)
            outcomes.append(outcome)
        return outcomes

    def decode(self, value: bytes | None) -> Counted | Rejected:
        """One record that must be exactly one event."""
        if not value:
            return Rejected("empty", "the record has no value")
        try:
            raw = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return Rejected("malformed-json", f"not valid JSON: {exc}")
        return self.decode_event(raw)

    def resolve(self, code: str, time: datetime) -> tuple[Resolution, tuple[str, ...]] | Rejected:
        """The unit ``code`` names at ``time`` and its chain's codes, or why it cannot count."""
        key = (code, time.timestamp() >= REFORM_EPOCH)
        resolved = self._resolved.get(key)
        if resolved is not None:
            return resolved
        try:
            resolution = self._registry.resolve(code, time)
        except AmbiguousUnit as exc:
            candidates = ", ".join(exc.candidates)
            return Rejected("unit-ambiguous", f"{exc}; candidates: {candidates}")
        except UnitError as exc:
            return Rejected("unit-unknown", str(exc))
        resolved = (resolution, tuple(unit.code for unit in resolution.chain))
        self._resolved[key] = resolved
        return resolved

    def knows_unit(self, code: str) -> bool:
        """Whether ``code`` is a unit of the registry in either era (metrics/sanity.py)."""
        for era in ERAS:
            try:
                self._registry.get(code, era)
            except KeyError:
                continue
            return True
        return False

    def knows_province(self, code: str) -> bool:
        """Whether ``code`` is a province of today's registry or a pre-2025 one."""
        for era in ERAS:
            try:
                if self._registry.get(code, era).level == "province":
                    return True
            except KeyError:
                continue
        return False

    def resolved_cache(self) -> dict[tuple[str, bool], tuple[Resolution, tuple[str, ...]]]:
        """(code, dated after the reform) -> what ``resolve`` answered, for the fast lane."""
        return self._resolved

    def decode_event(self, raw: object, index: int | None = None) -> Counted | Rejected:
        """Validate and resolve one parsed CloudEvent envelope."""
        checked = self._contract.checked_time(raw)
        if isinstance(checked, list):
            return Rejected("schema-violation", violations_text(checked))
        if not isinstance(raw, dict):  # the contract accepts only objects; for mypy
            return Rejected("schema-violation", "an event must be a JSON object")
        event = _event_of(raw, checked)
        resolved = self.resolve(event.unit, checked)
        if isinstance(resolved, Rejected):
            return resolved
        if index is None:
            return Counted(event, resolved[0], None, None, resolved[1])
        return Counted(event, resolved[0], index, raw, resolved[1])


def violations_text(violations: Iterable[Violation]) -> str:
    """The dead-letter detail of an event that breaks the contract."""
    return "; ".join(f"{v.pointer or '/'}: {v.reason}" for v in violations)


def element_bytes(element: object) -> bytes | None:
    """A batch element as JSON bytes, or None when orjson cannot write it back.

    orjson parses arrays nested up to 1,024 deep but writes only 254 levels: a deeply
    nested element would otherwise raise here and crash the agent on every retry.
    """
    try:
        return orjson.dumps(element)
    except orjson.JSONEncodeError:
        return None


def _event_of(raw: dict[str, Any], time: datetime) -> CloudEvent:
    """``CloudEvent.from_dict`` for an envelope the contract has just accepted, with the
    ``time`` it parsed (``Contract.checked_time``): the time is not parsed a second time,
    and ``data`` (a fresh object from the parser) is not copied: this runs once per event.
    """
    return CloudEvent(
        id=raw["id"],
        source=raw["source"],
        type=raw["type"],
        time=time,
        unit=raw["unit"],
        data=raw["data"],
        dataschema=raw.get("dataschema"),
    )
