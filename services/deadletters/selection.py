"""Which dead letters a command takes: ``--since``, ``--reason``, ``--publisher``,
``--province``, ``--source-topic``. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common.units import VN_TZ
from services.deadletters.letters import DeadLetter

_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: a duration back from ``now`` (``90m``, ``6h``, ``7d``, ``2w``) or an
    ISO 8601 time (a time without offset is Vietnam time). ValueError otherwise."""
    duration = _DURATION.match(text.strip())
    if duration:
        return now - timedelta(seconds=float(duration["n"]) * _SECONDS[duration["unit"]])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither a duration (90m, 6h, 7d, 2w) nor a time "
            "(2026-12-06T08:00, Vietnam time unless it says otherwise)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=VN_TZ)


@dataclass(frozen=True, slots=True)
class Selection:
    """The dead letters asked for; an option not given selects all."""

    since: datetime | None = None
    reason: str | None = None
    publisher: str | None = None
    """``egov_publisher`` as sent; ``-`` selects the unbound ones (no header)."""
    province: str | None = None
    source_topic: str | None = None

    @property
    def since_ms(self) -> int | None:
        return None if self.since is None else int(self.since.timestamp() * 1000)

    def takes(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` is selected by all but its province (``takes_province``)."""
        since = self.since_ms
        publisher = letter.publisher_text
        return (
            (since is None or letter.timestamp_ms >= since)
            and (self.reason is None or letter.reason == self.reason)
            and (self.publisher is None or (publisher or "-") == self.publisher)
            and (self.source_topic is None or letter.source_topic == self.source_topic)
        )

    def takes_province(self, province: str) -> bool:
        return self.province is None or province == self.province
