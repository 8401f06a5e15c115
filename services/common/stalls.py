"""A metrics worker's word that its counting is stalled: written by the worker, read by
the figures client (the alerts, the wall). Pure.

A worker whose flushes cannot commit (PostgreSQL away, an operator's lock) still runs
and still answers, from figures that stand still while the events it has read wait
uncounted. It says so (docs/metrics-api.md): ``/v1/kpis`` answers 503 with this in its
problem body, ``/v1/activity`` answers 200 with it as ``counting_stalled`` (``null``
while the counting keeps up). A reader treats such a worker as one that does not answer:
its units are unknown, never silent and never recovered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MEMBER = "counting_stalled"
"""The member of an answer (or a problem body) that carries :class:`CountingStall`."""


@dataclass(frozen=True, slots=True)
class CountingStall:
    """How long the worker has committed nothing while records it read wait."""

    stalled_s: float
    """Seconds since the last flush committed (or since the records began to wait)."""
    waiting_records: int
    """Records read and handed to the counting, not counted yet."""
    after_s: float
    """The worker's threshold (``EGOV_METRICS_STALL_AFTER_S``)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "stalled_s": round(self.stalled_s, 1),
            "waiting_records": self.waiting_records,
            "after_s": self.after_s,
        }

    @classmethod
    def from_json(cls, value: Any) -> CountingStall | None:
        """The stall an answer states; None when it states none (``null``, absent: a
        worker that keeps up, or one older than this member). Something else there is
        taken as a stall of unknown length: a worker that says it is stalled is believed."""
        if value is None:
            return None
        if not isinstance(value, dict):
            return cls(0.0, 0, 0.0)
        waiting = int(_number(value.get("waiting_records")))
        return cls(_number(value.get("stalled_s")), waiting, _number(value.get("after_s")))

    def describe(self) -> str:
        """A few words for a log line or a source's state on the wall."""
        return (
            f"counting stalled: nothing committed for {self.stalled_s:.0f} s, "
            f"{self.waiting_records} records waiting"
        )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if value == value and abs(value) != float("inf") else 0.0
