"""The alert state machine: verdicts in, transitions out. Pure: time and ids are inputs.

One open alert (pending or firing) per identity at most. A breach opens a pending
alert, which fires once the breach has lasted ``hold_for_s`` without a break; a HOLD
or CLEAR before that cancels it silently. A firing alert resolves only on CLEAR:
HOLD (inside the hysteresis margin, or too little volume) and unknown (no figure)
keep it firing. A verdict with ``keep_firing_for_s`` (KpiBudgetBurn) resolves it only
once CLEAR has lasted that long: a BREACH inside it keeps the alert firing and starts the
hold again on the next CLEAR; HOLD and unknown neither end nor restart it (Prometheus'
``keep_firing_for``). Severity is set when the alert fires and only ever goes up: a firing
alert whose breach grows graver (an info or a ticket collapsing to a page's figures) is
escalated: it resolves, saying so, and an alert of the graver severity fires in its
place at once (its breach has held already). Alertmanager identifies an alert by its
labels, so the new severity is a new alert: it notifies its own receiver, and an
acknowledgement's silence of the milder one does not hide it. A breach that eases stays
at the severity it reached until it clears (no page-ticket-page flapping).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from services.alerts import text
from services.alerts.model import (
    Alert,
    AlertKey,
    Severity,
    State,
    Status,
    Transition,
    Verdict,
)

NewId = Callable[[], str]

GRAVITY: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}


def _uuid() -> str:
    return str(uuid.uuid4())


class AlertBook:
    """Open alerts by identity; :meth:`observe` applies one evaluation's verdicts."""

    def __init__(self, open_alerts: Iterable[Alert] = (), new_id: NewId = _uuid) -> None:
        self.open: dict[AlertKey, Alert] = {a.key: a for a in open_alerts if a.state.is_open}
        self._new_id = new_id
        self.holds_changed = False
        """Whether the last :meth:`observe` started or ended a hold (``Alert.clear_since``)
        without a transition: the state file is saved all the same."""

    def observe(self, verdicts: Iterable[Verdict], now: datetime) -> list[Transition]:
        self.holds_changed = False
        transitions: list[Transition] = []
        for verdict in verdicts:
            transitions.extend(self._step(verdict, now))
        return transitions

    def _step(self, verdict: Verdict, now: datetime) -> list[Transition]:
        alert = self.open.get(verdict.key)
        if alert is None:
            if verdict.status is not Status.BREACH:
                return []
            return self._open(verdict, now)
        _refresh(alert, verdict, now)
        if alert.state is State.PENDING:
            if verdict.status is not Status.BREACH:
                return [self._move(alert, State.CANCELLED, now, verdict)]
            if (now - alert.pending_since).total_seconds() >= verdict.hold_for_s:
                return [self._move(alert, State.FIRING, now, verdict)]
            return []
        if verdict.status is Status.BREACH:
            self._hold(alert, None)  # burning again: still the same incident, no new page
            if GRAVITY[verdict.severity] > GRAVITY[alert.severity]:
                return self._escalate(alert, verdict, now)
            return []
        if alert.clear_since is not None and alert.clear_since > now:
            # A hold begun "later" than now (a state file written by a clock ahead, a clock
            # set back) begins now: it may delay the resolution by one hold, never more.
            self._hold(alert, now)
        since = alert.clear_since or now
        held_s = (now - since).total_seconds()
        if verdict.status is Status.CLEAR:
            if held_s >= verdict.keep_firing_for_s:
                return [self._move(alert, State.RESOLVED, now, verdict)]
            self._hold(alert, since)
        elif alert.clear_since is not None and held_s >= verdict.keep_firing_for_s:
            # HOLD (too little volume to judge) after the pair had stopped burning: the
            # last figures judged were clear and the hold ran out, so the alert ends, as
            # Prometheus' keep_firing_for ends an alert whose series went away. Waiting
            # for volume would hold it firing all night.
            return [self._move(alert, State.RESOLVED, now, verdict)]
        if alert.clear_since is not None:
            _say_held(alert, alert.clear_since, verdict.keep_firing_for_s)
        return []

    def _hold(self, alert: Alert, since: datetime | None) -> None:
        if alert.clear_since != since:
            alert.clear_since = since
            self.holds_changed = True

    def _open(
        self, verdict: Verdict, now: datetime, pending_since: datetime | None = None
    ) -> list[Transition]:
        alert = Alert(
            id=self._new_id(),
            key=verdict.key,
            state=State.PENDING,
            severity=verdict.severity,
            province=verdict.province,
            labels=verdict.labels(),
            annotations={},
            values={},
            pending_since=pending_since or now,
            updated_at=now,
        )
        _refresh(alert, verdict, now)
        self.open[verdict.key] = alert
        opened = self._record(alert, None, now, verdict)
        if verdict.hold_for_s <= 0:
            return [opened, self._move(alert, State.FIRING, now, verdict)]
        return [opened]

    def _escalate(self, alert: Alert, verdict: Verdict, now: datetime) -> list[Transition]:
        """End ``alert`` as superseded and fire one of ``verdict``'s graver severity."""
        vi, en = text.escalated(verdict.severity)
        alert.annotations |= {
            "summary": alert.annotations["summary_en"] + en,
            "summary_vi": alert.annotations["summary_vi"] + vi,
            "summary_en": alert.annotations["summary_en"] + en,
            "escalated_to": verdict.severity,
        }
        alert.annotations["description"] = (
            f"{alert.annotations['summary_vi']}\n{alert.annotations['summary_en']}"
        )
        ended = self._move(alert, State.RESOLVED, now, verdict)
        # Pending since the breach began, not since the escalation: the alert's history
        # says how long the unit has been failing (the page's own start is fired_at).
        graver = replace(verdict, hold_for_s=0.0)
        return [ended, *self._open(graver, now, pending_since=alert.pending_since)]

    def _move(self, alert: Alert, to: State, now: datetime, verdict: Verdict) -> Transition:
        before = alert.state
        alert.state = to
        if to is State.FIRING:
            alert.fired_at = now
            alert.severity = verdict.severity
            alert.labels = verdict.labels()
        elif to in (State.RESOLVED, State.CANCELLED):
            alert.resolved_at = now
            del self.open[alert.key]
        return self._record(alert, before, now, verdict)

    def _record(
        self, alert: Alert, before: State | None, now: datetime, verdict: Verdict
    ) -> Transition:
        snapshot = replace(alert, labels=dict(alert.labels), annotations=dict(alert.annotations))
        return Transition(self._new_id(), snapshot, before, alert.state, now, dict(verdict.values))


def _say_held(alert: Alert, since: datetime, keep_firing_for_s: float) -> None:
    """A held alert's summary says it stopped burning, and when it ends if it stays so:
    its figures alone (multiples under the factor) under "is falling fast" misled."""
    vi, en = text.held(since, since + timedelta(seconds=keep_firing_for_s))
    summary_vi = alert.annotations["summary_vi"] + vi
    summary_en = alert.annotations["summary_en"] + en
    alert.annotations |= {
        "summary": summary_en,
        "summary_vi": summary_vi,
        "summary_en": summary_en,
        "description": f"{summary_vi}\n{summary_en}",
    }


def _refresh(alert: Alert, verdict: Verdict, now: datetime) -> None:
    """Latest figures and wording; the labels (severity included) stay as fired."""
    alert.values = dict(verdict.values)
    alert.annotations = {
        "summary": verdict.summary_en,
        "summary_vi": verdict.summary_vi,
        "summary_en": verdict.summary_en,
        "description": f"{verdict.summary_vi}\n{verdict.summary_en}",
    }
    alert.updated_at = now
