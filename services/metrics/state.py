"""In-memory figures of the events a worker has counted."""

from __future__ import annotations

from collections import Counter

from services.metrics.decoding import Counted


class EventCounts:
    """Events per (unit, type), each event counted for its unit and every ancestor."""

    def __init__(self) -> None:
        self.by_unit_type: Counter[tuple[str, str]] = Counter()

    def apply(self, counted: Counted) -> None:
        event_type = counted.event.type
        for unit in counted.resolution.chain:
            self.by_unit_type[(unit.code, event_type)] += 1
