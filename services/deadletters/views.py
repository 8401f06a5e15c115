"""A dead letter shown to an operator: expanded to its events, placed in its province,
printed as one tab-separated row (services/common/textrows.py) or one JSON line."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from services.common.headers import PUBLISHER_HEADER
from services.common.textrows import tsv_row
from services.common.units import VN_TZ
from services.deadletters.letters import DeadLetter, event_label, events_in
from services.deadletters.reading import ReadError, TopicReader
from services.metrics.dlqprovince import DeadLetterProvinces

NONE = "-"
"""A field with nothing to show in a row (no publisher header: unbound; no key)."""


@dataclass(frozen=True, slots=True)
class Shown:
    """A dead letter and what it holds: its events (empty with ``problem`` when none can
    be read, or a reference no longer in its topic), and the province it is missing from."""

    letter: DeadLetter
    events: tuple[Any, ...]
    problem: str
    """Why its events cannot be shown or replayed ("" when they can)."""
    note: str
    """What a reference pointed at and whether it was found ("" for a copy)."""
    province: str

    def time_vn(self) -> str:
        at = datetime.fromtimestamp(self.letter.timestamp_ms / 1000, UTC)
        return at.astimezone(VN_TZ).isoformat(timespec="seconds")

    def row(self) -> str:
        letter = self.letter
        labels = [event_label(e) for e in self.events]
        return tsv_row(
            self.time_vn(),
            letter.source or NONE,
            letter.reason or NONE,
            letter.detail or NONE,
            letter.publisher_text or NONE,
            _key_text(letter.key) or NONE,
            self.province or NONE,
            " ".join(event_id for event_id, _ in labels) or NONE,
            " ".join(sorted({source for _, source in labels})) or NONE,
            "; ".join(t for t in (self.note, self.problem) if t) or NONE,
        )

    def json(self) -> bytes:
        letter = self.letter
        return orjson.dumps(
            {
                "time": self.time_vn(),
                "dead_letter": letter.place,
                "source": letter.source,
                "reason": letter.reason,
                "detail": letter.detail,
                "publisher": letter.publisher_text,
                "key": _key_text(letter.key),
                "province": self.province or None,
                "batch_index": letter.batch_index,
                "reference": letter.is_reference,
                "note": self.note or None,
                "problem": self.problem or None,
                "events": [
                    {"id": i, "source": s} for i, s in (event_label(e) for e in self.events)
                ],
            }
        )


async def show(
    letter: DeadLetter, reader: TopicReader, provinces: DeadLetterProvinces, now: datetime
) -> Shown:
    """``letter`` with its events: its own value's, or a reference's target's while the
    event topic still holds it."""
    target = letter.target()
    if letter.is_reference and target is None:
        return Shown(
            letter,
            (),
            "a reference that names no record",
            "",
            _province(letter, None, provinces, now),
        )
    if target is None:
        events = events_in(letter.value, None)
        value = letter.value
        note = ""
    else:
        note = f"reference to {target.place}"
        try:
            found, first = await reader.referenced(target)
        except ReadError as exc:
            return Shown(letter, (), str(exc), note, _province(letter, None, provinces, now))
        values = [value for value, _ in found]
        if letter.publisher_text is None and found:
            # A reference written before it carried the publisher (review 84): whose
            # events they are is on the records it points at.
            named = {dict(headers).get(PUBLISHER_HEADER) for _, headers in found}
            if len(named) > 1:
                problem = "the records it points at name different publishers"
                return Shown(letter, (), problem, note, _province(letter, None, provinces, now))
            (publisher,) = named
            if publisher is not None:
                letter = replace(letter, headers=(*letter.headers, (PUBLISHER_HEADER, publisher)))
        if not values:
            gone = (
                f"expired: {target.topic}[{target.partition}] now starts at offset {first}"
                if first > target.first
                else f"not in {target.topic}[{target.partition}]"
            )
            return Shown(letter, (), gone, note, _province(letter, None, provinces, now))
        if len(values) < target.last - target.first + 1:
            note += f" (from offset {first} on: the rest expired)"
        events, value = _gathered(values, target.batch_index)
    province = _province(letter, value, provinces, now)
    if isinstance(events, str):
        return Shown(letter, (), events, note, province)
    return Shown(letter, tuple(events), "", note, province)


def _gathered(
    values: list[bytes | None], batch_index: int | None
) -> tuple[list[Any] | str, bytes | None]:
    events: list[Any] = []
    for value in values:
        found = events_in(value, batch_index)
        if isinstance(found, str):
            return found, None
        events += found
    return events, values[0] if len(values) == 1 else None


def _province(
    letter: DeadLetter, value: bytes | None, provinces: DeadLetterProvinces, now: datetime
) -> str:
    """As the dead-letter counter's ``province`` label judges it (services/metrics/
    dlqprovince.py): the key, else the event's unit."""
    return provinces.of(letter.key, value if value is not None else letter.value, now)


def _key_text(key: bytes | None) -> str:
    return "" if key is None else key.decode(errors="replace")
