"""What the wall shows besides the figures, as pure data: alerts, order, silence.

Nothing here does I/O. The figures, their activity and how a rate is judged are shared
with the alerts service (:mod:`services.common.figures`); :mod:`services.wall.sources`
reads the services, and :mod:`services.wall.overview` arranges a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from services.common.calendar import WorkingCalendar
from services.common.events import parse_time
from services.common.figures import Figure


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


def worst_first_key(figure: Figure) -> tuple[int, Fraction, int, str]:
    """Below target first (largest gap first, exactly: equal gaps tie, and the larger
    volume goes first), then low volume, no data, meeting targets."""
    return (figure.status.rank, -figure.shortfall, -figure.denominator, figure.unit)


OFFICE_HOURS = WorkingCalendar()
"""Working hours without the holidays file: what pure callers get unless they pass one."""


def is_silent(
    last_event: datetime | None,
    now: datetime,
    silence_minutes: float,
    calendar: WorkingCalendar = OFFICE_HOURS,
) -> bool:
    """No event for ``silence_minutes`` of working time; a unit never heard from is silent.

    Counted in working time, as the alerts' UnitSilent counts it: a unit that last sent
    at 16:50 is not silent at night or over the weekend, so the wall and the pager agree.
    """
    if last_event is None:
        return True
    return calendar.working_seconds(last_event, now) >= silence_minutes * 60


# ------------------------------------------------------------------ parsing


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(str(value))
    except ValueError:
        return None


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
