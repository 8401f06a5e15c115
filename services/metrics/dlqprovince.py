"""The province whose figures miss a dead letter: the ``province`` label of its counter.

A province's operators read their figures on the wall and in Grafana; a record of theirs
that was dead-lettered is missing from them, and ``egov_events_dead_lettered_total``
says so per province (review 81). Records are keyed by the province their events roll
up to (schemas/CONTRACT.md, section 5), so the key answers for nearly every record; a
record published straight to Kafka under another key is placed by its event's unit when
that resolves from the record alone. Else the province is unknown: "".
"""

from __future__ import annotations

from datetime import datetime

import orjson

from services.metrics.decoding import RecordDecoder, Rejected

UNKNOWN = ""
"""The label of a dead letter whose province neither its key nor its unit tells."""

LOOKED_INTO_BYTES = 64 * 1024
"""Largest value parsed for its unit: one event is well under a kilobyte. A larger one
is a batch or a reference (whose key is kept), or garbage not worth parsing twice."""

_KEYS_KEPT = 1024
"""Keys remembered as province or not: the provinces, and the few keys a publisher uses."""


class DeadLetterProvinces:
    """Says which province a dead letter belongs to, from the unit registry.

    The record's key when it is a province code the registry knows (today's or a pre-2025
    one: a record of history before the reform is keyed by the province of then), else
    the province of the event's unit at the event's time (the clock's, when the event
    has no readable time), else :data:`UNKNOWN`. Never raises: a label must not stop a
    dead letter from being counted."""

    def __init__(self, decoder: RecordDecoder) -> None:
        self._decoder = decoder
        self._keys: dict[bytes, bool] = {}

    def of(self, key: bytes | None, value: bytes | None, now: datetime) -> str:
        if key is not None and self._is_province(key):
            return key.decode()
        try:
            return self._of_unit(value, now)
        except Exception:  # whatever the bytes hold, the dead letter is still counted
            return UNKNOWN

    def _is_province(self, key: bytes) -> bool:
        known = self._keys.get(key)
        if known is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            text = key.decode(errors="replace") if len(key) <= 8 else ""
            known = self._keys[key] = bool(text) and self._decoder.knows_province(text)
        return known

    def _of_unit(self, value: bytes | None, now: datetime) -> str:
        if not value or len(value) > LOOKED_INTO_BYTES:
            return UNKNOWN
        event = orjson.loads(value)
        if not isinstance(event, dict) or not isinstance(unit := event.get("unit"), str):
            return UNKNOWN
        resolved = self._decoder.resolve(unit, _time_of(event.get("time"), now))
        return UNKNOWN if isinstance(resolved, Rejected) else resolved[1][-1]


def _time_of(raw: object, now: datetime) -> datetime:
    """The event's time when it is a readable aware one (the era its unit resolves in)."""
    if isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw.upper())
        except ValueError:
            return now
        if when.tzinfo is not None and when.utcoffset() is not None:
            return when
    return now
