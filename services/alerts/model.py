"""Domain types of the alerts service: figures read, verdicts of conditions, alerts.

Pure data, no I/O. An alert's identity is :class:`AlertKey` (condition, kpi, unit,
window); a :class:`Verdict` is one condition's answer for one identity at one instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

Severity = Literal["critical", "warning", "info"]


class State(StrEnum):
    """Lifecycle: pending → firing → resolved; pending → cancelled (never notified)."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self in (State.PENDING, State.FIRING)


class Status(StrEnum):
    """What a condition says about one identity right now.

    ``BREACH``: the condition holds. ``CLEAR``: it clearly does not (past any hysteresis
    margin). ``HOLD``: in between (within the margin) or not enough volume to tell.
    ``UNKNOWN`` (no figure at all) is expressed by leaving the identity out.
    """

    BREACH = "breach"
    HOLD = "hold"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True, order=True)
class AlertKey:
    condition: str
    kpi: str
    unit: str
    window: str

    def __str__(self) -> str:
        return f"{self.condition}/{self.kpi}/{self.unit}/{self.window}"


class Figure(NamedTuple):
    """One KPI rate of one unit in one window, as a metrics worker serves it.

    A named tuple rather than a frozen dataclass: 70,000 are built per window and cycle
    at 10,000 units, and a tuple is built about three times faster.
    """

    kpi: str
    unit: str
    window: str
    numerator: int
    denominator: int
    target: float
    min_volume: int
    unit_name: str = ""
    unit_name_en: str = ""
    kpi_name_vi: str = ""
    kpi_name_en: str = ""
    level: str = ""
    province: str = ""

    @property
    def ratio(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True, slots=True)
class Activity:
    """Last event time of one unit for one family (documents, dossiers, meetings)."""

    unit: str
    family: str
    last_event_time: datetime


@dataclass(frozen=True, slots=True)
class Verdict:
    """A condition's answer for one identity, with what an operator needs to act on it."""

    key: AlertKey
    status: Status
    severity: Severity
    province: str
    values: dict[str, Any]
    summary_vi: str
    summary_en: str
    hold_for_s: float

    def labels(self, severity: Severity | None = None) -> dict[str, str]:
        return {
            "alertname": self.key.condition,
            "kpi": self.key.kpi,
            "unit": self.key.unit,
            "window": self.key.window,
            "severity": severity or self.severity,
            "province": self.province,
        }


@dataclass(slots=True)
class Alert:
    """One alert's current state (one row of ``alerts``)."""

    id: str
    key: AlertKey
    state: State
    severity: Severity
    province: str
    labels: dict[str, str]
    annotations: dict[str, str]
    values: dict[str, Any]
    pending_since: datetime
    updated_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of state, with the values that caused it; ``alert`` is a snapshot."""

    id: str
    alert: Alert
    from_state: State | None
    to_state: State
    at: datetime
    values: dict[str, Any] = field(default_factory=dict)
