"""Turns a request body into records ready for Kafka, or the list of what is wrong with it.

Pure: no I/O, and the clock is an argument, so every rule is tested with explicit times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from services.common.contract import Contract
from services.common.summaries import UNBOUND, Entry, Summarizer
from services.common.units import AmbiguousUnit, Era, UnitError, UnitRegistry
from services.ingest import problems
from services.ingest.problems import InvalidEvent

SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1.2 us more per event
class Record:
    """One validated event as it goes to Kafka; treated as immutable once made."""

    topic_family: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_type: str
    index: int  # position in the request (or line in a backfill file)
    unit: str
    at: datetime
    era: Era  # of ``at``, as the unit was resolved: scope checks are memoised on it
    source: str = ""  # the event's CloudEvents source, checked against the key's prefixes
    entries: tuple[Entry, ...] = ()
    """Its events' summary entries when ingest summarises (services/common/summaries.py)."""
    publisher: str = UNBOUND
    """The publisher in its events' dedup identity, sent as ``egov_publisher`` (none when
    ``UNBOUND``): records of two identities are never packed together."""


@dataclass(frozen=True, slots=True)
class Limits:
    clock_skew: timedelta
    horizon: timedelta | None  # None: no lower bound (the backfill path)


class EventValidator:
    """Applies the contract, the unit registry and the time bounds to each event."""

    def __init__(
        self,
        contract: Contract,
        registry: UnitRegistry,
        limits: Limits,
        summarizer: Summarizer | None = None,
    ) -> None:
        self._contract = contract
        self._registry = registry
        self._summarizer = summarizer
        self._limits = limits
        # (type, declared dataschema) -> (topic family, Kafka headers): a valid event names
        # a version the contract knows, so this holds a few entries. Records share the
        # header lists; nothing downstream of the validator changes them.
        self._routes: dict[tuple[str, object], tuple[str, list[tuple[str, bytes]]]] = {}

    def check(
        self,
        events: Sequence[Any],
        now: datetime,
        publisher: str = UNBOUND,
        unbound_before: datetime | None = None,
    ) -> tuple[list[Record], list[InvalidEvent]]:
        """``publisher``: whose events these are (the key's name; ``UNBOUND``: none, as
        ``backfill --unbound``);
        ``unbound_before``: the dedup cut-over (see :func:`identity_of`)."""
        records: list[Record] = []
        errors: list[InvalidEvent] = []
        for index, event in enumerate(events):
            record, problems = self._check_one(index, event, now, publisher, unbound_before)
            if record is not None:
                records.append(record)
            errors.extend(problems)
        return records, errors

    def _check_one(
        self,
        index: int,
        event: Any,
        now: datetime,
        publisher: str,
        unbound_before: datetime | None,
    ) -> tuple[Record | None, list[InvalidEvent]]:
        violations = self._contract.validate(event)
        if violations:
            return None, [InvalidEvent(index, v.pointer, v.reason) for v in violations]
        # The contract's date-time format is is_rfc3339, i.e. parse_time succeeded once
        # already; what remains of parse_time is this (its grammar regex costs ~1 us/event).
        at = datetime.fromisoformat(event["time"].upper())
        late_or_future = self._check_time(index, at, now)
        if late_or_future:
            return None, [late_or_future]
        try:
            resolution = self._registry.resolve(event["unit"], at)
        except UnitError as exc:
            return None, [_unit_problem(index, exc)]
        event_type: str = event["type"]
        family, headers = self._route(event_type, event.get("dataschema"))
        record = Record(
            topic_family=family,
            key=resolution.province.code.encode(),
            value=orjson.dumps(event),
            headers=headers,
            event_type=event_type,
            index=index,
            unit=event["unit"],
            at=at,
            era=resolution.unit.era,
            source=event["source"],
            publisher=identity_of(publisher, at, unbound_before),
        )
        if self._summarizer is not None:
            entry = self._summarizer.entry(event, at, resolution, record.publisher)
            record.entries = (entry,)
        return record, []

    def _route(self, event_type: str, declared: object) -> tuple[str, list[tuple[str, bytes]]]:
        routed = self._routes.get((event_type, declared))
        if routed is None:
            dataschema = str(declared) if declared else self._contract.dataschema_uri(event_type)
            headers = [("ce_type", event_type.encode()), ("ce_dataschema", dataschema.encode())]
            routed = self._routes[event_type, declared] = (
                self._contract.family(event_type),
                headers,
            )
        return routed

    def _check_time(self, index: int, at: datetime, now: datetime) -> InvalidEvent | None:
        if at - now > self._limits.clock_skew:
            return InvalidEvent(
                index,
                "/time",
                f"event time {at.isoformat()} is in the future (more than "
                f"{self._limits.clock_skew.total_seconds():.0f} s ahead of the server clock)",
                code="time-in-future",
            )
        horizon = self._limits.horizon
        if horizon is not None and now - at > horizon:
            days = horizon / timedelta(days=1)
            return InvalidEvent(
                index,
                "/time",
                f"event time {at.isoformat()} is older than the {days:g}-day horizon (the "
                f"counting grace: events from {(now - horizon).isoformat()} on count); "
                "publish history with `egov-pulse backfill`",
                code="time-beyond-horizon",
            )
        return None


def identity_of(publisher: str, at: datetime, unbound_before: datetime | None) -> str:
    """The publisher in the dedup identity of an event dated ``at``: its own, except for an
    event dated before the cut-over (migration 0013: when an upgraded deployment started
    binding identities), which may have been counted already under the old identity
    (source, id) and keeps it (``UNBOUND``), so that a retry of it counts once."""
    if unbound_before is not None and at < unbound_before:
        return UNBOUND
    return publisher


def _unit_problem(index: int, exc: UnitError) -> InvalidEvent:
    if isinstance(exc, AmbiguousUnit):
        return InvalidEvent(index, "/unit", str(exc), code="unit-ambiguous")
    return InvalidEvent(index, "/unit", str(exc), code="unit-unknown")


def decode_body(body: bytes, content_type: str, max_batch: int) -> list[Any]:
    """The events of a request, or the Problem that refuses it as a whole."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise problems.malformed_json(f"The body is not valid JSON: {exc}.") from None
    if content_type == SINGLE:
        return [parsed]
    if not isinstance(parsed, list):
        raise problems.malformed_json("A batch must be a JSON array of CloudEvents.")
    if not parsed:
        raise problems.malformed_json("The batch is empty.")
    if len(parsed) > max_batch:
        raise problems.batch_too_large(len(parsed), max_batch)
    return parsed
