"""What the wall shows, as pure data: figures, activity, alerts, and how they are judged.

Nothing here does I/O; :mod:`services.metrics.wall.sources` turns the services' JSON
into these types, and :mod:`services.metrics.wall.overview` arranges them for a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.common.events import parse_time


class Status(StrEnum):
    """How one rate stands against its target; the order is worst first."""

    BELOW = "below"
    """Enough volume, and the rate is under the target."""
    LOW_VOLUME = "low_volume"
    """Fewer events than the KPI's minimum volume: shown, never judged."""
    NO_DATA = "no_data"
    """No event counts towards this rate in this window."""
    MEETS = "meets"

    @property
    def rank(self) -> int:
        return list(Status).index(self)


@dataclass(frozen=True, slots=True)
class Figure:
    """One KPI rate of one unit in one window, as /v1/kpis serves it."""

    kpi: str
    kpi_name_vi: str
    kpi_name_en: str
    unit: str
    unit_name: str
    unit_name_en: str
    level: str
    parent: str | None
    province: str
    window: str
    numerator: int
    denominator: int
    target: float
    min_volume: int
    last_event_time: datetime | None = None

    @property
    def ratio(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    @property
    def status(self) -> Status:
        return classify(self.numerator, self.denominator, self.target, self.min_volume)

    @property
    def gap(self) -> float:
        """How far under the target (positive = worse); 0 when not judged."""
        ratio = self.ratio
        if ratio is None or self.status is not Status.BELOW:
            return 0.0
        return self.target - ratio


@dataclass(frozen=True, slots=True)
class Activity:
    """Last event time of one unit for one family (documents, dossiers, meetings)."""

    unit: str
    family: str
    last_event_time: datetime


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as the alerts service lists it."""

    id: str
    alertname: str
    kpi: str
    unit: str
    window: str
    severity: str
    state: str
    province: str
    summary_vi: str
    summary_en: str
    since: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.state in ("pending", "firing")


def classify(numerator: int, denominator: int, target: float, min_volume: int) -> Status:
    """Judge one rate: volume first (small numbers lie), then the target."""
    if denominator <= 0:
        return Status.NO_DATA
    if denominator < min_volume:
        return Status.LOW_VOLUME
    return Status.MEETS if numerator / denominator >= target else Status.BELOW


def worst_first_key(figure: Figure) -> tuple[int, float, int, str]:
    """Below target first (largest gap first), then low volume, no data, meeting targets."""
    return (figure.status.rank, -figure.gap, -figure.denominator, figure.unit)


def is_silent(last_event: datetime | None, now: datetime, silence_minutes: float) -> bool:
    """No event for ``silence_minutes``; a unit never heard from is silent too."""
    if last_event is None:
        return True
    return (now - last_event).total_seconds() >= silence_minutes * 60


# ------------------------------------------------------------------ parsing


class SourceFormatError(ValueError):
    """A source answered with JSON that is not the documented shape."""


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(str(value))
    except ValueError:
        return None


def figure_from_json(item: Mapping[str, Any]) -> Figure:
    """One element of /v1/kpis ``items``; raises SourceFormatError when it is not one."""
    try:
        return Figure(
            kpi=str(item["kpi"]),
            kpi_name_vi=str(item.get("kpi_name_vi") or item["kpi"]),
            kpi_name_en=str(item.get("kpi_name_en") or item["kpi"]),
            unit=str(item["unit"]),
            unit_name=str(item.get("unit_name") or item["unit"]),
            unit_name_en=str(item.get("unit_name_en") or item.get("unit_name") or item["unit"]),
            level=str(item.get("level") or ""),
            parent=str(item["parent"]) if item.get("parent") else None,
            province=str(item.get("province") or item["unit"]),
            window=str(item["window"]),
            numerator=int(item["numerator"]),
            denominator=int(item["denominator"]),
            target=float(item["target"]),
            min_volume=int(item.get("min_volume") or 0),
            last_event_time=_time(item.get("last_event_time")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceFormatError(f"not a /v1/kpis item ({exc!r}): {dict(item)!r:.200}") from None


def activity_from_json(item: Mapping[str, Any]) -> Activity | None:
    when = _time(item.get("last_event_time"))
    if when is None or not item.get("unit"):
        return None
    return Activity(str(item["unit"]), str(item.get("family") or ""), when)


def alert_from_json(item: Mapping[str, Any]) -> Alert:
    """One alert of GET /v1/alerts; tolerant of the label/annotation layout."""
    labels: Mapping[str, Any] = item.get("labels") or {}
    notes: Mapping[str, Any] = item.get("annotations") or {}

    def pick(*names: str) -> Any:
        for source in (item, labels, notes):
            for name in names:
                if source.get(name) not in (None, ""):
                    return source[name]
        return None

    return Alert(
        id=str(pick("id") or ""),
        alertname=str(pick("alertname", "condition") or ""),
        kpi=str(pick("kpi") or ""),
        unit=str(pick("unit") or ""),
        window=str(pick("window") or ""),
        severity=str(pick("severity") or "warning"),
        state=str(pick("state", "status") or "firing"),
        province=str(pick("province") or ""),
        summary_vi=str(pick("summary_vi", "summary") or ""),
        summary_en=str(pick("summary_en", "summary") or ""),
        since=_time(pick("fired_at", "pending_since", "starts_at", "since")),
        acknowledged_by=pick("acknowledged_by", "acked_by"),
        acknowledged_at=_time(pick("acknowledged_at", "acked_at")),
    )
