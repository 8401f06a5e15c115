"""One record of the dead-letter topic, read as the metrics workers wrote it. Pure.

A dead letter is the refused record's bytes and headers plus ``dlq_reason``,
``dlq_detail``, ``dlq_source`` (``topic[partition]@offset``) and, for one event of a
batch, ``dlq_batch_index``; a **reference** (``dlq_reference: 1``: a record too large to
carry, the unread rest of a batch that could not be unpacked) carries a small JSON value
saying where the record is instead (services/metrics/pipeline.py ``reference_of``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from services.common.headers import PUBLISHER_HEADER, publisher_of

_SOURCE = re.compile(r"^(?P<topic>.+)\[(?P<partition>\d+)\]@(?P<offset>\d+)$")
_UNREAD_RANGE = re.compile(r"offsets (?P<first>\d+)\.\.(?P<last>\d+)")


@dataclass(frozen=True, slots=True)
class Target:
    """The records a reference points at: ``first``..``last`` of ``topic[partition]``,
    and the event of a batch record when ``batch_index`` is set."""

    topic: str
    partition: int
    first: int
    last: int
    batch_index: int | None = None

    @property
    def place(self) -> str:
        span = str(self.first) if self.first == self.last else f"{self.first}..{self.last}"
        return f"{self.topic}[{self.partition}]@{span}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-letter record: where it lies (``place``), when it was written, its parts."""

    place: str
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        """The last ``name`` header as text (undecodable bytes replaced), None if absent."""
        found = [v for k, v in self.headers if k == name]
        return found[-1].decode(errors="replace") if found else None

    @property
    def reason(self) -> str:
        return self.header("dlq_reason") or ""

    @property
    def detail(self) -> str:
        return self.header("dlq_detail") or ""

    @property
    def source(self) -> str:
        """``topic[partition]@offset`` of the refused record."""
        return self.header("dlq_source") or ""

    @property
    def source_topic(self) -> str:
        matched = _SOURCE.match(self.source)
        return matched["topic"] if matched else ""

    @property
    def batch_index(self) -> int | None:
        index = self.header("dlq_batch_index")
        return int(index) if index is not None and index.isdigit() else None

    @property
    def is_reference(self) -> bool:
        return self.header("dlq_reference") == "1"

    @property
    def publisher_text(self) -> str | None:
        """The ``egov_publisher`` header as sent (None: unbound), for display."""
        return self.header(PUBLISHER_HEADER)

    def identity(self) -> str:
        """The publisher its events were first published under (``UNBOUND``, "", with no
        header); ValueError when the header names none (services/common/headers.py)."""
        return publisher_of(self.headers)

    @property
    def same_record(self) -> tuple[str, int | None]:
        """What two dead letters of one refused record (a worker that wrote it, then
        stopped before its position was stored, writes it again) have in common."""
        return (self.source, self.batch_index)

    def target(self) -> Target | None:
        """Where a reference points (None: not a reference, or one that says nowhere)."""
        if not self.is_reference or self.value is None:
            return None
        try:
            body = orjson.loads(self.value)
            topic, partition, offset = body["topic"], int(body["partition"]), int(body["offset"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        span = _UNREAD_RANGE.search(str(body.get("detail") or self.detail))
        first, last = (int(span["first"]), int(span["last"])) if span else (offset, offset)
        index = body.get("batch_index")
        return Target(str(topic), partition, first, last, index if isinstance(index, int) else None)


def events_in(value: bytes | None, batch_index: int | None) -> list[Any] | str:
    """The events a record value holds (the element ``batch_index`` of a batch record),
    or why it holds none that can be read."""
    if not value:
        return "the record has no value"
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"not JSON ({exc})"
    if not isinstance(parsed, list):
        return [parsed]
    if batch_index is None:
        return parsed
    if not 0 <= batch_index < len(parsed):
        return f"the batch holds no event {batch_index}"
    return [parsed[batch_index]]


def event_label(event: Any) -> tuple[str, str]:
    """An event's ``id`` and ``source`` as text ("" when it has none)."""
    if not isinstance(event, dict):
        return "", ""
    return str(event.get("id", "")), str(event.get("source", ""))
