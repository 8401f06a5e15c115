"""One merged reading of every source at one instant, and how readings are merged."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from services.common import figures as shared
from services.common.figures import Activity, Figure
from services.wall.model import Alert


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
    """``None`` when the alerts service could not be read (not the same as no alerts), or
    when the wall has none (``alerts_configured`` is False)."""
    alerts_configured: bool = True
    """False when ``EGOV_ALERTS_URL`` is empty: the wall shows no alerts panel at all,
    never "no open alerts" (it read none)."""
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
    """Every worker's figures merged (:func:`services.common.figures.merge_figures`),
    in page order: by province, unit, KPI and window."""
    merged = shared.merge_figures([list(a) for a in answers])
    return tuple(sorted(merged, key=lambda f: (f.province, f.unit, f.kpi, f.window)))


def fingerprint(
    figures: tuple[Figure, ...],
    activity: tuple[Activity, ...],
    alerts: tuple[Alert, ...] | None,
    sources: tuple[SourceState, ...],
    alerts_configured: bool = True,
) -> str:
    """Changes exactly when something a page shows changes (not on every reading)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (
        figures,
        activity,
        alerts,
        alerts_configured,
        tuple((s.kind, s.url, s.ok, s.error) for s in sources),
    ):
        digest.update(repr(part).encode())
    return digest.hexdigest()
