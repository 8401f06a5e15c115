"""Evaluation, pure: what one cycle read in, verdicts out. No I/O; time is an input.

:class:`Evaluator` applies the conditions of :mod:`services.alerts.conditions` with
the service's settings, and keeps the little they remember across cycles: when this
process began watching (a never-seen unit is silent from then), ingest's counters over
the rejection window, and when the slow windows were last read. It also says which
windows a cycle must read (:meth:`Evaluator.plan`) and when a pending alert becomes
due (:meth:`Evaluator.due_at`). Reading and state live elsewhere: the composition root
(:mod:`services.alerts.service`) reads, :mod:`services.alerts.state` keeps the alerts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.alerts import conditions
from services.alerts.directory import UnitDirectory
from services.alerts.model import Alert, AlertKey, State, Verdict
from services.alerts.settings import AlertsSettings
from services.common.calendar import WorkingCalendar
from services.common.figures import Figure


@dataclass(frozen=True, slots=True)
class Plan:
    """The windows one cycle reads; ``slow`` when the burn windows are among them."""

    windows: tuple[str, ...]
    slow: bool


@dataclass(frozen=True, slots=True)
class Observation:
    """What one cycle read: the figures of the planned windows, and ingest's counters.

    ``complete`` is False when a metrics worker did not answer: its units are unknown,
    so silence is not judged that cycle. ``ingest`` is None when ingest did not answer.
    """

    plan: Plan
    figures: Sequence[Figure]
    complete: bool
    ingest: conditions.Counters | None = None


class Evaluator:
    """The conditions with this service's settings, and their memory across cycles."""

    def __init__(
        self, settings: AlertsSettings, calendar: WorkingCalendar, directory: UnitDirectory
    ) -> None:
        self.settings = settings
        self.calendar = calendar
        self.directory = directory
        self.watch_start: datetime | None = None
        self._last_slow: datetime | None = None
        self._ingest: deque[tuple[datetime, conditions.Counters]] = deque()

    def start_watching(self, at: datetime) -> None:
        """Silence is judged from here on (a never-seen unit is silent since ``at``)."""
        self.watch_start = at

    # --- scheduling -----------------------------------------------------------------

    def plan(self, open_alerts: Mapping[AlertKey, Alert], now: datetime) -> Plan:
        windows = list(self.settings.alert_windows)
        slow = self._slow_due(open_alerts, now)
        if slow:
            windows += [w for w in conditions.BURN_WINDOWS if w not in windows]
        return Plan(tuple(windows), slow)

    def _slow_due(self, open_alerts: Mapping[AlertKey, Alert], now: datetime) -> bool:
        """Burn windows are read every burn interval, and whenever a burn alert is due."""
        s = self.settings
        if not s.alert_burn_enabled:
            return False
        last = self._last_slow
        if last is None or (now - last).total_seconds() >= s.alert_burn_interval_s:
            return True
        return any(  # due since the last read (once: a pending one left unknown never spins)
            a.key.condition == conditions.BURN and last < self.due_at(a) <= now
            for a in open_alerts.values()
            if a.state is State.PENDING
        )

    def due_at(self, alert: Alert) -> datetime:
        """When a pending alert may fire if its breach holds until then."""
        s = self.settings
        hold = {conditions.BELOW: s.alert_for_s, conditions.BURN: s.alert_burn_for_s}
        return alert.pending_since + timedelta(seconds=hold.get(alert.key.condition, 0.0))

    def next_due(self, open_alerts: Iterable[Alert]) -> datetime | None:
        """The earliest moment a pending alert may fire: the loop evaluates then."""
        pending = [self.due_at(a) for a in open_alerts if a.state is State.PENDING]
        return min(pending, default=None)

    # --- one cycle ------------------------------------------------------------------

    def verdicts(
        self,
        seen: Observation,
        open_alerts: Mapping[AlertKey, Alert],
        last_seen: Mapping[tuple[str, str], datetime],
        now: datetime,
    ) -> list[Verdict]:
        """Every condition's verdicts for this cycle (identities left out are unknown)."""
        s = self.settings
        tracked = open_alerts  # identities with an open alert: see conditions.py
        verdicts = list(
            conditions.kpi_below_target(seen.figures, s.alert_windows, s.alert_hysteresis,
                                        s.alert_for_s, tracked)
        )  # fmt: skip
        if seen.plan.slow and s.alert_burn_enabled:
            # Cycles without the burn windows say nothing about burn alerts (unknown:
            # the lifecycle leaves them as they are).
            verdicts += conditions.kpi_budget_burn(seen.figures, s.alert_burn_for_s, tracked)
            self._last_slow = now
        if seen.complete and self.watch_start is not None:
            # A worker that did not answer would make its units look silent: skip.
            rule = conditions.SilenceRule(
                s.alert_silent_after_s, s.alert_silent_lookback_days, s.alert_silent_peer_share
            )
            verdicts += conditions.unit_silent(
                last_seen, now, self.watch_start, self.calendar, self.directory, rule
            )
        if seen.ingest is not None:
            verdicts += self._rejections(seen.ingest, now)
        return verdicts

    def _rejections(self, counters: conditions.Counters, now: datetime) -> list[Verdict]:
        s = self.settings
        history = self._ingest
        history.append((now, counters))
        window = timedelta(seconds=s.alert_rejection_window_s)
        while len(history) > 2 and now - history[1][0] >= window:
            history.popleft()
        if len(history) < 2:
            return []
        rule = conditions.RejectionRule(
            s.alert_rejection_share, s.alert_rejection_min_events,
            f"{int(s.alert_rejection_window_s // 60)}m",
        )  # fmt: skip
        return list(conditions.ingest_rejections(history[0][1], counters, rule))
