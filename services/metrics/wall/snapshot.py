"""One merged reading of every source at one instant, and how readings are merged."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from services.metrics.wall.model import Activity, Alert, Figure


@dataclass(frozen=True, slots=True)
class SourceState:
    """Whether one source answered the last reading, and when it last did."""

    kind: str
    """``metrics`` or ``alerts``."""
    url: str
    ok: bool
    error: str | None = None
    last_ok_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the wall knows at ``taken_at``; pages are views of one snapshot."""

    taken_at: datetime
    figures: tuple[Figure, ...] = ()
    activity: tuple[Activity, ...] = ()
    alerts: tuple[Alert, ...] | None = None
    """``None`` when the alerts service could not be read (not the same as no alerts)."""
    sources: tuple[SourceState, ...] = ()
    data_time: datetime | None = None
    """When every metrics worker last answered together; the age of the figures."""
    fingerprint: str = field(default="", compare=False)

    @property
    def stale(self) -> bool:
        """Some metrics worker did not answer: its provinces' figures are missing or old."""
        return any(not s.ok for s in self.sources if s.kind == "metrics") or not any(
            s.kind == "metrics" for s in self.sources
        )

    @property
    def failed_sources(self) -> list[SourceState]:
        return [s for s in self.sources if not s.ok]


def merge_figures(answers: Iterable[Iterable[Figure]]) -> tuple[Figure, ...]:
    """One figure per (unit, kpi, window) over every worker's answer.

    During a rebalance two workers can briefly both answer for a unit; counts within a
    period only grow, so the larger denominator is the fresher figure.
    """
    best: dict[tuple[str, str, str], Figure] = {}
    for answer in answers:
        for fig in answer:
            key = (fig.unit, fig.kpi, fig.window)
            held = best.get(key)
            if held is None or (fig.denominator, fig.numerator) > (
                held.denominator,
                held.numerator,
            ):
                best[key] = fig
    return tuple(sorted(best.values(), key=lambda f: (f.province, f.unit, f.kpi, f.window)))


def merge_activity(answers: Iterable[Iterable[Activity]]) -> tuple[Activity, ...]:
    latest: dict[tuple[str, str], Activity] = {}
    for answer in answers:
        for act in answer:
            held = latest.get((act.unit, act.family))
            if held is None or act.last_event_time > held.last_event_time:
                latest[(act.unit, act.family)] = act
    return tuple(sorted(latest.values(), key=lambda a: (a.unit, a.family)))


def fingerprint(
    figures: tuple[Figure, ...],
    activity: tuple[Activity, ...],
    alerts: tuple[Alert, ...] | None,
    sources: tuple[SourceState, ...],
) -> str:
    """Changes exactly when something a page shows changes (not on every reading)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (
        figures,
        activity,
        alerts,
        tuple((s.kind, s.url, s.ok, s.error) for s in sources),
    ):
        digest.update(repr(part).encode())
    return digest.hexdigest()
