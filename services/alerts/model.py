"""Domain types of the alerts service: verdicts of conditions, alerts, transitions.

Pure data, no I/O (the figures read are :mod:`services.common.figures`). An alert's
identity is :class:`AlertKey` (condition, kpi, unit, window); a :class:`Verdict` is one
condition's answer for one identity at one instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

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
    keep_firing_for_s: float = 0.0
    """How long a CLEAR must last without a break before a firing alert resolves (a
    KpiBudgetBurn's ``EGOV_ALERT_BURN_KEEP_FIRING_S``); 0: at once."""
    family: str = ""
    """The event family the alert is about (documents, dossiers, meetings): a KPI's, or
    the silent one; "" for a publisher's rejections. Alertmanager's inhibition of a
    silent unit's KPI alerts matches on it (deploy/alertmanager/alertmanager.yml)."""
    level: str = ""
    """A UnitSilent's unit level (province, commune, …): a province silent in a family is
    its publisher's system down, and its alert mutes its units' (one page, not one per
    commune; deploy/alertmanager/alertmanager.yml, review 65). "" on other alerts."""

    def labels(self, severity: Severity | None = None) -> dict[str, str]:
        labels = {
            "alertname": self.key.condition,
            "kpi": self.key.kpi,
            "unit": self.key.unit,
            "window": self.key.window,
            "severity": severity or self.severity,
            "province": self.province,
        }
        if self.family:
            labels["family"] = self.family
        if self.level:
            labels["level"] = self.level
        return labels


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
    clear_since: datetime | None = None
    """While a firing alert is kept firing after its condition cleared: since when it has
    been clear (:attr:`Verdict.keep_firing_for_s`). Kept in the state file, not in the
    ``alerts`` row, which is written at transitions only."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of state, with the values that caused it; ``alert`` is a snapshot."""

    id: str
    alert: Alert
    from_state: State | None
    to_state: State
    at: datetime
    values: dict[str, Any] = field(default_factory=dict)
