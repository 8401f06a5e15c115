"""Shared builders for the metrics unit tests: real contract, catalogue and unit registry."""

from __future__ import annotations

import copy
import functools
from datetime import datetime
from typing import Any

import orjson

from services.common.contract import Contract
from services.common.kpis import KpiCatalogue
from services.common.tally import dedup_digest
from services.common.units import UnitRegistry
from services.metrics.decoding import RecordDecoder
from services.metrics.pipeline import Prepared


@functools.cache
def contract() -> Contract:
    return Contract.load()


@functools.cache
def catalogue() -> KpiCatalogue:
    return KpiCatalogue.load(event_types=contract().event_types)


@functools.cache
def registry() -> UnitRegistry:
    return UnitRegistry.from_dir()


def decoder() -> RecordDecoder:
    return RecordDecoder(contract(), registry())


def envelope(
    event_type: str, unit: str, time: datetime, event_id: str = "e1", **data: Any
) -> dict[str, Any]:
    """A valid CloudEvent of ``event_type`` (the contract's first example), data overridden."""
    event = copy.deepcopy(contract().examples(event_type, "valid")[0][1])
    event.update(id=event_id, unit=unit, time=time.isoformat(), source="urn:test:metrics")
    event["data"].update(data)
    return event


def document(unit: str, time: datetime, event_id: str = "e1", **data: Any) -> dict[str, Any]:
    fields = {"electronic": True, "signed": True, "classified": False, **data}
    return envelope("vn.egov.document.issued", unit, time, event_id, **fields)


def as_bytes(*events: dict[str, Any]) -> bytes:
    return orjson.dumps(events[0] if len(events) == 1 else list(events))


def counted_digests(prepared: Prepared) -> set[bytes]:
    """The dedup digests of every event a prepared step would count."""
    found = set()
    for batch in prepared.batches.values():
        found |= {c.digest for c in batch.event_views()}
    return found


def digest(event_id: str) -> bytes:
    """The dedup digest of ``event_id`` from the tests' source, urn:test:metrics."""
    return dedup_digest("urn:test:metrics", event_id)


def province_key(value: bytes | None, default: bytes = b"19") -> bytes:
    """The key the contract gives a record of ``value``: the province its first event's
    unit rolls up to at the event's time (``default`` when that cannot be told). Records
    keyed otherwise are published again, not counted where they are
    (services/metrics/rekeying.py)."""
    try:
        parsed = orjson.loads(value or b"")
        event = parsed[0] if isinstance(parsed, list) else parsed
        resolved = decoder().resolve(event["unit"], datetime.fromisoformat(event["time"]))
    except Exception:
        return default
    return default if not isinstance(resolved, tuple) else resolved[1][-1].encode()
