"""The parsed CloudEvent that flows downstream of ingest, and strict RFC 3339 time parsing."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"

# RFC 3339 section 5.6 with the offset mandatory. datetime.fromisoformat alone would also
# accept ISO 8601 forms an integrator could not produce from the contract (no offset,
# basic format, week dates), so the grammar is checked here first; fromisoformat (C, fast)
# then rejects impossible dates such as 2024-02-30 and leap seconds.
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset into an aware datetime.

    Fractions finer than a microsecond are truncated. Leap seconds (":60") are rejected:
    Python cannot represent them and no integrating system is expected to emit them.
    Raises ValueError for anything else, including out-of-range fields.
    """
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError(f"not an RFC 3339 timestamp with offset: {value!r}")
    # RFC 3339 allows lowercase "t" and "z"; fromisoformat does not.
    return datetime.fromisoformat(value.upper())


def is_rfc3339(value: str) -> bool:
    """True when `parse_time` accepts `value`; the contract uses it as the date-time format."""
    try:
        parse_time(value)
    except ValueError:
        return False
    return True


def format_time(value: datetime) -> str:
    """RFC 3339 with the datetime's own offset; `Z` for UTC so output matches common senders."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@dataclass(slots=True)
class CloudEvent:
    """One validated event, as the stream processors see it.

    `time` is when the thing happened (timezone-aware), not when it arrived. Extension
    attributes other than `unit` are not kept: nothing downstream reads them.

    Treat it as immutable. It is not declared frozen because the metrics workers build
    one per event: a frozen dataclass sets each field through ``object.__setattr__``,
    which made construction the largest single cost of decoding an event (~2 µs).
    """

    id: str
    source: str
    type: str
    time: datetime
    unit: str
    data: Mapping[str, Any]
    dataschema: str | None = None

    def __post_init__(self) -> None:
        # Window assignment depends on the offset; a naive time would silently mean UTC.
        # A fixed offset (what fromisoformat gives) is aware: utcoffset() is not called
        # for it, as it costs more than the rest of the constructor.
        tz = self.time.tzinfo
        if tz is None or (type(tz) is not timezone and self.time.utcoffset() is None):
            raise ValueError("CloudEvent.time must be timezone-aware")

    @classmethod
    def from_dict(cls, event: Mapping[str, Any]) -> CloudEvent:
        """Build from a structured-mode envelope that `Contract.validate` has accepted."""
        return cls(
            id=event["id"],
            source=event["source"],
            type=event["type"],
            time=parse_time(event["time"]),
            unit=event["unit"],
            data=dict(event["data"]),
            dataschema=event.get("dataschema"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The structured-mode envelope, ready for orjson.dumps."""
        envelope: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": format_time(self.time),
            "unit": self.unit,
            "datacontenttype": DATACONTENTTYPE,
        }
        if self.dataschema is not None:
            envelope["dataschema"] = self.dataschema
        envelope["data"] = dict(self.data)
        return envelope

    @property
    def dedup_key(self) -> tuple[str, str]:
        """(source, id): the same pair counts once however often it is delivered."""
        return (self.source, self.id)
